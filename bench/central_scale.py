"""The central server at scale, on SQLite and on PostgreSQL, each beside a floor from the same run.

1. Ingest: ``ingest()`` (validation, binding to the terminal's window and roster, dedup against
   stored ids, case places, work orders for bad ratings, chain notes, each rating queued for the
   one upward platform configured) taking batches of 1,000
   fresh ratings (the daemon's batch), then the same batches again (all duplicates), beside the
   floor: rows of the same size prepared beforehand and loaded bare, 1,000 per transaction — an
   ``executemany`` INSERT on SQLite, COPY on PostgreSQL (its fastest way to load rows). A second
   floor loads, the same way, every row ingest writes for a realistic batch: the ratings, their
   upward queue rows and the bad ones' work orders. Three times, in turn: the realistic mix, an
   all-good one and the all-bad one (every rating opening a work order), stated and checked.
2. Dashboard: with ``--dashboard-rows`` ratings (1,000,000) spread over a year at 30 windows, the
   dashboard page (default 30 days and a whole year) and the statistics page by staff member,
   rendered through Django's test client, beside the bare grouped count it rests on. The ratings'
   terminal is enrolled before that year, so each keeps its own time; the share in the last 30
   days is checked (about 8 %), so the table cannot silently become one day's.

Each backend runs in a child process of its own with a fresh database (SQLite file with WAL and
synchronous=FULL, as served; PostgreSQL: a private server from scripts/postgres.py).

    .venv/bin/python bench/central_scale.py [--ratings 20000] [--dashboard-rows 1000000] [--backend both] [--smoke]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import commit, draw_level, machine, report, shares, use_code_root  # noqa: E402

use_code_root()

CST = timezone(timedelta(hours=8))
WINDOWS = [f"W{i:02d}" for i in range(1, 31)]
BATCH = 1000
STAFF = [f"S{i:03d}" for i in range(200)]
MIXES = ("realistic", "good", "bad")


def wire_ratings(n: int, terminal_id: str, window: str, rng: random.Random, spread_days: float = 0,
                 mix: str = "realistic") -> list[dict]:
    from terminal.core.channels import InputDevice
    from terminal.core.rating import Rating
    now = datetime.now(CST)
    out = []
    for _ in range(n):
        level = draw_level(rng, mix)
        extra = {"reasons": ("slow",), "text": "等候时间较长" if rng.random() < 0.3 else ""} if level.is_bad else {}
        out.append(Rating.create(level=level, device=InputDevice.TOUCHSCREEN,
                                 now=now - timedelta(days=rng.random() * spread_days), mono_ms=rng.randrange(10 ** 8),
                                 boot_id="b" * 32, clock_synced=True, terminal_id=terminal_id, window=window,
                                 app_version="bench", staff_no=rng.choice(STAFF), case_no=f"C{rng.getrandbits(60):x}",
                                 **extra).to_wire())
    return out


def bare_load(connection, model, rows: list[list]) -> None:
    """The floor: values already adapted, loaded as bare as the database allows."""
    table = model._meta.db_table
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    columns = ", ".join(connection.ops.quote_name(f.column) for f in fields)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            with cursor.cursor.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        else:
            cursor.executemany(f"INSERT INTO {table} ({columns}) VALUES ({', '.join(['%s'] * len(fields))})", rows)


def adapted(connection, model, rows: list[dict]) -> list[list]:
    """The rows as the driver takes them, made before the clock starts."""
    fields = [f for f in model._meta.concrete_fields if not f.primary_key]
    now = datetime.now(timezone.utc)
    return [[f.get_db_prep_save({**row, "received_at": now}[f.attname], connection) for f in fields] for row in rows]


def child(args) -> dict:
    """One backend, in this process: Django set up on the database the parent chose."""
    os.environ["DJANGO_SETTINGS_MODULE"] = "central.settings"
    import django
    django.setup()
    import central.wsgi  # noqa: F401 (loaded as each server worker loads it, which freezes what is loaded)
    from django.core.management import call_command
    from django.db import connection, transaction

    from central.ratings import auth
    from django.utils import timezone as django_timezone

    from central.ratings.ingest import RATINGS, Binding, ingest, insert_rows, select_in
    from central.ratings.models import Department, Hall, Policy, Rating, Staff, UpwardItem, Window, WorkOrder
    from terminal.core.rating import Rating as WireRating

    call_command("migrate", verbosity=0)
    hall = Hall.objects.create(code="H-BENCH", name="基准大厅")
    dept = Department.objects.create(code="11440100MB2C000010", name="基准部门")
    for code in WINDOWS:
        Window.objects.create(hall=hall, department=dept, code=code, name=f"{code} 窗口")
    w01 = Window.objects.get(code="W01")
    from central.ratings import exports
    from central.ratings.models import UpwardPlatform  # a hall reports upward: ingest queues each rating for it
    platform = UpwardPlatform.objects.create(code="PROV", name="省平台", profile=exports.shipped_text("provincial"))
    Staff.objects.bulk_create([Staff(staff_no=no, name=f"工作人员{no}", window=w01) for no in STAFF])
    terminal = auth.enroll(auth.issue_code(w01)[0])
    # enrolled more than a year ago: the year of ratings below is plausible, so each keeps its own
    # time (a rating dated before its terminal's enrollment is stored at the time it arrived)
    type(terminal).objects.filter(pk=terminal.pk).update(enrolled_at=datetime.now(timezone.utc) - timedelta(days=400))
    terminal = type(terminal).objects.select_related("window").get(pk=terminal.pk)
    binding = Binding.of(terminal, set())
    rng = random.Random(1)
    result = {"backend": connection.vendor, "ratings": args.ratings, "batch": BATCH}

    def prepared(items):
        return adapted(connection, Rating, [RATINGS.fields(WireRating.from_wire(i), "d" * 64, binding) for i in items])

    def rows_ingest_writes(items, platform):
        """The second floor: every row ingest writes for a realistic batch, values adapted beforehand:
        the ratings, each one's upward queue row and the bad ones' work orders (their rating's key
        read back by id, as ingest must)."""
        from central.ratings import upward, workorders
        ratings = [RATINGS.fields(WireRating.from_wire(i), "d" * 64, binding) for i in items]
        queued = adapted(connection, UpwardItem, [upward._pending(platform, r["rating_id"], "rating", django_timezone.now())
                                                  for r in ratings])
        bad = [r["rating_id"] for r in ratings if r["level"] in workorders.BAD_LEVELS]
        opened_on = datetime.now(CST).date()
        order = {f.attname: f.get_default() for f in WorkOrder._meta.concrete_fields if not f.primary_key}
        order.update(window_code="W01", department_id=w01.department_id, opened_on=opened_on,
                     **workorders.deadlines(opened_on, Policy.current()))
        order_row = adapted(connection, WorkOrder, [order])[0]
        return adapted(connection, Rating, ratings), queued, bad, order_row

    def load_every_row(ratings, queued, bad, order_row):
        bare_load(connection, Rating, ratings)
        bare_load(connection, UpwardItem, queued)
        column = [f.attname for f in WorkOrder._meta.concrete_fields if not f.primary_key].index("rating_id")
        keys = select_in(Rating, "rating_id", bad, ["id"])
        bare_load(connection, WorkOrder, [order_row[:column] + [pk] + order_row[column + 1:] for (pk,) in keys])

    warm = wire_ratings(BATCH, terminal.terminal_id, "W01", rng)
    ingest(warm, terminal)
    with transaction.atomic():
        bare_load(connection, Rating, prepared(wire_ratings(BATCH, terminal.terminal_id, "W01", rng)))
    nb = args.ratings // BATCH
    batches = {mix: [wire_ratings(BATCH, terminal.terminal_id, "W01", rng, mix=mix) for _ in range(nb)]
               for mix in MIXES}
    for mix, made in batches.items():
        result[f"{mix}_shares"] = shares([item["level"] for batch in made for item in batch], mix)
    floor_rows = [prepared(wire_ratings(BATCH, terminal.terminal_id, "W01", rng)) for _ in range(nb)]
    every_row = [rows_ingest_writes(wire_ratings(BATCH, terminal.terminal_id, "W01", rng), platform) for _ in range(nb)]
    spent = {"floor": 0.0, "every_row": 0.0, **{mix: 0.0 for mix in MIXES}}
    orders_before = WorkOrder.objects.count()
    # batch by batch, the floors and each mix in turn: every one meets the same tables
    for i in range(nb):
        t0 = time.perf_counter()
        with transaction.atomic():
            bare_load(connection, Rating, floor_rows[i])
        spent["floor"] += time.perf_counter() - t0
        t0 = time.perf_counter()
        with transaction.atomic():
            load_every_row(*every_row[i])
        spent["every_row"] += time.perf_counter() - t0
        for mix in MIXES:
            t0 = time.perf_counter()
            statuses = ingest(batches[mix][i], terminal)
            spent[mix] += time.perf_counter() - t0
            assert all(s.status == "accepted" for s in statuses), {s.reason for s in statuses if s.reason}
    n = nb * BATCH
    result["floor_per_s"] = n / spent["floor"]
    result["every_row_per_s"] = n / spent["every_row"]
    for mix in MIXES:
        result[f"{mix}_ingest_per_s"] = n / spent[mix]
    result["work_orders"] = WorkOrder.objects.count() - orders_before - sum(len(rows[2]) for rows in every_row)  # ingest's
    t0 = time.perf_counter()
    for batch in batches["realistic"]:
        assert all(s.status == "duplicate" for s in ingest(batch, terminal))
    result["replay_per_s"] = n / (time.perf_counter() - t0)

    # -- dashboard with a large table ---------------------------------------------------------
    t0 = time.perf_counter()
    have = Rating.objects.count()
    template = [RATINGS.fields(WireRating.from_wire(item), "d" * 64, binding)
                for item in wire_ratings(2000, terminal.terminal_id, "W01", rng, spread_days=365)]
    # up to --dashboard-rows in all, and never fewer than one template's year (the smoke run's
    # ingest alone can pass its small --dashboard-rows, and the spread is checked below)
    target, made = max(args.dashboard_rows - have, len(template)), 0
    while made < target:
        rows = []
        for row in template:
            n = made + len(rows)
            rated_at = row["rated_at"] - timedelta(seconds=n % 977)
            rows.append({**row, "rating_id": f"bulk-{n:09d}", "window_code": WINDOWS[n % len(WINDOWS)],
                         "rated_at": rated_at, "rated_on": rated_at.astimezone(CST).date()})
            if made + len(rows) >= target:
                break
        with transaction.atomic():
            insert_rows(Rating, rows)
        made += len(rows)
    with connection.cursor() as c:  # fresh statistics for the planner, as a maintained server has
        c.execute("ANALYZE ratings_rating" if connection.vendor == "postgresql" else "ANALYZE")
    result["load_s"] = time.perf_counter() - t0
    result["rows"] = Rating.objects.count()
    bulk = Rating.objects.filter(rating_id__startswith="bulk-")
    recent = bulk.filter(rated_on__gte=(datetime.now(CST) - timedelta(days=29)).date()).count()
    result["share_last_30_days"] = recent / max(1, bulk.count())
    if not 0.04 < result["share_last_30_days"] < 0.2:  # a year, evenly: 30/365 = 8 %
        raise SystemExit(f"workload drifted: {result['share_last_30_days']:.0%} of the loaded ratings are in the last "
                         "30 days, not a year's even spread")

    from django.contrib.auth.models import User
    from django.test import Client
    client = Client()
    client.force_login(User.objects.create_superuser("bench", password="bench-password-long"))
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
                              text=True, cwd=str(Path(__file__).resolve().parent))
        if done.returncode != 0:
            raise SystemExit(f"{backend} run failed:\n{done.stderr[-4000:]}")
        return json.loads(done.stdout.strip().splitlines()[-1])
    finally:
        if server:
            server.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=20000, help="ratings ingested per mix and backend")
    parser.add_argument("--dashboard-rows", type=int, default=1_000_000)
    parser.add_argument("--backend", choices=["sqlite", "postgresql", "both"], default="both")
    parser.add_argument("--smoke", action="store_true", help="tiny sizes: does it still run, and measure what it says")
    parser.add_argument("--child", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.smoke:
        args.ratings, args.dashboard_rows = 2 * BATCH, 5000
    if args.child:
        print(json.dumps(child(args), ensure_ascii=False))
        return
    print(f"central at scale — {datetime.now().date()}, commit {commit()}\nmachine: {machine()}")
    work = Path(tempfile.mkdtemp(prefix="rating-bench-central-"))
    backends = ["sqlite", "postgresql"] if args.backend == "both" else [args.backend]
    figures = {}
    for backend in backends:
        r = run_backend(backend, args, work)
        floor_name = "COPY" if backend == "postgresql" else "bare executemany INSERT"
        print(f"\n[{backend}] ingest, batches of {r['batch']}, {r['ratings']:,} ratings per mix, taken in turn")
        print(f"  {floor_name} of prepared rows (floor) {r['floor_per_s']:9,.0f} ratings/s")
        print(f"  the same for every row ingest writes (ratings, upward rows, work orders) {r['every_row_per_s']:9,.0f} "
              f"ratings/s")
        for mix in MIXES:
            shown = ", ".join(f"{k} {v:.0%}" for k, v in r[f"{mix}_shares"].items())
            print(f"  ingest(), {mix} mix ({shown}): {r[f'{mix}_ingest_per_s']:,.0f} ratings/s "
                  f"= {r[f'{mix}_ingest_per_s'] / r['floor_per_s']:.2f} x floor")
        print(f"  realistic ingest / every row it writes: {r['realistic_ingest_per_s'] / r['every_row_per_s']:.2f}")
        print(f"  all-bad / all-good ingest: {r['bad_ingest_per_s'] / r['good_ingest_per_s']:.2f} "
              f"({r['work_orders']} work orders opened)")
        print(f"  the realistic batches replayed (duplicates) {r['replay_per_s']:,.0f} ratings/s")
        print(f"[{backend}] {r['rows']:,} ratings loaded in {r['load_s']:.0f} s; median page times")
        print(f"  its grouped count as bare SQL, 30 days (floor)  {r['floor_group_30d_ms']:8.1f} ms")
        print(f"  dashboard, last 30 days                         {r['dashboard_30d_ms']:8.1f} ms")
        print(f"  its grouped count as bare SQL, a year (floor)   {r['floor_group_365d_ms']:8.1f} ms")
        print(f"  dashboard, a whole year                         {r['dashboard_365d_ms']:8.1f} ms")
        print(f"  statistics by staff member, 30 days             {r['stats_staff_30d_ms']:8.1f} ms")
        print(f"  public page (90 days)                           {r['public_ms']:8.1f} ms")
        figures.update({f"{backend}_{k}": v for k, v in r.items() if isinstance(v, (int, float))})
    shutil.rmtree(work, ignore_errors=True)
    report("central_scale", figures)


if __name__ == "__main__":
    main()
