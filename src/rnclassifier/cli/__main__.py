"""`python -m rnclassifier.cli`: the same as the `rnclassifier` command."""

import sys

from rnclassifier.cli.app import main

sys.exit(main())
