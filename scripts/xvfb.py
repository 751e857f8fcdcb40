"""Start a private Xvfb display and learn its number (-displayfd), for the demo and the tests."""

from __future__ import annotations

import os
import shutil
import subprocess


def start_xvfb(width: int = 1280, height: int = 800) -> tuple[subprocess.Popen, str]:
    if not shutil.which("Xvfb"):
        raise RuntimeError("Xvfb is not installed: run scripts/install-system-deps.sh (apt-get install xvfb)")
    read_fd, write_fd = os.pipe()
    proc = subprocess.Popen(
        ["Xvfb", "-displayfd", str(write_fd), "-screen", "0", f"{width}x{height}x24", "-nolisten", "tcp"],
        pass_fds=(write_fd,), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(write_fd)
    with os.fdopen(read_fd) as f:
        number = f.readline().strip()  # Xvfb writes the display number once it accepts clients
    if not number:
        proc.kill()
        raise RuntimeError("Xvfb did not start")
    return proc, f":{number}"
