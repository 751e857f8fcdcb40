"""Drain rate, memory and bytes on the wire of the sync daemon, beside the central server's ceiling.

Everything real, on loopback: central servers as an operator runs them (``rating-central serve``,
gunicorn, SQLite, one upward platform configured, so each rating stored is also queued upward),
terminals enrolled through the API, terminal databases filled with a backlog, and the real command
``rating-sync run --once`` draining it.

1. Ceiling: a terminal database filled with ``--backlog`` ratings exactly as for the drain (chained,
   recorded by the store), its batches read and compressed beforehand as the daemon makes them, then
   posted straight to ``/api/v1/ratings`` by one client, signing each request: what the server can
   take in from one terminal. On a fresh server of its own.
2. Drain: ``rating-sync run --once`` on a backlog of ``--backlog`` ratings (start-up included), on
   another fresh server: both runs meet a table of the same size (the ``--small`` drain has a third).
3. Memory: the peak RSS of that process for ``--small`` vs ``--backlog`` pending ratings.
4. Wire: every byte both ways (headers included) of the ``--small`` drain, counted by a TCP relay.

The ratings follow ``--mix``: ``realistic`` (70 % 非常满意, 20 % 满意, 5 % 基本满意, 3 % 不满意,
2 % 非常不满意; bad ones with a reason tag, some with text) or ``bad`` (every rating 不满意 or
非常不满意: a burst of complaints, each opening a work order). The shares actually generated are
printed and checked against the mix, so the workload cannot drift from its description. Each
rating has its own case number and a time in the last days, on a terminal enrolled before them.

    .venv/bin/python bench/sync_drain.py [--backlog 100000] [--small 10000] [--mix realistic]
"""

from __future__ import annotations

import argparse
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

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import commit, draw_level, machine, mixes, report, shares, use_code_root  # noqa: E402

use_code_root()
from loopback_central import BIN, start_central  # noqa: E402

from terminal.config import SyncSection  # noqa: E402
from terminal.core.channels import InputDevice  # noqa: E402
from terminal.core.rating import Rating  # noqa: E402
from terminal.store import Store  # noqa: E402

BATCH = SyncSection().batch_size  # the ceiling is measured with the daemon's own batch size
CST = timezone(timedelta(hours=8))
REASONS = ["attitude", "slow", "many_trips", "not_told"]  # tags of the demo content


MIXES = mixes()
SPACING_S = 2  # seconds between two ratings of one terminal's backlog


def sample_rating(i: int, terminal_id: str, rng: random.Random, start: datetime, mix: str) -> Rating:
    """Rating ``i`` of a terminal's backlog, its level drawn from ``mix``."""
    level = draw_level(rng, mix)
    bad = level.is_bad
    return Rating.create(
        level=level, device=InputDevice.TOUCHSCREEN, now=start + timedelta(seconds=SPACING_S * i),
        mono_ms=1000 + SPACING_S * 1000 * i, boot_id="b" * 32, clock_synced=True, terminal_id=terminal_id,
        window="W01", app_version="0.1.0", staff_no="SZ0101", case_no=f"{terminal_id[-8:]}{i:010d}",
        item_code="330106-000-XK-001", reasons=rng.sample(REASONS, 1) if bad else [],
        text="等了很久" if bad and rng.random() < 0.3 else "")


def backlog_start(n: int) -> datetime:
    """A backlog that ends a minute ago: plausible times for a terminal enrolled before it."""
    return datetime.now(CST) - timedelta(seconds=SPACING_S * n + 60)


def enrolled(central, n: int):
    """A terminal enrolled (by the API) in time for a backlog of ``n``."""
    credentials = central.enroll()
    then = (datetime.now(timezone.utc) - timedelta(seconds=SPACING_S * n + 86400))
    central.query("UPDATE ratings_terminal SET enrolled_at = ? WHERE terminal_id = ?",
                  [then if central.database_url else then.strftime("%Y-%m-%d %H:%M:%S.%f"), credentials.terminal_id])
    return credentials


def fill(store: Store, n: int, terminal_id: str, mix: str) -> list[int]:
    rng, start = random.Random(n), backlog_start(n)
    levels = []
    for first in range(0, n, 5000):
        with store._writing():  # one commit per 5,000: filling is set-up, not what is measured
            for i in range(first, min(n, first + 5000)):
                rating = sample_rating(i, terminal_id, rng, start, mix)
                store.record(rating)
                levels.append(int(rating.level))
    return levels


