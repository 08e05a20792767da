"""A cohort in, a feature table out: parallel across lesions, cached by content hash.

The table has one row per lesion: `lesion_id`, `patient_id`, `pathology` (when the manifest has
it), then numeric radiomics columns (`columns`), delta columns when prior scans are used,
and clinical columns. A sidecar JSON records settings, library versions, input hashes and
per-lesion diagnostics, by row position: no identifiers and no DICOM header values.
"""

from __future__ import annotations

import contextlib
import json
import logging
import math
import platform
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from rnclassifier.atomic import atomic_file
from rnclassifier.clinical import bed_column_name
from rnclassifier.cohort import PRIOR_SUFFIX, SERIES_SUFFIX, Cohort
from rnclassifier.columns import CARRIED_COLUMNS, GROWTH_COLUMN, encode_clinical, feature_column
from rnclassifier.config import (
    DEFAULT_EXTRACTION_CONFIG,
    ExtractionConfig,
    load_extraction_config,
)
from rnclassifier.errors import InputError, Problem
from rnclassifier.features.cache import FeatureCache, content_hash
from rnclassifier.features.radiomics import ScanInputs, extract_scan, read_scan_mask
from rnclassifier.version import __version__

logger = logging.getLogger(__name__)

ID_COLUMNS = ("lesion_id", "patient_id")


@dataclass(frozen=True)
class LesionTask:
    """Everything one lesion's radiomics depend on; `row` is the manifest row number."""

    row: int
    current: ScanInputs
    prior: ScanInputs | None = None
    months_between_scans: float | None = None
    perturb: int = 0


@dataclass
class FeatureTable:
    """The table, its sidecar (settings, versions, hashes, diagnostics) and, with `--perturb`,
    one row per lesion and mask perturbation."""

    table: pd.DataFrame
    sidecar: dict[str, Any] = field(default_factory=dict)
    perturbed: pd.DataFrame | None = None

    def write(self, out: str | Path, *, csv: bool | None = None) -> Path:
        """Write `out` (parquet, or CSV when asked or named .csv), `<out>.json` and, with
        perturbations, `<out>.perturb.parquet`; each atomically."""
        out = Path(out)
        as_csv = out.suffix.lower() == ".csv" if csv is None else csv
        outputs = [(out, self.table)]
        if self.perturbed is not None:
            outputs.append((perturb_path(out), self.perturbed))
        for path, frame in outputs:
            with atomic_file(path) as tmp:
                if as_csv:
                    frame.to_csv(tmp, index=False)
                else:
                    frame.to_parquet(tmp, index=False)
        with atomic_file(sidecar_path(out)) as tmp:
            tmp.write_text(json.dumps(self.sidecar, indent=1, default=str) + "\n")
        return out


def sidecar_path(out: Path) -> Path:
    return out.with_name(out.name + ".json")


def perturb_path(out: Path) -> Path:
    """`features.parquet` -> `features.perturb.parquet` (DESIGN.md's layout)."""
    return out.with_name(f"{out.stem}.perturb{out.suffix}")


