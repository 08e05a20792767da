"""The command line (`rnclassifier`): `app` is the click group, `main` the console script."""

from rnclassifier.cli.app import EXIT_BAD_INPUT, EXIT_INTERNAL, EXIT_INTERRUPTED, EXIT_OK, app, main

__all__ = ["EXIT_BAD_INPUT", "EXIT_INTERNAL", "EXIT_INTERRUPTED", "EXIT_OK", "app", "main"]
