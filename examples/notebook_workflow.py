"""The public Python API end to end, as a research physicist would use it in a notebook: a
SYNTHETIC cohort (never patient data), its features, a small training run, the bundle, one
new case scored and an external cohort validated.

    .venv/bin/python examples/notebook_workflow.py [WORK_FOLDER]

Each call is one public function of `rnclassifier` (the command line calls the same ones).
The sizes are small so that it runs in a couple of minutes on 2 cores; the figures it prints
come from 30 lesions and mean little.
"""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import pandas as pd

import rnclassifier as rn
from rnclassifier.config import LIGHT_EXTRACTION_CONFIG
from rnclassifier.synthetic import write_synthetic_cohort


def main(work: Path) -> dict:
    # 1. A cohort manifest, validated: one row per lesion, every problem named at once.
    write_synthetic_cohort(work / "seed", n_lesions=30, seed=7, jobs=2)
    cohort = rn.load_cohort(work / "seed" / "cohort.csv", require_pathology=True)
    print(f"cohort: {cohort.n_lesions} lesions of {cohort.n_patients} patients")

    # 2. Features with the light profile (original-image features of T1c and FLAIR).
    features = rn.extract_features(cohort, LIGHT_EXTRACTION_CONFIG, jobs=2)
    table = features.write(work / "features.parquet")
    data = rn.read_feature_table(table)
    print(f"features: {data.X.shape[1]} columns")

    # 3. A training run, declared before it runs; the spec is the same one a config builds.
    spec = rn.TrainingSpec(
        name="notebook-synthetic",
        synthetic=True,
        models=("elastic_net",),
        primary={"model": "elastic_net", "feature_set": "combined"},
        feature_sets=("combined",),
        cv={"outer_folds": 3, "repeats": 1, "inner_folds": 2, "trials": 3},
        tracking={"enabled": False},
        bundle={"path": str(work / "models" / "notebook-synthetic")},
        data={"features": str(table)},
    )
    metrics = rn.train(spec, work / "experiment", jobs=2)
    auc = metrics["models"]["elastic_net/combined"]["auc"]
    print(f"nested-CV AUC {auc['estimate']:.2f} ({auc['low']:.2f}-{auc['high']:.2f})")

    # 4. The frozen bundle: verified on load; one `predict` for every path.
    bundle = rn.load_bundle(metrics["bundle"])
    prediction = bundle.predict(data.X.iloc[:3], sites=None)
    print(f"bundle: calls {list(prediction.call)} for three training lesions")

    # 5. A new case, as the command line's `score` would take it.
    row = cohort.lesions.iloc[0]
    case = rn.CaseInputs(
        images={"t1c": row["t1c"], "flair": row["flair"]},
        mask=row["mask"],
        brain_mask=row["brain_mask"],
        site=row["site"],
        clinical={c: str(row[c]) for c in bundle.requirements.covariates if pd.notna(row[c])},
    )
    result = rn.score_case(bundle, case)
    print(f"case: probability {result['probability']:.2f}, call {result['call']}")

    # 6. External validation of the frozen model on another (SYNTHETIC) institution.
    write_synthetic_cohort(work / "external", preset="external", n_lesions=16, seed=8, jobs=2)
    document = rn.validate(bundle, [work / "external" / "cohort.csv"], work / "validation",
                           track=False, jobs=2)  # fmt: skip
    external = document["cohorts"]["external"]["discrimination"]["auc"]
    print(f"external AUC {external['estimate']:.2f}")
    return {"metrics": metrics, "result": result, "validation": document, "bundle": bundle}


if __name__ == "__main__":
    folder = Path(sys.argv[1]) if len(sys.argv) > 1 else Path(tempfile.mkdtemp())
    main(folder)
