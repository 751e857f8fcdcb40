"""Helpers for benchmarks: percentiles and a description of the machine they ran on."""

from __future__ import annotations

import os
import platform
import statistics
import subprocess


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
