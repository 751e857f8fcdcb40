"""Button box link: press -> host event latency, beside a raw round trip over the same link.

The real firmware (``firmware/sim.py``) in the MicroPython unix port, linked to the real host
driver (``hardware/buttonbox.py``) through two pseudo-terminals and a relay (``tests/box/cable.py``,
no faults). A press is timed from the key change reaching the simulator to the host's event; it
includes the box's debounce (30 ms, on purpose: that is what a citizen's press waits for). The
floor, in the same run: one byte written at the box's end and read at the host's end.
Also: the firmware main loop's period under the unix port.

    .venv/bin/python bench/box_link.py [--presses 1000]
"""

from __future__ import annotations

import argparse
import os
import shutil
import subprocess
import sys
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
sys.path.insert(0, str(ROOT / "tests" / "box"))

from cable import Cable  # noqa: E402
from common import machine, percentiles  # noqa: E402

from hardware.buttonbox import ButtonBoxLink  # noqa: E402


def raw_round_trips(n: int) -> list[float]:
    cable = Cable()
    box = os.open(cable.box_end, os.O_RDWR | os.O_NOCTTY)
    host = os.open(cable.host_end, os.O_RDWR | os.O_NOCTTY)
    samples = []
    try:
        for _ in range(n):
            start = time.perf_counter()
            os.write(box, b"\x55")
            os.read(host, 1)
            samples.append((time.perf_counter() - start) * 1000)
    finally:
        os.close(box)
        os.close(host)
        cable.close()
    return samples


def presses(n: int) -> tuple[list[float], float]:
    cable = Cable()
    got = threading.Event()
    host = ButtonBoxLink(cable.host_end, lambda kind, key: got.set()).start()
    micropython = shutil.which("micropython", path=str(Path(sys.executable).parent))
    sim = subprocess.Popen([micropython, str(ROOT / "firmware" / "sim.py"), cable.box_end, "bench"],
                           stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)
    samples = []
    try:
        assert sim.stdout.readline().startswith("READY")
        deadline = time.monotonic() + 10
        while host.hello is None and time.monotonic() < deadline:
            time.sleep(0.01)
        started = time.monotonic()
        for i in range(n):
            key = 1 + i % 5
            got.clear()
            t0 = time.perf_counter()
            sim.stdin.write(f"D{key}\n")
            sim.stdin.flush()
            if not got.wait(5):
                raise RuntimeError(f"press {i} never arrived")
            samples.append((time.perf_counter() - t0) * 1000)
            sim.stdin.write(f"U{key}\n")
            sim.stdin.flush()
            time.sleep(0.07)  # released and settled before the next press
        sim.stdin.write("STATS\n")
        sim.stdin.flush()
        elapsed_ms = (time.monotonic() - started) * 1000
        line = ""
        while not line.startswith("STATS"):
            line = sim.stdout.readline()
        loops = int(line.split()[1])
    finally:
        sim.stdin.write("Q\n")
        sim.stdin.flush()
        sim.wait(5)
        host.stop()
        cable.close()
    return samples, elapsed_ms / loops


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--presses", type=int, default=1000)
    args = parser.parse_args()
    floor = percentiles(raw_round_trips(args.presses))
    press_samples, loop_ms = presses(args.presses)
    press = percentiles(press_samples)
    print(f"button box link benchmark — {time.strftime('%Y-%m-%d')}\nmachine: {machine()}\n")
    print("| measure | p50 ms | p99 ms | max ms |\n|---|---|---|---|")
    print(f"| raw byte round trip through the pty relay (floor) | {floor['p50']:.2f} | {floor['p99']:.2f} | "
          f"{floor['max']:.2f} |")
    print(f"| press -> host event ({args.presses} presses, 30 ms debounce included) | {press['p50']:.1f} | "
          f"{press['p99']:.1f} | {press['max']:.1f} |")
    print(f"\nfirmware main loop period under the MicroPython unix port: {loop_ms:.2f} ms "
          f"(a 2 ms sleep per loop; on the RP2040 the loop is asyncio's)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
