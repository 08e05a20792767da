"""The one benchmark command: run the sections, write RESULTS.md and results.json.

    .venv/bin/python -m benchmarks [--quick] [--only SECTION ...] [--out FILE] [--data DIR]
                                   [--jobs 2] [--repeats 3] [--lesions 82] [--scheduler ADDR]

Only a full run of every section writes benchmarks/RESULTS.md by default; a quick or partial
run writes into the data folder unless --out says otherwise, so it never replaces the
committed results.
"""

from __future__ import annotations

import argparse
import dataclasses
import os
import shlex
import sys
import time
import traceback
from pathlib import Path

from benchmarks import report
from benchmarks.common import FULL, QUICK, ROOT, Plan, log
from benchmarks.sections import SECTIONS

#: Dependency order: scoring uses the training section's bundle, quality its metrics; quality
#: (the longest, on the largest cohorts) runs last.
RUN_ORDER = ("extraction", "training", "scoring", "service", "scaling", "dask", "quality")
#: Sections too slow for the default run, run only when named with --only (after the others).
NAMED_SECTIONS = ("transportability",)


def parse(argv: list[str] | None = None) -> argparse.Namespace:
    """The command line."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks",
        description="rnclassifier's benchmarks, each against a baseline measured in the same "
        "run; writes RESULTS.md and results.json.",
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="tiny sizes and budgets (minutes, not an hour): a smoke test of the "
        "harness, not a measurement",
    )
    parser.add_argument(
        "--only",
        action="append",
        choices=RUN_ORDER + NAMED_SECTIONS,
        metavar="SECTION",
        help=f"run only this section (repeatable): {', '.join(RUN_ORDER)}; and, never in the "
        f"default run: {', '.join(NAMED_SECTIONS)} (issue #16: the frozen primary on a "
        "shifted external cohort, ~25 min)",
    )
    parser.add_argument(
        "--out",
        type=Path,
        help="RESULTS.md to write [default: benchmarks/RESULTS.md for a full "
        "run of every section, else <data>/RESULTS-<mode>.md]",
    )
    parser.add_argument(
        "--update",
        action="store_true",
        help="with --only: replace just those sections in an existing --out (RESULTS.md and "
        "its results.json), keeping the others and noting the re-run",
    )
    parser.add_argument(
        "--data",
        type=Path,
        help="folder for synthetic cohorts, features and bundles "
        "[default: benchmarks/.data, or benchmarks/.data/quick]",
    )
    parser.add_argument("--jobs", type=int, help="parallel processes [default: 2]")
    parser.add_argument("--repeats", type=int, help="runs per timing [3; quick: 1]")
    parser.add_argument("--lesions", type=int, help="seed cohort size [82; quick: 20]")
    parser.add_argument(
        "--quality-sizes",
        type=_sizes,
        metavar="N,N",
        help="cohort sizes for the whole default experiment in section 4 [400; quick: none]",
    )
    parser.add_argument(
        "--primary-sizes",
        type=_sizes,
        metavar="N,N",
        help="cohort sizes for xgboost and elastic net on the combined set in section 4 "
        "[none; quick: 24; e.g. 800]",
    )
    parser.add_argument(
        "--scheduler",
        metavar="ADDRESS",
        help="Dask scheduler for section 6 (default: start a LocalCluster)",
    )
    return parser.parse_args(argv)


def _sizes(text: str) -> tuple[int, ...]:
    """A comma-separated list of cohort sizes (empty: none)."""
    return tuple(int(part) for part in text.split(",") if part.strip())


def plan_from(args: argparse.Namespace) -> Plan:
    """The full or quick plan with the command line's overrides."""
    plan = QUICK if args.quick else FULL
    changes = {
        k: v
        for k, v in (
            ("data", args.data),
            ("jobs", args.jobs),
            ("repeats", args.repeats),
            ("lesions", args.lesions),
            ("scheduler", args.scheduler),
            ("quality_sizes", args.quality_sizes),
            ("primary_sizes", args.primary_sizes),
        )
        if v is not None
    }
    plan = dataclasses.replace(plan, **changes)
    plan.data.mkdir(parents=True, exist_ok=True)
    return plan


def main(argv: list[str] | None = None) -> None:
    """Run the chosen sections in dependency order, rewriting the results after each one; exit
    1 if any section failed (the others still run and are written)."""
    args = parse(argv)
    plan = plan_from(args)
    chosen = [key for key in RUN_ORDER if not args.only or key in args.only]
    chosen += [key for key in NAMED_SECTIONS if args.only and key in args.only]
    mode = "quick" if plan.quick else "full"
    if args.out:
        out = args.out
    elif not plan.quick and len(chosen) == len(RUN_ORDER):
        out = ROOT / "benchmarks" / "RESULTS.md"
    else:
        out = plan.data / f"RESULTS-{mode}{'' if len(chosen) == len(RUN_ORDER) else '-partial'}.md"
    command = ("python -m benchmarks " + shlex.join(sys.argv[1:] if argv is None else argv)).strip()
    info = report.machine()
    sections: list[report.Section | report.KeptSection] = []
    rerun: dict[str, object] | None = None
    if args.update:
        if not out.with_name(out.stem.lower() + ".json").exists():
            sys.exit(f"--update: no results.json beside {out}")
        sections, earlier = report.kept_sections(out, chosen)
        rerun = {"sections": chosen, "command": command, **info}
        info = earlier["machine"]
        info.setdefault("reruns", []).append(rerun)
        command, mode = earlier["command"], earlier["mode"]
    started = time.perf_counter()
    failed = False
    for key in chosen:
        load_start, section_start = os.getloadavg()[0], time.perf_counter()
        try:
            section = SECTIONS[key](plan)
        except Exception:
            failed = True
            section = report.Section(key, key, "", error=traceback.format_exc()[-4000:])
            log(section.error or "")
        section.load = (load_start, os.getloadavg()[0])
        section.seconds = time.perf_counter() - section_start
        log(f"   {key}: {section.seconds / 60:.1f} min")
        sections.append(section)
        if rerun is None:
            info["load_1min_end"] = os.getloadavg()[0]
            info["total_seconds"] = time.perf_counter() - started
        else:
            rerun["load_1min_end"] = os.getloadavg()[0]
        report.write(out, sections, info, command, mode)
    sys.exit(1 if failed else 0)
