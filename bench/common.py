"""Helpers for benchmarks: where the code under test is, percentiles, the machine and the commit
they ran on, and the one JSON line each prints for ``bench/compare.py``."""

from __future__ import annotations

import json
import os
import platform
import statistics
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parent
#: The tree whose code is measured: this checkout, or another one (``bench/compare.py`` sets
#: RATING_CODE_ROOT to a worktree of an earlier commit, so one script measures both the same way).
CODE_ROOT = Path(os.environ.get("RATING_CODE_ROOT") or BENCH.parent).resolve()


def use_code_root() -> Path:
    """Import the project (and its scripts) from CODE_ROOT, here and in every process we start.
    Also: a SIGTERM (``timeout``, CI) ends the benchmark through its ``finally`` blocks, so the
    servers it started stop with it."""
    import signal
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    for path in (CODE_ROOT / "scripts", CODE_ROOT):
        sys.path.insert(0, str(path))
    os.environ["PYTHONPATH"] = os.pathsep.join([str(CODE_ROOT), str(CODE_ROOT / "scripts"),
                                                 *filter(None, [os.environ.get("PYTHONPATH")])])
    return CODE_ROOT


def commit() -> str:
    """The commit of the measured code, marked ``+changes`` when its tree has uncommitted edits."""
    try:
        sha = subprocess.run(["git", "-C", str(CODE_ROOT), "rev-parse", "--short", "HEAD"], capture_output=True,
                             text=True, timeout=10).stdout.strip()
        dirty = subprocess.run(["git", "-C", str(CODE_ROOT), "status", "--porcelain", "--untracked-files=no"],
                               capture_output=True, text=True, timeout=10).stdout.strip()
    except OSError:
        return "unknown"
    return (sha or "unknown") + ("+changes" if dirty else "")


def report(name: str, figures: dict) -> None:
    """The machine-readable line: ``bench-json {"bench": name, "commit": …, …}``."""
    print("bench-json " + json.dumps({"bench": name, "commit": commit(), **figures}, ensure_ascii=False))


def percentiles(samples_ms: list[float]) -> dict[str, float]:
    ordered = sorted(samples_ms)
    pick = lambda q: ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]  # noqa: E731
    return {"p50": pick(0.50), "p99": pick(0.99), "mean": statistics.fmean(ordered), "max": ordered[-1]}


def machine() -> str:
    try:
        cpu = next(line.split(":", 1)[1].strip() for line in open("/proc/cpuinfo") if line.startswith("model name"))
    except (OSError, StopIteration):
        cpu = platform.processor() or "unknown CPU"
    try:
        fs = subprocess.run(["df", "-T", "."], capture_output=True, text=True).stdout.splitlines()[1].split()[1]
    except (OSError, IndexError):
        fs = "?"
    return f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, {platform.system()} {platform.release()}, filesystem {fs}"


def mixes() -> dict:
    """The benchmarks' rating mixes, level -> weight: ``realistic`` (70 % 非常满意, 20 % 满意,
    5 % 基本满意, 3 % 不满意, 2 % 非常不满意), ``good`` (all 非常满意 or 满意) and ``bad`` (all
    不满意 or 非常不满意: a burst of complaints, each opening a work order). One definition, so
    every benchmark means the same."""
    from terminal.core.levels import Level
    return {"realistic": {Level.VERY_SATISFIED: 70, Level.SATISFIED: 20, Level.BASICALLY_SATISFIED: 5,
                          Level.DISSATISFIED: 3, Level.VERY_DISSATISFIED: 2},
            "good": {Level.VERY_SATISFIED: 80, Level.SATISFIED: 20},
            "bad": {Level.DISSATISFIED: 50, Level.VERY_DISSATISFIED: 50}}


def shares(levels: list[int], mix: str) -> dict[str, float]:
    """The share of each level actually made; refuses to go on if it is not the mix's (a workload
    that drifted from its description fails the run, and ``make bench-smoke`` with it)."""
    from terminal.core.levels import Level
    weights = mixes()[mix]
    got = {Level(lv).zh: levels.count(lv) / len(levels) for lv in sorted(set(levels), reverse=True)}
    for level, weight in weights.items():
        stated = weight / sum(weights.values())
        if abs(got.get(level.zh, 0.0) - stated) > max(0.02, 4 * (stated * (1 - stated) / len(levels)) ** 0.5):
            raise RuntimeError(f"workload drifted: {level.zh} is {got.get(level.zh, 0):.1%}, the mix says {stated:.0%}")
    unstated = set(got) - {lv.zh for lv in weights}
    if unstated:
        raise RuntimeError(f"workload drifted: {', '.join(unstated)} made, not in the {mix} mix")
    return got


def draw_level(rng, mix: str):
    weights = mixes()[mix]
    return rng.choices(list(weights), weights=list(weights.values()))[0]