def ceiling(central, n: int, mix: str, work: Path) -> float:
    """The server's rate for the daemon's own batches, made beforehand: the same store, the same
    chained payloads, the same batch bodies (``CentralClient.batch_body``), no daemon around them."""
    from sync.outbox import MAX_BATCH_BYTES, RATINGS
    credentials = enrolled(central, n)
    store = Store(work / "ceiling-terminal.db")
    fill(store, n, credentials.terminal_id, mix)
    client = central.client(credentials, timeout=60)
    batches, after = [], 0
    while batch := store.pending(BATCH, MAX_BATCH_BYTES, "ratings", after):
        payloads = {p.id: p.payload for p in batch}
        batches.append((payloads, client.batch_body(payloads, {"boot_id": "b" * 32, "mono_ms": 1000}, RATINGS)))
        after = batch[-1].seq
    store.close()
    began = time.perf_counter()
    for payloads, body in batches:
        acks, _ = client.upload(payloads, {}, RATINGS, body)
        if len(acks) != len(payloads) or any(a.status != "accepted" for a in acks.values()):
            raise RuntimeError(f"ceiling run: {sum(a.status == 'accepted' for a in acks.values())} of {len(payloads)} accepted")
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


def drain(central, n: int, work: Path, mix: str, via_port: int | None = None) -> dict:
    """Fill a terminal database with ``n`` ratings and run ``rating-sync run --once`` on it."""
    credentials = enrolled(central, n)
    data = work / f"terminal-{n}"
    url = f"http://127.0.0.1:{via_port}" if via_port else central.url
    replace(credentials, server=url).save(data)
    store = Store(data / "terminal.db")
    levels = fill(store, n, credentials.terminal_id, mix)
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
            "body_bytes": sent, "shares": shares(levels, mix)}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--small", type=int, default=10_000)
    parser.add_argument("--mix", choices=sorted(MIXES), default="realistic")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-sync-") as tmp:
        work = Path(tmp)
        servers = []
        try:
            for name in ("central-ceiling", "central-drain", "central-small"):  # each fresh: the same table
                servers.append(start_central(work / name))
                # a hall reports upward: each rating stored is also queued for its provincial platform
                assert servers[-1].manage("add_platform", "PROV", "--name", "省平台").returncode == 0
            # the drains first, while this process is small: a child's peak RSS counts the parent it forked from
            big = drain(servers[1], args.backlog, work, args.mix)
            relay = CountingRelay(int(servers[2].url.rsplit(":", 1)[1]))
            small = drain(servers[2], args.small, work, args.mix, via_port=relay.port)
            relay.close()
            top = ceiling(servers[0], args.backlog, args.mix, work)
        finally:
            for server in servers:
                server.stop()
    wire_up, wire_down = relay.up / args.small, relay.down / args.small
    raw = len(json.dumps(sample_rating(0, "T-0123456789", random.Random(0), datetime.now(CST), args.mix).to_wire(),
                         ensure_ascii=False, separators=(",", ":")).encode())
    print(f"sync drain benchmark — {datetime.now().date()}, commit {commit()}\nmachine: {machine()}\n")
    print(f"mix {args.mix}: " + ", ".join(f"{name} {share:.1%}" for name, share in big["shares"].items()) + "\n")
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
    goals = [("drain ≥ 10,000 ratings/s", big["rate"] >= 10_000), ("drain ≥ 0.8 × ceiling", big["rate"] >= 0.8 * top),
             ("RSS within 1.2×", big["peak_rss_mib"] <= 1.2 * small["peak_rss_mib"])]
    print("\ngoals: " + ", ".join(f"{name}: {'met' if ok else 'NOT met'}" for name, ok in goals))
    report("sync_drain", {"mix": args.mix, "shares": big["shares"], "ceiling_per_s": top, "backlog": args.backlog,
                          "drain_per_s": big["rate"], "drain_s": big["seconds"],
                          "rss_small_mib": small["peak_rss_mib"], "rss_big_mib": big["peak_rss_mib"],
                          "wire_up_per_rating": wire_up, "wire_down_per_rating": wire_down})
    return 0


if __name__ == "__main__":
    sys.exit(main())
