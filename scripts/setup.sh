#!/usr/bin/env bash
# Set up ./.venv for rnclassifier on a machine that has Python 3.11+ and pip, nothing else.
#
# Why not `pip install .`: PyPI's pyradiomics has no wheel for Python >= 3.11, its 3.1.0 source
# cannot build, and 3.0.1's setup.py imports numpy, so pip's isolated build fails. uv (from PyPI,
# installed into the venv) builds it with numpy supplied ([tool.uv.extra-build-dependencies] in
# pyproject.toml), and pins every package to requirements/lock.txt for reproducible installs.
#
# Idempotent: a second run only checks that the environment matches the lock.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON="${PYTHON:-python3}"
"$PYTHON" - <<'PY' || { echo "rnclassifier needs Python >= 3.11 (set PYTHON=/path/to/python3.11)" >&2; exit 2; }
import sys
sys.exit(0 if sys.version_info >= (3, 11) else 1)
PY

if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
if [ ! -x .venv/bin/uv ]; then
  .venv/bin/python -m pip install --quiet --disable-pip-version-check "uv>=0.8.8"
fi
# Python must not be downloaded by uv: the venv's interpreter is the one we use.
export UV_PYTHON_DOWNLOADS=never
.venv/bin/uv pip install --quiet --python .venv/bin/python \
  --constraints requirements/lock.txt -e ".[dev]"
echo "rnclassifier environment ready: $(.venv/bin/rnclassifier --version 2>/dev/null || echo '.venv')" >&2
