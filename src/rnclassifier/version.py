"""The installed package's version, at the bottom of the layers so every module may record it."""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rnclassifier")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = ["__version__"]
