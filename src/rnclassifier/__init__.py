"""rnclassifier: tumour progression vs radiation necrosis in brain metastases after radiosurgery.

The public Python API, for notebooks and pipelines (the command line calls the same functions);
`examples/notebook_workflow.py` runs each of them once:

    load_cohort(path)                   a validated cohort manifest (`Cohort`)
    extract_features(cohort, config)    radiomics and clinical features (`FeatureTable`)
    read_feature_table(path)            a feature table from this tool or another (`FeatureData`)
    TrainingSpec(...), load_experiment  what a training run is (flags and configs build one)
    train(spec, out)                    nested CV, report, the primary's bundle; metrics.json
    load_bundle(path)                   a verified `ModelBundle`: `.predict`, `.requirements`
    CaseInputs(...), score_case(b, c)   one lesion scored: what `score --out result.json` holds
    validate(bundle, cohorts, out)      external validation of a frozen bundle

Names load on first use, so `import rnclassifier` is cheap. The package has no import-time side
effects: no logging configuration, no MLflow URI, no temporary folders.
"""

from __future__ import annotations

import importlib
from typing import Any

#: Each public name and the module that holds it.
_API = {
    "__version__": "rnclassifier.version",
    "load_cohort": "rnclassifier.cohort",
    "extract_features": "rnclassifier.features.extract",
    "read_feature_table": "rnclassifier.training",
    "TrainingSpec": "rnclassifier.spec",
    "load_experiment": "rnclassifier.spec",
    "train": "rnclassifier.training",
    "load_bundle": "rnclassifier.bundle",
    "ModelBundle": "rnclassifier.bundle",
    "CaseInputs": "rnclassifier.scoring",
    "score_case": "rnclassifier.scoring",
    "validate": "rnclassifier.validation",
}

__all__ = list(_API)


def __getattr__(name: str) -> Any:
    if name not in _API:
        raise AttributeError(f"module 'rnclassifier' has no attribute {name!r}")
    value = getattr(importlib.import_module(_API[name]), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *_API])
