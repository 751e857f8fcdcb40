"""Flash the button box's firmware with mpremote, and prove it took: ``rating-terminal flash-box``.

1. Maintenance: a running box is sent MAINT on its data port and restarts with its watchdog off
   and its REPL free (a box in maintenance already, or a fresh MicroPython board, is used as is).
   The REPL is ready when it answers a carriage return with its ``>>>`` prompt.
2. usb-device-cdc: the board must have it for the separate data port; if missing it is installed
   with ``mpremote mip install`` (network needed) or the box falls back to its console port.
3. Copy ``firmware.FILES`` (``mpremote fs cp``), then read every file's sha256 back from the
   board (``mpremote fs sha256sum``) and compare it with the file here.
4. Reset (``mpremote reset``), then ask the box on its data port for HELLO and compare the
   version it reports with the one copied.

mpremote is driven through its command line with ``resume``, so it never soft-resets a board
that is in maintenance mode (a soft reset would run main.py again).
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
import time
from pathlib import Path
from typing import Callable

import firmware
from firmware import boxproto as P


class FlashError(Exception):
    """A step failed; the message says which and what to do."""


def mpremote(port: str, *args: str, timeout: float = 60) -> subprocess.CompletedProcess:
    command = [sys.executable, "-m", "mpremote", "connect", port, "resume", *args]
    try:
        return subprocess.run(command, capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        raise FlashError(f"mpremote {' '.join(args[:2])} on {port} did not finish in {timeout:.0f} s") from None


def _open(port: str):
    import serial
    return serial.serial_for_url(port, baudrate=115200, timeout=0.1)


def request_maintenance(data_port: str) -> bool:
    """MAINT to a running box; False if there is no data port to send it on."""
    import serial
    if not os.path.exists(data_port):
        return False
    try:
        with _open(data_port) as link:
            link.write(P.encode(P.MAINT))
            link.flush()
    except serial.SerialException:
        return False
    return True


def wait_for_repl(repl_port: str, timeout: float) -> None:
    """Until the REPL answers with its prompt. A running box's firmware does not read its REPL
    port, so an answer means maintenance mode (or a board with no firmware yet)."""
    import serial
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            with _open(repl_port) as repl:
                repl.write(b"\r\x02\r")  # Ctrl-B: the friendly REPL, in case raw REPL was left on
                answer = b""
                until = time.monotonic() + 0.5
                while time.monotonic() < until:
                    answer += repl.read(256)
                    if b">>> " in answer:
                        return
        except (serial.SerialException, OSError):
            pass  # not back yet after the reset
        time.sleep(0.2)
    raise FlashError(f"no REPL on {repl_port} after {timeout:.0f} s: hold keys 1 and 5 while plugging the box "
                     "in to start it in maintenance mode, then try again")


def ask_hello(data_port: str, timeout: float) -> tuple:
    """(boot id, version, board id) from a box that has just started."""
    import serial
    deadline = time.monotonic() + timeout
    decoder = P.Decoder()
    while time.monotonic() < deadline:
        try:
            with _open(data_port) as link:
                asked = 0.0
                while time.monotonic() < deadline:
                    if time.monotonic() - asked > 0.5:
                        link.write(P.encode(P.ASK))
                        asked = time.monotonic()
                    for kind, fields in decoder.feed(link.read(256)):
                        if kind == P.HELLO:
                            return fields
        except (serial.SerialException, OSError):
            time.sleep(0.2)  # the data port comes back a moment after the reset
    raise FlashError(f"the box did not say HELLO on {data_port} within {timeout:.0f} s after the reset")


def flash(repl_port: str, data_port: str | None, source: Path = firmware.HERE, timeout: float = 20,
          say: Callable[[str], None] = print) -> tuple:
    """Run the steps; returns the HELLO of the flashed box. Raises FlashError."""
    source = Path(source)
    files = [source / name for name in firmware.FILES]
    missing = [str(f) for f in files if not f.is_file()]
    if missing:
        raise FlashError(f"firmware files missing: {', '.join(missing)}")
    expected = firmware.version(source)

    if data_port and request_maintenance(data_port):
        say(f"maintenance: MAINT sent on {data_port}")
    wait_for_repl(repl_port, timeout)
    say(f"maintenance: REPL ready on {repl_port}")

    if mpremote(repl_port, "exec", "import usb.device.cdc").returncode != 0:
        installed = mpremote(repl_port, "mip", "install", "usb-device-cdc", timeout=120)
        if installed.returncode == 0:
            say("usb-device-cdc: installed from micropython-lib")
        else:
            say("usb-device-cdc: missing and not installable here (no network?); the box will use its "
                "console port for data: set [box] port to the REPL's device")
    else:
        say("usb-device-cdc: present")

    chain = [arg for f in files for arg in ("+", "fs", "cp", "-f", str(f), ":" + f.name)][1:]
    copied = mpremote(repl_port, *chain)
    if copied.returncode != 0:
        raise FlashError(f"copying failed: {copied.stderr.strip() or copied.stdout.strip()}")
    sums = mpremote(repl_port, "fs", "sha256sum", "--no-verbose", *(":" + f.name for f in files))
    on_board = sums.stdout.split()
    for f, digest in zip(files, on_board + [""] * len(files)):
        if digest != hashlib.sha256(f.read_bytes()).hexdigest():
            raise FlashError(f"{f.name} on the board does not match (sha256 {digest or 'unreadable'}); "
                             "flash again, and replace the board if it keeps failing")
    say(f"copied and verified (sha256): {', '.join(f.name for f in files)}")

    mpremote(repl_port, "reset", timeout=10)
    say("reset")
    hello = ask_hello(data_port or repl_port, timeout)
    if hello[1] != expected:
        raise FlashError(f"the box runs firmware {hello[1]}, not {expected}: it did not start the new files")
    say(f"running: firmware {hello[1]} on board {hello[2]}")
    return hello
