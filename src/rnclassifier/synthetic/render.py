"""Render a SYNTHETIC lesion as MRI: T1 post-contrast, FLAIR, brain mask and lesion mask,
for the scored scan and the earlier scan on which it was already growing.

Two stages, as in a real scanner:
1. Truth on a 1 mm reference grid in head coordinates: a procedural head (scalp, skull, CSF,
   cortex with gyri and sulci, white matter, ventricles) and the lesion, whose appearance is set
   only by the class-specific latent signs (`presets.IMAGE_SIGNS`) plus class-free nuisance
   (size, shape, necrotic core, texture, position).
2. Acquisition by the patient's site, independent of the class: grid spacing (slice thickness),
   orientation, a FLAIR grid of its own at some sites, a multiplicative bias field, an intensity
   scale and Rician noise; int16 on disk. The earlier scan is a separate session: its own pose
   and grid, never registered to the later one.

How each latent z (positive = tumour-like) shows, with Φ the normal CDF:
- enhancement_solidity: soap-bubble holes in the enhancing tissue, fewer as Φ(z) rises.
- margin_definition: feathery, blurred enhancing margin, sharper as Φ(z) rises.
- nidus_match: FLAIR hypointense nidus of radius q·R, q = 0.25 + 0.7·Φ(z) (lesion quotient
  q² from ~0.06 to ~0.9), sharp when matched and ill-defined otherwise.
- oedema_restraint: FLAIR oedema reaching (0.3 + 1.4·Φ(-z))·R beyond the margin, in white matter.
- growth_steadiness: log-volume growth rate 0.22 - 0.09·z per month between the two scans.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import SimpleITK as sitk
from scipy import ndimage
from scipy.special import expit
from scipy.stats import norm

from rnclassifier.synthetic.distributions import QuantileKnots
from rnclassifier.synthetic.presets import Site

#: Reference grid (mm, x/y/z): larger than any acquisition so oblique grids stay inside it.
REFERENCE_SIZE = (140, 140, 84)
#: Field of view of every acquisition (mm): a slab around the lesion, not a whole head.
FIELD_OF_VIEW_MM = (120.0, 120.0, 64.0)

#: Inner-skull (brain surface) semi-axes in mm: an adult head, left-right / front-back / up-down.
BRAIN_SEMI_AXES = np.array([68.0, 88.0, 62.0])

#: Where lesions sit, in head coordinates (mm; +x left, +y anterior, +z superior).
LOCATION_CENTRES = {
    "frontal": (20.0, 50.0, 18.0),
    "parietal": (30.0, -22.0, 35.0),
    "temporal": (48.0, 5.0, -12.0),
    "occipital": (22.0, -65.0, 8.0),
    "cerebellum": (20.0, -55.0, -38.0),
    "brainstem": (0.0, -22.0, -32.0),
    "deep": (16.0, 2.0, 6.0),
    "other": (25.0, 10.0, 25.0),
}

#: The scored lesion's enhancing volume (cm³): independent of class and of the first course's
#: PTV, so that images carry the label only through the latent signs (the null render check).
LESION_VOLUME_CC = QuantileKnots((0, 0.25, 0.5, 0.75, 1), (0.4, 1.6, 4.5, 10.0, 30.0), log=True)

# Signal of each tissue relative to white matter (T1c, FLAIR), typical of 1.5-3 T clinical scans.
T1C = {
    "air": 0.0,
    "scalp": 1.25,
    "skull": 0.12,
    "csf": 0.30,
    "gm": 0.78,
    "wm": 1.0,
    "oedema": 0.88,
    "enhancing": 1.75,
    "core": 0.45,
    "bubble": 0.55,
}
FLAIR = {
    "air": 0.0,
    "scalp": 1.10,
    "skull": 0.15,
    "csf": 0.22,
    "gm": 1.22,
    "wm": 1.0,
    "oedema": 1.75,
    "lesion": 1.45,
    "nidus": 0.60,
    "core": 1.15,
}


@dataclass(frozen=True)
class LesionLatents:
    """What one lesion's images depend on (latents from the sampler, nuisance drawn here)."""

    location: str
    volume_cc: float
    months_between_scans: float
    enhancement_solidity: float
    margin_definition: float
    nidus_match: float
    oedema_restraint: float
    growth_steadiness: float


