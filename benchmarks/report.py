"""What a benchmark run found, and RESULTS.md / results.json written from it.

Every figure is a measurement beside a named baseline measured in the same run (or, for a
budget, the budget itself), so a reader on another machine compares ratios, not seconds.
"""

from __future__ import annotations

import json
import math
import os
import platform
import subprocess
import sys
from dataclasses import dataclass, field
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any, Literal

from benchmarks.measure import Timing

ROOT = Path(__file__).resolve().parents[1]

#: Packages whose versions decide the numbers.
PACKAGES = (
    "rnclassifier",
    "pyradiomics",
    "SimpleITK",
    "numpy",
    "scipy",
    "pandas",
    "scikit-learn",
    "xgboost-cpu",
    "optuna",
    "shap",
    "joblib",
    "dask",
    "distributed",
)

#: Issue #10's order of the sections in RESULTS.md (they run in dependency order), then the
#: named sections that only run when asked for (`--only`), such as issue #16's transportability.
ORDER = (
    "extraction",
    "scoring",
    "training",
    "quality",
    "scaling",
    "dask",
    "transportability",
    "service",
)


@dataclass(frozen=True)
class Figure:
    """A measured value beside its baseline, and the goal the figure is judged by."""

    name: str
    value: float
    baseline: float
    baseline_name: str
    goal: str
    #: The figure must be at most this (None: reported, no goal).
    limit: float | None
    #: ratio = value / baseline; difference = baseline - value (e.g. oracle AUC - model AUC).
    kind: Literal["ratio", "difference"] = "ratio"
    unit: str = "s"
    #: What bounds the figure, shown when the goal is missed.
    bound: str = ""
    #: 95% intervals of the measured value and of the ratio / gap, as text ("0.82–0.89"), for
    #: figures estimated from data (AUCs); empty for timings.
    interval: str = ""
    figure_interval: str = ""

    @property
    def figure(self) -> float:
        """The ratio or difference the goal is about."""
        if self.kind == "difference":
            return self.baseline - self.value
        return self.value / self.baseline if self.baseline else math.nan

    @property
    def met(self) -> bool | None:
        """Whether the goal is met (None when there is no goal)."""
        return None if self.limit is None else bool(self.figure <= self.limit)

    def record(self) -> dict[str, Any]:
        """Plain data for results.json."""
        return {
            "name": self.name,
            "kind": self.kind,
            "value": self.value,
            "baseline": self.baseline,
            "baseline_name": self.baseline_name,
            "figure": self.figure,
            "goal": self.goal,
            "limit": self.limit,
            "met": self.met,
            "unit": self.unit,
            "bound": self.bound,
            "interval": self.interval,
            "figure_interval": self.figure_interval,
        }

    @classmethod
    def from_record(cls, record: dict[str, Any]) -> Figure:
        """A figure back from results.json."""
        names = ("name", "value", "baseline", "baseline_name", "goal", "limit", "kind", "unit")
        return cls(
            **{k: record[k] for k in names},
            bound=record.get("bound", ""),
            interval=record.get("interval", ""),
            figure_interval=record.get("figure_interval", ""),
        )


@dataclass
class Section:
    """One of issue #10's six benchmarks: what was run, the timings, the figures."""

    key: str
    title: str
    setup: str
    timings: list[Timing] = field(default_factory=list)
    figures: list[Figure] = field(default_factory=list)
    #: Further Markdown tables (e.g. AUCs), each with a one-line caption before it.
    tables: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    data: dict[str, Any] = field(default_factory=dict)
    load: tuple[float, float] = (math.nan, math.nan)
    seconds: float = math.nan
    error: str | None = None

    def record(self) -> dict[str, Any]:
        """Plain data for results.json."""
        return {
            "key": self.key,
            "title": self.title,
            "seconds": self.seconds,
            "load_1min": list(self.load),
            "error": self.error,
            "timings": [t.record() for t in self.timings],
            "figures": [f.record() for f in self.figures],
            "data": self.data,
        }


@dataclass
class KeptSection:
    """A section of an earlier run kept by `--update`: its Markdown verbatim, its figures for
    the headline, its record for results.json."""

    key: str
    markdown: str
    figures: list[Figure]
    data: dict[str, Any]

    def record(self) -> dict[str, Any]:
        """The earlier run's record, unchanged."""
        return self.data


