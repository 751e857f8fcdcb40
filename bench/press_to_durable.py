"""Press-to-durable latency: how long the kiosk's record call takes before it may say thank you.

Measures ``Recorder.record`` (build the rating, validate it, insert it, commit with fsync in WAL
mode) over N ratings, beside the floor of a bare sqlite3 INSERT + COMMIT of a row of the same size
with the same pragmas (WAL, synchronous=FULL), measured in the same run on the same disk.

    .venv/bin/python bench/press_to_durable.py [--n 1000] [--dir DIR]
"""

from __future__ import annotations

import argparse
import sqlite3
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import commit, machine, percentiles, report, use_code_root  # noqa: E402

use_code_root()

from terminal.config import Config, TerminalSection  # noqa: E402
from terminal.core.channels import InputDevice  # noqa: E402
from terminal.core.levels import Level  # noqa: E402
from terminal.recorder import Recorder  # noqa: E402
from terminal.store import Store  # noqa: E402


def bare_floor(path: Path, n: int, payload: str) -> list[float]:
    db = sqlite3.connect(path, isolation_level=None)
    db.execute("PRAGMA journal_mode = WAL")
    db.execute("PRAGMA synchronous = FULL")
    db.execute("CREATE TABLE t (id INTEGER PRIMARY KEY, payload TEXT)")
    samples = []
    for _ in range(n):
        start = time.perf_counter()
        db.execute("BEGIN")
        db.execute("INSERT INTO t (payload) VALUES (?)", [payload])
        db.execute("COMMIT")
        samples.append((time.perf_counter() - start) * 1000)
    db.close()
    return samples


def record_path(folder: Path, n: int) -> tuple[list[float], str]:
    config = Config(terminal=TerminalSection(data_dir=folder))
    store = Store(config.db_path)
    recorder = Recorder(config, store)
    samples = []
    for i in range(n):
        start = time.perf_counter()
        recorder.record(Level(1 + i % 5), InputDevice.TOUCHSCREEN, staff_no="SZ0101")
        samples.append((time.perf_counter() - start) * 1000)
    payload = store.pending(1)[0].payload
    store.close()
    return samples, payload


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=1000)
    parser.add_argument("--dir", type=Path, default=Path("var/bench"), help="where the databases go (its disk matters)")
    args = parser.parse_args()
    args.dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=args.dir) as tmp:
        tmp = Path(tmp)
        record_path(tmp / "warmup", 50)  # imports, page cache
        ours, payload = record_path(tmp / "terminal", args.n)
        floor = bare_floor(tmp / "floor.db", args.n, payload)
    rows = [("bare sqlite3 INSERT+COMMIT, WAL, synchronous=FULL (floor)", percentiles(floor)),
            ("Recorder.record (validate + insert + durable commit)", percentiles(ours))]
    print(f"press-to-durable latency, {args.n} ratings, {len(payload)}-byte payload, commit {commit()}")
    print(f"machine: {machine()}\n")
    print("| path | p50 ms | p99 ms | mean ms | max ms |")
    print("|---|---|---|---|---|")
    for name, p in rows:
        print(f"| {name} | {p['p50']:.3f} | {p['p99']:.3f} | {p['mean']:.3f} | {p['max']:.3f} |")
    print(f"\nratio to floor: p50 {rows[1][1]['p50'] / rows[0][1]['p50']:.2f}x, "
          f"p99 {rows[1][1]['p99'] / rows[0][1]['p99']:.2f}x")
    report("press_to_durable", {"n": args.n, "payload_bytes": len(payload),
                                "record_p50_ms": rows[1][1]["p50"], "record_p99_ms": rows[1][1]["p99"],
                                "floor_p50_ms": rows[0][1]["p50"], "floor_p99_ms": rows[0][1]["p99"]})


if __name__ == "__main__":
    main()