@dataclass(frozen=True)
class RenderedScan:
    t1c: sitk.Image
    flair: sitk.Image
    mask: sitk.Image
    brain_mask: sitk.Image


#: The earlier scan's lesion is never smaller than this (cm³): visible on every site's grid.
MIN_PRIOR_VOLUME_CC = 0.3


def growth_rate_per_month(growth_steadiness: float) -> float:
    """Log-volume growth per month: necrosis (z < 0) grows faster (Ocaña-Tienda 2022)."""
    return float(np.clip(0.22 - 0.09 * growth_steadiness, 0.03, 0.45))


def prior_volume_cc(latents: LesionLatents) -> float:
    rate = growth_rate_per_month(latents.growth_steadiness)
    shrunk = latents.volume_cc * math.exp(-rate * latents.months_between_scans)
    return max(shrunk, min(MIN_PRIOR_VOLUME_CC, latents.volume_cc))


def render_lesion(
    latents: LesionLatents, site: Site, rng: np.random.Generator
) -> tuple[RenderedScan, RenderedScan]:
    """The scored scan and the prior scan of one lesion, each on its own acquisition grid."""
    centre = _lesion_centre(latents, rng)
    head = _Head(centre, rng)
    lesion = _LesionShape(latents, centre, head, rng)
    scans = []
    for volume, is_prior in ((latents.volume_cc, False), (prior_volume_cc(latents), True)):
        t1c, flair, lesion_mask = lesion.truth(volume)
        pose = _Pose.draw(site, centre, rng, repositioned=is_prior)
        scan = _acquire(head, t1c, flair, lesion_mask, site, pose, rng)
        if not sitk.GetArrayViewFromImage(scan.mask).any():
            raise RuntimeError(f"rendered an empty {'prior ' * is_prior}lesion mask")
        scans.append(scan)
    return scans[0], scans[1]


#: Tissue labels of the procedural head.
TISSUES = ("air", "scalp", "skull", "csf", "gm", "wm")
_LABEL = {name: np.uint8(i) for i, name in enumerate(TISSUES)}


class _Head:
    """The anatomy (class-free) on a reference grid centred on the lesion."""

    def __init__(self, centre: np.ndarray, rng: np.random.Generator) -> None:
        self.shape = REFERENCE_SIZE[::-1]  # numpy order z, y, x
        self.centre = centre
        self.origin = centre - (np.array(REFERENCE_SIZE) - 1) / 2.0
        z, y, x = np.meshgrid(*(np.arange(n, dtype=np.float32) for n in self.shape), indexing="ij")
        self.coords = (x + self.origin[0], y + self.origin[1], z + self.origin[2])
        px, py, pz = self.coords
        surface_wobble = 1 + 0.03 * _smooth_noise(self.shape, 10.0, rng)
        rho = (
            np.sqrt(
                (px / BRAIN_SEMI_AXES[0]) ** 2
                + (py / BRAIN_SEMI_AXES[1]) ** 2
                + (pz / BRAIN_SEMI_AXES[2]) ** 2
            )
            / surface_wobble
        )
        radius = np.sqrt(px**2 + py**2 + pz**2)
        depth = radius * (1 / np.maximum(rho, 1e-3) - 1)  # mm below the brain surface
        folding = _smooth_noise(self.shape, 3.0, rng)
        tissue = np.full(self.shape, _LABEL["air"], dtype=np.uint8)
        tissue[depth > -14] = _LABEL["scalp"]
        tissue[depth > -8] = _LABEL["skull"]
        tissue[depth > -2] = _LABEL["csf"]
        brain = depth > 0
        tissue[brain] = _LABEL["wm"]
        tissue[brain & (depth + 5 * folding < 3.5)] = _LABEL["gm"]
        sulci = brain & (depth < 18) & (np.abs(folding) < 0.07) & (depth + 5 * folding < 12)
        tissue[sulci] = _LABEL["csf"]
        for side in (-1.0, 1.0):  # lateral ventricles
            ventricle = (
                ((px - side * 11) / 6) ** 2 + ((py - 5) / 24) ** 2 + ((pz - 10) / 8) ** 2
            ) < 1
            tissue[ventricle] = _LABEL["csf"]
        self.tissue = tissue
        self.brain = brain  # the skull-stripped brain: parenchyma, sulci and ventricles
        self.texture = 0.03 * _smooth_noise(self.shape, 1.5, rng)

    def is_tissue(self, name: str) -> np.ndarray:
        return self.tissue == _LABEL[name]

    def intensities(self, table: dict[str, float]) -> np.ndarray:
        lookup = np.array([table[name] for name in TISSUES], dtype=np.float32)
        return lookup[self.tissue] * (1 + self.texture)


