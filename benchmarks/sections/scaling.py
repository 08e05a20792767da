"""Section 5: cold extraction time against cohort size (should be linear), 1 against N jobs,
and the peak memory of one large case against pyradiomics' CLI on the same case."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import yaml

from benchmarks.common import (
    LIGHT,
    Plan,
    cohort,
    extract_command,
    log,
    plain_params,
    prefix,
    pyradiomics_batch,
    pyradiomics_command,
    workdir,
)
from benchmarks.measure import Timing, repeat
from benchmarks.report import Figure, Section

TITLE = "Scaling: cohort size, jobs, and one large case"
#: A least-squares line's slope, intercept and R², and the marginal cost per lesion of the
#: smallest and the largest step.
Fit = tuple[float, float, float, float, float]
NOTE = (
    "Why one large case costs rnclassifier more than pyradiomics alone (profiled): it "
    "reads the image as float32 and checks every voxel is finite, reads and checks the "
    "mask on the image's grid, and counts the mask's connected pieces, all over the "
    "whole volume; pyradiomics then hashes, casts and resamples that float copy, where "
    "its own CLI keeps the file's int16. Cropping image and mask to the mask's bounding "
    "box plus pyradiomics' `padDistance` right after reading would bring both ratios "
    "near 1 (pyradiomics crops there anyway with `preCrop`). The light profile adds "
    "whole-volume z-scoring and the shell's distance map."
)


def run(plan: Plan) -> Section:
    """Cold extraction time against cohort size (should be linear), 1 against N jobs, and the
    peak memory of one large case against pyradiomics' CLI on the same case."""
    manifest = cohort(plan, plan.scaling_cohort)
    work = workdir("scaling")
    params = plain_params(work)
    log(f"5. scaling: {', '.join(map(str, plan.scaling_sizes))} lesions, jobs {plan.jobs}")

    def timed(lesions: int, jobs: int, label: str) -> Timing:
        """Cold extraction of the first `lesions` lesions with `jobs` processes."""
        command = extract_command(
            prefix(manifest, lesions), params, work / "f.parquet", jobs=jobs, no_cache=True
        )
        return repeat(label, command, plan.scaling_repeats)

    by_size: dict[int, Timing] = {
        n: timed(n, plan.jobs, f"{n} lesions, `--jobs {plan.jobs}`") for n in plan.scaling_sizes
    }
    one_job = timed(plan.jobs_size, 1, f"{plan.jobs_size} lesions, `--jobs 1` (baseline)")
    n_jobs = by_size.get(plan.jobs_size)
    if n_jobs is None:
        n_jobs = timed(plan.jobs_size, plan.jobs, f"{plan.jobs_size} lesions, `--jobs {plan.jobs}`")
    large = _large(plan, params, work)
    shutil.rmtree(work, ignore_errors=True)
    wall, cpu = _fits(by_size)
    return Section(
        "scaling",
        TITLE,
        _setup(plan, sorted(by_size)),
        [*by_size.values(), one_job, *([] if plan.jobs_size in by_size else [n_jobs]), *large],
        [
            *_size_figures(by_size, wall, cpu),
            _jobs_figure(plan, n_jobs, one_job),
            *_large_figures(plan, *large),
        ],
        notes=[_fit_note(sorted(by_size), wall, cpu), NOTE],
        data={
            "wall_fit": dict(zip(("slope", "intercept", "r2"), wall[:3], strict=True)),
            "cpu_fit": dict(zip(("slope", "intercept", "r2"), cpu[:3], strict=True)),
        },
    )


def linearity(sizes: Any, values: Any) -> Fit:
    """Least-squares slope, intercept, R², and the marginal cost per lesion of the smallest
    and the largest step."""
    import numpy as np

    slope, intercept = np.polyfit(sizes, values, 1)
    residual = ((values - (slope * sizes + intercept)) ** 2).sum()
    r2 = 1 - float(residual / ((values - values.mean()) ** 2).sum())
    small = (values[1] - values[0]) / (sizes[1] - sizes[0])
    large = (values[-1] - values[-2]) / (sizes[-1] - sizes[-2])
    return float(slope), float(intercept), r2, float(small), float(large)


