"""Button box link: press -> host event latency, beside a raw round trip over the same link.

The real firmware (``main.py`` → ``boxfw``, run by ``firmware/sim.py``) in the MicroPython unix
port, linked to the real host driver (``hardware/buttonbox.py``) through two pseudo-terminals and
a relay (``firmware/cable.py``, no faults). A press is timed from the key change reaching the simulator to the host's event: the box's
eager debounce takes the first edge of a key that has been still, so the press waits for the
main loop's next scan (1 ms) and the wire, not for the pins to settle. The
floor, in the same run: one byte written at the box's end and read at the host's end.
Also: the firmware main loop's period under the unix port.

    .venv/bin/python bench/box_link.py [--presses 1000]
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from common import commit, machine, percentiles, report  # noqa: E402

from firmware.cable import Cable  # noqa: E402
from firmware.sim import SimulatedBox  # noqa: E402
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


def loops_so_far(sim: SimulatedBox) -> int:
    sim.key("STATS")
    line = ""
    while not line.startswith("STATS"):
        line = sim.proc.stdout.readline()
    return int(line.split()[1])


def presses(n: int) -> tuple[list[float], float]:
    cable = Cable()
    got = threading.Event()
    host = ButtonBoxLink(cable.host_end, lambda kind, key: got.set()).start()
    samples = []
    with tempfile.TemporaryDirectory() as flash:
        sim = SimulatedBox(cable.box_end, flash)
        try:
            deadline = time.monotonic() + 10
            while host.hello is None and time.monotonic() < deadline:
                time.sleep(0.01)
            started, loops_before = time.monotonic(), loops_so_far(sim)
            for i in range(n):
                key = 1 + i % 5
                got.clear()
                t0 = time.perf_counter()
                sim.key(f"D{key}")
                if not got.wait(5):
                    raise RuntimeError(f"press {i} never arrived")
                samples.append((time.perf_counter() - t0) * 1000)
                sim.key(f"U{key}")
                time.sleep(0.07)  # released and settled before the next press
            loops = loops_so_far(sim) - loops_before
            elapsed_ms = (time.monotonic() - started) * 1000
        finally:
            sim.close()
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
    print(f"button box link benchmark — {time.strftime('%Y-%m-%d')}, commit {commit()}\nmachine: {machine()}\n")
    print("| measure | p50 ms | p99 ms | max ms |\n|---|---|---|---|")
    print(f"| raw byte round trip through the pty relay (floor) | {floor['p50']:.2f} | {floor['p99']:.2f} | "
          f"{floor['max']:.2f} |")
    print(f"| press -> host event ({args.presses} presses, eager 30 ms debounce) | {press['p50']:.1f} | "
          f"{press['p99']:.1f} | {press['max']:.1f} |")
    print(f"\nfirmware main loop period under the MicroPython unix port: {loop_ms:.2f} ms "
          f"(boxfw.scan_and_talk: one asyncio.sleep_ms(1) per loop; the simulated pins and fingers included)")
    report("box_link", {"presses": args.presses, "press_p50_ms": press["p50"], "press_p99_ms": press["p99"],
                        "floor_p50_ms": floor["p50"], "floor_p99_ms": floor["p99"], "loop_ms": loop_ms})
    return 0


if __name__ == "__main__":
    sys.exit(main())
