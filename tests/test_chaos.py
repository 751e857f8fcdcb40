"""Exactly once through everything at once: 20,000 ratings, a network that fails in every way we
know of, and a sync daemon killed with SIGKILL at random moments, again and again.

The kiosk side records with the real ``Recorder`` while the real ``rating-sync run`` process
uploads through ``FaultProxy`` to the real central server. At the end the central server must
hold each of the 20,000 ratings once, identical (same digest) to what the terminal recorded.
"""

import dataclasses
import os
import queue
import random
import signal
import socket
import subprocess
import threading
import time

from terminal import config as terminal_config_module
from terminal.core.channels import InputDevice
from terminal.core.levels import Level
from terminal.recorder import Recorder
from terminal.store import Store

from conftest import BIN
from fault_proxy import FAULTS, FaultProxy

RATINGS = 20_000
KILLS = 20


def test_twenty_thousand_ratings_arrive_exactly_once_through_faults_and_kills(central, enrolled, tmp_path):
    rng = random.Random(20_000)
    faults = [f for f in FAULTS if f != "pass"]
    proxy = FaultProxy(central.url, lambda method, path: rng.choice(faults) if rng.random() < 0.5 else "pass",
                       slow_seconds=1.5)
    data = tmp_path / "data"
    dataclasses.replace(enrolled, server=proxy.url).save(data)
    path = tmp_path / "terminal.toml"
    path.write_text(f'[terminal]\ndata_dir = "{data}"\ncontent_dir = "{data / "content"}"\n'
                    f'[sync]\nserver = "{proxy.url}"\nbatch_size = 500\ninterval = 0.2\n'
                    f"timeout = 1.0\nbackoff_max = 0.5\n", encoding="utf-8")
    config = terminal_config_module.load(path)
    log = (tmp_path / "sync.log").open("a")

    # the kiosk: records while the daemon works and dies, a share of the ratings in each life
    recorded: list = []
    failures: list = []
    orders: queue.Queue = queue.Queue()

    def kiosk() -> None:  # its own thread and its own connection, as the kiosk process has
        store = Store(config.db_path)
        recorder = Recorder(config, store)
        while (n := orders.get()) is not None:
            try:
                for _ in range(n):
                    level = Level(1 + len(recorded) % 5)
                    recorded.append(recorder.record(level, InputDevice.TOUCHSCREEN, staff_no="SZ0101",
                                                    reasons=["slow"] if level.is_bad else []))
            except Exception as exc:  # e.g. "database is locked": the kiosk would have failed a citizen
                failures.append(repr(exc))
            finally:
                orders.task_done()
        store.close()

    threading.Thread(target=kiosk, daemon=True).start()

    def start_daemon(**env) -> subprocess.Popen:
        return subprocess.Popen([str(BIN / "rating-sync"), "--config", str(path), "run"],
                                stdout=log, stderr=subprocess.STDOUT, env={**os.environ, **env})

    store = Store(config.db_path)
    daemon = None
    pending_at_kill = []
    try:
        for life in range(KILLS):
            orders.put(RATINGS // KILLS)
            delivered = store.counts()["delivered"]
            daemon = start_daemon()
            # every other life dies the moment its first batch is acknowledged (the rest of the life's
            # ratings still on the way); the others at a random moment, whatever they were doing
            until = time.monotonic() + rng.uniform(0.3, 2.0)
            while time.monotonic() < until and not (life % 2 and store.counts()["delivered"] > delivered):
                time.sleep(0.005)
            daemon.send_signal(signal.SIGKILL)
            daemon.wait()
            pending_at_kill.append(store.counts()["pending"])
            orders.join()
            assert failures == [], failures  # recording never fails while the daemon works or dies

        # the last life: let it finish, until the daemon itself reports an empty queue to systemd
        notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
        notify.bind(str(tmp_path / "notify.sock"))
        notify.settimeout(1.0)
        daemon = start_daemon(NOTIFY_SOCKET=str(tmp_path / "notify.sock"))
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            assert daemon.poll() is None, (tmp_path / "sync.log").read_text()[-3000:]
            try:
                if "STATUS=0 pending" in notify.recv(4096).decode():
                    break
            except TimeoutError:
                continue
        daemon.send_signal(signal.SIGTERM)
        assert daemon.wait(20) == 0
        notify.close()
    finally:
        if daemon and daemon.poll() is None:
            daemon.kill()
        proxy.close()
        orders.put(None)

    counts = store.counts()
    assert counts == {"pending": 0, "delivered": RATINGS, "dead": 0}, counts
    mine = {r.id: r.digest() for r in recorded}
    assert len(mine) == RATINGS
    local = dict(store.db.execute("SELECT id, digest FROM ratings").fetchall())
    assert local == mine  # the terminal's own rows are what the kiosk recorded
    at_central = central.query("SELECT rating_id, digest FROM ratings_rating WHERE terminal_id = ?",
                               [enrolled.terminal_id])
    assert len(at_central) == RATINGS  # none twice: rating_id is unique, and the count is exact
    assert dict(at_central) == mine  # each one identical to what was recorded
    assert central.query("SELECT count(*) FROM ratings_rejecteditem WHERE terminal_id = ?",
                         [enrolled.terminal_id]) == [(0,)]
    # the test met what it claims: every fault served, and the kills came with work in hand
    assert set(proxy.applied) == set(FAULTS), proxy.applied
    assert len(pending_at_kill) == KILLS and sum(1 for p in pending_at_kill if p) >= KILLS // 2, pending_at_kill
    print(f"\nchaos: {KILLS} SIGKILLs, pending at each: {pending_at_kill}; faults served: {dict(proxy.applied)}")
    store.close()
    log.close()
