"""The model card shipped in every bundle (after Mitchell et al. 2019, "Model Cards for Model
Reporting"): intended use, training data, performance with intervals, and limitations."""

from __future__ import annotations

from rnclassifier.bundle.meta import ModelDescription, Thresholds
from rnclassifier.report.html import INTENDED_USE, ci
from rnclassifier.report.training import search_text


def model_card(meta: ModelDescription) -> str:
    """Markdown, from the bundle's own metadata (so the card cannot disagree with it)."""
    training = meta.training
    rule = meta.thresholds.rule
    at_rule = meta.metrics.at_threshold_rule
    budget = training.budget
    synthetic = meta.synthetic
    lines = [
        f"# Model card: {meta.name}",
        "",
        "**SYNTHETIC.** Trained on a synthetic cohort from `rnclassifier synth`; it demonstrates "
        "the tool and is not a clinical model."
        if synthetic
        else "Trained on the cohort described below; validate it on your own before any use.",
        "",
        "## Intended use",
        INTENDED_USE,
        "Input: one enlarging brain metastasis on follow-up MRI after stereotactic radiosurgery "
        "(post-contrast T1 and the sequences listed below, a lesion mask, and the clinical facts "
        "known on the date of that MRI). Output: a calibrated probability of tumour progression "
        "versus radiation necrosis, a call at a pre-specified threshold, and the features that "
        "drove it. Not for lesions that were never treated with SRS, not for other tumours, not "
        "a replacement for pathology or multidisciplinary review.",
        "",
        "## Model",
        f"- {meta.model} on the `{meta.feature_set}` feature set "
        f"({len(meta.features.input)} candidate features, {len(meta.features.used)} "
        "used by the final model); primary model declared before training.",
        f"- Tuned by {search_text(meta.model, budget['trials'])} on "
        f"{budget['inner_folds']}-fold "
        "patient-grouped CV; calibrated "
        f"({budget['calibration']}) and thresholded on grouped out-of-fold probabilities.",
        f"- Threshold: {rule.value:.3f} (rule: "
        + (f"tumour sensitivity >= {rule.target:g}" if rule.kind == "sensitivity" else "Youden's J")
        + ")"
        + _zone_text(meta.thresholds)
        + ".",
        *_matched_lines(meta.thresholds),
        f"- Explanations: {meta.shap.explainer} ({meta.shap.feature_perturbation}); "
        "no background rows are stored.",
        "",
        "## Training data",
        f"- {training.n_lesions} lesions of {training.n_patients} patients; "
        f"tumour prevalence {training.prevalence:.0%}. Probabilities are calibrated to this "
        "prevalence; scoring can shift them to another with `--prevalence` (flagged).",
        f"- Sequences: {', '.join(meta.sequences or ['not recorded'])}; sites: "
        + (
            ", ".join(f"{k} ({v} lesions)" for k, v in meta.sites.items())
            if meta.sites
            else "not recorded"
        )
        + ".",
        f"- Data hash (SHA-256 of features and labels): `{training.data_sha256}`.",
        "",
        "## Performance (nested cross-validation, out-of-fold; internal validation only)",
        f"- AUC {ci(meta.metrics.nested_cv_auc, 3)} (95% CI, patient-cluster bootstrap).",
        f"- At the threshold rule: sensitivity {ci(at_rule['sensitivity'])}, specificity "
        f"{ci(at_rule['specificity'])}.",
        "",
        "## Limitations",
        "- Internal validation estimates the performance of the modelling *procedure*; external "
        "validation (`rnclassifier validate`) is needed before trusting this model elsewhere.",
        "- Trained on lesions selected for resection: the probability is conditional on that "
        "selection and on the training prevalence.",
        (
            "- Scoring flags a lesion whose continuous model features lie beyond the training "
            f"cohort's out-of-distribution cut-off (Mahalanobis "
            f"{meta.reference.cutoff:.2f}, {meta.reference.cutoff_rule})."
            if meta.reference.cutoff is not None
            else "- The model uses no continuous feature: there is no distance-based "
            "out-of-distribution check."
        ),
        "",
    ]
    return "\n".join(lines)


def _zone_text(thresholds: Thresholds) -> str:
    zone = thresholds.indeterminate
    if not zone or zone.high <= zone.low:
        return ""
    return (
        f"; indeterminate zone {zone.low:.3f}-{zone.high:.3f} (necrosis below, tumour at or "
        "above the upper end, no call between; both fixed on the same out-of-fold probabilities)"
    )


def _matched_lines(thresholds: Thresholds) -> list[str]:
    matched = thresholds.radiologist_matched
    if not matched:
        return []
    s, p = matched["sensitivity"], matched["specificity"]
    return [
        f"- Thresholds matched to the training radiologists, fixed in training: "
        f"{s['threshold']:.3f} (their sensitivity {s['radiologist_sensitivity']:.2f}) and "
        f"{p['threshold']:.3f} (their specificity {p['radiologist_specificity']:.2f}); "
        "`rnclassifier validate` reports the model at both."
    ]
