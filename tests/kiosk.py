"""Start the kiosk driver (tests/kiosk_driver.py) on the test display."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
SCREENSHOTS = HERE.parent / "var" / "screenshots"  # kept after the run, for people to look at


def start(config: Path, steps: list[dict], display: str, workdir: Path,
          env: dict | None = None) -> tuple[subprocess.Popen, Path]:
    script, result = workdir / "steps.json", workdir / "result.json"
    script.write_text(json.dumps(steps))
    env = {**os.environ, "DISPLAY": display, "KIVY_HOME": str(workdir / "kivy-home"), **(env or {})}
    proc = subprocess.Popen([sys.executable, str(HERE / "kiosk_driver.py"), str(config), str(script), str(result)],
                            env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    return proc, result


def run(config: Path, steps: list[dict], display: str, workdir: Path, timeout: float = 90,
        env: dict | None = None) -> dict:
    proc, result = start(config, steps, display, workdir, env)
    return finish(proc, result, workdir, timeout)


def finish(proc: subprocess.Popen, result: Path, workdir: Path, timeout: float = 90) -> dict:
    """Wait for a started driver; its failure is raised with the driver's error and Kivy's log."""
    output, _ = proc.communicate(timeout=timeout)
    outcome = json.loads(result.read_text()) if result.exists() else {"ok": False}
    if not (proc.returncode == 0 and outcome["ok"]):
        logs = sorted((workdir / "kivy-home" / "logs").glob("*.txt"), key=lambda p: p.stat().st_mtime)
        kivy_log = logs[-1].read_text(errors="replace")[-4000:] if logs else ""
        raise AssertionError(f"kiosk driver failed: {outcome.get('error')}\n{output[-2000:]}\n{kivy_log}")
    return outcome
