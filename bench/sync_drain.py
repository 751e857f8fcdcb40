"""Drain rate, memory and bytes on the wire of the sync daemon, beside the central server's ceiling.

Everything real, on loopback: a central server as an operator runs it (``rating-central serve``,
gunicorn, SQLite), terminals enrolled through the API, a terminal database filled with a backlog,
and the real command ``rating-sync run --once`` draining it.

1. Ceiling: pre-built, pre-compressed batches (the daemon's batch size) posted straight to ``/api/v1/ratings`` by one
   client, signing each request: what the server can take in from one terminal.
2. Drain: ``rating-sync run --once`` on a backlog of ``--backlog`` ratings (start-up included).
3. Memory: the peak RSS of that process for ``--small`` vs ``--backlog`` pending ratings.
4. Wire: every byte both ways (headers included) of the ``--small`` drain, counted by a TCP relay.

    .venv/bin/python bench/sync_drain.py [--backlog 100000] [--small 10000] [--ceiling 20000]
"""

from __future__ import annotations

import argparse
import gzip
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import replace
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

from common import machine  # noqa: E402
from loopback_central import BIN, start_central  # noqa: E402

from terminal.config import SyncSection  # noqa: E402
from terminal.core.channels import InputDevice  # noqa: E402
from terminal.core.levels import Level  # noqa: E402
from terminal.core.rating import Rating  # noqa: E402
from terminal.store import Store  # noqa: E402

BATCH = SyncSection().batch_size  # the ceiling is measured with the daemon's own batch size
CST = timezone(timedelta(hours=8))
REASONS = ["attitude", "slow", "many_trips", "not_told"]  # tags of the demo content


def sample_rating(i: int, terminal_id: str, rng: random.Random, start: datetime) -> Rating:
    """A realistic mix: mostly 非常满意, some bad ones with reason tags and a few words."""
    level = rng.choices(list(Level), weights=[2, 3, 5, 20, 70])[0]
    bad = level.is_bad
    return Rating.create(
        level=level, device=InputDevice.TOUCHSCREEN, now=start + timedelta(seconds=40 * i),
        mono_ms=1000 + 40_000 * i, boot_id="b" * 32, clock_synced=True, terminal_id=terminal_id,
        window="W01", app_version="0.1.0", staff_no="SZ0101", case_no=f"3301062026{i:010d}",
        item_code="330106-000-XK-001", reasons=rng.sample(REASONS, 1) if bad else [],
        text="等了很久" if bad and rng.random() < 0.3 else "")


def fill(store: Store, n: int, terminal_id: str) -> None:
    rng, start = random.Random(n), datetime(2026, 11, 2, 9, 0, tzinfo=CST)
    for first in range(0, n, 5000):
        with store.db.atomic():  # one commit per 5,000: filling is set-up, not what is measured
            for i in range(first, min(n, first + 5000)):
                store.record(sample_rating(i, terminal_id, rng, start))


def ceiling(central, n: int) -> float:
    credentials = central.enroll()
    client = central.client(credentials, timeout=60)
    rng, start = random.Random(1), datetime(2026, 11, 2, 9, 0, tzinfo=CST)
    bodies = []
    for first in range(0, n, BATCH):
        items = [sample_rating(i, credentials.terminal_id, rng, start).to_wire() for i in range(first, first + BATCH)]
        bodies.append(gzip.compress(json.dumps({"ratings": items, "clock": {}}, ensure_ascii=False,
                                               separators=(",", ":")).encode(), compresslevel=6))
    headers = {"Content-Type": "application/json", "Content-Encoding": "gzip"}
    began = time.perf_counter()
    for body in bodies:
        response = client.request("POST", "/api/v1/ratings", body, headers)
        if response.status_code != 200 or response.json()["accepted"] != BATCH:
            raise RuntimeError(f"ceiling run: {response.status_code} {response.text[:300]}")
    elapsed = time.perf_counter() - began
    client.close()
    return n / elapsed