def extract_features(
    cohort: Cohort,
    config: ExtractionConfig | str | Path | None = None,
    *,
    jobs: int = 1,
    cache_dir: str | Path | None = None,
    progress: bool = False,
    perturb: int | None = None,
    scheduler: str | None = None,
    allow_failures: bool = False,
) -> FeatureTable:
    """Extract every lesion's features with `config` (an extraction config, its file, or None
    for the default profile); raise one `InputError` listing every lesion problem.

    A lesion whose features the config asks for do not all come back (pyradiomics skipped a
    region, class or image type) is a problem too, naming the row and pyradiomics' reason:
    never a table with a hole. With `allow_failures` such a lesion's row is written with NaN
    radiomics and listed in the sidecar's `failed_rows`: a technical failure for training and
    evaluation to count. A NaN that pyradiomics returns as a feature's value is a value (kept,
    and counted in the sidecar's `nan_values`).

    `perturb` (default: the config's `perturbations.n`) adds K mask perturbations per lesion.
    `scheduler` (a Dask scheduler address) runs the lesions on a cluster instead of `jobs`
    local processes; the cache is read and written here, on the machine that calls this.
    """
    if not isinstance(config, ExtractionConfig):  # a config file, or the default profile
        config = load_extraction_config(config or DEFAULT_EXTRACTION_CONFIG)
    sequences = _sequences(cohort, config)
    use_prior = config.settings.delta and not config.plain
    k = config.settings.perturbations.n if perturb is None else perturb
    tasks = [_task(cohort, i, sequences, use_prior, k) for i in range(cohort.n_lesions)]
    cache = FeatureCache(cache_dir) if cache_dir else None
    outcomes = _run_all(
        tasks, config, jobs=jobs, cache=cache, progress=progress, scheduler=scheduler
    )

    problems = [p for outcome in outcomes for p in outcome.get("problems", [])]
    if problems:
        raise InputError(problems)
    failures = missing_features(outcomes, [task.row for task in tasks])
    if failures and not allow_failures:
        raise InputError(
            Problem(
                f"{reason}; fix the input, or pass --allow-failures to keep the row (NaN "
                "features) as a technical failure",
                row=row,
            )
            for row, reason in failures.values()
        )
    radiomics = pd.DataFrame([outcome["features"] for outcome in outcomes])
    radiomics.loc[list(failures), :] = math.nan  # a technical failure has no radiomics at all
    table = pd.concat([_identity(cohort), radiomics, clinical_features(cohort, config)], axis=1)
    sidecar = _sidecar(cohort, config, sequences, outcomes)
    sidecar["failed_rows"] = [
        {"position": i, "manifest_row": row, "reason": reason}
        for i, (row, reason) in failures.items()
    ]
    sidecar["nan_values"] = int(radiomics.drop(index=list(failures)).isna().to_numpy().sum())
    perturbed = None
    if k:
        identity = _identity(cohort)
        rows = [
            {**identity.iloc[i].to_dict(), "perturbation": j, "perturbation_kind": kind, **values}
            for i, outcome in enumerate(outcomes)
            for j, (kind, values) in enumerate(outcome["perturbed"])
        ]
        perturbed = pd.DataFrame(rows)
    return FeatureTable(table=table, sidecar=sidecar, perturbed=perturbed)


def missing_features(outcomes: list[dict[str, Any]], rows: list[int]) -> dict[int, tuple[int, str]]:
    """Lesions (by position) whose features did not all come back: position -> (manifest row,
    reason). Expected are the columns any lesion of the run returned; a region that pyradiomics
    skipped names pyradiomics' reason."""
    expected: set[str] = set()
    perturbed: set[str] = set()  # the scored scan's features only: no delta columns
    for outcome in outcomes:
        expected.update(outcome["features"])
        for _, values in outcome.get("perturbed", []):
            perturbed.update(values)
    failures = {}
    for i, outcome in enumerate(outcomes):
        skipped = [
            f"{scan} scan: {line}" if scan == "prior" else line
            for scan in ("current", "prior")
            for line in outcome["diagnostics"].get(scan, {}).get("skipped", [])
        ]
        skipped += outcome["diagnostics"].get("perturbations_skipped", [])
        absent = sorted(expected - set(outcome["features"]))
        for j, (kind, values) in enumerate(outcome.get("perturbed", [])):
            if lost := sorted(perturbed - set(values)):
                skipped.append(
                    f"perturbation {j} ({kind}): {len(lost)} feature(s) missing, e.g. {lost[0]}"
                )
        if skipped:
            reason = "pyradiomics skipped " + "; ".join(skipped)
        elif absent:
            reason = f"{len(absent)} feature(s) missing, e.g. {absent[0]}"
        elif not outcome["features"]:
            reason = "no features came back (check the mask and the pyradiomics settings)"
        else:
            continue
        failures[i] = (rows[i], reason)
    return failures


def _sequences(cohort: Cohort, config: ExtractionConfig) -> tuple[str, ...]:
    if config.plain:
        return cohort.sequences
    missing = [s for s in config.settings.sequences if s not in cohort.lesions]
    if missing:
        raise InputError(
            f"{cohort.source}: the extraction config asks for sequence(s) "
            f"{', '.join(missing)}, which the manifest has no column for"
        )
    return config.settings.sequences


