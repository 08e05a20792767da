"""Section 8: a warm `rnclassifier serve` answering one case, against the whole `rnclassifier
score` command on the same case (start-up, imports and bundle loading included), each with
the case report since the service always renders one."""

from __future__ import annotations

import json
import signal
import socket
import subprocess
import time
from pathlib import Path
from typing import Any

from benchmarks.common import RNC, Plan, cohort, ensure_bundle, log, score_command, workdir
from benchmarks.measure import Measurement, Timing, repeat, show
from benchmarks.report import Figure, Section
from rnclassifier.cohort import CLINICAL_COLUMNS as CLINICAL

TITLE = "Scoring over HTTP: a warm service against the whole command"
BOUND = (
    "what remains is the case itself: reading and resampling T1c and FLAIR, the features, "
    "SHAP and the case report's three figures; start-up, imports and bundle loading are gone."
)


def run(plan: Plan) -> Section:
    """The median of `plan.repeats` warm answers (after one unmeasured) against the median of
    as many whole `score --report` commands, on the first case of the seed-like cohort."""
    import httpx
    import pandas as pd

    bundle = ensure_bundle(plan)
    manifest = cohort(plan, plan.lesions)
    row = pd.read_csv(manifest, dtype=str).iloc[0]
    base = manifest.parent
    files = {k: base / row[k] for k in ("t1c", "flair", "mask", "brain_mask")}
    clinical = {k: row[k] for k in CLINICAL if isinstance(row[k], str)}
    work = workdir("service")
    log("8. service: warm answers against the whole command")
    command = score_command(
        bundle,
        {"t1c": files["t1c"], "flair": files["flair"]},
        files["mask"],
        files["brain_mask"],
        work / "cli.json",
        clinical,
    )
    whole = repeat(
        "whole `rnclassifier score --report` command (baseline)",
        [*command, "--report", str(work / "case.html")],
        plan.repeats,
    )
    warm = Timing("warm service: POST /v1/score, answer and report")
    with _Served(bundle, work) as url:

        def post() -> dict[str, Any]:
            upload = {k: (p.name, p.read_bytes()) for k, p in files.items()}
            answer = httpx.post(
                f"{url}/v1/score", files=upload, data={"clinical": json.dumps(clinical)},
                timeout=600,
            )  # fmt: skip
            answer.raise_for_status()
            return answer.json()

        first = post()  # unmeasured: the first request of a process pays for lazy imports
        for _ in range(plan.repeats):
            start = time.perf_counter()
            again = post()
            warm.runs.append(Measurement(time.perf_counter() - start, float("nan"), float("nan")))
            assert again["probability"] == first["probability"]
    show(warm)
    expected = json.loads((work / "cli.json").read_text())["probability"]
    same = expected == first["probability"]
    return Section(
        "service",
        TITLE,
        "One case of the seed-like cohort (light-profile bundle), uploaded over loopback with "
        f"its four files; {plan.repeats} answers after one unmeasured, against {plan.repeats} "
        "runs of the command with `--report` (the service renders the case report for every "
        "answer). The service's probability equals the command's: "
        f"{'yes, to the last bit' if same else 'NO'}.",
        [whole, warm],
        [
            Figure(
                "warm service answer / whole `score` command",
                warm.seconds,
                whole.seconds,
                "whole `score --report` command",
                "≤ 0.2",
                0.2,
                bound=BOUND,
            ),
            Figure(
                "warm service answer, absolute",
                warm.seconds,
                0.5,
                "budget",
                "< 0.5 s",
                1.0,
                bound=BOUND,
            ),
        ],
        data={"same_probability": same},
    )


class _Served:
    """`rnclassifier serve` on a free loopback port for the length of a `with` block."""

    def __init__(self, bundle: Path, work: Path) -> None:
        self.bundle, self.work = bundle, work

    def __enter__(self) -> str:
        import httpx

        with socket.socket() as s:
            s.bind(("127.0.0.1", 0))
            port = s.getsockname()[1]
        self.log = (self.work / "service.log").open("wb")
        self.process = subprocess.Popen(
            [RNC, "serve", "--model", str(self.bundle), "--port", str(port), "--workers", "1"],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 300
        while time.monotonic() < deadline and self.process.poll() is None:
            try:
                if httpx.get(f"{url}/health", timeout=2).status_code == 200:
                    return url
            except httpx.TransportError:
                time.sleep(0.3)
        self.__exit__()
        raise RuntimeError(f"the service did not start; see {self.work / 'service.log'}")

    def __exit__(self, *_: object) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()
