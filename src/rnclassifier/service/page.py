"""`GET /`: one page with the form a clinician fills without help, built from the bundle's
description (the inputs it reads, covariates with their allowed values as choices)."""

from __future__ import annotations

from typing import Any

import jinja2

from rnclassifier.cohort import KNOWN_SEQUENCES, PRIOR_SUFFIX

#: What the form calls each file.
LABELS = {
    "t1c": "Post-contrast T1 (T1c)",
    "flair": "FLAIR",
    "mask": "Lesion mask",
    "brain_mask": "Brain mask",
    "mask_prior": "Lesion mask, earlier scan",
    **{f"{s}{PRIOR_SUFFIX}": f"{s.upper()}, earlier scan" for s in KNOWN_SEQUENCES},
    "t1c_prior": "Post-contrast T1, earlier scan",
}
#: Codes of the manifest's vocabularies as a form shows them.
VALUE_LABELS = {
    "m": "male",
    "f": "female",
    "0": "no",
    "1": "yes",
    "nsclc": "non-small-cell lung",
    "sclc": "small-cell lung",
    "renal": "renal cell",
}


def render_page(description: dict[str, Any], *, login: bool, failed: bool = False) -> str:
    files = description["inputs"]["files"]
    # Only what the model reads (a sequence it does not read would change nothing).
    shown = [*files["required"], *files["optional"]]
    environment = jinja2.Environment(
        loader=jinja2.PackageLoader("rnclassifier.service", "templates"),
        autoescape=True,
        undefined=jinja2.StrictUndefined,
    )
    return environment.get_template("page.html.j2").render(
        model=description,
        login=login,
        failed=failed,
        files=shown,
        required_files=files["required"],
        labels=LABELS,
        value_labels=VALUE_LABELS,
    )
