"""The model bundle: a self-describing folder that scoring and validation read (DESIGN.md).

`meta` is its schema (`bundle.json`, typed), `files` writes, verifies and loads the folder,
`model` is the loaded bundle and its one `predict`.
"""

from rnclassifier.bundle.files import TRUSTED_TYPES, load_bundle, verify_bundle, write_bundle
from rnclassifier.bundle.meta import (
    BUNDLE_FILE,
    CARD_FILE,
    ENSEMBLE_DIR,
    MANIFEST_FILE,
    PIPELINE_FILE,
    SCHEMA_VERSION,
    BundleMeta,
    ModelDescription,
)
from rnclassifier.bundle.model import INDETERMINATE, ModelBundle, Prediction

__all__ = [
    "BUNDLE_FILE",
    "CARD_FILE",
    "ENSEMBLE_DIR",
    "INDETERMINATE",
    "MANIFEST_FILE",
    "PIPELINE_FILE",
    "SCHEMA_VERSION",
    "TRUSTED_TYPES",
    "BundleMeta",
    "ModelBundle",
    "ModelDescription",
    "Prediction",
    "load_bundle",
    "verify_bundle",
    "write_bundle",
]
