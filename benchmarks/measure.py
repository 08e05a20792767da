"""Timing and peak memory of whole commands, and medians over repeats.

Peak memory is measured two ways, since extraction and training fan out into worker processes:
- `max_rss_mib`: the largest resident set of any single process of the command, exact, from the
  kernel's rusage of that one command (ru_maxrss of `wait4` on it; the figure `/usr/bin/time -v`
  reports). The command is started by a tiny wrapper interpreter (`WRAPPER`, ~10 MiB), not
  forked from the benchmark: Linux carries a process's pre-`exec` peak RSS into its ru_maxrss,
  so a command forked from the benchmark would report at least the benchmark's own ~500 MiB,
  and `getrusage(RUSAGE_CHILDREN)` keeps the maximum over every child ever run;
- `tree_peak_mib`: the largest sum of resident sets over the command's whole process tree
  (its workers included), sampled every 50 ms with psutil (shared pages counted once per
  process, so an upper bound on what the machine needed; a peak shorter than 50 ms can be
  missed).
"""

from __future__ import annotations

import math
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import psutil

SAMPLE_SECONDS = 0.05

#: Run argv[2:] as a child of this small interpreter and write the child's ru_maxrss (KiB) and
#: CPU seconds (user + system, its reaped workers included) to argv[1]; exit with its status.
WRAPPER = """
import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as out:
    out.write(f"{usage.ru_maxrss} {usage.ru_utime + usage.ru_stime}")
sys.exit(os.waitstatus_to_exitcode(status))
"""


@dataclass(frozen=True)
class Measurement:
    """One run of a command: wall-clock seconds, its peak memory (MiB) and its CPU seconds
    (which other users of a shared machine disturb far less than wall time)."""

    seconds: float
    max_rss_mib: float
    tree_peak_mib: float
    cpu_seconds: float = math.nan


@dataclass
class Timing:
    """Repeated runs of one thing, summarised by medians (the shared machine is noisy)."""

    label: str
    runs: list[Measurement] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        """Median wall-clock time."""
        return statistics.median(m.seconds for m in self.runs)

    @property
    def cpu_seconds(self) -> float:
        """Median CPU time, user + system, of the command and its reaped workers."""
        return statistics.median(m.cpu_seconds for m in self.runs)

    @property
    def max_rss_mib(self) -> float:
        """Median of the largest single process's peak RSS (NaN when not measured)."""
        return statistics.median(m.max_rss_mib for m in self.runs)

    @property
    def tree_peak_mib(self) -> float:
        """Median of the process tree's sampled peak RSS (NaN when not measured)."""
        return statistics.median(m.tree_peak_mib for m in self.runs)

    def record(self) -> dict[str, Any]:
        """Plain data for results.json."""
        return {
            "label": self.label,
            "median_s": self.seconds,
            "median_cpu_s": self.cpu_seconds,
            "max_rss_mib": self.max_rss_mib,
            "tree_peak_mib": self.tree_peak_mib,
            "runs": [asdict(m) for m in self.runs],
        }


def _tree_rss(root: psutil.Process) -> int:
    """Summed RSS (bytes) of a process's descendants that are alive now."""
    total = 0
    try:
        processes = root.children(recursive=True)
    except psutil.Error:
        return 0
    for process in processes:
        try:
            total += process.memory_info().rss
        except psutil.Error:
            continue
    return total


def measure(
    command: Sequence[str], cwd: Path | None = None, env: dict[str, str] | None = None
) -> Measurement:
    """Run a command to completion, timing it and watching its memory; a failure raises with
    the tail of its standard error, since a benchmark of a failing command means nothing."""
    with tempfile.TemporaryFile() as stderr, tempfile.TemporaryDirectory() as scratch:
        maxrss = Path(scratch) / "maxrss"
        wrapped = [sys.executable, "-I", "-S", "-c", WRAPPER, str(maxrss), *command]
        start = time.perf_counter()
        process = subprocess.Popen(
            wrapped, cwd=cwd, env=env, stdout=subprocess.DEVNULL, stderr=stderr
        )
        peak = 0
        done = threading.Event()

        def sample() -> None:
            nonlocal peak
            try:
                root = psutil.Process(process.pid)
            except psutil.Error:
                return
            while not done.is_set():
                peak = max(peak, _tree_rss(root))
                done.wait(SAMPLE_SECONDS)

        sampler = threading.Thread(target=sample, daemon=True)
        sampler.start()
        process.wait()
        seconds = time.perf_counter() - start
        done.set()
        sampler.join()
        if process.returncode != 0:
            stderr.seek(0)
            tail = stderr.read().decode(errors="replace")[-3000:]
            raise RuntimeError(
                f"benchmark command failed ({process.returncode}): {' '.join(command)}\n{tail}"
            )
        # ru_maxrss is in KiB on Linux.
        kib, cpu = maxrss.read_text().split()
        largest = int(kib) / 1024
        # The tree's peak is at least its largest process's (a short peak escapes sampling).
        return Measurement(seconds, largest, max(largest, peak / 2**20), float(cpu))


def repeat(
    label: str,
    command: Sequence[str],
    repeats: int,
    before: Callable[[], None] | None = None,
    cwd: Path | None = None,
) -> Timing:
    """`repeats` measured runs of a command (each after `before`, e.g. emptying a cache)."""
    timing = Timing(label)
    for _ in range(repeats):
        if before:
            before()
        timing.runs.append(measure(command, cwd=cwd))
    show(timing)
    return timing


def repeat_call(label: str, call: Callable[[], Any], repeats: int) -> Timing:
    """`repeats` timed calls in this process (memory not measured: it is shared with the
    benchmark itself)."""
    timing = Timing(label)
    nan = float("nan")
    for _ in range(repeats):
        start = time.perf_counter()
        call()
        timing.runs.append(Measurement(time.perf_counter() - start, nan, nan))
    show(timing)
    return timing


def show(timing: Timing) -> None:
    """One progress line on stderr, so a long run can be followed."""
    runs = ", ".join(f"{m.seconds:.2f}" for m in timing.runs)
    peak = timing.tree_peak_mib
    memory = f"   peak {peak:,.0f} MiB" if math.isfinite(peak) else ""
    print(
        f"  {timing.label:<52} median {timing.seconds:8.2f} s{memory}   runs: {runs}",
        file=sys.stderr,
        flush=True,
    )
