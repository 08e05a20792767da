"""The service's page in headless Chromium (Debian's, driven by Playwright): a clinician signs
in, fills the form with no other help, and reads the same probability as the command line;
a file that is not an image is refused on the page in the command line's words.

Screenshots go to $RNCLASSIFIER_SCREENSHOTS when set (to look at them), else to the test's
temporary folder. Without /usr/bin/chromium the test is skipped, unless
RNCLASSIFIER_REQUIRE_BROWSER=1 (as `.ci/run` sets), where that is a failure."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from .service_client import TOKEN, post_case, row_clinical, row_files

CHROMIUM = "/usr/bin/chromium"


@pytest.fixture(scope="module")
def browser():
    if not Path(CHROMIUM).exists():
        if os.environ.get("RNCLASSIFIER_REQUIRE_BROWSER") == "1":
            pytest.fail(f"{CHROMIUM} is missing (apt-get install chromium)")
        pytest.skip(f"{CHROMIUM} is not installed")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=CHROMIUM, args=["--no-sandbox", "--disable-gpu"]
        )
        yield browser
        browser.close()


def _shots(tmp_path: Path) -> Path:
    folder = Path(os.environ.get("RNCLASSIFIER_SCREENSHOTS") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def test_a_clinician_scores_a_case_in_the_browser(service, trained, browser, tmp_path):
    files, clinical = row_files(trained, 8), row_clinical(trained, 8)
    expected = post_case(service, files, clinical).json()
    shots = _shots(tmp_path)
    page = browser.new_page(viewport={"width": 1200, "height": 1400})
    page.goto(service["url"] + "/")
    assert page.locator("#token").is_visible()
    page.screenshot(path=shots / "service-sign-in.png", full_page=True)
    page.fill("#token", TOKEN)
    page.click("button[type=submit]")
    page.wait_for_selector("#case")
    assert "SYNTHETIC MODEL" in page.inner_text("body")
    for name in ("t1c", "flair", "mask", "brain_mask"):
        page.set_input_files(f"input[name={name}]", str(files[name]))
    covariates = page.locator("[data-covariate]")
    assert covariates.count() == len(load_needs(trained))
    for i in range(covariates.count()):
        field = covariates.nth(i)
        name = field.get_attribute("data-covariate")
        if field.evaluate("e => e.tagName") == "SELECT":
            field.select_option(clinical[name].lower())  # the manifest may say "F"
        else:
            field.fill(clinical[name])
    page.screenshot(path=shots / "service-form.png", full_page=True)
    page.click("#submit")
    page.wait_for_selector("#answer:not([hidden])", timeout=120_000)
    assert page.inner_text("#probability") == f"{expected['probability']:.2f}"
    call = {"tumor": "tumour"}.get(expected["call"], expected["call"])
    assert page.inner_text("#call") == call
    assert "threshold" in page.inner_text("#threshold").lower()
    # The report is rendered when the page asks for it, after the answer is shown.
    report = page.frame_locator("#report").locator("body")
    report.get_by_text("Probability of tumour progression").first.wait_for(timeout=120_000)
    assert f"{expected['probability']:.2f}" in report.inner_text()
    page.screenshot(path=shots / "service-result.png", full_page=True)

    garbage = tmp_path / "t1c.nii.gz"
    garbage.write_bytes(b"not an image")
    page.set_input_files("input[name=t1c]", str(garbage))
    page.click("#submit")
    page.wait_for_selector("#refused:not([hidden])", timeout=60_000)
    assert page.inner_text("#problems") == (
        "t1c.nii.gz: not an image SimpleITK can read (NIfTI, NRRD, MHA, ...)"
    )
    assert page.locator("#answer").is_hidden()
    page.screenshot(path=shots / "service-refused.png", full_page=True)
    page.close()


def load_needs(trained: dict) -> list[str]:
    from rnclassifier.bundle import load_bundle

    return list(load_bundle(trained["bundle"]).requirements.covariates)