class _LesionShape:
    """The lesion's truth: class-free shape and core, sign-driven pattern, at any volume."""

    def __init__(
        self, latents: LesionLatents, centre: np.ndarray, head: _Head, rng: np.random.Generator
    ) -> None:
        self.latents, self.centre, self.head = latents, centre, head
        shape = head.shape
        self.irregularity = rng.uniform(0.08, 0.25)
        self.shape_noise = _smooth_noise(shape, 4.0, rng)
        self.feather_noise = _smooth_noise(shape, 1.2, rng)
        self.oedema_noise = _smooth_noise(shape, 3.0, rng)
        self.enhancement_texture = 0.08 * _smooth_noise(shape, 1.0, rng)
        self.core_fraction = rng.uniform(0.0, 0.55)
        self.bubble_radius_mm = rng.uniform(1.2, 2.2)
        self.bubble_seed = int(rng.integers(2**31))
        px, py, pz = head.coords
        self.distance = np.sqrt(
            (px - centre[0]) ** 2 + (py - centre[1]) ** 2 + (pz - centre[2]) ** 2
        )

    def truth(self, volume_cc: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """T1c and FLAIR (white matter = 1) and the lesion's occupancy, at this volume."""
        head, lat = self.head, self.latents
        radius = (3 * volume_cc * 1000 / (4 * math.pi)) ** (1 / 3)
        solidity = norm.cdf(lat.enhancement_solidity)
        sharpness = norm.cdf(lat.margin_definition)
        match = norm.cdf(lat.nidus_match)
        oedema_reach = (0.3 + 1.4 * norm.cdf(-lat.oedema_restraint)) * radius

        u = self.distance / (radius * (1 + self.irregularity * self.shape_noise))
        u = u * (1 + 0.25 * (1 - sharpness) * self.feather_noise)  # feathery margin
        inside = (u < 1) & head.brain
        occupancy = ndimage.gaussian_filter(inside.astype(np.float32), 0.5 + 1.5 * (1 - sharpness))
        core = (u < self.core_fraction) if radius > 6 else np.zeros_like(inside)
        ring = inside & ~core & (u < 0.95)
        bubbles = self._bubbles(ring, radius, solidity)

        t1c = head.intensities(T1C)
        flair = head.intensities(FLAIR)
        beyond_mm = (u - 1) * radius
        oedema = expit((oedema_reach - beyond_mm + 3 * self.oedema_noise) / 1.5)
        oedema = oedema * np.where(
            head.is_tissue("wm"), 1.0, np.where(head.is_tissue("gm"), 0.3, 0)
        )
        oedema = oedema.astype(np.float32) * (~inside)
        t1c += oedema * (T1C["oedema"] - t1c)
        flair += oedema * (FLAIR["oedema"] - flair)

        lesion_t1 = np.full(head.shape, T1C["enhancing"], np.float32) * (
            1 + self.enhancement_texture
        )
        lesion_t1[bubbles] = T1C["bubble"]
        lesion_t1[core] = T1C["core"]
        t1c = t1c * (1 - occupancy) + lesion_t1 * occupancy

        nidus_edge = 0.5 + 2.0 * (1 - match)
        nidus = (
            ndimage.gaussian_filter((u < 0.25 + 0.7 * match).astype(np.float32), nidus_edge)
            * occupancy
        )
        lesion_flair = np.where(core, FLAIR["core"], FLAIR["lesion"]).astype(np.float32)
        lesion_flair = lesion_flair * (1 + self.enhancement_texture)
        lesion_flair = lesion_flair * (1 - nidus) + FLAIR["nidus"] * nidus
        flair = flair * (1 - occupancy) + lesion_flair * occupancy
        return t1c, flair, occupancy

    def _bubbles(self, ring: np.ndarray, radius: float, solidity: float) -> np.ndarray:
        """Soap-bubble holes: non-enhancing spheres scattered through the enhancing tissue."""
        rng = np.random.default_rng(self.bubble_seed)
        candidates = np.flatnonzero(ring)
        ring_volume = len(candidates)
        bubble_volume = 4 / 3 * math.pi * self.bubble_radius_mm**3
        expected = (1 - solidity) * 0.45 * ring_volume / bubble_volume
        count = min(int(rng.poisson(expected)), len(candidates))
        if count == 0:
            return np.zeros(ring.shape, bool)
        seeds = np.zeros(ring.shape, bool)
        seeds.flat[rng.choice(candidates, count, replace=False)] = True
        zs, ys, xs = np.nonzero(ring)
        box = tuple(slice(max(a.min() - 3, 0), a.max() + 4) for a in (zs, ys, xs))
        distance = ndimage.distance_transform_edt(~seeds[box])
        bubbles = np.zeros(ring.shape, bool)
        bubbles[box] = distance < self.bubble_radius_mm
        return bubbles & ring


@dataclass(frozen=True)
class _Pose:
    """An acquisition's frame: rotation and centre of the field of view."""

    rotation: np.ndarray
    centre: np.ndarray

    @classmethod
    def draw(
        cls, site: Site, lesion_centre: np.ndarray, rng: np.random.Generator, repositioned: bool
    ) -> _Pose:
        degrees = site.oblique_deg + (rng.uniform(1.0, 5.0) if repositioned else 0.0)
        axis = rng.standard_normal(3)
        rotation = _rotation(axis / np.linalg.norm(axis), math.radians(degrees))
        shift = rng.uniform(-6, 6, 3) if repositioned else rng.uniform(-3, 3, 3)
        return cls(rotation, lesion_centre + shift)


def _acquire(
    head: _Head,
    t1c: np.ndarray,
    flair: np.ndarray,
    occupancy: np.ndarray,
    site: Site,
    pose: _Pose,
    rng: np.random.Generator,
) -> RenderedScan:
    t1c_grid = _grid(site.t1c_spacing_mm, pose)
    if site.flair_own_grid:
        flair_pose = _Pose(pose.rotation @ _rotation(np.array([0, 0, 1.0]), 0.03), pose.centre)
        flair_grid = _grid(site.flair_spacing_mm, flair_pose)
    else:
        flair_grid = t1c_grid
    bias = _smooth_noise(head.shape, 25.0, rng) * site.bias_strength / 2
    gain = np.exp(bias).astype(np.float32)
    t1c_image = _scan(head, t1c * gain, t1c_grid, site, rng, site.intensity_scale)
    flair_scale = site.intensity_scale * rng.uniform(0.6, 0.9)
    flair_image = _scan(head, flair * gain, flair_grid, site, rng, flair_scale)

    # Segmentation variability: where the segmenter puts the edge (a global shift of about
    # +/-0.4 mm) and how it wanders along the boundary (inter-observer Dice ~0.85-0.9).
    threshold = rng.uniform(0.3, 0.7)
    near = ndimage.gaussian_filter(occupancy, 2.0) > 0.05
    wander = 0.12 * _smooth_noise(head.shape, 2.0, rng) * near
    sampled = _resample(_image(head, occupancy + wander), t1c_grid, sitk.sitkLinear)
    # A small, blurred lesion on thick slices may never reach the edge level: the segmenter
    # then outlines what is visible, at half its peak.
    peak = float(sitk.GetArrayViewFromImage(sampled).max())
    mask = sampled > min(threshold, 0.5 * peak)
    brain = _resample(_image(head, head.brain.astype(np.float32)), t1c_grid, sitk.sitkLinear) > 0.5
    mask = sitk.And(mask, brain)
    return RenderedScan(
        t1c=t1c_image,
        flair=flair_image,
        mask=sitk.Cast(mask, sitk.sitkUInt8),
        brain_mask=sitk.Cast(brain, sitk.sitkUInt8),
    )


def _scan(
    head: _Head,
    signal: np.ndarray,
    grid: sitk.Image,
    site: Site,
    rng: np.random.Generator,
    scale: float,
) -> sitk.Image:
    """Partial-volume smoothing to the grid's voxel size, resampling, Rician noise, int16."""
    image = _image(head, signal)
    spacing = np.array(grid.GetSpacing())
    image = sitk.SmoothingRecursiveGaussian(image, list(0.42 * spacing))
    sampled = sitk.GetArrayFromImage(_resample(image, grid, sitk.sitkLinear)) * scale
    sigma = site.noise_fraction * scale
    noisy = np.hypot(
        sampled + rng.normal(0, sigma, sampled.shape), rng.normal(0, sigma, sampled.shape)
    )
    out = sitk.GetImageFromArray(np.clip(np.round(noisy), 0, 32767).astype(np.int16))
    out.CopyInformation(grid)
    return out


def _grid(spacing_mm: tuple[float, float, float], pose: _Pose) -> sitk.Image:
    spacing = np.array(spacing_mm)
    size = np.maximum(np.round(np.array(FIELD_OF_VIEW_MM) / spacing).astype(int), 1)
    origin = pose.centre - pose.rotation @ ((size - 1) * spacing / 2)
    grid = sitk.Image([int(s) for s in size], sitk.sitkUInt8)
    grid.SetSpacing([float(s) for s in spacing])
    grid.SetDirection([float(v) for v in pose.rotation.flatten()])
    grid.SetOrigin([float(v) for v in origin])
    return grid


def _image(head: _Head, array: np.ndarray) -> sitk.Image:
    image = sitk.GetImageFromArray(np.ascontiguousarray(array, dtype=np.float32))
    image.SetOrigin([float(v) for v in head.origin])
    return image


def _resample(image: sitk.Image, grid: sitk.Image, interpolator: int) -> sitk.Image:
    return sitk.Resample(image, grid, sitk.Transform(), interpolator, 0.0, sitk.sitkFloat32)


def _lesion_centre(latents: LesionLatents, rng: np.random.Generator) -> np.ndarray:
    """The location's centre, jittered, mirrored at random, and deep enough for the lesion."""
    base = np.array(LOCATION_CENTRES.get(latents.location, LOCATION_CENTRES["other"]))
    centre = base + rng.uniform(-6, 6, 3)
    if latents.location not in ("brainstem",) and rng.random() < 0.5:
        centre[0] = -centre[0]
    radius = (3 * latents.volume_cc * 1000 / (4 * math.pi)) ** (1 / 3)
    rho = np.linalg.norm(centre / BRAIN_SEMI_AXES)
    reach = np.linalg.norm(centre)
    depth = reach * (1 / rho - 1)
    needed = 1.4 * radius + 6
    if depth < needed:
        centre = centre * max(0.0, (reach / rho - needed) / reach)
    return centre


def _rotation(axis: np.ndarray, angle: float) -> np.ndarray:
    """Rodrigues' rotation matrix."""
    k = np.array([[0, -axis[2], axis[1]], [axis[2], 0, -axis[0]], [-axis[1], axis[0], 0]])
    return np.eye(3) + math.sin(angle) * k + (1 - math.cos(angle)) * k @ k


def _smooth_noise(shape: tuple[int, ...], sigma_mm: float, rng: np.random.Generator) -> np.ndarray:
    """Gaussian-smoothed white noise scaled to unit SD: a cheap smooth random field.

    Wide fields are made on a coarser grid and interpolated up: same look, a fraction of the cost.
    """
    factor = max(1, int(sigma_mm // 1.5))
    coarse = shape if factor == 1 else tuple(-(-n // factor) + 1 for n in shape)
    field = ndimage.gaussian_filter(
        rng.standard_normal(coarse, dtype=np.float32), sigma_mm / factor
    )
    if factor > 1:
        expanded = sitk.Expand(sitk.GetImageFromArray(field), [factor] * 3, sitk.sitkLinear)
        field = sitk.GetArrayViewFromImage(expanded)[tuple(slice(0, n) for n in shape)].copy()
    return field / max(float(field.std()), 1e-6)


def write_scan(scan: RenderedScan, paths: dict[str, Path]) -> None:
    """Write the scan's volumes (compressed NIfTI) to the given paths."""
    for key, image in (
        ("t1c", scan.t1c),
        ("flair", scan.flair),
        ("mask", scan.mask),
        ("brain_mask", scan.brain_mask),
    ):
        if key in paths:
            sitk.WriteImage(image, str(paths[key]), useCompression=True)
