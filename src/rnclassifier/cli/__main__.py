"""`python -m rnclassifier.cli`: the same as the `rnclassifier` command."""

import sys

from rnclassifier.cli.app import main

# The guard: a spawned worker process (the service's scoring pool) imports this module as
# `__mp_main__` and must not run the command again.
if __name__ == "__main__":
    sys.exit(main())