class CountingRelay:
    """A TCP relay that counts every byte each way: the honest figure for bytes on the wire."""

    def __init__(self, target_port: int):
        self.target = ("127.0.0.1", target_port)
        self.up = self.down = 0
        self.lock = threading.Lock()
        self.listener = socket.create_server(("127.0.0.1", 0))
        self.port = self.listener.getsockname()[1]
        threading.Thread(target=self._accept, daemon=True).start()

    def _accept(self) -> None:
        while True:
            try:
                client, _ = self.listener.accept()
            except OSError:
                return
            server = socket.create_connection(self.target)
            threading.Thread(target=self._pipe, args=(client, server, "up"), daemon=True).start()
            threading.Thread(target=self._pipe, args=(server, client, "down"), daemon=True).start()

    def _pipe(self, src: socket.socket, dst: socket.socket, direction: str) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
                with self.lock:
                    setattr(self, direction, getattr(self, direction) + len(data))
        except OSError:
            pass
        finally:
            for s in (src, dst):
                try:
                    s.shutdown(socket.SHUT_RDWR)
                except OSError:
                    pass

    def close(self) -> None:
        self.listener.close()


def drain(central, n: int, work: Path, via_port: int | None = None) -> dict:
    """Fill a terminal database with ``n`` ratings and run ``rating-sync run --once`` on it."""
    credentials = central.enroll()
    data = work / f"terminal-{n}"
    url = f"http://127.0.0.1:{via_port}" if via_port else central.url
    replace(credentials, server=url).save(data)
    store = Store(data / "terminal.db")
    fill(store, n, credentials.terminal_id)
    store.close()
    config = work / f"terminal-{n}.toml"
    config.write_text(f'[terminal]\ndata_dir = "{data}"\ncontent_dir = "{data / "content"}"\n'
                      f'[sync]\nserver = "{url}"\ntimeout = 60.0\n', encoding="utf-8")
    began = time.perf_counter()
    proc = subprocess.Popen([str(BIN / "rating-sync"), "--config", str(config), "run", "--once"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    _, status, usage = os.wait4(proc.pid, 0)
    elapsed = time.perf_counter() - began
    proc.returncode = os.waitstatus_to_exitcode(status)
    out, err = proc.stdout.read(), proc.stderr.read()
    if proc.returncode != 0:
        raise RuntimeError(f"rating-sync run --once failed: {err[-2000:]}")
    stored = central.count("terminal_id = ?", [credentials.terminal_id])
    if stored != n:
        raise RuntimeError(f"central holds {stored} of {n} ratings after the drain")
    sent = int(out.split(", ")[3].split()[0])  # "delivered …, …, B batches, N bytes, E events"
    return {"n": n, "seconds": elapsed, "rate": n / elapsed, "peak_rss_mib": usage.ru_maxrss / 1024,
            "body_bytes": sent}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--ceiling", type=int, default=20_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        work = Path(tmp)
        central = start_central(work / "central")
        try:
            top = ceiling(central, args.ceiling)
            relay = CountingRelay(int(central.url.rsplit(":", 1)[1]))
            small = drain(central, args.small, work, via_port=relay.port)
            relay.close()
            big = drain(central, args.backlog, work)
        finally:
            central.stop()
    wire_up, wire_down = relay.up / args.small, relay.down / args.small
    raw = len(json.dumps(sample_rating(0, "T-0123456789", random.Random(0), datetime.now(CST)).to_wire(),
                         ensure_ascii=False, separators=(",", ":")).encode())
    print(f"sync drain benchmark — {datetime.now().date()}\nmachine: {machine()}\n")
    print("| measure | figure |\n|---|---|")
    print(f"| central ingest ceiling (pre-built batches of {BATCH}, one client) | {top:,.0f} ratings/s |")
    print(f"| drain of a {args.backlog:,} backlog, `rating-sync run --once`, start-up included "
          f"| {big['rate']:,.0f} ratings/s ({big['seconds']:.1f} s) = {big['rate'] / top:.2f} × ceiling |")
    print(f"| peak RSS draining {args.small:,} | {small['peak_rss_mib']:.1f} MiB |")
    print(f"| peak RSS draining {args.backlog:,} | {big['peak_rss_mib']:.1f} MiB "
          f"= {big['peak_rss_mib'] / small['peak_rss_mib']:.2f} × |")
    print(f"| bytes on the wire per rating, terminal → central (headers included) | {wire_up:.0f} |")
    print(f"| bytes on the wire per rating, central → terminal (acknowledgements) | {wire_down:.0f} |")
    print(f"| of which gzip request body per rating | {small['body_bytes'] / args.small:.0f} "
          f"(one rating as plain JSON: {raw}) |")
    goals = [("drain ≥ 5,000 ratings/s", big["rate"] >= 5000), ("drain ≥ ½ ceiling", big["rate"] >= top / 2),
             ("RSS within 1.2×", big["peak_rss_mib"] <= 1.2 * small["peak_rss_mib"])]
    print("\ngoals: " + ", ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in goals))
    return 0


if __name__ == "__main__":
    sys.exit(main())
