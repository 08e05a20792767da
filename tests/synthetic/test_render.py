"""Rendered images show the latent signs, and acquisition follows the site, not the class."""

from __future__ import annotations

import numpy as np
import pytest
import SimpleITK as sitk

from rnclassifier.synthetic.presets import SEED
from rnclassifier.synthetic.render import LesionLatents, render_lesion

SITE_A, SITE_B, SITE_C = SEED.sites


def render(z: float, site=SITE_A, seed: int = 4, **overrides):
    values = {
        "location": "parietal",
        "volume_cc": 8.0,
        "months_between_scans": 3.0,
        "enhancement_solidity": z,
        "margin_definition": z,
        "nidus_match": z,
        "oedema_restraint": z,
        "growth_steadiness": z,
    }
    values.update(overrides)
    return render_lesion(LesionLatents(**values), site, np.random.default_rng(seed))


def array(image: sitk.Image) -> np.ndarray:
    return sitk.GetArrayFromImage(image).astype(float)


@pytest.fixture(scope="module")
def tumour_like():
    return render(+2.0)


@pytest.fixture(scope="module")
def necrosis_like():
    return render(-2.0)


def white_matter_level(scan) -> float:
    """Median T1c signal in the brain outside the lesion: the reference for contrasts."""
    t1c, brain, mask = array(scan.t1c), array(scan.brain_mask) > 0, array(scan.mask) > 0
    return float(np.median(t1c[brain & ~mask]))


def test_soap_bubbles_make_necrosis_enhancement_patchier(tumour_like, necrosis_like):
    def dark_fraction(scan) -> float:
        t1c, mask = array(scan.t1c), array(scan.mask) > 0
        return float((t1c[mask] < 1.2 * white_matter_level(scan)).mean())

    assert dark_fraction(necrosis_like[0]) > dark_fraction(tumour_like[0]) + 0.05


def test_flair_nidus_matches_the_lesion_in_tumour(tumour_like, necrosis_like):
    def hypointense_fraction(scan) -> float:
        flair = sitk.Resample(scan.flair, scan.mask, sitk.Transform(), sitk.sitkLinear)
        inside = array(flair)[array(scan.mask) > 0]
        reference = np.median(array(flair)[(array(scan.brain_mask) > 0) & (array(scan.mask) == 0)])
        return float((inside < reference).mean())

    assert hypointense_fraction(tumour_like[0]) > hypointense_fraction(necrosis_like[0]) + 0.1


def test_necrosis_grows_faster_between_scans(tumour_like, necrosis_like):
    def growth(scans) -> float:
        current, prior = scans
        volume = [array(s.mask).sum() * np.prod(s.mask.GetSpacing()) for s in (current, prior)]
        return volume[0] / volume[1]

    assert growth(necrosis_like) > growth(tumour_like) * 1.3
    assert growth(tumour_like) > 1.0  # every lesion was enlarging


def test_masks_inside_brain_on_t1c_grid(tumour_like):
    for scan in tumour_like:
        for image in (scan.mask, scan.brain_mask):
            assert image.GetSize() == scan.t1c.GetSize()
            assert image.GetSpacing() == scan.t1c.GetSpacing()
            assert image.GetOrigin() == scan.t1c.GetOrigin()
            assert image.GetDirection() == scan.t1c.GetDirection()
        mask, brain = array(scan.mask) > 0, array(scan.brain_mask) > 0
        assert mask.sum() > 100
        assert not (mask & ~brain).any()


def test_lesion_volume_near_requested(tumour_like):
    mask = tumour_like[0].mask
    volume_cc = array(mask).sum() * np.prod(mask.GetSpacing()) / 1000
    assert volume_cc == pytest.approx(8.0, rel=0.3)


def test_acquisition_follows_the_site():
    current_b, prior_b = render(0.0, site=SITE_B)
    assert current_b.t1c.GetSpacing() == pytest.approx(SITE_B.t1c_spacing_mm)
    assert current_b.flair.GetSpacing() == current_b.t1c.GetSpacing()  # same grid at site B
    current_c, _ = render(0.0, site=SITE_C)
    assert not np.allclose(np.reshape(current_c.t1c.GetDirection(), (3, 3)), np.eye(3))
    assert current_c.flair.GetSpacing() == pytest.approx(SITE_C.flair_spacing_mm)
    # The prior scan is a separate session: another pose, not registered to the current one.
    assert prior_b.t1c.GetOrigin() != current_b.t1c.GetOrigin()
    assert current_b.t1c.GetPixelID() == sitk.sitkInt16


def test_intensity_scale_follows_the_site():
    level_a = white_matter_level(render(0.0, site=SITE_A)[0])
    level_c = white_matter_level(render(0.0, site=SITE_C)[0])
    ratio = SITE_C.intensity_scale / SITE_A.intensity_scale
    assert level_c / level_a == pytest.approx(ratio, rel=0.15)
