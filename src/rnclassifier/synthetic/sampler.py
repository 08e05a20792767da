"""Draw a SYNTHETIC cohort's lesions (structure, covariates, latent signs) and its Bayes oracle.

No images here: this is fast enough for n = 10,000 in tests. `rnclassifier.synthetic.render`
turns each sampled lesion into MRI volumes.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from rnclassifier.cohort import NEGATIVE_CLASS, POSITIVE_CLASS
from rnclassifier.errors import InputError
from rnclassifier.synthetic.presets import ClassCovariates, Preset

#: Gauss-Legendre nodes for the oracle's integral over a mixed lesion's tumour fraction.
_MIXED_NODES = 48


def latent_column(sign_name: str) -> str:
    return f"latent_{sign_name}"


def cohort_structure(
    preset: Preset, n_lesions: int, rn_fraction: float, rng: np.random.Generator
) -> pd.DataFrame:
    """One row per lesion: `patient` (0..P-1, shuffled), `tumour` (bool), `index_tumour` (the
    class that the patient's shared covariates are drawn from).

    With the seed preset and n = 82 this is exactly the seed's 76 patients: 70 with one lesion,
    4 with two tumour lesions, 2 with one tumour and one necrosis lesion.
    """
    n_necrosis = round(n_lesions * rn_fraction)
    n_tumour = n_lesions - n_necrosis
    n_patients = n_lesions / (1 + preset.two_tumour_patients + preset.discordant_patients)
    n_discordant = min(round(n_patients * preset.discordant_patients), n_necrosis, n_tumour)
    n_two_tumour = min(
        round(n_patients * preset.two_tumour_patients), (n_tumour - n_discordant) // 2
    )
    single_tumour = n_tumour - 2 * n_two_tumour - n_discordant
    single_necrosis = n_necrosis - n_discordant

    patients: list[list[bool]] = (
        [[True, True]] * n_two_tumour
        + [[True, False]] * n_discordant
        + [[True]] * single_tumour
        + [[False]] * single_necrosis
    )
    order = rng.permutation(len(patients))
    rows = []
    for new_index, old_index in enumerate(order):
        classes = list(patients[old_index])
        rng.shuffle(classes)
        # A discordant patient's shared covariates come from one of its lesions' classes.
        index_tumour = bool(classes[0])
        rows += [(new_index, tumour, index_tumour) for tumour in classes]
    return pd.DataFrame(rows, columns=["patient", "tumour", "index_tumour"])


def sample_lesions(
    preset: Preset,
    *,
    n_lesions: int | None = None,
    rn_fraction: float | None = None,
    seed: int = 0,
    null: bool = False,
) -> pd.DataFrame:
    """Sample lesions with manifest columns (no image paths), latent signs and the oracle.

    Columns: `patient_id`, `lesion_id`, the clinical covariates of the manifest, `pathology`,
    `pathology_detail`, `reference_standard`, `days_scan_to_surgery`, `months_between_scans`,
    `site`, one `latent_<sign>` per image sign, `tumour_fraction` (1 tumour, 0 necrosis, t for
    mixed), `radiologist_read`, `radiologist_score` and `oracle_p_tumor` (+ clinical-only and
    image-only parts).
    """
    n_lesions = preset.n_lesions if n_lesions is None else n_lesions
    rn_fraction = preset.rn_fraction if rn_fraction is None else rn_fraction
    if n_lesions < 2:
        raise InputError(f"--n must be at least 2, got {n_lesions}")
    if not 0 < rn_fraction < 1:
        raise InputError(f"--rn-fraction must be strictly between 0 and 1, got {rn_fraction}")
    if null:
        preset = preset.with_null_signs()
    root = np.random.SeedSequence([seed, 20241])
    structure_rng, patient_rng, lesion_rng, sign_rng, reader_rng = (
        np.random.default_rng(s) for s in root.spawn(5)
    )
    frame = cohort_structure(preset, n_lesions, rn_fraction, structure_rng)
    n = len(frame)

    patients = frame.drop_duplicates("patient").set_index("patient")["index_tumour"]
    shared = _sample_patients(preset, patients.to_numpy(), patient_rng)
    shared.index = patients.index
    frame = frame.join(shared, on="patient")
    tumour = frame["tumour"].to_numpy()
    for column, values in _sample_lesion_covariates(preset, tumour, lesion_rng).items():
        frame[column] = values

    # Mixed lesions: necrosis with some viable tumour, labelled tumour (rule of the seed).
    mixed = tumour & (sign_rng.random(n) < preset.mixed)
    low, high = preset.mixed_tumour_fraction
    fraction = np.where(tumour, 1.0, 0.0)
    fraction[mixed] = sign_rng.uniform(low, high, mixed.sum())
    frame["tumour_fraction"] = fraction
    position = 2 * fraction - 1  # +1 tumour, -1 necrosis, in between for mixed
    for sign in preset.image_signs:
        frame[latent_column(sign.name)] = position * sign.d / 2 + sign_rng.standard_normal(n)

    frame["pathology"] = np.where(tumour, POSITIVE_CLASS, NEGATIVE_CLASS)
    frame["pathology_detail"] = np.where(mixed, "mixed", frame["pathology"])
    frame["reference_standard"] = "pathology"
    frame["site"] = _choose_sites(preset, frame["patient"].to_numpy(), sign_rng)

    from rnclassifier.synthetic.reader import SEED_READER

    read, score = SEED_READER.read(frame, preset, reader_rng)
    frame["radiologist_read"], frame["radiologist_score"] = read, score

    clinical, image = oracle_log_likelihood_ratios(frame, preset)
    prior = np.log((1 - rn_fraction) / rn_fraction)
    frame["oracle_p_tumor"] = _expit(prior + clinical + image)
    frame["oracle_p_tumor_clinical"] = _expit(prior + clinical)
    frame["oracle_p_tumor_image"] = _expit(prior + image)

    width = max(4, len(str(frame["patient"].max() + 1)))
    frame["patient_id"] = [f"SYN-P{p + 1:0{width}d}" for p in frame["patient"]]
    frame["lesion_id"] = [f"SYN-L{i + 1:0{width}d}" for i in range(n)]
    return frame.drop(columns=["patient", "tumour", "index_tumour"])


def _sample_patients(
    preset: Preset, index_tumour: np.ndarray, rng: np.random.Generator
) -> pd.DataFrame:
    """Covariates shared by a patient's lesions, drawn from the index lesion's class."""
    n = len(index_tumour)
    out = pd.DataFrame(index=range(n))
    columns: dict[str, np.ndarray] = {}
    for is_tumour, model in ((True, preset.tumour), (False, preset.necrosis)):
        rows = np.flatnonzero(index_tumour == is_tumour)
        k = len(rows)
        values = {
            "age_years": model.age_at_first_srs.sample(rng, k),
            "sex": np.where(rng.random(k) < model.male, "M", "F"),
            "histology": model.histology.sample(rng, k),
            "prior_wbrt": (rng.random(k) < model.prior_wbrt).astype(int),
            "immunotherapy": model.immunotherapy.sample(rng, k),
        }
        her2 = rng.random(k) < model.her2_tdm1_if_breast
        values["her2_tdm1"] = (her2 & (values["histology"] == "breast")).astype(int)
        for name, vals in values.items():
            columns.setdefault(name, np.empty(n, dtype=object))[rows] = vals
    for name, vals in columns.items():
        out[name] = vals
    return out


def _sample_lesion_covariates(
    preset: Preset, tumour: np.ndarray, rng: np.random.Generator
) -> dict[str, np.ndarray]:
    n = len(tumour)
    columns: dict[str, np.ndarray] = {}
    for is_tumour, model in ((True, preset.tumour), (False, preset.necrosis)):
        rows = np.flatnonzero(tumour == is_tumour)
        k = len(rows)
        regimens = model.regimen.sample(rng, k)
        values = {
            "location": model.location.sample(rng, k),
            "srs_dose_gy": np.array([r[0] for r in regimens], dtype=float),
            "srs_fractions": np.array([r[1] for r in regimens], dtype=int),
            "ptv_cc": model.ptv_cc.sample(rng, k),
            "months_since_srs": model.months_since_srs.sample(rng, k),
            "steroids": (rng.random(k) < model.steroids).astype(int),
        }
        for name, vals in values.items():
            columns.setdefault(name, np.empty(n, dtype=object))[rows] = vals
    # Class-independent timing of the scans around the scored MRI.
    columns["months_between_scans"] = preset.months_between_scans.sample(rng, n)
    columns["days_scan_to_surgery"] = np.round(preset.days_scan_to_surgery.sample(rng, n))
    columns["days_scan_to_surgery"] = columns["days_scan_to_surgery"].astype(int)
    return columns


def _choose_sites(preset: Preset, patient: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """A site per patient (never by class): both lesions of a patient come from one site."""
    weights = np.array([s.weight for s in preset.sites])
    per_patient = rng.choice(len(preset.sites), size=patient.max() + 1, p=weights / weights.sum())
    return np.array([preset.sites[i].name for i in per_patient[patient]], dtype=object)


def oracle_log_likelihood_ratios(
    frame: pd.DataFrame, preset: Preset
) -> tuple[np.ndarray, np.ndarray]:
    """log p(x | tumour) - log p(x | necrosis) for the clinical covariates and the image signs.

    Exact for the per-lesion model (a lesion's covariates and signs drawn from its class). Two
    things it leaves out: the shared covariates of a discordant patient (one lesion of each
    class) come from one of the two classes; and the number of lesions per patient, fixed by
    the seed's structure, carries a little information (two-lesion patients are mostly tumour).
    """
    clinical = _clinical_log_likelihood(frame, preset.tumour) - _clinical_log_likelihood(
        frame, preset.necrosis
    )
    z = np.column_stack([frame[latent_column(s.name)].to_numpy(float) for s in preset.image_signs])
    d = np.array([s.d for s in preset.image_signs])
    log_tumour_pure = _log_normal(z, +d / 2).sum(axis=1)
    log_necrosis = _log_normal(z, -d / 2).sum(axis=1)
    # Mixed: average over the tumour fraction t ~ U(low, high), signs centred at (2t - 1)·d/2.
    low, high = preset.mixed_tumour_fraction
    nodes, weights = np.polynomial.legendre.leggauss(_MIXED_NODES)
    t = (nodes + 1) / 2 * (high - low) + low
    w = weights / weights.sum()
    per_node = np.stack([_log_normal(z, (2 * tk - 1) * d / 2).sum(axis=1) for tk in t], axis=1)
    log_mixed = logsumexp(per_node, axis=1, b=w)
    m = preset.mixed
    log_tumour = (
        logsumexp(np.stack([log_tumour_pure, log_mixed], axis=1), axis=1, b=np.array([1 - m, m]))
        if m > 0
        else log_tumour_pure
    )
    return clinical, log_tumour - log_necrosis


def _log_normal(z: np.ndarray, mean: np.ndarray) -> np.ndarray:
    return -0.5 * (z - mean) ** 2 - 0.5 * np.log(2 * np.pi)


def _clinical_log_likelihood(frame: pd.DataFrame, model: ClassCovariates) -> np.ndarray:
    male = frame["sex"].to_numpy() == "M"
    breast = frame["histology"].to_numpy() == "breast"
    her2 = frame["her2_tdm1"].to_numpy().astype(int) == 1
    wbrt = frame["prior_wbrt"].to_numpy().astype(int) == 1
    steroids = frame["steroids"].to_numpy().astype(int) == 1
    regimens = list(
        zip(frame["srs_dose_gy"].astype(float), frame["srs_fractions"].astype(int), strict=True)
    )
    with np.errstate(divide="ignore"):
        terms = [
            np.log(np.where(male, model.male, 1 - model.male)),
            model.age_at_first_srs.log_density(frame["age_years"].to_numpy(float)),
            model.histology.log_prob(frame["histology"].to_numpy()),
            np.where(
                breast,
                np.log(np.where(her2, model.her2_tdm1_if_breast, 1 - model.her2_tdm1_if_breast)),
                0.0,
            ),
            model.location.log_prob(frame["location"].to_numpy()),
            np.log(np.where(wbrt, model.prior_wbrt, 1 - model.prior_wbrt)),
            model.regimen.log_prob(regimens),
            model.ptv_cc.log_density(frame["ptv_cc"].to_numpy(float)),
            model.months_since_srs.log_density(frame["months_since_srs"].to_numpy(float)),
            np.log(np.where(steroids, model.steroids, 1 - model.steroids)),
            model.immunotherapy.log_prob(frame["immunotherapy"].to_numpy()),
        ]
    return np.sum(terms, axis=0)


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