def _task(
    cohort: Cohort, i: int, sequences: tuple[str, ...], use_prior: bool, perturb: int
) -> LesionTask:
    row = cohort.lesions.iloc[i]

    def text(column: str) -> str | None:
        value = row.get(column)
        return None if value is None or pd.isna(value) else value

    label = text("mask_label")
    current = ScanInputs(
        images={s: text(s) for s in sequences if text(s)},
        mask=text("mask"),
        brain_mask=text("brain_mask"),
        mask_label=int(label) if label is not None else None,
        roi_name=text("roi_name"),
        series={s: text(s + SERIES_SUFFIX) for s in sequences if text(s + SERIES_SUFFIX)},
    )
    prior = None
    if use_prior and text("t1c" + PRIOR_SUFFIX) and text("mask" + PRIOR_SUFFIX):
        prior = ScanInputs(
            images={s: text(s + PRIOR_SUFFIX) for s in sequences if text(s + PRIOR_SUFFIX)},
            mask=text("mask" + PRIOR_SUFFIX),
            brain_mask=text("brain_mask" + PRIOR_SUFFIX),
            mask_label=current.mask_label,
            roi_name=current.roi_name,
            series={
                s: text(s + PRIOR_SUFFIX + SERIES_SUFFIX)
                for s in sequences
                if text(s + PRIOR_SUFFIX + SERIES_SUFFIX)
            },
            series_suffix=PRIOR_SUFFIX + SERIES_SUFFIX,
        )
    months = text("months_between_scans")
    return LesionTask(
        cohort.row_numbers[i],
        current,
        prior,
        float(months) if months is not None else None,
        perturb,
    )


def _run_all(
    tasks: list[LesionTask],
    config: ExtractionConfig,
    *,
    jobs: int,
    cache: FeatureCache | None,
    progress: bool,
    scheduler: str | None = None,
) -> list[dict[str, Any]]:
    from joblib import Parallel, delayed
    from tqdm.auto import tqdm

    keys = [_cache_key(task, config) if cache else None for task in tasks]
    results: list[dict[str, Any] | None] = [
        cache.get(key) if cache and key else None for key in keys
    ]
    todo = [i for i, r in enumerate(results) if r is None]
    logger.info("%d lesions from the cache, %d to extract", len(tasks) - len(todo), len(todo))
    bar = tqdm(
        total=len(tasks),
        initial=len(tasks) - len(todo),
        disable=not progress,
        unit="lesion",
        desc="extract",
    )
    with _backend(scheduler):
        runner = Parallel(
            n_jobs=-1 if scheduler else jobs, return_as="generator", prefer="processes"
        )
        computed = runner(delayed(_extract_one)(tasks[i], config) for i in todo)
        for i, outcome in zip(todo, computed, strict=True):
            if cache and keys[i] and "problems" not in outcome:
                outcome["diagnostics"]["input_hash"] = keys[i]
                cache.put(keys[i], outcome)
            results[i] = outcome
            bar.update(1)
    bar.close()
    return [r for r in results if r is not None]


@contextlib.contextmanager
def _backend(scheduler: str | None) -> Iterator[None]:
    """Local processes by default; a Dask cluster's workers when a scheduler address is given."""
    if scheduler is None:
        yield
        return
    try:
        from dask.distributed import Client
        from joblib import parallel_config
    except ImportError:
        raise InputError(
            "--scheduler needs Dask: install rnclassifier with the 'dask' extra"
        ) from None
    try:
        client = Client(scheduler, timeout="10s")
    except (OSError, TimeoutError) as exc:
        raise InputError(f"cannot reach the Dask scheduler at {scheduler}: {exc}") from None
    with client, parallel_config(backend="dask"):
        yield


def _extract_one(task: LesionTask, config: ExtractionConfig) -> dict[str, Any]:
    """One lesion's radiomics (and delta) features, or its problems; runs in a worker."""
    try:
        current = extract_scan(task.current, config)
        features = {feature_column(*key): value for key, value in current.values.items()}
        diagnostics = {"current": current.diagnostics}
        if task.prior is not None:
            prior = extract_scan(task.prior, config)
            diagnostics["prior"] = prior.diagnostics
            features.update(_delta(current.values, prior.values))
            features[GROWTH_COLUMN] = _growth(
                current.diagnostics["lesion_volume_cc"],
                prior.diagnostics["lesion_volume_cc"],
                task.months_between_scans,
            )
        perturbed = []
        if task.perturb:
            from rnclassifier.features.robustness import perturbed_masks

            _, mask = read_scan_mask(task.current)
            seed = int(content_hash(task.current.mask)[:8], 16)
            for j, (kind, variant) in enumerate(perturbed_masks(mask, task.perturb, seed)):
                scan = extract_scan(task.current, config, mask_override=variant)
                values = {feature_column(*key): v for key, v in scan.values.items()}
                perturbed.append((kind, values))
                diagnostics.setdefault("perturbations_skipped", []).extend(
                    f"perturbation {j} ({kind}): {line}"
                    for line in scan.diagnostics.get("skipped", [])
                )
    except InputError as exc:
        return {"problems": [Problem(line, row=task.row) for line in exc.problems]}
    return {"features": features, "diagnostics": diagnostics, "perturbed": perturbed}


