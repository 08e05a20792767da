"""A simulated radiologist who reads the same lesions the model sees.

The reader looks at the same latent image signs as the images show, plus noise. Reads drawn
independently of the latents would flatter the model in every comparison with radiologists.

Target operating point, on the lesions read (Peng et al., IJROBP 2018;102:1236, quoted by the
seed): sensitivity 0.97 and specificity 0.19 for tumour, with 27% of lesions not called at all
(the neuroradiologist classified 73%). Unread lesions are the ambiguous ones: those whose
evidence falls in a band between the two calls.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from rnclassifier.cohort import NEGATIVE_CLASS, POSITIVE_CLASS
from rnclassifier.synthetic.presets import Preset

TARGET_SENSITIVITY = 0.97
TARGET_SPECIFICITY = 0.19
TARGET_UNREAD = 0.27


@dataclass(frozen=True)
class Reader:
    """Evidence e = Σ w·z / |w| + noise·ε; call necrosis below one cut, tumour above the other.

    Weights favour what radiologists look at: the enhancement pattern, the FLAIR nidus, the
    margin, oedema and growth on serial scans.
    """

    weights: dict[str, float]
    noise_sd: float
    necrosis_below: float
    tumour_above: float

    def evidence(self, frame: pd.DataFrame, preset: Preset, rng: np.random.Generator) -> np.ndarray:
        w = np.array([self.weights[s.name] for s in preset.signs])
        z = np.column_stack([frame[f"latent_{s.name}"].to_numpy(float) for s in preset.signs])
        return z @ (w / np.linalg.norm(w)) + self.noise_sd * rng.standard_normal(len(frame))

    def read(
        self, frame: pd.DataFrame, preset: Preset, rng: np.random.Generator
    ) -> tuple[np.ndarray, np.ndarray]:
        """Reads (`tumor` / `necrosis` / None for unread) and 1-5 suspicion scores.

        Scores agree with the reads: 1-2 for a necrosis call, 3 for no call, 4-5 for a tumour
        call (5 when the evidence is well past the cut).
        """
        e = self.evidence(frame, preset, rng)
        read = np.full(len(e), None, dtype=object)
        read[e < self.necrosis_below] = NEGATIVE_CLASS
        read[e > self.tumour_above] = POSITIVE_CLASS
        score = np.full(len(e), 3, dtype=int)
        score[e < self.necrosis_below] = 2
        score[e < self.necrosis_below - 1.0] = 1
        score[e > self.tumour_above] = 4
        score[e > self.tumour_above + 1.0] = 5
        return read, score


SIGN_WEIGHTS = {
    "enhancement_solidity": 1.0,
    "margin_definition": 0.6,
    "nidus_match": 0.8,
    "oedema_restraint": 0.4,
    "growth_steadiness": 0.6,
}

#: Calibrated with `synthetic.reader_calibration.calibrate_reader(SEED)` (n = 400,000, seed 0);
#: tests check the operating point on fresh samples.
SEED_READER = Reader(
    weights=SIGN_WEIGHTS, noise_sd=2.218, necrosis_below=-4.158, tumour_above=-1.054
)


def operating_point(frame: pd.DataFrame) -> dict[str, float]:
    """Sensitivity and specificity on the lesions read, and the fraction unread."""
    read = frame["radiologist_read"]
    done = read.notna()
    tumour = frame["pathology"] == POSITIVE_CLASS
    return {
        "sensitivity": float((read[done & tumour] == POSITIVE_CLASS).mean()),
        "specificity": float((read[done & ~tumour] == NEGATIVE_CLASS).mean()),
        "unread": float(1 - done.mean()),
    }
