"""Write a SYNTHETIC cohort folder: manifest, images, oracle and a README saying what it is.

The folder appears only when complete (written to a temporary sibling, then moved into place).
The same arguments give byte-identical files: every lesion has its own random stream derived from
(seed, lesion index), so parallel rendering does not change the output.
"""

from __future__ import annotations

import json
import logging
import multiprocessing
import os
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from rnclassifier.atomic import atomic_directory
from rnclassifier.cohort import COLUMNS, ID_COLUMNS, load_cohort
from rnclassifier.errors import InputError
from rnclassifier.synthetic.presets import PRESETS, Preset, Site
from rnclassifier.synthetic.render import (
    LESION_VOLUME_CC,
    LesionLatents,
    RenderedScan,
    growth_rate_per_month,
    render_lesion,
)
from rnclassifier.synthetic.sampler import (
    ORACLE_COLUMNS,
    ORACLE_VIEWS,
    latent_column,
    sample_lesions,
)
from rnclassifier.version import __version__

logger = logging.getLogger(__name__)

SYNTHETIC_NOTE = "SYNTHETIC data made by rnclassifier synth: not from any patient"
#: The arguments that made the folder, for provenance and for reusing an identical cohort.
SETTINGS_FILE = "synthesis.json"

#: Display precision of the manifest's numbers (the oracle used the unrounded values).
ROUNDING = {"age_years": 1, "months_between_scans": 1, "months_since_srs": 1, "ptv_cc": 2}
#: The image columns the generator writes, each file named `<lesion_id>_<column>.nii.gz`.
IMAGE_FILES = ("t1c", "flair", "mask", "brain_mask", "t1c_prior", "flair_prior", "mask_prior")


@dataclass(frozen=True)
class SynthSummary:
    out: Path
    n_lesions: int
    n_patients: int
    n_tumour: int
    n_necrosis: int


def write_synthetic_cohort(
    out: str | Path,
    *,
    preset: str = "seed",
    n_lesions: int | None = None,
    seed: int = 0,
    rn_fraction: float | None = None,
    null: bool = False,
    force: bool = False,
    jobs: int | None = None,
    shift: float | None = None,
) -> SynthSummary:
    """Sample, render and write a synthetic cohort into the folder `out`.

    `shift` (0-1) replaces the preset's own biology shift (`Preset.shift`: 0 for `seed`, 1 for
    `external`): how far the class-conditional image signs move from the seed's.
    """
    if preset not in PRESETS:
        raise InputError(f"unknown preset {preset!r}; choose one of {', '.join(PRESETS)}")
    model = PRESETS[preset]
    if shift is not None:
        if not 0 <= shift <= 1:
            raise InputError(f"--shift must be between 0 and 1, got {shift}")
        model = model.with_shift(shift)
    frame = sample_lesions(
        model, n_lesions=n_lesions, rn_fraction=rn_fraction, seed=seed, null=null
    )
    frame["lesion_volume_cc"] = _lesion_volumes(len(frame), seed)
    frame["growth_rate_per_month"] = [
        growth_rate_per_month(z) for z in frame[latent_column("growth_steadiness")]
    ]
    out = Path(out)
    jobs = jobs or min(2, os.cpu_count() or 1)
    with atomic_directory(out, overwrite=force) as folder:
        images = folder / "images"
        images.mkdir()
        tasks = [
            (_latents(row), _site(model, row["site"]), (seed, index), images, row["lesion_id"])
            for index, row in frame.reset_index(drop=True).iterrows()
        ]
        if jobs > 1:
            # spawn, not fork: the parent already runs ITK's thread pool, and forking a
            # threaded process can deadlock.
            context = multiprocessing.get_context("spawn")
            with ProcessPoolExecutor(max_workers=jobs, mp_context=context) as pool:
                try:
                    list(pool.map(_render_and_write, tasks, chunksize=1))
                except BaseException:
                    pool.shutdown(wait=True, cancel_futures=True)
                    raise
        else:
            for task in tasks:
                _render_and_write(task)
        manifest = _manifest(frame)
        manifest.to_csv(folder / "cohort.csv", index=False)
        _oracle(frame, model).to_csv(folder / "oracle.csv", index=False)
        settings = synthesis_settings(model.name, len(frame), seed, rn_fraction, null, shift)
        (folder / SETTINGS_FILE).write_text(json.dumps(settings, indent=2) + "\n")
        (folder / "README.md").write_text(
            _readme(model, frame, seed=seed, null=null, rn_fraction=rn_fraction), encoding="utf-8"
        )
        try:  # the generator's own output must obey the manifest contract
            load_cohort(folder / "cohort.csv", require_pathology=True)
        except InputError as exc:
            raise RuntimeError(f"synthetic manifest breaks the contract: {exc}") from exc
    tumour = int((frame["pathology"] == "tumor").sum())
    return SynthSummary(out, len(frame), frame["patient_id"].nunique(), tumour, len(frame) - tumour)