def kept_sections(path: Path, replaced: list[str]) -> tuple[list[KeptSection], dict[str, Any]]:
    """The sections of an existing RESULTS.md (and its results.json) that a run of only some
    sections keeps, and the earlier run's record (machine, mode, command)."""
    old = json.loads(path.with_name(path.stem.lower() + ".json").read_text())
    blocks: dict[int, list[str]] = {}
    current = None
    for line in path.read_text().splitlines():
        head = line[3:].split(".", 1)[0] if line.startswith("## ") else ""
        current = int(head) if head.isdigit() else (None if line.startswith("## ") else current)
        if current is not None:
            blocks.setdefault(current, []).append(line)
    kept = []
    for record in old["sections"]:
        if record["key"] in replaced or record["key"] not in ORDER:
            continue
        markdown = "\n".join(blocks.get(ORDER.index(record["key"]) + 1, [])).rstrip()
        figures = [Figure.from_record(f) for f in record["figures"]]
        kept.append(KeptSection(record["key"], markdown + "\n", figures, record))
    return kept, old


def _run(command: list[str]) -> str:
    try:
        return subprocess.run(
            command, cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def machine() -> dict[str, Any]:
    """The machine, software and checkout the numbers came from."""
    cpu = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    memory = math.nan
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                memory = int(line.split()[1]) / 2**20
    except OSError:
        pass
    versions = {}
    for package in PACKAGES:
        try:
            versions[package] = metadata.version(package)
        except metadata.PackageNotFoundError:
            versions[package] = "not installed"
    changed = _run(["git", "status", "--porcelain", "--untracked-files=no"])
    return {
        "cpu": cpu,
        "cores": os.cpu_count(),
        "cores_usable": len(os.sched_getaffinity(0)),
        "memory_gib": round(memory, 1),
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
        "packages": versions,
        "git_commit": _run(["git", "rev-parse", "HEAD"]),
        "git_modified_files": 0 if changed in ("", "unknown") else len(changed.splitlines()),
        # Uncommitted edits to measured code change the numbers: name the files.
        "git_modified_paths": []
        if changed in ("", "unknown")
        else [line.split(maxsplit=1)[-1] for line in changed.splitlines()],
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "load_1min_start": os.getloadavg()[0],
    }


def _number(value: float, digits: int = 2) -> str:
    return "n/a" if value != value else f"{value:,.{digits}f}"


def headline_table(sections: list[Section | KeptSection]) -> str:
    """Every figure of the run, one row each: the table the README quotes."""
    lines = [
        "| figure | measured | baseline (same run) | ratio / gap | goal | met |",
        "|---|---|---|---|---|---|",
    ]
    for section in _ordered(sections):
        for f in section.figures:
            unit = f" {f.unit}" if f.unit else ""
            met = {True: "yes", False: "**no**", None: "–"}[f.met]
            value = _number(f.value) + unit + (f" ({f.interval})" if f.interval else "")
            figure = _number(f.figure, 3) + (f" ({f.figure_interval})" if f.figure_interval else "")
            lines.append(
                f"| {f.name} | {value} | {f.baseline_name}: {_number(f.baseline)}{unit} | "
                f"{figure} | {f.goal} | {met} |"
            )
    return "\n".join(lines)


def _ordered(sections: list[Any]) -> list[Any]:
    return sorted(sections, key=lambda s: ORDER.index(s.key) if s.key in ORDER else len(ORDER))


def _timing_table(timings: list[Timing]) -> str:
    lines = [
        "| run | median (s) | runs (s) | CPU, median (s) | peak RSS, largest process (MiB) | "
        "peak RSS, process tree (MiB) |",
        "|---|---|---|---|---|---|",
    ]
    for t in timings:
        runs = ", ".join(f"{m.seconds:.2f}" for m in t.runs)
        lines.append(
            f"| {t.label} | {t.seconds:.2f} | {runs} | {_number(t.cpu_seconds, 1)} | "
            f"{_number(t.max_rss_mib, 0)} | {_number(t.tree_peak_mib, 0)} |"
        )
    return "\n".join(lines)


#: How peak memory and CPU time are measured, under the machine table.
MEASURES = (
    "Peak memory: *largest process* is the kernel's exact peak RSS of the single largest "
    "process of the command (`os.wait4` rusage of that command alone, as `/usr/bin/time -v` "
    "reports it); *process tree* is the largest sum of RSS over the command and all its "
    "workers, sampled every 50 ms with psutil (shared pages counted per process: an upper "
    "bound). *CPU* is user + system seconds of the command and the workers it waited for "
    "(from the same rusage; Dask workers are not the command's): what other users of the "
    "machine disturb least."
)


def render(
    sections: list[Section | KeptSection], info: dict[str, Any], command: str, mode: str
) -> str:
    """RESULTS.md: the machine, the headline figures, then each section in issue #10's order."""
    out = [
        "# Benchmark results",
        "",
        f"Written by `{command}` ({mode} run), {info['date_utc']}. Every figure is beside a "
        "baseline measured in the same run (or its budget); times are wall-clock medians of the "
        "repeats shown, whole commands with interpreter start-up included unless a row says "
        "otherwise. The machine is shared: compare ratios, and see the load averages.",
        "",
        "## Machine",
        "",
        *_machine_table(info),
        "",
        MEASURES,
        "",
        "## Headline",
        "",
        headline_table(sections),
        "",
    ]
    for number, section in enumerate(_ordered(sections), start=1):
        if isinstance(section, KeptSection):
            out += [section.markdown]
        else:
            out += _section_markdown(section, number)
    return "\n".join(out).rstrip() + "\n"


def _machine_table(info: dict[str, Any]) -> list[str]:
    """The machine, software and checkout, the load averages and any re-runs."""
    packages = ", ".join(f"{k} {v}" for k, v in info["packages"].items())
    return [
        "| | |",
        "|---|---|",
        f"| CPU | {info['cpu']} |",
        f"| cores | {info['cores']} ({info['cores_usable']} usable) |",
        f"| memory | {info['memory_gib']} GiB |",
        f"| OS | {info['os']} |",
        f"| Python | {info['python']} |",
        f"| packages | {packages} |",
        f"| git commit | `{info['git_commit']}`{_modified(info)} |",
        f"| date | {info['date_utc']} |",
        f"| 1-minute load average | {_number(info['load_1min_start'])} at start, "
        f"{_number(info.get('load_1min_end', math.nan))} at end; per section below |",
        f"| total wall time | {_number(info.get('total_seconds', math.nan) / 60, 1)} min |",
        *(
            f"| re-run | {', '.join(r['sections'])}: {r['date_utc']}, commit "
            f"`{r['git_commit'][:12]}`, load {_number(r['load_1min_start'])} at start, "
            f"{_number(r.get('load_1min_end', math.nan))} at end (`{r['command']}`) |"
            for r in info.get("reruns", [])
        ),
    ]


def _modified(info: dict[str, Any]) -> str:
    """' (N tracked files modified in the working tree: `a`, `b`)', or nothing."""
    modified = info["git_modified_files"]
    if not modified:
        return ""
    paths = "".join(
        f"{': ' if i == 0 else ', '}`{p}`" for i, p in enumerate(info.get("git_modified_paths", []))
    )
    return f" ({modified} tracked files modified in the working tree{paths})"


def _section_markdown(section: Section, number: int) -> list[str]:
    """One section's lines: heading, wall time and load, set-up, then whatever it measured."""
    index = ORDER.index(section.key) + 1 if section.key in ORDER else number
    out = [
        f"## {index}. {section.title}",
        "",
        f"Section wall time {_number(section.seconds / 60, 1)} min; 1-minute load "
        f"average {_number(section.load[0])} at start, {_number(section.load[1])} at "
        "end.",
        "",
        section.setup,
        "",
    ]
    if section.error:
        out += ["**This section failed:**", "", "```", section.error, "```", ""]
    if section.timings:
        out += [_timing_table(section.timings), ""]
    if section.figures:
        out += ["| figure | value | goal | met |", "|---|---|---|---|"]
        for f in section.figures:
            met = {True: "yes", False: "**no**", None: "–"}[f.met]
            out.append(f"| {f.name} | {_number(f.figure, 3)} | {f.goal} | {met} |")
        out.append("")
    for table in section.tables:
        out += [table, ""]
    for f in section.figures:
        if f.met is False and f.bound:
            out += [f"*{f.name}* misses its goal: {f.bound}", ""]
    for note in section.notes:
        out += [note, ""]
    return out


def write(
    path: Path,
    sections: list[Section | KeptSection],
    info: dict[str, Any],
    command: str,
    mode: str,
) -> None:
    """RESULTS.md at `path` and results.json beside it (the same numbers, for tools and tests);
    written after every section, so a failure late in a long run keeps what was measured."""
    path.parent.mkdir(parents=True, exist_ok=True)
    text = render(sections, info, command, mode)
    record = {
        "mode": mode,
        "command": command,
        "machine": info,
        "sections": [s.record() for s in _ordered(sections)],
    }
    for target, content in (
        (path, text),
        (
            path.with_name(path.stem.lower() + ".json"),
            json.dumps(record, indent=1, default=str) + "\n",
        ),
    ):
        partial = target.with_name(target.name + ".partial")
        partial.write_text(content)
        partial.replace(target)
    print(f"wrote {path}", file=sys.stderr, flush=True)
