"""The one-page case report of `score --report`: the lesion on T1c and FLAIR with its mask
outlined in three planes, the probability against the threshold, the SHAP waterfall, the flags,
the intended use and the provenance. Self-contained HTML; nothing that identifies the patient
(no names, IDs, dates or paths)."""

from __future__ import annotations

import base64
from pathlib import Path
from typing import Any

import numpy as np
import SimpleITK as sitk

from rnclassifier.atomic import write_text
from rnclassifier.report import plots
from rnclassifier.report.html import _environment

#: Field of view around the lesion's bounding box, in mm on each side.
MARGIN_MM = 25.0


def _oriented(image: sitk.Image) -> tuple[np.ndarray, tuple[float, float, float]]:
    """Array indexed [z, y, x] in LPS orientation (x to the patient's left, y posterior, z up)
    and its spacing (x, y, z)."""
    lps = sitk.DICOMOrient(image, "LPS")
    return sitk.GetArrayFromImage(lps).astype(float), lps.GetSpacing()


def lesion_planes(
    images: dict[str, sitk.Image], mask: sitk.Image
) -> dict[str, dict[str, np.ndarray]]:
    """Per sequence, the axial, coronal and sagittal planes through the lesion's centre, cropped
    to the lesion plus a margin, with the mask planes under the key 'mask'."""
    m, spacing = _oriented(mask)
    m = m > 0
    zs, ys, xs = np.nonzero(m)
    if zs.size == 0:
        raise ValueError("empty mask")
    centre = [round(float(np.mean(v))) for v in (zs, ys, xs)]
    margin = [int(np.ceil(MARGIN_MM / s)) for s in (spacing[2], spacing[1], spacing[0])]
    lo = [max(0, int(v.min()) - g) for v, g in zip((zs, ys, xs), margin, strict=True)]
    hi = [
        min(n, int(v.max()) + g + 1) for v, g, n in zip((zs, ys, xs), margin, m.shape, strict=True)
    ]
    box = tuple(slice(a, b) for a, b in zip(lo, hi, strict=True))
    cz, cy, cx = (c - a for c, a in zip(centre, lo, strict=True))

    def planes(volume: np.ndarray) -> dict[str, np.ndarray]:
        crop = volume[box]
        return {
            "axial": crop[cz],  # rows anterior -> posterior, columns right -> left
            "coronal": crop[:, cy, :][::-1],  # rows superior -> inferior
            "sagittal": crop[:, :, cx][::-1],  # rows superior -> inferior, columns ant -> post
        }

    out = {name: planes(_oriented(image)[0]) for name, image in images.items()}
    out["mask"] = planes(m.astype(float))
    out["aspect"] = {
        "axial": spacing[1] / spacing[0],
        "coronal": spacing[2] / spacing[0],
        "sagittal": spacing[2] / spacing[1],
    }
    return out


def case_planes(case: Any) -> dict[str, dict[str, np.ndarray]]:
    """The planes a case report shows, read through the same readers as scoring (small crops:
    a service keeps them to render the report when it is asked for)."""
    from rnclassifier.features.radiomics import ScanInputs, read_scan_mask
    from rnclassifier.imaging import preprocess

    shown = {s: p for s, p in case.images.items() if s in ("t1c", "flair")}
    scan = ScanInputs(
        images=dict(case.images),
        mask=case.mask,
        mask_label=case.mask_label,
        roi_name=case.roi_name,
        series={s: v for s, v in case.series.items() if s in case.images},
    )
    reference, mask = read_scan_mask(scan)
    images = {"t1c": reference}
    for sequence in shown:
        if sequence != "t1c":
            images[sequence] = preprocess.resample_onto(scan.read(sequence), reference)
    return lesion_planes(images, mask)


def render_case_html(result: dict[str, Any], planes: dict[str, Any]) -> str:
    figures = {
        "slices": plots.lesion_slices_figure(planes),
        "probability": plots.probability_figure(result),
        "waterfall": plots.waterfall_figure(result),
    }
    images = {k: base64.b64encode(v).decode("ascii") for k, v in figures.items()}
    return _environment().get_template("case.html.j2").render(result=result, images=images)


def case_report_html(result: dict[str, Any], case: Any) -> str:
    """The report of a scored case; its images are re-read here, through the same readers."""
    return render_case_html(result, case_planes(case))


def write_case_report(path: str | Path, result: dict[str, Any], case: Any) -> Path:
    """Render and write atomically."""
    return write_text(path, case_report_html(result, case))
