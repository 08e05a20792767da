"""The generative model's numbers, in one place, each with its source.

SYNTHETIC DATA. These numbers make a cohort that *imitates the make-up* of the seed study
(Bhatia et al., Neurosurgery Practice 2024; 82 lesions, 76 patients, 55 tumour / 27 necrosis).
Where the seed is silent the literature sets the direction and rough size of an effect; the exact
values are design choices, tuned so that the Bayes oracle's AUC sits near 0.90-0.95 and the
clinical-only oracle (and a clinical-only model) stays within 0.60-0.72 at population level
(measured at n = 20,000: full oracle 0.92, clinical-only 0.69 for what the `clinical` feature
set holds, 0.70 with immunotherapy and HER2 as well; see tests/synthetic). Every
class-conditional clinical effect cites its source where it is set; effects without one were
removed. Nothing here is clinical evidence.

Structure of the model (naive-Bayes by design, so the per-lesion oracle is exact; see
`sampler.oracle_log_likelihood_ratios` for what it leaves out, and `sampler.ORACLE_VIEWS` for the
oracle of each feature set): the class is drawn first; every covariate and every image sign is
then drawn from its class-conditional distribution, independently given the class. Acquisition
(site, grid, noise, bias, scale, orientation) and nuisance anatomy are drawn independently of
the class.

Biology shift (`Preset.shift`, `rnclassifier synth --shift`, 0-1): each image sign's
`shift_weakening` shrinks its class separation d and its `shift_offset` moves both classes'
means, in proportion to the shift. The `external` preset uses shift 1 (`EXTERNAL_SHIFT`): its
full oracle falls from 0.92 to 0.85 and the `combined` set's from 0.90 to 0.81 at population
level. Measured (benchmarks/RESULTS.md, transportability): the frozen primary trained on the
seed preset (n = 400) falls from 0.858 to 0.687 on the external preset (n = 400), a drop of 0.17
(95% CI 0.11-0.23), above the literature's 0.05-0.15; a smaller shift (about 0.6, estimated,
not yet measured) would land inside it. Clinical biology is not shifted.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace

from rnclassifier.synthetic.distributions import Categorical, QuantileKnots

# --- Radiosurgery regimens of the first course: (total dose Gy, fractions) -> BED10 ------------
# 15x1 and 25/5 -> 37.5; 16x1 -> 41.6; 24/3 -> 43.2; 30/5 -> 48; 18x1 -> 50.4; 27/3 -> 51.3;
# 20x1 -> 60; 24x1 -> 81.6.
Regimen = tuple[float, int]


@dataclass(frozen=True)
class ClassCovariates:
    """Class-conditional distributions of the clinical covariates."""

    male: float
    age_at_first_srs: QuantileKnots
    histology: Categorical
    her2_tdm1_if_breast: float
    location: Categorical
    prior_wbrt: float
    regimen: Categorical
    ptv_cc: QuantileKnots
    months_since_srs: QuantileKnots
    steroids: float
    immunotherapy: Categorical


@dataclass(frozen=True)
class ImageSign:
    """A class-specific latent: z ~ N(+d/2, 1) for tumour, N(-d/2, 1) for necrosis.

    Positive z is tumour-like. `d` is the standardised mean difference, so the sign alone has
    AUC = Φ(d/√2) (d = √2·Φ⁻¹(AUC)) between pure tumour and necrosis; mixed lesions sit in
    between (see `Preset.mixed`), so tumour-labelled vs necrosis AUCs are lower. The published
    figures cited set the order of the signs' strengths; the values of d were then scaled
    together so that the oracle's AUC lands in 0.90-0.95.
    """

    name: str
    d: float
    meaning: str
    source: str
    #: Where the sign shows: `t1c` or `flair` of the scored scan, or `prior` (only by comparing
    #: with the earlier scan: delta features). Decides which feature sets' oracles see it.
    seen_on: str = "t1c"
    #: Class-independent location of the sign: z ~ N(offset ± d/2, 1).
    offset: float = 0.0
    #: What the biology shift (`Preset.shift`, 0-1) does to the sign at its full value 1: the
    #: fraction by which d shrinks and a class-independent move of both class means (SD units),
    #: with the reason. Both scale linearly with the shift.
    shift_weakening: float = 0.0
    shift_offset: float = 0.0
    shift_reason: str = ""

    def shifted(self, shift: float) -> ImageSign:
        """The sign at biology shift `shift` (0: the seed's biology; 1: the full shift)."""
        if shift == 0:
            return self
        return replace(
            self,
            d=self.d * (1 - self.shift_weakening * shift),
            offset=self.offset + self.shift_offset * shift,
        )


IMAGE_SIGNS: tuple[ImageSign, ...] = (
    ImageSign(
        "enhancement_solidity",
        1.4,
        "solid / nodular enhancement (tumour) vs 'soap-bubble' / 'Swiss-cheese' (necrosis), on T1c",
        "Kumar 2000 Radiology (Swiss-cheese / soap-bubble pattern of radiation injury); "
        "Dequesada 2008 (pure necrosis never showed solid or nodular enhancement): no published"
        " accuracy found, single-sign AUC about 0.77 assumed",
        seen_on="t1c",
        shift_weakening=0.35,
        shift_reason="another contrast agent dose and delay after injection change how solid "
        "the enhancement looks (assumed)",
    ),
    ImageSign(
        "margin_definition",
        0.8,
        "sharp enhancing margin (tumour) vs feathery, ill-defined margin (necrosis), on T1c",
        "Kumar 2000; Mullins 2005 AJNR: margins overlap heavily; single-sign AUC about 0.68",
        seen_on="t1c",
        shift_weakening=0.35,
        shift_reason="as for the enhancement pattern (assumed)",
    ),
    ImageSign(
        "nidus_match",
        1.3,
        "FLAIR/T2 nidus that matches the enhancing margin (tumour) vs a small, ill-defined nidus"
        " (necrosis): lesion quotient and T1/T2 mismatch, on FLAIR",
        "Dequesada 2008 Neurosurgery (every recurrence had LQ >= 0.6); Kano 2010 (T1/T2 "
        "matching favours tumour); Stockham 2012 J Neurooncol (LQ < 0.3: sensitivity 8%, "
        "specificity 91% for necrosis): single-sign AUC about 0.76 assumed",
        seen_on="flair",
        shift_weakening=0.6,
        shift_reason="the lesion quotient did not transport between centres: every recurrence "
        "had LQ >= 0.6 in Dequesada 2008, while in Stockham 2012's cohort LQ < 0.3 found only 8% "
        "of necroses",
    ),
    ImageSign(
        "oedema_restraint",
        0.5,
        "perilesional FLAIR oedema small for the lesion size (tumour) vs extensive (necrosis)",
        "Leeman 2013 Neuro-Oncol: oedema/lesion volume ratio < 10 predicted tumour (PPV 92%);"
        " a weak sign on its own, single-sign AUC about 0.61 assumed",
        seen_on="flair",
        shift_weakening=0.5,
        shift_offset=0.5,
        shift_reason="earlier steroids (or bevacizumab) at another centre restrain oedema in "
        "both classes and blur the difference (assumed)",
    ),
    ImageSign(
        "growth_steadiness",
        1.1,
        "steady growth between the prior and scored scans (tumour) vs faster, transient growth "
        "(necrosis)",
        "Ocaña-Tienda 2022 Neuro-Oncol Adv: necrosis has larger but transient growth exponents,"
        " AUC 0.76 (d = 1.0)",
        seen_on="prior",
        shift_weakening=0.2,
        shift_reason="another follow-up schedule samples the transient growth of necrosis at "
        "other times (assumed)",
    ),
)


@dataclass(frozen=True)
class Site:
    """A scanner / institution: acquisition varies by site, never by class."""

    name: str
    weight: float
    t1c_spacing_mm: tuple[float, float, float]
    flair_spacing_mm: tuple[float, float, float]
    flair_own_grid: bool  # FLAIR acquired on a different grid from T1c (not resampled)
    oblique_deg: float  # rotation of the acquisition grid (non-identity direction cosines)
    noise_fraction: float  # noise SD relative to white-matter signal
    bias_strength: float  # peak-to-peak amplitude of the multiplicative bias field
    intensity_scale: float  # scanner units of white matter on T1c


@dataclass(frozen=True)
class Preset:
    """Everything that defines one synthetic cohort's make-up."""

    name: str
    n_lesions: int
    rn_fraction: float
    #: Fraction of patients with two tumour lesions, and with one tumour + one necrosis lesion.
    two_tumour_patients: float
    discordant_patients: float
    #: Fraction of tumour-labelled lesions that are mixed (necrosis with some viable tumour) and
    #: the range of their tumour fraction t; their signs sit at s = 2t - 1 of the way from the
    #: necrosis mean to the tumour mean. Rule of the seed: any viable tumour cells -> `tumor`.
    mixed: float
    mixed_tumour_fraction: tuple[float, float]
    tumour: ClassCovariates
    necrosis: ClassCovariates
    sites: tuple[Site, ...]
    months_between_scans: QuantileKnots
    days_scan_to_surgery: QuantileKnots
    image_signs: tuple[ImageSign, ...] = field(default=IMAGE_SIGNS)
    #: How far the class-conditional image biology moves from the seed's (0: not at all, 1: each
    #: sign's full `shift_weakening` / `shift_offset`). The sampler, the oracle and the reader use
    #: the shifted signs (`signs`).
    shift: float = 0.0

    @property
    def signs(self) -> tuple[ImageSign, ...]:
        """The image signs at this preset's biology shift: what lesions are drawn from."""
        return tuple(s.shifted(self.shift) for s in self.image_signs)

    def with_shift(self, shift: float) -> Preset:
        """The same preset with biology shift `shift` in [0, 1] (replacing its own)."""
        if not 0 <= shift <= 1:
            raise ValueError(f"shift must be in [0, 1], got {shift}")
        return replace(self, shift=float(shift))

    def with_null_signs(self) -> Preset:
        """The `--null` model: every class-specific image latent has d = 0."""
        return replace(self, image_signs=tuple(replace(s, d=0.0) for s in self.image_signs))


# --- The seed preset ---------------------------------------------------------------------------
#
# Class-conditional clinical effects: only those with a source are kept, each cited where it is
# set. Sex, age, histology and location are drawn from the same distribution in both classes
# (the seed tabulates them for tumours only, and no source for a difference was found).

# Chosen so that the tumour lesions' first-course BED10 has median 48, IQR 41.6-50.4 (Bhatia
# 2024, Results, reirradiation paragraph: "IQR of BED10 of initial radiation was 41.6 to 50.4 Gy
# (median 48 Gy)"), in percent. The seed gives no regimen table for tumours; its BED10 upper
# quartile of 50.4 Gy allows at most 25% of tumours above 50.4 Gy (20 Gy x 1 is 60 Gy), and 20 Gy
# x 1 is set to 22% of them, near that bound (the smallest difference from necrosis it allows).
_TUMOUR_REGIMENS: dict[Regimen, float] = {
    (25.0, 5): 7,
    (15.0, 1): 5,
    (16.0, 1): 16,
    (24.0, 3): 10,
    (30.0, 5): 16,
    (18.0, 1): 22,
    (27.0, 3): 1,
    (20.0, 1): 22,
    (24.0, 1): 1,
}
#: Bhatia 2024, Results (necrosis paragraph): "the most common dose fractionation regimen for the
#: prior treatment was 20 Gy in 1 fx (n = 11, 40.7%)" among the 27 necrosis lesions.
_NECROSIS_20GY_PERCENT = 100 * 11 / 27

_AGE_TUMOUR = QuantileKnots((0, 0.25, 0.5, 0.75, 1), (28.0, 48.5, 56.3, 64.0, 86.0))

# Bhatia 2024 Table 2 (lesions with confirmed tumour): first-course PTV median 5.8 (IQR 0.7-16.2)
# cm³, range 0.129-52.1. Necrosis is made slightly larger: RN risk rises with treated volume /
# V12 (Minniti 2011 Radiat Oncol: V12 > 10.9 cm³ -> 47% RN; Kohutek 2015 J Neurooncol: diameter
# HR 3.1); the size of the difference here is assumed. Same support for both classes, so every
# likelihood ratio is finite.
_PTV_TUMOUR = QuantileKnots((0, 0.25, 0.5, 0.75, 1), (0.12, 0.7, 5.8, 16.2, 55.0), log=True)
_PTV_NECROSIS = QuantileKnots((0, 0.25, 0.5, 0.75, 1), (0.12, 0.9, 6.5, 16.8, 55.0), log=True)

# Months from the first SRS to the scored MRI. The seed's "time intervals between SRS series"
# (Table 1: <1 y 45.5%, 1-2 y 29.1%, 2-3 y 18.2%, 3-4 y 5.5%, 4+ y 1.8%) runs from the first SRS
# to re-irradiation of tumours; the scored MRI comes ~1.5 months earlier (surgery, then
# re-irradiation), hence the shift. The seed gives no timing for necrosis. Source of the class
# difference: Narloch 2017 Neuro-Oncol 19:1391 (abstract, Results; 35 biopsied lesions after SRS):
# 10 of 19 lesions biopsied <= 9 months after SRS were recurrence, 1 of 16 biopsied later
# (P = 0.004), a raw odds ratio near 17 from 11 recurrences; also Kano 2010 Neurosurgery and
# Leeman 2013 Neuro-Oncol (direction only). The generator uses an odds ratio of 3.0 for a late
# (> 18 months) presentation in necrosis against tumour: the direction is Narloch's, the size is
# a deliberate shrinkage of a small series' estimate (assumed). Necrosis has the tumour's shape
# within each side of 18 months, with 63% of its mass beyond (tumour: 36.4%).
_MONTHS_TUMOUR = QuantileKnots(
    (0, 0.455, 0.636, 0.745, 0.927, 0.982, 1), (3.5, 10.5, 18.0, 22.5, 34.5, 46.5, 72.0)
)
_MONTHS_NECROSIS = QuantileKnots(
    (0, 0.2647, 0.37, 0.5588, 0.8739, 0.9689, 1), (3.5, 10.5, 18.0, 22.5, 34.5, 46.5, 72.0)
)

# Bhatia 2024 Table 2 (lesion level, tumours); used for both classes.
_SEED_HISTOLOGY = Categorical(
    {
        "nsclc": 36.4,
        "breast": 23.6,
        "melanoma": 7.3,
        "sclc": 9.1,
        "endometrial": 5.5,
        "renal": 3.7,
        "thyroid": 3.7,
        "other": 10.9,
    }
)
# Bhatia 2024 Table 2; the seed lists no brainstem / deep tumours, but they occur (1% each
# assumed). Used for both classes.
_SEED_LOCATION = Categorical(
    {
        "frontal": 32.4,
        "parietal": 21.8,
        "temporal": 14.6,
        "occipital": 12.7,
        "cerebellum": 18.2,
        "brainstem": 1.0,
        "deep": 1.0,
    }
)

SEED = Preset(
    name="seed",
    n_lesions=82,
    rn_fraction=27 / 82,  # 27 of 82 lesions were necrosis (Bhatia 2024)
    # 76 patients: 70 with one lesion, 4 with two tumour lesions, 2 with one of each.
    two_tumour_patients=4 / 76,
    discordant_patients=2 / 76,
    # Mixed pathology is common in resected lesions (Telera 2013 J Neurooncol: 8 of 15 RN
    # specimens also held tumour; Nath 2012: 64% held some viable-looking tumour).
    mixed=0.25,
    mixed_tumour_fraction=(0.15, 0.65),
    tumour=ClassCovariates(
        male=0.666,  # Table 1 (both classes: no source for a difference)
        age_at_first_srs=_AGE_TUMOUR,  # median 56.3 (Table 1); spread assumed
        histology=_SEED_HISTOLOGY,
        # HER2+ breast cancer on T-DM1 raises RN risk (Stumpf 2019 Clin Cancer Res: 39.1% vs
        # 4.5% clinically significant RN); the rates here are assumed. No feature set holds it.
        her2_tdm1_if_breast=0.15,
        location=_SEED_LOCATION,
        prior_wbrt=0.195,  # Table 1: 10 of 51 (WBRT or PCI)
        regimen=Categorical(_TUMOUR_REGIMENS),
        ptv_cc=_PTV_TUMOUR,
        months_since_srs=_MONTHS_TUMOUR,
        # Bhatia 2024 Table 3: 25 of 55 tumour lesions (45.4%) had steroids, within 3 months of
        # re-irradiation (the seed gives no pre-operative figure for tumours: a stand-in).
        steroids=0.45,
        immunotherapy=Categorical({"none": 0.72, "single": 0.22, "dual": 0.06}),
    ),
    necrosis=ClassCovariates(
        male=0.666,
        age_at_first_srs=_AGE_TUMOUR,
        histology=_SEED_HISTOLOGY,
        her2_tdm1_if_breast=0.30,
        location=_SEED_LOCATION,
        # Prior radiotherapy raises RN risk after SRS (Sneed 2015 J Neurosurg: 1-year RN 7-15%
        # vs 6-9%; Kohutek 2015 J Neurooncol: prior WBRT HR 2.21, univariable); 0.26 assumed.
        prior_wbrt=0.26,
        # 20 Gy x 1 in 40.7% (Bhatia 2024, Results, cited above). The seed's necrosis BED10
        # summary "median 50.4, IQR 41.6-50" cannot be reproduced by any distribution (its upper
        # quartile lies below its median). Here the other regimens keep the tumour class's
        # proportions, which gives median 50.4 as the seed reports, IQR 43.2-60.
        regimen=Categorical(
            {(20.0, 1): _NECROSIS_20GY_PERCENT}
            | {
                r: p * (100 - _NECROSIS_20GY_PERCENT) / (100 - _TUMOUR_REGIMENS[(20.0, 1)])
                for r, p in _TUMOUR_REGIMENS.items()
                if r != (20.0, 1)
            }
        ),
        ptv_cc=_PTV_NECROSIS,
        months_since_srs=_MONTHS_NECROSIS,
        # Bhatia 2024 abstract: 14 of 27 necrosis lesions needed steroids before surgery (its
        # Results say 12/27, "40.0%": the paper is inconsistent; the abstract's figure is used).
        steroids=14 / 27,
        # Checkpoint inhibitors, dual more than single, raise RN risk (Martin 2018 JAMA Oncol;
        # Vaios 2025 JAMA Netw Open: 24-month symptomatic RN 21.8% dual vs 13.5% single vs
        # 13.7% none): rates assumed. No feature set holds it.
        immunotherapy=Categorical({"none": 0.66, "single": 0.24, "dual": 0.10}),
    ),
    sites=(
        Site("site-a", 0.45, (1.0, 1.0, 1.0), (1.0, 1.0, 3.0), True, 0.0, 0.04, 0.20, 1000.0),
        Site("site-b", 0.35, (0.9, 0.9, 3.0), (0.9, 0.9, 5.0), False, 0.0, 0.05, 0.30, 600.0),
        Site("site-c", 0.20, (1.0, 1.0, 1.2), (1.0, 1.0, 4.0), True, 12.0, 0.03, 0.15, 2200.0),
    ),
    months_between_scans=QuantileKnots((0, 0.5, 1), (1.5, 2.5, 4.5)),
    days_scan_to_surgery=QuantileKnots((0, 0.5, 1), (2.0, 14.0, 60.0)),
)

# --- A second institution -------------------------------------------------------------------------
# Other scanners, voxel sizes, intensity scale and case mix (45% necrosis, more melanoma and
# immunotherapy), and a shift of the class-conditional image biology (`EXTERNAL_SHIFT`; each
# sign's `shift_weakening` / `shift_offset` and its reason above): signs that separate the
# classes less well, and oedema restrained in both classes. The literature sees external AUCs
# 0.05-0.15 below internal ones (e.g. a dual-centre SRS radiomics study: pooled 0.78, external
# 0.70); at shift 1 a frozen model trained on the seed preset loses 0.17 (95% CI 0.11-0.23;
# benchmarks/RESULTS.md, transportability), somewhat more. `rnclassifier synth --shift` sets
# another value; shift 0 keeps the seed's biology (case mix and acquisition only).
EXTERNAL_SHIFT = 1.0

# Histology: another case mix, the same in both classes (no source for a class difference).
_EXTERNAL_HISTOLOGY = Categorical(
    {
        "nsclc": 28,
        "breast": 21,
        "melanoma": 23,
        "sclc": 5,
        "endometrial": 4,
        "renal": 7,
        "thyroid": 3,
        "other": 9,
    }
)

EXTERNAL = replace(
    SEED,
    name="external",
    n_lesions=120,
    rn_fraction=0.45,
    two_tumour_patients=0.05,
    discordant_patients=0.03,
    tumour=replace(
        SEED.tumour,
        histology=_EXTERNAL_HISTOLOGY,
        immunotherapy=Categorical({"none": 0.55, "single": 0.33, "dual": 0.12}),
    ),
    necrosis=replace(
        SEED.necrosis,
        histology=_EXTERNAL_HISTOLOGY,
        # More immunotherapy at this centre, dual more often in necrosis (Martin 2018; Vaios
        # 2025, as in the seed): rates assumed.
        immunotherapy=Categorical({"none": 0.40, "single": 0.35, "dual": 0.25}),
    ),
    sites=(
        Site("ext-1", 0.6, (0.94, 0.94, 1.0), (0.94, 0.94, 4.0), True, 8.0, 0.035, 0.25, 350.0),
        Site("ext-2", 0.4, (0.5, 0.5, 2.0), (0.9, 0.9, 3.0), True, 0.0, 0.06, 0.35, 4000.0),
    ),
    shift=EXTERNAL_SHIFT,
)

PRESETS: dict[str, Preset] = {p.name: p for p in (SEED, EXTERNAL)}
