"""rnclassifier: tumour progression vs radiation necrosis in brain metastases after radiosurgery.

The package has no import-time side effects: no logging configuration, no MLflow URI, no
temporary folders. Stages are plain functions over plain data; `rnclassifier.cli` is a thin layer.
"""

from rnclassifier.version import __version__

__all__ = ["__version__"]
