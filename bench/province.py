"""A province's day against the central server: how many terminals it holds, and how it recovers.

A load generator of real signed requests over HTTP (h11 on asyncio, a pool of keep-alive
connections), many simulated terminals from one process, open loop: every request is sent at its
scheduled time whether or not earlier ones were answered, and its latency counts from that time,
so a server falling behind shows in the figures instead of slowing the load (no coordinated
omission). Each terminal sends its heartbeat every 60 s (its phase spread over the minute), checks
its content every 15 minutes (If-None-Match), and uploads its ratings as the daemon does, one small
batch each time a citizen rates: on average every ``--rating-every`` seconds per terminal in
opening hours.

1. Capacity: for each terminal count of ``--steps``, ``--seconds`` of that load; the largest count
   held with p99 under 250 ms for heartbeats and uploads, and errors (a signed 503 busy the
   terminal waits out and sends again counts as one) in at most 0.1 % of requests.
2. Recovery after a hall-wide outage: ``--recovery-terminals`` terminals with ``--recovery-backlog``
   pending ratings each reconnect within one minute and drain (batches of 1,000, honouring the
   server's Retry-After); the time until the server holds every rating, and the uploads' p99.

The server is ``rating-central serve`` (gunicorn, ``--workers``) on SQLite or on a private
PostgreSQL server; with ``--nodes 2``, two of them on one PostgreSQL behind Debian's nginx (the
scale-out of docs/operators.md "Several app servers"; on one 2-core machine they share its cores), with one
upward platform configured, so each rating stored is also queued upward. Terminals, windows and
secrets are made directly in the database first.

    .venv/bin/python bench/province.py [--backend postgresql] [--steps 5000,10000,20000] [--seconds 60] [--nodes 2] [--smoke]
"""

from __future__ import annotations

import argparse
import asyncio
import gzip
import hashlib
import hmac
import json
import random
import shutil
import secrets
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import commit, machine, percentiles, report, use_code_root  # noqa: E402

use_code_root()
import h11  # noqa: E402

from loopback_central import start_central  # noqa: E402

GOAL_P99_MS = 250.0
WINDOWS_PER_HALL = 40


# -- set-up: terminals made in the database ---------------------------------------------------------

SETUP = r"""
import json, os, secrets, sys
from datetime import timedelta
os.environ["DJANGO_SETTINGS_MODULE"] = "central.settings"
import django
django.setup()
from django.utils import timezone
from central.ratings.models import Department, Hall, Terminal, Window
n = int(sys.argv[1])
dept, _ = Department.objects.get_or_create(code="11440100MB2C000010", defaults={"name": "基准部门"})
halls = {}
windows = []
for i in range(n):
    hall_no = i // %(per_hall)d
    if hall_no not in halls:
        halls[hall_no] = Hall.objects.create(code=f"H{hall_no:05d}", name=f"第 {hall_no} 大厅")
    windows.append(Window(hall=halls[hall_no], department=dept, code=f"LW{i:06d}", name=f"窗口 {i}"))
Window.objects.bulk_create(windows, batch_size=2000)
by_code = dict(Window.objects.filter(code__startswith="LW").values_list("code", "pk"))
made = [Terminal(terminal_id=f"TL{i:06d}", window_id=by_code[f"LW{i:06d}"], secret=secrets.token_urlsafe(32))
        for i in range(n)]
Terminal.objects.bulk_create(made, batch_size=2000)
Terminal.objects.filter(terminal_id__startswith="TL").update(enrolled_at=timezone.now() - timedelta(days=30))
print(json.dumps([[t.terminal_id, t.secret, f"LW{i:06d}"] for i, t in enumerate(made)]))
""" % {"per_hall": WINDOWS_PER_HALL}


def make_terminals(central, n: int) -> list[tuple[str, str, str]]:
    done = subprocess.run([sys.executable, "-c", SETUP, str(n)], env=central.env, capture_output=True, text=True,
                          cwd=str(central.data_dir))
    if done.returncode != 0:
        raise SystemExit(f"setting up {n} terminals failed:\n{done.stderr[-3000:]}")
    return [tuple(t) for t in json.loads(done.stdout.strip().splitlines()[-1])]


# -- requests -----------------------------------------------------------------------------------------

def signed(terminal: tuple, method: str, path: str, body: bytes, extra: list | None = None) -> h11.Request:
    """A request signed as a terminal signs (terminal/core/signing.py), with its own nonce."""
    terminal_id, secret, _ = terminal
    timestamp, nonce = str(int(time.time())), secrets.token_hex(16)
    canonical = "\n".join([method, path, timestamp, nonce, hashlib.sha256(body).hexdigest()]).encode()
    signature = hmac.new(secret.encode(), canonical, hashlib.sha256).hexdigest()
    headers = [("host", "127.0.0.1"), ("x-terminal-id", terminal_id), ("x-timestamp", timestamp),
               ("x-nonce", nonce), ("x-signature", signature), ("content-length", str(len(body))),
               ("accept-encoding", "gzip"), *(extra or [])]
    return h11.Request(method=method, target=path, headers=headers)


