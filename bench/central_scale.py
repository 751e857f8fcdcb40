"""The central server at scale, on SQLite and on PostgreSQL, each beside a floor from the same run.

1. Ingest: ``ingest()`` (validation, dedup against stored ids, work orders for bad ratings) taking
   batches of 500 fresh ratings, then the same batches again (all duplicates), beside a bare
   executemany INSERT of the same prepared rows into the same table, 500 per transaction.
2. Dashboard: with ``--dashboard-rows`` ratings (1,000,000) spread over a year at 30 windows, the
   dashboard page (default 30 days and a whole year) and the statistics page by staff member,
   rendered through Django's test client, beside the bare grouped count it rests on.

Each backend runs in a child process of its own with a fresh database (SQLite file with WAL and
synchronous=FULL, as served; PostgreSQL: a private server from scripts/postgres.py).

    .venv/bin/python bench/central_scale.py [--ratings 20000] [--dashboard-rows 1000000] [--backend both]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "scripts"))
sys.path.insert(0, str(ROOT / "bench"))

CST = timezone(timedelta(hours=8))
WINDOWS = [f"W{i:02d}" for i in range(1, 31)]


def wire_ratings(n: int, terminal_id: str, window: str, rng: random.Random, spread_days: float = 0) -> list[dict]:
    from terminal.core.channels import InputDevice
    from terminal.core.levels import Level
    from terminal.core.rating import Rating
    now = datetime.now(CST)
    out = []
    for _ in range(n):
        level = Level(rng.choices([5, 4, 3, 2, 1], [70, 15, 8, 4, 3])[0])
        extra = {"reasons": ("slow",), "text": "等候时间较长" if rng.random() < 0.3 else ""} if level.is_bad else {}
        out.append(Rating.create(level=level, device=InputDevice.TOUCHSCREEN,
                                 now=now - timedelta(days=rng.random() * spread_days), mono_ms=rng.randrange(10 ** 8),
                                 boot_id="b" * 32, clock_synced=True, terminal_id=terminal_id, window=window,
                                 app_version="bench", staff_no=f"S{rng.randrange(200):03d}", **extra).to_wire())
    return out


def child(args) -> dict:
    """One backend, in this process: Django set up on the database the parent chose."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "central.settings"
    import django
    django.setup()
    from django.core.management import call_command
    from django.db import connection, transaction

    from central.ratings import auth
    from central.ratings.ingest import RATINGS, ingest, insert_rows
    from central.ratings.models import Department, Hall, Rating, Window, WorkOrder
    from terminal.core.rating import Rating as WireRating

    call_command("migrate", verbosity=0)
    hall = Hall.objects.create(code="H-BENCH", name="基准大厅")
    dept = Department.objects.create(code="11440100MB2C000010", name="基准部门")
    for code in WINDOWS:
        Window.objects.create(hall=hall, department=dept, code=code, name=f"{code} 窗口")
    terminal = auth.enroll(auth.issue_code(Window.objects.get(code="W01"))[0])
    rng = random.Random(1)
    result = {"backend": connection.vendor, "ratings": args.ratings}

    batches = [wire_ratings(500, terminal.terminal_id, "W01", rng) for _ in range(args.ratings // 500)]
    floor_batches = [wire_ratings(500, terminal.terminal_id, "W01", rng) for _ in range(args.ratings // 500)]
    floor_rows = [[RATINGS.fields(WireRating.from_wire(item), "d" * 64, {}) for item in batch]
                  for batch in floor_batches]
    # Warm both paths up, then alternate them batch by batch so neither gets the colder table.
    warm = wire_ratings(500, terminal.terminal_id, "W01", rng)
    ingest(warm, terminal)
    with transaction.atomic():
        insert_rows(Rating, [RATINGS.fields(WireRating.from_wire(item), "d" * 64, {}) for item in
                             wire_ratings(500, terminal.terminal_id, "W01", rng)])
    floor_s = ingest_s = 0.0
    for rows, batch in zip(floor_rows, batches):
        t0 = time.perf_counter()
        with transaction.atomic():
            insert_rows(Rating, rows)
        t1 = time.perf_counter()
        statuses = ingest(batch, terminal)
        t2 = time.perf_counter()
        assert all(s.status == "accepted" for s in statuses)
        floor_s, ingest_s = floor_s + t1 - t0, ingest_s + t2 - t1
    result["floor_per_s"] = args.ratings / floor_s
    result["ingest_per_s"] = args.ratings / ingest_s
    t0 = time.perf_counter()
    for batch in batches:
        assert all(s.status == "duplicate" for s in ingest(batch, terminal))
    result["replay_per_s"] = args.ratings / (time.perf_counter() - t0)
    result["work_orders"] = WorkOrder.objects.count()

    # -- dashboard with a large table ---------------------------------------------------------
    t0 = time.perf_counter()
    have = Rating.objects.count()
    template = [RATINGS.fields(WireRating.from_wire(item), "d" * 64, {})
                for item in wire_ratings(2000, terminal.terminal_id, "W01", rng, spread_days=365)]
    made = 0
    while have + made < args.dashboard_rows:
        rows = []
        for row in template:
            n = made + len(rows)
            rated_at = row["rated_at"] - timedelta(seconds=n % 977)
            rows.append({**row, "rating_id": f"bulk-{n:09d}", "window_code": WINDOWS[n % len(WINDOWS)],
                         "rated_at": rated_at, "rated_on": rated_at.astimezone(CST).date()})
            if have + made + len(rows) >= args.dashboard_rows:
                break
        with transaction.atomic():
            insert_rows(Rating, rows)
        made += len(rows)
    with connection.cursor() as c:  # fresh statistics for the planner, as a maintained server has
        c.execute("ANALYZE ratings_rating" if connection.vendor == "postgresql" else "ANALYZE")
    result["load_s"] = time.perf_counter() - t0
    result["rows"] = Rating.objects.count()

    from django.contrib.auth.models import User
    from django.test import Client
    User.objects.create_superuser("bench", password="bench-password")
    client = Client()
    client.login(username="bench", password="bench-password")
    year_ago = (datetime.now(CST) - timedelta(days=364)).date().isoformat()

    def timed(fn, runs=5):
        fn()  # warm
        samples = []
        for _ in range(runs):
            t = time.perf_counter()
            fn()
            samples.append((time.perf_counter() - t) * 1000)
        return statistics.median(samples)

    def page(url):
        reply = client.get(url, HTTP_HOST="localhost")
        assert reply.status_code == 200, url

    from django.db.models import Count

    from central.ratings import stats

    def bare_group(days):
        """The dashboard's main query as SQL, run bare: no ORM rows, no view, no template."""
        query = stats.Query(*stats.last_days(days), "window")
        sql, params = query.ratings().values("window_code", "level").annotate(n=Count("id")).order_by().query.sql_with_params()
        with connection.cursor() as c:
            c.execute(sql, params)
            c.fetchall()

    result["floor_group_30d_ms"] = timed(lambda: bare_group(30))
    result["dashboard_30d_ms"] = timed(lambda: page("/"))
    result["floor_group_365d_ms"] = timed(lambda: bare_group(365))
    result["dashboard_365d_ms"] = timed(lambda: page(f"/?from={year_ago}"), runs=3)
    result["stats_staff_30d_ms"] = timed(lambda: page("/stats/?by=staff"))
    result["public_ms"] = timed(lambda: page("/public/"), runs=3)
    return result


def run_backend(backend: str, args, work: Path) -> dict:
    env = {**os.environ, "RATING_CENTRAL_DATA": str(work / backend)}
    env.pop("RATING_CENTRAL_DATABASE_URL", None)
    server = None
    if backend == "postgresql":
        from postgres import start_postgres
        server = start_postgres(Path(tempfile.mkdtemp(prefix="rating-bench-pg-")))
        env["RATING_CENTRAL_DATABASE_URL"] = server.create_database("bench")
    try:
        done = subprocess.run([sys.executable, __file__, "--child", "--ratings", str(args.ratings),
                               "--dashboard-rows", str(args.dashboard_rows)], env=env, capture_output=True,
                              text=True)
        if done.returncode != 0:
            raise SystemExit(f"{backend} run failed:\n{done.stderr[-4000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        if server:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=20000, help="ratings ingested per backend (batches of 500)")
    parser.add_argument("--dashboard-rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        print(json.dumps(child(args)))
        return
    from common import machine
    print(f"machine: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="rating-bench-central-"))
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    for backend in backends:
        r = run_backend(backend, args, work)
        print(f"\n[{backend}] ingest, batches of 500, {r['ratings']:,} ratings")
        print(f"  bare executemany INSERT (floor)        {r['floor_per_s']:9,.0f} ratings/s")
        print(f"  ingest(): validate, dedup, work orders {r['ingest_per_s']:9,.0f} ratings/s "
              f"= {r['ingest_per_s'] / r['floor_per_s']:.2f} x floor ({r['work_orders']} work orders opened)")
        print(f"  the same batches replayed (duplicates) {r['replay_per_s']:9,.0f} ratings/s")
        print(f"[{backend}] {r['rows']:,} ratings loaded in {r['load_s']:.0f} s; median page times")
        print(f"  its grouped count as bare SQL, 30 days (floor)  {r['floor_group_30d_ms']:8.1f} ms")
        print(f"  dashboard, last 30 days                         {r['dashboard_30d_ms']:8.1f} ms")
        print(f"  its grouped count as bare SQL, a year (floor)   {r['floor_group_365d_ms']:8.1f} ms")
        print(f"  dashboard, a whole year                         {r['dashboard_365d_ms']:8.1f} ms")
        print(f"  statistics by staff member, 30 days             {r['stats_staff_30d_ms']:8.1f} ms")
        print(f"  public page (90 days)                           {r['public_ms']:8.1f} ms")


if __name__ == "__main__":
    main()
