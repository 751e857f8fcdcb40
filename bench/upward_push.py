"""Upward push rate of a backlog, beside the platform's own ceiling in the same run.

Everything real, on loopback: a central database (SQLite file, WAL, synchronous=FULL, as served)
holding ``--backlog`` ratings of the realistic mix (70 % 非常满意 … 2 % 非常不满意; stated and
checked) at 30 windows, each queued for one platform speaking the shipped ``provincial`` profile;
the reference platform (``scripts/reference_platform.py``) in its own process, strict, no faults.

1. Ceiling: the same records, encoded and batched beforehand (``--batch`` each), posted by one
   signed client to a fresh platform process: what the platform can take in.
2. Push: ``rating-central push_upward --once`` draining the backlog to another fresh platform
   process: reading the outbox, encoding through the profile, signing, verifying each answer,
   marking each item sent. Reported twice: the drain by the command's own clock (what a running
   pusher does with a backlog), and the whole command with its process start-up.

    .venv/bin/python bench/upward_push.py [--backlog 100000] [--batch 1000] [--smoke]
"""

from __future__ import annotations

import argparse
import os
import random
import re
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import commit, draw_level, machine, report, shares, use_code_root  # noqa: E402

ROOT = use_code_root()
CST = timezone(timedelta(hours=8))
SECRET = "bench-platform-secret-0123456789"
WINDOWS = [f"W{i:02d}" for i in range(1, 31)]


def start_platform(port: int) -> subprocess.Popen:
    proc = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "reference_platform.py"), "--profile",
                             str(ROOT / "central" / "ratings" / "profiles" / "provincial.toml"), "--port", str(port),
                             "--key-id", "bench"], env={**os.environ, "REFERENCE_PLATFORM_SECRET": SECRET},
                            stdout=subprocess.PIPE, text=True)
    if "reference platform" not in (proc.stdout.readline() or ""):
        proc.kill()
        raise SystemExit("the reference platform did not start")
    return proc


def fill(n: int, rng: random.Random) -> list[int]:
    """``n`` ratings at 30 windows over the last days, each queued upward in the same transaction."""
    from django.db import transaction

    from central.ratings import upward
    from central.ratings.ingest import insert_rows
    from central.ratings.models import Department, Hall, Rating, Window
    hall = Hall.objects.create(code="H-BENCH", name="基准大厅")
    dept = Department.objects.create(code="11440100MB2C000010", name="基准部门")
    for code in WINDOWS:
        Window.objects.create(hall=hall, department=dept, code=code, name=f"{code} 窗口")
    now, levels = datetime.now(CST), []
    for start in range(0, n, 1000):
        rows = []
        for i in range(start, min(n, start + 1000)):
            level = int(draw_level(rng, "realistic"))
            levels.append(level)
            at = now - timedelta(seconds=rng.randrange(5 * 86400))
            rows.append(dict(
                rating_id=f"bench{i:010d}", terminal_id="T-BENCH", window_code=rng.choice(WINDOWS), staff_no="S001",
                level=level, channel=rng.choice([4, 5]), device="touchscreen", case_no=f"C{rng.getrandbits(48):x}",
                item_code="", session_id="", reasons=["slow"] if level <= 2 else [], text="", excluded=False,
                excluded_why="", rated_at=at, rated_on=at.date(), rated_at_terminal=at, time_source="terminal_ntp",
                digest="d" * 64, payload={"anonymous": True}, rating_no=1, ticket_no="", case_counted=True,
                flags=[], comment_state="", comment_public="", comment_reviewed_at=None, chain_epoch="",
                chain_seq=None, chain_prev=""))
        with transaction.atomic():
            insert_rows(Rating, rows)
            upward.queue([(r["rating_id"], r["device"]) for r in rows])
    return levels


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--backlog", type=int, default=100_000)
    parser.add_argument("--batch", type=int, default=1000)
    parser.add_argument("--smoke", action="store_true", help="small sizes: checks the benchmark still runs")
    args = parser.parse_args()
    if args.smoke:
        args.backlog = 3000
    work = Path(tempfile.mkdtemp(prefix="bench-upward-"))
    try:
        run(args, work)
    finally:
        shutil.rmtree(work, ignore_errors=True)  # its database: every make test ran one and left it in /tmp