#: Bumped whenever rendering or sampling changes the files for the same settings, so that a
#: cohort written by an older generator is never taken for a current one (the demo reuses
#: cohorts whose settings match).
GENERATOR_REVISION = 3


def synthesis_settings(
    preset: str,
    n_lesions: int,
    seed: int,
    rn_fraction: float | None,
    null: bool,
    shift: float | None = None,
) -> dict[str, object]:
    """What `synthesis.json` records: equal settings and version give identical files.

    `shift` None is the preset's own biology shift (`PRESETS[preset].shift`)."""
    return {
        "synthetic": True,
        "generator": f"rnclassifier {__version__}, revision {GENERATOR_REVISION}",
        "preset": preset,
        "n_lesions": n_lesions,
        "seed": seed,
        "rn_fraction": rn_fraction,
        "null": null,
        "shift": shift,
    }


def _lesion_volumes(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(np.random.SeedSequence([seed, 3107]))
    return LESION_VOLUME_CC.sample(rng, n)


def _latents(row: pd.Series) -> LesionLatents:
    return LesionLatents(
        location=row["location"],
        volume_cc=float(row["lesion_volume_cc"]),
        months_between_scans=float(row["months_between_scans"]),
        **{
            name: float(row[latent_column(name)])
            for name in (
                "enhancement_solidity",
                "margin_definition",
                "nidus_match",
                "oedema_restraint",
                "growth_steadiness",
            )
        },
    )


def _site(model: Preset, name: str) -> Site:
    return next(s for s in model.sites if s.name == name)


def _render_and_write(task: tuple) -> None:
    latents, site, (seed, index), images, lesion_id = task
    import SimpleITK as sitk

    rng = np.random.default_rng(np.random.SeedSequence([seed, 5501, index]))
    current, prior = render_lesion(latents, site, rng)
    scans: dict[str, tuple[RenderedScan, str]] = {
        "t1c": (current, "t1c"),
        "flair": (current, "flair"),
        "mask": (current, "mask"),
        "brain_mask": (current, "brain_mask"),
        "t1c_prior": (prior, "t1c"),
        "flair_prior": (prior, "flair"),
        "mask_prior": (prior, "mask"),
    }
    for column, (scan, attribute) in scans.items():
        image = getattr(scan, attribute)
        image.SetMetaData("ITK_FileNotes", SYNTHETIC_NOTE[:79])
        sitk.WriteImage(image, str(images / f"{lesion_id}_{column}.nii.gz"), useCompression=True)


def _manifest(frame: pd.DataFrame) -> pd.DataFrame:
    manifest = frame.copy()
    for column in IMAGE_FILES:
        manifest[column] = [f"images/{lesion}_{column}.nii.gz" for lesion in frame["lesion_id"]]
    for column, digits in ROUNDING.items():
        manifest[column] = manifest[column].astype(float).round(digits)
    manifest["srs_dose_gy"] = manifest["srs_dose_gy"].astype(float).map(lambda v: f"{v:g}")
    # The manifest's own column order (cohort.COLUMNS), image paths after the IDs.
    others = [c for c in COLUMNS if c in manifest and c not in ID_COLUMNS]
    return manifest[[*ID_COLUMNS, *IMAGE_FILES, *others]]


def _oracle(frame: pd.DataFrame, model: Preset) -> pd.DataFrame:
    columns = [
        "lesion_id",
        "patient_id",
        "pathology",
        "pathology_detail",
        "tumour_fraction",
        *[latent_column(s.name) for s in model.signs],
        "lesion_volume_cc",
        "growth_rate_per_month",
        *ORACLE_COLUMNS,
    ]
    return frame[columns].round(6)


def _readme(
    model: Preset, frame: pd.DataFrame, *, seed: int, null: bool, rn_fraction: float | None
) -> str:
    tumour = int((frame["pathology"] == "tumor").sum())
    mixed = int((frame["pathology_detail"] == "mixed").sum())
    signs = "\n".join(
        f"- `{latent_column(s.name)}` (d = {s.d:.3g}"
        + (f", both classes moved by {s.offset:+.3g}" if s.offset else "")
        + f"; on {s.seen_on}): {s.meaning}. Source: {s.source}."
        + (f" Shifted here: {s.shift_reason}." if model.shift and s.shift_reason else "")
        for s in model.signs
    )
    oracles = "\n".join(f"  - `{c}`: {v.meaning}" for c, v in ORACLE_VIEWS.items())
    sites = "\n".join(
        f"- `{s.name}`: T1c {s.t1c_spacing_mm} mm, FLAIR {s.flair_spacing_mm} mm"
        f"{' on its own grid' if s.flair_own_grid else ''}, oblique {s.oblique_deg:g} deg, "
        f"noise {s.noise_fraction:g}, bias {s.bias_strength:g}, scale {s.intensity_scale:g}"
        for s in model.sites
    )
    fraction = model.rn_fraction if rn_fraction is None else rn_fraction
    return f"""# SYNTHETIC cohort — not patient data

Made by `rnclassifier synth` (rnclassifier {__version__}) with preset `{model.name}`, seed {seed},
{len(frame)} lesions, necrosis fraction {fraction:.3f}{", NULL signs (--null)" if null else ""},
biology shift {model.shift:g} (0: the seed's class-conditional image signs).
The same arguments give byte-identical files.

These data imitate the make-up of the seed study (Bhatia et al., Neurosurgery Practice 2024):
no number computed from them is clinical evidence. Every ID starts with `SYN-`, and every image
carries the note "{SYNTHETIC_NOTE}" in its header.

- {len(frame)} lesions of {frame["patient_id"].nunique()} patients: {tumour} tumour
  ({mixed} of them mixed: necrosis with viable tumour, labelled tumour by the seed's rule),
  {len(frame) - tumour} necrosis.
- `cohort.csv`: the manifest (rnclassifier's cohort contract), paths relative to this folder.
- `images/`: per lesion, T1 post-contrast, FLAIR, lesion mask and brain mask of the scored scan,
  and T1c, FLAIR and mask of the earlier scan (`*_prior`), each on its own grid (int16 NIfTI).
- `oracle.csv`: the generating latents and the Bayes oracle P(tumour | latents, clinical) of
  each lesion: the ceiling for any classifier that judges a lesion by its own images and
  covariates (the number of lesions a patient has also carries a little information: in the
  seed, lesions of two-lesion patients are tumour more often). **Never give it to training.**
  One oracle per feature set, limited to what that set's inputs can see (covariates outside
  every set, immunotherapy and HER2/T-DM1, marginalised out; growth only with a prior scan):
{oracles}

## Class-specific image signs (z ~ N(+d/2, 1) tumour, N(-d/2, 1) necrosis)
{signs}

## Sites (acquisition varies by site, never by class)
{sites}
"""
