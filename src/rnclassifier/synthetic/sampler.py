"""Draw a SYNTHETIC cohort's lesions (structure, covariates, latent signs) and its Bayes oracle.

No images here: this is fast enough for n = 10,000 in tests. `rnclassifier.synthetic.render`
turns each sampled lesion into MRI volumes.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
from scipy.special import logsumexp

from rnclassifier.cohort import NEGATIVE_CLASS, POSITIVE_CLASS
from rnclassifier.errors import InputError
from rnclassifier.synthetic.presets import ClassCovariates, ImageSign, Preset
from rnclassifier.synthetic.reader import SEED_READER

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
    mixed), `radiologist_read`, `radiologist_score` and the oracles (`ORACLE_COLUMNS`):
    `oracle_p_tumor` (everything), `oracle_p_tumor_image` (image signs only) and one
    `oracle_p_tumor_<set>` per feature set, limited to what that set sees (`ORACLE_VIEWS`).
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
    for sign in preset.signs:
        frame[latent_column(sign.name)] = (
            sign.offset + position * sign.d / 2 + sign_rng.standard_normal(n)
        )

    frame["pathology"] = np.where(tumour, POSITIVE_CLASS, NEGATIVE_CLASS)
    frame["pathology_detail"] = np.where(mixed, "mixed", frame["pathology"])
    frame["reference_standard"] = "pathology"
    frame["site"] = _choose_sites(preset, frame["patient"].to_numpy(), sign_rng)

    read, score = SEED_READER.read(frame, preset, reader_rng)
    frame["radiologist_read"], frame["radiologist_score"] = read, score

    for column, values in oracle_posteriors(frame, preset, rn_fraction).items():
        frame[column] = values

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


#: The clinical terms of the generator's likelihood, and those a feature table's basic clinical
#: columns hold (`columns.BASIC_COVARIATES`): `immunotherapy` and
#: `her2_tdm1` are in the table but in no feature set.
CLINICAL_TERMS = (
    "sex",
    "age",
    "histology",
    "her2_tdm1",
    "location",
    "prior_wbrt",
    "regimen",
    "ptv_cc",
    "months_since_srs",
    "steroids",
    "immunotherapy",
)
BASIC_CLINICAL_TERMS = tuple(t for t in CLINICAL_TERMS if t not in ("her2_tdm1", "immunotherapy"))


@dataclass(frozen=True)
class OracleView:
    """What a classifier's inputs can see of the generator: clinical terms and where image
    signs must show (`ImageSign.seen_on`: `t1c`, `flair`, `prior`)."""

    clinical: tuple[str, ...]
    seen_on: tuple[str, ...]
    meaning: str

    def signs(self, preset: Preset) -> tuple[ImageSign, ...]:
        return tuple(s for s in preset.signs if s.seen_on in self.seen_on)


#: One oracle per feature set of `modeling.feature_sets.FEATURE_SETS` (extraction of T1c and
#: FLAIR, as the default and light profiles do), plus the full and image-only ones.
#: - `clinical`: the basic covariates. Immunotherapy and HER2/T-DM1 are in no feature set; each
#:   is drawn independently of everything else given the class (HER2 given class and
#:   histology), so marginalising it out of the naive-Bayes likelihood is exact: its term sums
#:   to 1 over its values and drops.
#: - `clinical+size`: adds the lesion's volume (drawn independently of the class: no term) and
#:   its log-volume growth per month between the scans, which shows `growth_steadiness`.
#: - `radiomics`: the scored scan's T1c and FLAIR signs (no prior scan, so no growth).
#: - `combined`: both; `combined+delta`: every sign (delta features see growth).
#: An image sign left out is marginalised by integrating its normal density (to 1) inside the
#: mixed lesions' integral over the tumour fraction, so the mixture is recomputed over the signs
#: seen, not read off the full one. Each oracle is an upper bound for its set: it sees the
#: latents exactly (growth without the render's clipping of the rate at 0.03-0.45 per month and
#: its 0.3 cm3 floor on the prior volume), where features measure them through images.
ORACLE_VIEWS: dict[str, OracleView] = {
    "oracle_p_tumor": OracleView(
        CLINICAL_TERMS, ("t1c", "flair", "prior"), "every latent and covariate"
    ),
    "oracle_p_tumor_image": OracleView((), ("t1c", "flair", "prior"), "image latents only"),
    "oracle_p_tumor_clinical": OracleView(BASIC_CLINICAL_TERMS, (), "what `clinical` sees"),
    "oracle_p_tumor_clinical+size": OracleView(
        BASIC_CLINICAL_TERMS, ("prior",), "what `clinical+size` sees (covariates, growth)"
    ),
    "oracle_p_tumor_radiomics": OracleView(
        (), ("t1c", "flair"), "what `radiomics` sees (scored-scan signs)"
    ),
    "oracle_p_tumor_combined": OracleView(
        BASIC_CLINICAL_TERMS, ("t1c", "flair"), "what `combined` sees (covariates, scored scan)"
    ),
    "oracle_p_tumor_combined+delta": OracleView(
        BASIC_CLINICAL_TERMS, ("t1c", "flair", "prior"), "what `combined+delta` sees"
    ),
}
ORACLE_COLUMNS = tuple(ORACLE_VIEWS)


def oracle_column(feature_set: str) -> str:
    """The oracle column matched to a feature set (the full oracle for a set without one)."""
    column = f"oracle_p_tumor_{feature_set}"
    return column if column in ORACLE_VIEWS else "oracle_p_tumor"


def oracle_posteriors(
    frame: pd.DataFrame, preset: Preset, rn_fraction: float
) -> dict[str, np.ndarray]:
    """P(tumour | what each view sees) for every `ORACLE_VIEWS` column, at prior `rn_fraction`."""
    prior = np.log((1 - rn_fraction) / rn_fraction)
    tumour_terms = _clinical_log_likelihood_terms(frame, preset.tumour)
    necrosis_terms = _clinical_log_likelihood_terms(frame, preset.necrosis)
    out = {}
    for column, view in ORACLE_VIEWS.items():
        clinical = sum(
            (tumour_terms[t] - necrosis_terms[t] for t in view.clinical), np.zeros(len(frame))
        )
        image = image_log_likelihood_ratio(frame, preset, view.signs(preset))
        out[column] = _expit(prior + clinical + image)
    return out


def population_ceilings(
    preset: Preset, n_lesions: int = 20_000, seed: int = 0, rn_fraction: float | None = None
) -> dict[str, float]:
    """Each oracle's AUC in a large sample (latents only, no images: a second or two): the
    population value of each ceiling, to quote beside a cohort's own draw of it."""
    from sklearn.metrics import roc_auc_score

    frame = sample_lesions(preset, n_lesions=n_lesions, seed=seed, rn_fraction=rn_fraction)
    y = (frame["pathology"] == POSITIVE_CLASS).to_numpy()
    return {column: float(roc_auc_score(y, frame[column])) for column in ORACLE_COLUMNS}