def _fits(by_size: dict[int, Timing]) -> tuple[Fit, Fit]:
    """The wall-time and the CPU-time lines over the cohort sizes."""
    import numpy as np

    sizes = np.array(sorted(by_size), float)
    wall = linearity(sizes, np.array([by_size[int(n)].seconds for n in sizes]))
    cpu = linearity(sizes, np.array([by_size[int(n)].cpu_seconds for n in sizes]))
    return wall, cpu


def _fit_note(sizes: list[int], wall: Fit, cpu: Fit) -> str:
    """Both lines and the marginal costs, in words."""
    return (
        f"Least-squares lines over the sizes: wall {wall[0]:.3f} s per lesion + {wall[1]:.2f} s "
        f"(R² {wall[2]:.4f}); CPU {cpu[0]:.3f} s per lesion + {cpu[1]:.2f} s (R² {cpu[2]:.4f}). "
        f"Marginal cost per lesion from {sizes[0]} to {sizes[1]} lesions: wall "
        f"{wall[3]:.3f} s, CPU {cpu[3]:.3f} s; from {sizes[-2]} to {sizes[-1]}: wall "
        f"{wall[4]:.3f} s, CPU {cpu[4]:.3f} s. On a shared machine the CPU line is the one to "
        "judge linearity by: wall time also measures what else ran meanwhile."
    )


def _large(plan: Plan, params: Path, work: Path) -> tuple[Timing, Timing, Timing]:
    """One large case extracted by pyradiomics' CLI (the baseline), by rnclassifier with the
    plain parameters, and by rnclassifier with the light profile restricted to T1c."""
    big = large_case(plan)
    x, y, z = plan.large_shape
    light = yaml.safe_load(LIGHT.read_text())
    light["rnclassifier"].update({"sequences": ["t1c"], "delta": False})
    light_t1c = work / "light-t1c.yaml"
    light_t1c.write_text(yaml.safe_dump(light))
    batch = pyradiomics_batch(big, work, ("t1c",))
    log(f"   one {x}x{y}x{z} case")
    theirs = repeat(
        f"{x}x{y}x{z} case: pyradiomics CLI, plain parameters (baseline)",
        pyradiomics_command(batch, params, work / "large.csv"),
        plan.scaling_repeats,
    )
    plain = repeat(
        f"{x}x{y}x{z} case: `rnclassifier extract`, plain parameters",
        extract_command(big, params, work / "large.parquet", no_cache=True),
        plan.scaling_repeats,
    )
    profile = repeat(
        f"{x}x{y}x{z} case: `rnclassifier extract`, light profile (T1c: z-score, shell)",
        extract_command(big, light_t1c, work / "large-light.parquet", no_cache=True),
        plan.scaling_repeats,
    )
    return theirs, plain, profile


def large_case(plan: Plan) -> Path:
    """One large synthetic case (T1c, lesion and brain masks, uncompressed NIfTI) and its
    one-row manifest: an enhancing rim around a necrotic core in an ellipsoid brain."""
    import numpy as np
    import SimpleITK as sitk

    x, y, z = plan.large_shape
    folder = plan.data / f"large-{x}x{y}x{z}"
    manifest = folder / "cohort.csv"
    if manifest.exists():
        return manifest
    log(f"synthesising a {x}x{y}x{z} case")
    folder.mkdir(parents=True, exist_ok=True)
    spacing = np.array(plan.large_spacing)
    rng = np.random.default_rng(0)
    grid = np.ogrid[:z, :y, :x]
    centre = (np.array([z, y, x]) - 1) / 2
    mm = [(g - c) * s for g, c, s in zip(grid, centre, spacing[::-1], strict=True)]
    half = centre * spacing[::-1] * 0.85
    brain = sum((d / h) ** 2 for d, h in zip(mm, half, strict=True)) <= 1
    radius = sum(d**2 for d in mm) ** 0.5  # distance from the centre, mm
    lesion = radius <= min(15.0, 0.3 * min(half))
    core = radius <= 0.6 * min(15.0, 0.3 * min(half))
    # Brain 1000 +- 100, enhancing rim 1300, necrotic core 600: z-scores within about +-8, as
    # in the synthetic cohort (a starker contrast makes the light profile's 0.1 bins explode).
    image = rng.normal(0, 100, size=(z, y, x)).astype(np.float32)
    image += np.where(brain, 1000, 100).astype(np.float32)
    image[lesion] += 300
    image[core] -= 700
    for name, array in (
        ("t1c", image.astype(np.int16)),
        ("mask", lesion.astype(np.uint8)),
        ("brain_mask", brain.astype(np.uint8)),
    ):
        volume = sitk.GetImageFromArray(array)
        volume.SetSpacing(tuple(float(s) for s in spacing))
        sitk.WriteImage(volume, str(folder / f"{name}.nii"))
    manifest.write_text(
        "patient_id,lesion_id,t1c,mask,brain_mask\n"
        "LARGE-P1,LARGE-L1,t1c.nii,mask.nii,brain_mask.nii\n"
    )
    return manifest


