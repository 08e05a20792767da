"""`python benchmarks/run.py` (the older command): the same as `python -m benchmarks`."""

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from benchmarks.cli import main

main()