def oracle_log_likelihood_ratios(
    frame: pd.DataFrame, preset: Preset
) -> tuple[np.ndarray, np.ndarray]:
    """log p(x | tumour) - log p(x | necrosis) for all the clinical covariates and all the image
    signs.

    Exact for the per-lesion model (a lesion's covariates and signs drawn from its class). Two
    things it leaves out: the shared covariates of a discordant patient (one lesion of each
    class) come from one of the two classes; and the number of lesions per patient, fixed by
    the seed's structure, carries a little information (two-lesion patients are mostly tumour).
    """
    clinical = _clinical_log_likelihood(frame, preset.tumour) - _clinical_log_likelihood(
        frame, preset.necrosis
    )
    return clinical, image_log_likelihood_ratio(frame, preset, preset.signs)


def image_log_likelihood_ratio(
    frame: pd.DataFrame, preset: Preset, signs: tuple[ImageSign, ...]
) -> np.ndarray:
    """log p(z_signs | tumour) - log p(z_signs | necrosis) over the given signs only (the
    others marginalised), mixed lesions integrated over their tumour fraction."""
    if not signs:
        return np.zeros(len(frame))
    z = np.column_stack([frame[latent_column(s.name)].to_numpy(float) for s in signs])
    z = z - np.array([s.offset for s in signs])
    d = np.array([s.d for s in signs])
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
    return log_tumour - log_necrosis


def _log_normal(z: np.ndarray, mean: np.ndarray) -> np.ndarray:
    return -0.5 * (z - mean) ** 2 - 0.5 * np.log(2 * np.pi)


def _clinical_log_likelihood(frame: pd.DataFrame, model: ClassCovariates) -> np.ndarray:
    return np.sum(list(_clinical_log_likelihood_terms(frame, model).values()), axis=0)


def _clinical_log_likelihood_terms(
    frame: pd.DataFrame, model: ClassCovariates
) -> dict[str, np.ndarray]:
    """log p(covariate | class) per `CLINICAL_TERMS` entry (naive Bayes: they add up)."""
    male = frame["sex"].to_numpy() == "M"
    breast = frame["histology"].to_numpy() == "breast"
    her2 = frame["her2_tdm1"].to_numpy().astype(int) == 1
    wbrt = frame["prior_wbrt"].to_numpy().astype(int) == 1
    steroids = frame["steroids"].to_numpy().astype(int) == 1
    regimens = list(
        zip(frame["srs_dose_gy"].astype(float), frame["srs_fractions"].astype(int), strict=True)
    )
    with np.errstate(divide="ignore"):
        terms = {
            "sex": np.log(np.where(male, model.male, 1 - model.male)),
            "age": model.age_at_first_srs.log_density(frame["age_years"].to_numpy(float)),
            "histology": model.histology.log_prob(frame["histology"].to_numpy()),
            "her2_tdm1": np.where(
                breast,
                np.log(np.where(her2, model.her2_tdm1_if_breast, 1 - model.her2_tdm1_if_breast)),
                0.0,
            ),
            "location": model.location.log_prob(frame["location"].to_numpy()),
            "prior_wbrt": np.log(np.where(wbrt, model.prior_wbrt, 1 - model.prior_wbrt)),
            "regimen": model.regimen.log_prob(regimens),
            "ptv_cc": model.ptv_cc.log_density(frame["ptv_cc"].to_numpy(float)),
            "months_since_srs": model.months_since_srs.log_density(
                frame["months_since_srs"].to_numpy(float)
            ),
            "steroids": np.log(np.where(steroids, model.steroids, 1 - model.steroids)),
            "immunotherapy": model.immunotherapy.log_prob(frame["immunotherapy"].to_numpy()),
        }
    return terms


def _expit(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))