def _setup(plan: Plan, sizes: list[int]) -> str:
    """What was extracted, and how."""
    x, y, z = plan.large_shape
    image_mib = x * y * z * 4 / 2**20
    return (
        f"Cold extraction (plain parameters as in section 1, T1c and FLAIR, no cache) of the "
        f"first {', '.join(str(n) for n in sizes)} lesions of a {plan.scaling_cohort}-"
        f"lesion synthetic cohort, `--jobs {plan.jobs}`, and of {plan.jobs_size} lesions with "
        f"`--jobs 1`; {plan.scaling_repeats} run(s) each. Then one synthetic {x}x{y}x{z}-voxel "
        f"case ({'x'.join(f'{s:g}' for s in plan.large_spacing)} mm; {image_mib:,.0f} MiB as "
        "float32) extracted in one process by pyradiomics' CLI and by rnclassifier with the "
        "same plain parameters, and by rnclassifier with the light profile restricted to T1c "
        "(brain z-scoring and the peritumoural shell work on the whole image)."
    )


def _size_figures(by_size: dict[int, Timing], wall: Fit, cpu: Fit) -> list[Figure]:
    """The largest step's marginal cost per lesion against the smallest's, CPU and wall."""
    sizes = sorted(by_size)
    steps = f"{sizes[-2]}→{sizes[-1]} / {sizes[0]}→{sizes[1]} lesions"
    return [
        Figure(
            f"marginal CPU time per lesion, {steps}",
            cpu[4],
            cpu[3],
            "the smallest step",
            "≈ 1 (≤ 1.25: linear)",
            1.25,
            unit="CPU s/lesion",
            bound="a marginal cost that grows with n means something is not linear "
            "(memory pressure, the parquet writer, the progress bar).",
        ),
        Figure(
            f"marginal wall time per lesion, {steps}",
            wall[4],
            wall[3],
            "the smallest step",
            "– (wall time moves with the machine's other load)",
            None,
            unit="s/lesion",
        ),
    ]


def _jobs_figure(plan: Plan, n_jobs: Timing, one_job: Timing) -> Figure:
    """N jobs against one."""
    return Figure(
        f"extraction, `--jobs {plan.jobs}` / `--jobs 1`, {plan.jobs_size} lesions",
        n_jobs.seconds,
        one_job.seconds,
        "`--jobs 1`",
        "≤ 0.6",
        0.6,
        bound="the start-up paid once per command and a shared machine's other load.",
    )


def _large_figures(plan: Plan, theirs: Timing, plain: Timing, profile: Timing) -> list[Figure]:
    """The large case's peak memory (both ways) and time against pyradiomics' CLI."""
    x, y, z = plan.large_shape
    return [
        Figure(
            f"{x}x{y}x{z} case, peak RSS, plain parameters",
            plain.max_rss_mib,
            theirs.max_rss_mib,
            "pyradiomics CLI",
            "– (no goal set)",
            None,
            unit="MiB",
        ),
        Figure(
            f"{x}x{y}x{z} case, peak RSS, light profile",
            profile.max_rss_mib,
            theirs.max_rss_mib,
            "pyradiomics CLI",
            "– (more work per voxel)",
            None,
            unit="MiB",
        ),
        Figure(
            f"{x}x{y}x{z} case, time, plain parameters",
            plain.seconds,
            theirs.seconds,
            "pyradiomics CLI",
            "– (no goal set)",
            None,
        ),
    ]