def heartbeat(terminal: tuple) -> tuple:
    body = json.dumps({"version": "load", "queue_depth": 0, "dead_letters": 0, "disk_free_bytes": 10 ** 10,
                       "clock_offset_s": 0.0, "clock_synced": True, "devices": []}).encode()
    return signed(terminal, "POST", "/api/v1/heartbeat", body, [("content-type", "application/json")]), body


def content_check(terminal: tuple, etag: str) -> tuple:
    return signed(terminal, "GET", "/api/v1/content", b"", [("if-none-match", f'"{etag}"')] if etag else []), b""


def rating_item(terminal: tuple, n: int) -> dict:
    from datetime import datetime, timedelta, timezone
    now = datetime.now(timezone(timedelta(hours=8)))
    return {"id": secrets.token_hex(16), "terminal_id": terminal[0], "window": terminal[2],
            "level": random.choices([5, 4, 3, 2, 1], [70, 20, 5, 3, 2])[0], "channel": 4, "device": "touchscreen",
            "rated_at": now.isoformat(timespec="milliseconds"), "mono_ms": 1000 + n, "boot_id": "b" * 32,
            "clock_synced": True, "app_version": "load", "reasons": [], "text": ""}


def upload(terminal: tuple, items: list[dict]) -> tuple:
    body = gzip.compress(json.dumps({"ratings": items, "clock": {}}).encode(), compresslevel=6)
    return signed(terminal, "POST", "/api/v1/ratings", body,
                  [("content-type", "application/json"), ("content-encoding", "gzip")]), body


# -- the open-loop engine --------------------------------------------------------------------------------

@dataclass
class Outcome:
    latencies: dict = field(default_factory=lambda: {"heartbeat": [], "content": [], "upload": []})
    errors: dict = field(default_factory=dict)
    retry_after: list = field(default_factory=list)
    etags: dict = field(default_factory=dict)


async def connection(host: str, port: int, queue: asyncio.Queue, outcome: Outcome) -> None:
    """One keep-alive connection, taking the next due request from the queue, for as long as there are any."""
    reader = writer = conn = None
    while True:
        job = await queue.get()
        if job is None:
            if writer:
                writer.close()
            return
        due, kind, request, body, on_answer = job
        for attempt in (1, 2):
            try:
                if writer is None:
                    reader, writer = await asyncio.open_connection(host, port, limit=1 << 20)
                    conn = h11.Connection(h11.CLIENT)
                writer.write(conn.send(request) + conn.send(h11.Data(data=body)) + conn.send(h11.EndOfMessage()))
                response, data = None, []
                while True:
                    event = conn.next_event()
                    if event is h11.NEED_DATA:
                        conn.receive_data(await reader.read(65536))
                        continue
                    if isinstance(event, h11.Response):
                        response = event
                    elif isinstance(event, h11.Data):
                        data.append(event.data)
                    elif isinstance(event, h11.EndOfMessage):
                        break
                    elif isinstance(event, h11.ConnectionClosed):
                        raise ConnectionError("closed")
                outcome.latencies[kind].append((time.perf_counter() - due) * 1000)
                status = response.status_code
                if status >= 400 and status != 304:
                    outcome.errors[f"{kind} {status}"] = outcome.errors.get(f"{kind} {status}", 0) + 1
                    retry = dict(response.headers).get(b"retry-after")
                    if retry:
                        outcome.retry_after.append(float(retry))
                if on_answer:
                    on_answer(status, dict(response.headers), b"".join(data))
                if conn.our_state is h11.DONE and conn.their_state is h11.DONE:
                    conn.start_next_cycle()
                else:
                    writer.close()
                    writer = None
                break
            except (ConnectionError, h11.ProtocolError, OSError) as exc:
                if writer:
                    writer.close()
                writer = None
                if attempt == 2:
                    outcome.errors[f"{kind} {type(exc).__name__}"] = outcome.errors.get(f"{kind} {type(exc).__name__}", 0) + 1


async def play(url: str, schedule: list[tuple], connections: int, outcome: Outcome) -> float:
    """Send ``schedule`` [(offset s, kind, make(), on_answer)] at its times; return how long it all took."""
    host, port = url.split("//")[1].split(":")
    queue: asyncio.Queue = asyncio.Queue()
    workers = [asyncio.create_task(connection(host, int(port), queue, outcome)) for _ in range(connections)]
    start = time.perf_counter()
    for offset, kind, make, on_answer in sorted(schedule, key=lambda job: job[0]):
        wait = start + offset - time.perf_counter()
        if wait > 0:
            await asyncio.sleep(wait)
        request, body = make()
        queue.put_nowait((start + offset, kind, request, body, on_answer))
    for _ in workers:
        queue.put_nowait(None)
    await asyncio.gather(*workers)
    return time.perf_counter() - start