def _delta(
    current: dict[tuple[str, str, str], float], prior: dict[tuple[str, str, str], float]
) -> dict[str, float]:
    """Relative change of each feature from the prior scan: (now - before) / |before|."""
    out = {}
    for key, now in current.items():
        before = prior.get(key, math.nan)
        change = (now - before) / abs(before) if before and math.isfinite(before) else math.nan
        out[feature_column(*key, delta=True)] = change
    return out


def _growth(volume_now: float, volume_before: float, months: float | None) -> float:
    """Log-volume growth per month between the scans (0.1 ≈ 10% a month)."""
    if not months or volume_before <= 0 or volume_now <= 0:
        return math.nan
    return math.log(volume_now / volume_before) / months


def _cache_key(task: LesionTask, config: ExtractionConfig) -> str:
    import radiomics

    def scan_part(scan: ScanInputs | None) -> dict[str, Any] | None:
        if scan is None:
            return None
        return {
            "images": {s: content_hash(p) for s, p in scan.images.items()},
            "mask": content_hash(scan.mask),
            "brain_mask": content_hash(scan.brain_mask) if scan.brain_mask else None,
            "mask_label": scan.mask_label,
            "roi_name": scan.roi_name,
            # Only when chosen, so that keys of single-series inputs stay as they were.
            **({"series": scan.series} if scan.series else {}),
        }

    return content_hash(
        json.dumps(
            {
                "rnclassifier": __version__,
                "pyradiomics": radiomics.__version__,
                "config": config.fingerprint(),
                "current": scan_part(task.current),
                "prior": scan_part(task.prior),
                "months_between_scans": task.months_between_scans,
                "perturb": task.perturb,
            },
            sort_keys=True,
        ).encode()
    )


def _identity(cohort: Cohort) -> pd.DataFrame:
    # Site and radiologist reads ride along (never predictors): for harmonisation, subgroup
    # reports and the thresholds matched to the radiologists in training.
    optional = [c for c in ("pathology", *CARRIED_COLUMNS) if c in cohort.lesions]
    columns = [*ID_COLUMNS, *optional]
    return cohort.lesions[columns].reset_index(drop=True)


def clinical_features(cohort: Cohort, config: ExtractionConfig) -> pd.DataFrame:
    """The clinical columns (`columns.encode_clinical`); none for a plain pyradiomics config."""
    lesions = cohort.lesions.reset_index(drop=True)
    if config.plain:
        return pd.DataFrame(index=lesions.index)
    return encode_clinical(lesions, config.settings.bed_alpha_betas_gy)


def _sidecar(
    cohort: Cohort,
    config: ExtractionConfig,
    sequences: Iterable[str],
    outcomes: list[dict[str, Any]],
) -> dict[str, Any]:
    import radiomics
    import SimpleITK as sitk

    return {
        "description": "rnclassifier feature table sidecar: settings, versions, diagnostics. "
        "Per-lesion entries are in table row order; no identifiers.",
        "versions": {
            "rnclassifier": __version__,
            "pyradiomics": radiomics.__version__,
            "SimpleITK": sitk.Version_VersionString(),
            "numpy": np.__version__,
            "python": platform.python_version(),
        },
        "config": {
            "source_name": config.source.name,
            "fingerprint": config.fingerprint(),
            "plain_pyradiomics": config.plain,
            "pyradiomics": config.pyradiomics,
            "rnclassifier": config.settings.model_dump(mode="json"),
        },
        "sequences": list(sequences),
        # Lesion counts per scanner or institution: what a bundle reports as the sites seen.
        "sites": (
            cohort.lesions["site"].dropna().astype(str).value_counts().sort_index().to_dict()
            if "site" in cohort.lesions
            else None
        ),
        "clinical_columns": [bed_column_name(a) for a in config.settings.bed_alpha_betas_gy],
        "n_lesions": cohort.n_lesions,
        "lesions": [outcome["diagnostics"] for outcome in outcomes],
    }
