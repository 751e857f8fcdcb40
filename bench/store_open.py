"""Opening a terminal's store after a year at a busy window: what every start of the kiosk and the
sync daemon pays before it can take a rating or send one.

Builds a store of ``--ratings`` delivered ratings and twice as many events (default 50,000 and
100,000, about 120 MB: a window rated 200 times a working day for a year, each service's events
beside it). The payloads are real ones, recorded through ``Recorder`` and repeated under fresh ids.
Then times ``Store()``: the first open of a boot (SQLite's quick check runs), and later opens in
the same boot of the unchanged file. Floors, same run, same file: a bare ``sqlite3`` open in WAL
mode with one read, and the quick check alone. ``--drop-caches`` (root) also times both opens
after the kernel's page cache is emptied, as after a reboot or under memory pressure.

    .venv/bin/python bench/store_open.py [--ratings 50000] [--opens 20] [--dir DIR] [--drop-caches]
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import commit, machine, report, use_code_root  # noqa: E402

use_code_root()

from terminal.config import Config, TerminalSection  # noqa: E402
from terminal.core.channels import InputDevice  # noqa: E402
from terminal.core.levels import Level  # noqa: E402
from terminal.recorder import Recorder  # noqa: E402
from terminal.store import Store  # noqa: E402

BOOT, NEXT_BOOT = "b" * 32, "c" * 32


def aged_store(folder: Path, ratings: int) -> Path:
    """A store holding ``ratings`` delivered ratings and twice as many events."""
    config = Config(terminal=TerminalSection(data_dir=folder))
    store = Store(config.db_path, boot_id=BOOT)
    recorder = Recorder(config, store)
    for i in range(100):
        recorder.record(Level(1 + i % 5), InputDevice.TOUCHSCREEN, staff_no="SZ0101", case_no=f"C{i:08d}")
    rows = store.db.execute("SELECT level, window, staff_no, rated_at, payload, digest, recorded_at FROM ratings").fetchall()
    store.close()
    db = sqlite3.connect(config.db_path)
    db.executemany("INSERT INTO ratings (id, level, window, staff_no, rated_at, payload, digest, recorded_at, state) "
                   "VALUES (?, ?, ?, ?, ?, ?, ?, ?, 'delivered')",
                   ((uuid.uuid4().hex, *rows[i % len(rows)]) for i in range(ratings)))
    event = '{"kind":"invited","staff_no":"SZ0101","case_no":"C00000001","at":"2026-03-02T09:15:00.000+08:00",' \
            '"terminal_id":"T-DEMO-01","window":"W01","boot_id":"' + "e" * 32 + '","mono_ms":123456789}'
    db.executemany("INSERT INTO events (id, kind, payload, digest, recorded_at, state) VALUES (?, 'invited', ?, ?, ?, 'delivered')",
                   ((uuid.uuid4().hex, event, "d" * 64, "2026-03-02T09:15:00+08:00") for _ in range(2 * ratings)))
    db.commit()
    db.close()
    return config.db_path


def timed(what, n: int) -> list[float]:
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        what()
        samples.append((time.perf_counter() - start) * 1000)
    return samples


def open_store(path: Path, boot_id: str, expect_check: bool) -> None:
    store = Store(path, boot_id=boot_id)
    checked = store.checked
    store.close()
    if checked != expect_check:  # the workload must be what the row says it is
        raise SystemExit(f"workload drifted: an open {'did not check' if expect_check else 'checked'} the store")


def first_open(path: Path) -> None:
    open_store(path, uuid.uuid4().hex, expect_check=True)  # a boot in which nothing was checked yet


def later_open(path: Path) -> None:
    open_store(path, BOOT, expect_check=False)


def bare_open(path: Path) -> None:
    db = sqlite3.connect(path)
    db.execute("PRAGMA journal_mode = WAL").fetchone()
    db.execute("SELECT count(*) FROM chain").fetchone()
    db.close()


def quick_check(path: Path) -> None:
    db = sqlite3.connect(path)
    assert db.execute("PRAGMA quick_check").fetchone()[0] == "ok"
    db.close()


def drop_caches() -> None:
    subprocess.run(["sync"], check=True)
    Path("/proc/sys/vm/drop_caches").write_text("3\n")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=50_000)
    parser.add_argument("--opens", type=int, default=20, help="opens timed of each kind (the median is shown)")
    parser.add_argument("--dir", type=Path, default=Path("var/bench"), help="where the store goes (its disk matters)")
    parser.add_argument("--drop-caches", action="store_true", help="also time opens after emptying the page cache (root)")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        path = aged_store(Path(tmp), args.ratings)
        size_mb = os.path.getsize(path) / 1e6
        quick_check(path)  # the file in the page cache, as for every warm row
        first = timed(lambda: first_open(path), max(3, args.opens // 4))
        open_store(path, BOOT, expect_check=True)  # the boot the later opens are in: checked once
        rows = {"first open of a boot (quick check runs)": first,
                "later open, same boot, file unchanged": timed(lambda: later_open(path), args.opens),
                "floor: bare sqlite3 open in WAL mode, one read": timed(lambda: bare_open(path), args.opens),
                "floor: the quick check alone": timed(lambda: quick_check(path), max(3, args.opens // 4))}
        cold = {}
        if args.drop_caches:
            for name, what in (("later open, same boot, page cache empty", lambda: later_open(path)),  # BOOT's note
                               ("first open of a boot, page cache empty", lambda: first_open(path))):
                samples = []
                for _ in range(3):
                    drop_caches()
                    samples += timed(what, 1)
                cold[name] = samples
        open_store(path, NEXT_BOOT, expect_check=True)  # a new boot checks again
    medians = {name: statistics.median(s) for name, s in {**rows, **cold}.items()}
    print(f"store open: {args.ratings:,} delivered ratings and {2 * args.ratings:,} events, {size_mb:.0f} MB, "
          f"commit {commit()}\nmachine: {machine()}\n")
    print("| open | median ms |\n|---|---|")
    for name, ms in medians.items():
        print(f"| {name} | {ms:.1f} |")
    later, bare = medians["later open, same boot, file unchanged"], medians["floor: bare sqlite3 open in WAL mode, one read"]
    print(f"\nlater open ÷ bare open: {later / bare:.2f}×")
    report("store_open", {"ratings": args.ratings, "size_mb": round(size_mb, 1),
                          **{name: round(ms, 2) for name, ms in medians.items()}})


if __name__ == "__main__":
    main()