# -- the two scenarios ---------------------------------------------------------------------------------

def day(terminals: list, seconds: float, rating_every: float, rng: random.Random, outcome: Outcome) -> list:
    """``seconds`` of a province's working day for these terminals."""
    schedule = []
    for t in terminals:
        phase = rng.uniform(0, 60)
        for k in range(int((seconds - phase) // 60) + 1):
            schedule.append((phase + 60 * k, "heartbeat", lambda t=t: heartbeat(t),
                             lambda status, headers, body, t=t: outcome.etags.setdefault(t[0], _etag(body))))
        if rng.random() < seconds / 900:  # its quarter-hourly content check falls in this window
            schedule.append((rng.uniform(0, seconds), "content", lambda t=t: content_check(t, outcome.etags.get(t[0], "")), None))
        when = rng.expovariate(1 / rating_every)
        n = 0
        while when < seconds:
            n += 1
            schedule.append((when, "upload", lambda t=t, n=n: upload(t, [rating_item(t, n)]), None))
            when += rng.expovariate(1 / rating_every)
    return schedule


def _etag(body: bytes) -> str:
    try:
        return json.loads(gzip.decompress(body) if body[:2] == b"\x1f\x8b" else body).get("content_etag", "")
    except ValueError:
        return ""


def capacity(url: str, terminals: list, steps: list[int], seconds: float, rating_every: float,
             connections: int) -> list[dict]:
    rows = []
    for n in steps:
        outcome = Outcome()
        schedule = day(terminals[:n], seconds, rating_every, random.Random(n), outcome)
        took = asyncio.run(play(url, schedule, connections, outcome))
        row = {"terminals": n, "requests": len(schedule), "per_s": len(schedule) / took, "errors": sum(outcome.errors.values())}
        for kind, samples in outcome.latencies.items():
            if samples:
                row[f"{kind}_p50_ms"], row[f"{kind}_p99_ms"] = percentiles(samples)["p50"], percentiles(samples)["p99"]
        row["held"] = (row["errors"] <= 0.001 * len(schedule) and row.get("heartbeat_p99_ms", 1e9) < GOAL_P99_MS
                       and row.get("upload_p99_ms", 0) < GOAL_P99_MS)
        rows.append(row)
        print(f"  {n:6,} terminals: {row['per_s']:6.0f} req/s, heartbeat p50/p99 {row.get('heartbeat_p50_ms', 0):6.1f}/"
              f"{row.get('heartbeat_p99_ms', 0):6.1f} ms, upload p99 {row.get('upload_p99_ms', 0):6.1f} ms, "
              f"errors {row['errors']} {outcome.errors or ''} -> {'held' if row['held'] else 'NOT held'}", flush=True)
        if not row["held"]:
            break
    return rows


def recovery(url: str, central, terminals: list, backlog: int, connections: int, within: float = 60.0) -> dict:
    """Each terminal reconnects within a minute and drains its backlog in batches of 1,000, one at a
    time, waiting as long as a 503's Retry-After says before it sends that batch again."""
    rng = random.Random(7)
    before = central.count()
    items = {t[0]: [rating_item(t, i) for i in range(backlog)] for t in terminals}
    outcome = Outcome()
    latencies: list[float] = []

    async def drain(t):
        await asyncio.sleep(rng.uniform(0, within))
        host, port = url.split("//")[1].split(":")
        for first in range(0, backlog, 1000):
            while True:
                request, body = upload(t, items[t[0]][first:first + 1000])
                box = Outcome()
                queue: asyncio.Queue = asyncio.Queue()
                queue.put_nowait((time.perf_counter(), "upload", request, body, None))
                queue.put_nowait(None)
                await connection(host, int(port), queue, box)
                latencies.extend(box.latencies["upload"])
                if not box.errors:
                    break
                for key, count in box.errors.items():
                    outcome.errors[key] = outcome.errors.get(key, 0) + count
                await asyncio.sleep(box.retry_after[-1] if box.retry_after else rng.uniform(1, 5))

    async def everyone():
        start = time.perf_counter()
        limit = asyncio.Semaphore(connections)

        async def bounded(t):
            async with limit:
                await drain(t)
        await asyncio.gather(*(bounded(t) for t in terminals))
        return time.perf_counter() - start

    took = asyncio.run(everyone())
    stored = central.count() - before
    p = percentiles(latencies) if latencies else {"p50": 0, "p99": 0}
    return {"terminals": len(terminals), "backlog": backlog, "stored": stored, "expected": len(terminals) * backlog,
            "drain_s": took, "per_s": stored / took, "upload_p50_ms": p["p50"], "upload_p99_ms": p["p99"],
            "retries": sum(outcome.errors.values())}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backend", choices=["sqlite", "postgresql"], default="postgresql")
    parser.add_argument("--steps", default="2000,5000,10000,15000,20000,25000,30000")
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--rating-every", type=float, default=600.0, help="mean seconds between one terminal's ratings")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--connections", type=int, default=64)
    parser.add_argument("--recovery-terminals", type=int, default=1000)
    parser.add_argument("--recovery-backlog", type=int, default=2000)
    parser.add_argument("--reconnect-within", type=float, default=60.0, help="seconds over which the terminals come back")
    parser.add_argument("--nodes", type=int, default=1, help="app servers on one PostgreSQL behind Debian's nginx")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: does it still run")
    args = parser.parse_args()
    if args.nodes > 1 and args.backend != "postgresql":
        parser.error("several nodes share one PostgreSQL database")
    if args.smoke:
        args.steps, args.seconds, args.recovery_terminals, args.recovery_backlog = "50", 3.0, 5, 1000
        args.rating_every, args.reconnect_within = 5.0, 1.0
    steps = [int(s) for s in args.steps.split(",")]
    work = Path(tempfile.mkdtemp(prefix="bench-province-"))
    pg = None
    database_url = None
    if args.backend == "postgresql":
        from postgres import start_postgres
        pg = start_postgres(Path(tempfile.mkdtemp(prefix="bench-province-pg-")))  # its own: the server user reads it
        database_url = pg.create_database("province")
    shared = {"RATING_CENTRAL_SECRET_KEY_FILE": str(work / "secret_key"), "RATING_CENTRAL_MEDIA": str(work / "media")}
    nodes = [start_central(work / f"central-{n}", workers=args.workers, database_url=database_url, extra_env=shared)
             for n in range(args.nodes)]
    central, proxy, url = nodes[0], None, nodes[0].url
    # a hall reports upward: each rating stored is also queued for its provincial platform
    assert central.manage("add_platform", "PROV", "--name", "省平台", "--profile", "provincial").returncode == 0
    if args.nodes > 1:
        from loopback_nginx import start_nginx
        proxy = start_nginx(work / "nginx", [node.url for node in nodes])
        url = proxy.url
    try:
        terminals = make_terminals(central, max(steps + [args.recovery_terminals]))
        print(f"province load — {time.strftime('%Y-%m-%d')}, commit {commit()}, {args.backend}, "
              f"{args.nodes} node(s) x {args.workers} workers{' behind nginx' if proxy else ''}\n"
              f"machine: {machine()}\n")
        # a server that has been running: every terminal has had a heartbeat answered (each window's
        # content ETag is stored on its row); warming is not measured
        warm = Outcome()
        asyncio.run(play(url, [(i / max(steps) * 10, "heartbeat", lambda t=t: heartbeat(t), None)
                               for i, t in enumerate(terminals[:max(steps)])],
                         args.connections, warm))
        print(f"capacity, {args.seconds:.0f} s per step, a rating every {args.rating_every:.0f} s per terminal:", flush=True)
        rows = capacity(url, terminals, steps, args.seconds, args.rating_every, args.connections)
        held = max((r["terminals"] for r in rows if r["held"]), default=0)
        print(f"\nlargest held at p99 < {GOAL_P99_MS:.0f} ms: {held:,} terminals")
        print(f"\nrecovery: {args.recovery_terminals:,} terminals x {args.recovery_backlog:,} pending, "
              f"reconnecting within {args.reconnect_within:.0f} s:", flush=True)
        back = recovery(url, central, terminals[:args.recovery_terminals], args.recovery_backlog,
                        args.connections, args.reconnect_within)
        print(f"  {back['stored']:,} of {back['expected']:,} stored in {back['drain_s']:.0f} s ({back['per_s']:,.0f}/s); "
              f"batch p50 {back['upload_p50_ms']:.0f} ms, p99 {back['upload_p99_ms']:.0f} ms; "
              f"{back['retries']} answered 503 (Retry-After) and sent again")
        if back["stored"] != back["expected"]:
            raise SystemExit("the recovery lost or doubled ratings")
    finally:
        if proxy:
            proxy.stop()
        for node in nodes:
            node.stop()
        if pg:
            pg.stop()
        shutil.rmtree(work, ignore_errors=True)
    report("province", {"backend": args.backend, "nodes": args.nodes, "workers": args.workers, "held_terminals": held,
                        "steps": rows, "recovery": back})
    return 0


if __name__ == "__main__":
    sys.exit(main())