def run(args, work: Path) -> None:
    ports = [_free_port(), _free_port()]
    env = {"RATING_CENTRAL_DATA": str(work / "central"), "RATING_CENTRAL_UPWARD_PROV_URL": f"http://127.0.0.1:{ports[1]}",
           "RATING_CENTRAL_UPWARD_PROV_KEY_ID": "bench", "RATING_CENTRAL_UPWARD_PROV_SECRET": SECRET,
           "RATING_CENTRAL_AREA_CODE": "440100", "DJANGO_SETTINGS_MODULE": "central.settings"}
    os.environ.pop("RATING_CENTRAL_DATABASE_URL", None)
    os.environ.update(env)
    import django
    django.setup()
    from django.core.management import call_command

    from central.ratings import exports, upward
    from central.ratings.models import UpwardItem, UpwardPlatform
    from sync.outbox import Outbox
    call_command("migrate", verbosity=0)
    platform = UpwardPlatform.objects.create(code="PROV", name="基准平台", profile=exports.shipped_text("provincial"),
                                             batch_size=args.batch)
    t0 = time.perf_counter()
    levels = fill(args.backlog, random.Random(1))
    mix = shares(levels, "realistic")
    fill_s = time.perf_counter() - t0

    # 1. ceiling: the records encoded beforehand, posted by one signed client
    profile = upward.profile_of(platform)
    outbox = upward.PlatformOutbox(platform, profile)
    batches, after = [], 0
    while batch := outbox.pending(args.batch, None, "", after):
        batches.append({w.id: w.payload for w in batch})
        after = batch[-1].seq
    assert sum(map(len, batches)) == args.backlog, "workload drifted: not every rating was queued once"
    ceiling_platform = start_platform(ports[0])
    try:
        client = upward.PlatformClient(f"http://127.0.0.1:{ports[0]}", "bench", SECRET, profile)
        box = Outbox("PROV", profile.path, profile.batch_key)
        bodies = [client.batch_body(b, {}, box) for b in batches]
        t0 = time.perf_counter()
        for payloads, body in zip(batches, bodies):
            acks, _ = client.upload(payloads, {}, box, body)
            assert len(acks) == len(payloads) and all(a.status == "accepted" for a in acks.values())
        ceiling_s = time.perf_counter() - t0
        client.close()
    finally:
        ceiling_platform.kill()

    # 2. the push, by the real command, start-up included
    push_platform = start_platform(ports[1])
    try:
        t0 = time.perf_counter()
        done = subprocess.run([str(Path(sys.executable).parent / "rating-central"), "push_upward", "--once"],
                              check=True, env=os.environ.copy(), capture_output=True, text=True)
        push_s = time.perf_counter() - t0
        said = re.search(r"PROV: (\d+) acknowledged, 0 dead, \d+ batches in ([0-9.]+) s", done.stdout)
        if not said or int(said.group(1)) != args.backlog:
            raise SystemExit(f"the push did not say it sent the backlog: {done.stdout[-500:]} {done.stderr[-500:]}")
        drain_s = float(said.group(2))
    finally:
        push_platform.kill()
    sent = UpwardItem.objects.filter(state="sent").count()
    if sent != args.backlog:
        raise SystemExit(f"the push left {args.backlog - sent} items unsent")
    ceiling, push = args.backlog / ceiling_s, args.backlog / push_s
    print(f"upward push — {datetime.now(CST):%Y-%m-%d}, commit {commit()}")
    print(f"machine: {machine()}")
    print(f"backlog {args.backlog:,} ratings (realistic mix: " + ", ".join(f"{k} {v:.0%}" for k, v in mix.items())
          + f"), batches of {args.batch}, profile provincial; filled in {fill_s:.0f} s")
    print(f"  platform ceiling: pre-built batches, one signed client  {ceiling:9,.0f} ratings/s")
    drain = args.backlog / drain_s
    print(f"  push_upward --once, its drain by its own clock          {drain:9,.0f} ratings/s "
          f"= {drain / ceiling:.2f} x ceiling")
    print(f"  the same command, process start-up included ({push_s - drain_s:.2f} s)  {push:9,.0f} ratings/s "
          f"= {push / ceiling:.2f} x ceiling")
    report("upward_push", {"backlog": args.backlog, "batch": args.batch, "ceiling_per_s": ceiling,
                           "drain_per_s": drain, "push_per_s": push, "drain_ratio": drain / ceiling,
                           "start_up_s": push_s - drain_s})


def _free_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


if __name__ == "__main__":
    main()
