"""rnclassifier: tumour progression vs radiation necrosis in brain metastases after radiosurgery.

The package has no import-time side effects: no logging configuration, no MLflow URI, no
temporary folders. Stages are plain functions over plain data; `rnclassifier.cli` is a thin layer.
"""

from importlib.metadata import PackageNotFoundError, version

try:
    __version__ = version("rnclassifier")
except PackageNotFoundError:  # running from a source tree without installation
    __version__ = "0+unknown"

__all__ = ["__version__"]
