"""Leakage alarms on real extraction output (slow: synthetic cohorts are rendered and extracted).

- Permutation alarm: with shuffled labels the whole pipeline (ICC/impute/filter/select/tune/
  calibrate inside the folds) must average AUC 0.5 over 20 permutations.
- Null render: images of a `synth --null` cohort carry no class signal, so a radiomics-only
  model must come out at chance. Clinical covariates still carry the label by design and are
  left out here.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from rnclassifier.config import LIGHT_EXTRACTION_CONFIG
from rnclassifier.features.api import run_extraction
from rnclassifier.modeling.feature_sets import feature_sets
from rnclassifier.modeling.nested import Budget, nested_cv
from rnclassifier.stats.discrimination import auc
from rnclassifier.synthetic.write import write_synthetic_cohort
from rnclassifier.training import read_feature_table

pytestmark = pytest.mark.slow
REDUCED = Budget(outer_folds=3, repeats=1, inner_folds=2, trials=4, seed=0)


def _features(folder: Path, *, n_lesions: int, null: bool, seed: int) -> Path:
    write_synthetic_cohort(folder / "cohort", n_lesions=n_lesions, seed=seed, null=null, jobs=2)
    out = folder / "features.parquet"
    run_extraction(folder / "cohort" / "cohort.csv", out, params=LIGHT_EXTRACTION_CONFIG, jobs=2)
    return out


def test_permutation_alarm_averages_chance_over_20_permutations(tmp_path):
    data = read_feature_table(_features(tmp_path, n_lesions=200, null=False, seed=21))
    X = data.X[feature_sets(list(data.X.columns))["combined"]]
    rng = np.random.default_rng(2026)
    aucs = []
    for _ in range(20):
        permuted = rng.permutation(data.y)
        result = nested_cv(X, permuted, data.groups, "xgboost", REDUCED, jobs=2)
        aucs.append(auc(permuted, result.mean_probability(len(permuted))))
    print(f"permuted-label AUCs: mean {np.mean(aucs):.3f}, SD {np.std(aucs):.3f}")
    assert abs(np.mean(aucs) - 0.5) <= 0.05
    # And the same pipeline finds the signal that the true labels carry.
    true = nested_cv(X, data.y, data.groups, "xgboost", REDUCED, jobs=2)
    assert auc(data.y, true.mean_probability(len(data.y))) > 0.65


def test_null_render_gives_chance(tmp_path):
    data = read_feature_table(_features(tmp_path, n_lesions=400, null=True, seed=22))
    X = data.X[feature_sets(list(data.X.columns))["radiomics"]]
    result = nested_cv(X, data.y, data.groups, "xgboost", REDUCED, jobs=2)
    value = auc(data.y, result.mean_probability(len(data.y)))
    print(f"null-render radiomics AUC: {value:.3f}")
    assert abs(value - 0.5) <= 0.05
