"""Wrong clocks, corrupt databases and poison items: bad input loses nothing that was accepted."""

import json
import os
import sqlite3
import subprocess
import sys
import time

import pytest
from datetime import datetime, timedelta, timezone
from pathlib import Path

from sync.outbox import Uploader
from terminal.clock import SystemClock
from terminal.config import Config, TerminalSection
from terminal.core.channels import InputDevice
from terminal.core.levels import Level
from terminal.recorder import Recorder
from terminal.store import Store, StoreError, StoreFull

from conftest import ROOT, make_rating, payloads, wait_for

THREE_YEARS = timedelta(days=3 * 365)


class ClockThreeYearsBehind(SystemClock):
    """A Raspberry Pi that booted without network: its wall clock is years off, not NTP-synced."""

    def now(self):
        return datetime.now().astimezone() - THREE_YEARS

    def wall(self) -> float:
        return time.time() - THREE_YEARS.total_seconds()

    def synced(self) -> bool:
        return False

    @staticmethod
    def boot_id() -> str:
        return "b00710000000000000000000000000ff"


def test_ratings_from_a_clock_three_years_behind_get_corrected_times_originals_kept(tmp_path, central, enrolled):
    clock = ClockThreeYearsBehind()
    config = Config(terminal=TerminalSection(id=enrolled.terminal_id, window="W01", data_dir=tmp_path))
    store = Store(config.db_path)
    recorder = Recorder(config, store, clock)
    ratings = [recorder.record(Level.SATISFIED, InputDevice.TOUCHSCREEN, staff_no="SZ0101") for _ in range(3)]
    client = central.client(enrolled)
    client.wall_clock = clock.wall
    result = Uploader(store, client, clock=clock).drain()  # first request: stale_timestamp, offset learned, resent
    assert result.delivered == 3
    assert abs(client.clock_offset - THREE_YEARS.total_seconds()) < 5
    now = datetime.now(timezone.utc)
    for r in ratings:
        (rated_at, original, source), = central.query(
            "SELECT rated_at, rated_at_terminal, time_source FROM ratings_rating WHERE rating_id = ?", [r.id])
        assert source == "server_boot"
        assert abs((datetime.fromisoformat(rated_at).replace(tzinfo=timezone.utc) - now).total_seconds()) < 30
        assert abs((datetime.fromisoformat(original).replace(tzinfo=timezone.utc) - (now - THREE_YEARS)).total_seconds()) < 30


def test_ntp_synced_time_is_trusted_and_unknown_boots_are_marked(central, enrolled):
    synced = make_rating(terminal_id=enrolled.terminal_id, clock_synced=True)
    unknown_boot = make_rating(terminal_id=enrolled.terminal_id, clock_synced=False, boot_id="f" * 32)
    central.client(enrolled).upload(payloads(synced.to_wire(), unknown_boot.to_wire()), {})
    rows = dict(central.query("SELECT rating_id, time_source FROM ratings_rating WHERE rating_id IN (?, ?)",
                              [synced.id, unknown_boot.id]))
    assert rows == {synced.id: "terminal_ntp", unknown_boot.id: "terminal_unsynced"}


def test_corrupt_database_is_moved_aside_and_new_ratings_are_delivered(tmp_path, central, enrolled):
    path = tmp_path / "terminal.db"
    path.write_bytes(b"this is not a database, the SD card ate it" * 100)
    store = Store(path)
    moved = list(tmp_path.glob("terminal.db.corrupt-*"))
    assert len(moved) == 1 and moved[0].read_bytes().startswith(b"this is not a database")
    assert store.alerts()[0]["kind"] == "database_corrupt"
    r = make_rating(terminal_id=enrolled.terminal_id)
    store.record(r)
    assert Uploader(store, central.client(enrolled)).drain().delivered == 1
    assert central.count("rating_id = ?", [r.id]) == 1


def test_the_database_is_checked_once_a_boot_and_again_whenever_its_file_was_written(tmp_path):
    """SQLite's quick check reads the whole database, and every process paid it at every open: a
    year's store took seconds to open. It runs at the first open of a boot, and at an open after
    anyone wrote to the file, never again for a file it passed unchanged in the same boot."""
    path, boot, reboot = tmp_path / "terminal.db", "b" * 32, "c" * 32
    store = Store(path, boot_id=boot)
    store.record(make_rating())
    store.close()  # the last connection: its WAL is moved into the file
    opens = []
    for boot_id in (boot, boot, boot):
        store = Store(path, boot_id=boot_id)
        opens.append(store.checked)
        store.close()
    assert opens == [True, False, False]  # the file was written since the first open's (none) check
    with sqlite3.connect(path) as db:  # another writer, in this boot
        db.execute("INSERT INTO sync_state (key, value) VALUES ('x', 'y')")
    db.close()
    opens = []
    for boot_id in (boot, boot, reboot, reboot, boot):
        store = Store(path, boot_id=boot_id)
        opens.append(store.checked)
        store.close()
    assert opens == [True, False, True, False, True]
    note = path.with_name("terminal.db.checked")  # hostile or broken notes only bring the check back
    st = path.stat()
    for text in ("{" * 10_000_000, "\x00\xff", "[]", json.dumps({"boot_id": boot, "file": [st.st_ino + 1, st.st_size,
                                                                                       st.st_mtime_ns, st.st_ctime_ns]})):
        note.write_text(text, encoding="latin-1")
        store = Store(path, boot_id=boot)
        assert store.checked, text[:40]
        store.close()
    data = bytearray(path.read_bytes())
    data[4096 + 8:4096 + 200] = b"\xff" * 192  # the card ate a page, in this boot
    path.write_bytes(bytes(data))
    store = Store(path, boot_id=boot)
    assert store.checked and list(tmp_path.glob("terminal.db.corrupt-*"))
    assert store.alerts()[0]["kind"] == "database_corrupt"


def wreck_outbox_index(path: Path) -> None:
    """Damage a closed database as a failing card does: the ratings' outbox index's root page
    overwritten, the rows themselves readable (what the salvage copies)."""
    data = bytearray(path.read_bytes())
    page = 4096
    index_root = sqlite3.connect(path).execute(
        "SELECT rootpage FROM sqlite_master WHERE name = 'ratings_outbox'").fetchone()[0]
    data[(index_root - 1) * page + 8:(index_root - 1) * page + 200] = b"\xff" * 192
    path.write_bytes(bytes(data))


def test_a_second_database_moved_aside_in_the_same_second_never_overwrites_the_first(tmp_path):
    """A board with no real-time clock that boots offline starts each boot at the same saved time
    and checks its database before any time server is reached: two corruptions, two boots apart,
    were moved aside under the same name, and the second overwrote the first (what no salvage
    could read, kept for sqlite3 .recover). Here the first is already there under every name the
    next ten seconds could give."""
    path = tmp_path / "terminal.db"
    now = datetime.now(timezone.utc)
    earlier = {}
    for second in range(10):
        name = f"terminal.db.corrupt-{(now + timedelta(seconds=second)).strftime('%Y%m%dT%H%M%S')}"
        (tmp_path / name).write_bytes(b"the first corruption " + name.encode())
        earlier[name] = (tmp_path / name).read_bytes()
    path.write_bytes(b"this is not a database, the SD card ate it" * 100)
    store = Store(path)
    assert {name: (tmp_path / name).read_bytes() for name in earlier} == earlier
    moved, = (p for p in tmp_path.glob("terminal.db.corrupt-*") if p.name not in earlier)
    assert moved.read_bytes().startswith(b"this is not a database") and moved.name.endswith("-2")
    assert moved.name in store.alerts()[0]["detail"]
    store.close()


def test_readable_ratings_are_salvaged_from_a_damaged_database(tmp_path):
    path = tmp_path / "terminal.db"
    store = Store(path)
    kept = [store.record(make_rating()) for _ in range(300)]
    store.mark_delivered([kept[0].id])
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    wreck_outbox_index(path)

    store = Store(path)
    assert list(tmp_path.glob("terminal.db.corrupt-*"))
    alert = store.alerts()[0]
    assert alert["kind"] == "database_corrupt" and "300 ratings and 0 events salvaged" in alert["detail"]
    assert store.counts() == {"pending": 299, "delivered": 1, "dead": 0}
    assert store.pending(1)[0].wire == kept[1].to_wire()
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_after_a_salvage_every_rating_is_committed_where_the_sync_daemon_sees_it(tmp_path):
    """The salvage's inserts opened a transaction nothing committed: every later write joined it, so
    the salvaged ratings and each new one thanked for stayed in the kiosk's connection alone, unseen
    by the sync daemon, holding the write lock, and gone at a kill -9."""
    path = tmp_path / "terminal.db"
    store = Store(path)
    for _ in range(20):
        store.record(make_rating())
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    wreck_outbox_index(path)
    kiosk = Store(path)
    thanked = kiosk.record(make_rating())
    sync = Store(path)  # the other process
    assert sync.counts() == {"pending": 21, "delivered": 0, "dead": 0}
    assert sync.get(thanked.id) is not None
    sync.set_state(last_success="now")  # and it can write: no lock held for ever
    kiosk.db.conn.close()  # kill -9: nothing left to commit
    assert Store(path).counts()["pending"] == 21


def test_a_held_press_is_salvaged_and_becomes_its_rating(tmp_path):
    """A bad rating waiting for its reasons is held so that a power cut cannot lose it; the power
    cut that also damaged the database must not lose it either."""
    path = tmp_path / "terminal.db"
    store = Store(path)
    for _ in range(20):
        store.record(make_rating())
    pressed = make_rating(Level.VERY_DISSATISFIED)
    store.hold(pressed)
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    wreck_outbox_index(path)
    store = Store(path)
    assert [r.id for r in store.release_held()] == [pressed.id]
    assert store.counts()["pending"] == 21 and store.get(pressed.id)["level"] == 1


def test_a_held_press_that_cannot_be_read_back_stays_held_and_the_terminal_starts(terminal_config):
    """Two presses held at a power cut; a byte of one is garbled inside a page the quick check finds
    sound. Committing the held presses at start raised on it: the window (and with it the kiosk or
    the headless terminal) could not be made at all, a restart loop for good, the sound press beside
    it never a rating. Now the sound one becomes its rating, the garbled one stays held with an
    alert, and the terminal is in service."""
    from terminal import config as config_module
    from terminal.content import Content
    from terminal.window import Window
    config = config_module.load(terminal_config())
    store = Store(config.db_path)
    garbled, sound = make_rating(Level.VERY_DISSATISFIED), make_rating(Level.DISSATISFIED)
    store.hold(garbled)
    store.hold(sound)
    store.db.execute("UPDATE held SET payload = substr(payload, 1, 30) || char(127) WHERE id = ?", [garbled.id])
    store.db.conn.commit()
    assert store.db.execute("PRAGMA quick_check").fetchone() == ("ok",)
    window = Window(config, store, Content.load(config.content_dir))  # the terminal starts
    assert window.fault is None
    assert [row[0] for row in store.db.execute("SELECT id FROM ratings")] == [sound.id]
    assert store.db.execute("SELECT id FROM held").fetchall() == [(garbled.id,)]
    alert = store.alerts()[0]
    assert alert["kind"] == "held_unreadable" and garbled.id in alert["detail"]
    window.swipe("0004521873")
    window.invite(case_no="C-AFTER")
    window.press(Level.SATISFIED, InputDevice.TOUCHSCREEN)
    assert store.db.execute("SELECT count(*) FROM ratings").fetchone() == (2,)
    store.close()


def test_a_chain_restart_reason_that_cannot_be_read_back_neither_stops_starting_nor_recording(tmp_path):
    """The reason a new chain began waits in the chain table until the recorder sends it. Garbled
    there, it raised at every start, and (tried again before every record) failed every record."""
    config = Config(terminal=TerminalSection(id="T-TEST", window="W01", data_dir=tmp_path))
    store = Store(config.db_path)
    store.db.execute("UPDATE chain SET restart = ? WHERE id = 1", ['{"why": "database_corr\x7f'])
    store.db.conn.commit()
    recorder = Recorder(config, store)
    rating = recorder.record(Level.SATISFIED, InputDevice.TOUCHSCREEN, staff_no="SZ0101")
    assert store.get(rating.id) is not None and rating.chain.seq == 1
    assert store.alerts()[0]["kind"] == "chain_restart_unreadable"
    assert store.db.execute("SELECT restart FROM chain").fetchone() == (None,)
    store.close()


def test_one_poison_item_in_500_is_dead_lettered_and_the_queue_goes_on(tmp_path, central, enrolled):
    store = Store(tmp_path / "terminal.db")
    ratings = [make_rating(terminal_id=enrolled.terminal_id) for _ in range(510)]
    for i, r in enumerate(ratings):
        wire = r.to_wire()
        if i == 250:  # written by some older, buggier version: the server will refuse it
            wire["case_no"] = "办件" * 30  # 60 characters: more than the interface allows
        store._insert(wire, "pending")
    result = Uploader(store, central.client(enrolled), batch_size=500).drain()
    assert (result.delivered, result.dead, result.batches) == (509, 1, 2)
    dead = store.db.execute("SELECT id, dead_reason FROM dead_letters").fetchall()
    assert dead == [(ratings[250].id, dead[0][1])] and "case_no" in dead[0][1]
    assert central.count("terminal_id = ?", [enrolled.terminal_id]) == 509


def test_full_database_refuses_the_rating_clearly_and_keeps_the_rest(tmp_path):
    store = Store(tmp_path / "terminal.db")
    store.record(make_rating())
    pages = store.db.execute("PRAGMA page_count").fetchone()[0]
    store.db.execute(f"PRAGMA max_page_count = {pages}")  # the disk is full from here on
    with pytest.raises(StoreFull, match="cannot record rating"):
        for _ in range(100):
            store.record(make_rating(text="满" * 400))
    store.db.execute("PRAGMA max_page_count = 1000000")
    assert store.counts()["pending"] >= 1
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def on_a_small_disk(tmp_path, script: str, *args: str) -> dict:
    """Run ``script`` (formatted with ``root`` and ``tests``) with a 1 MiB tmpfs as its first argument,
    mounted in a private mount namespace (gone with the process); the JSON its last line prints."""
    disk = tmp_path / "disk"
    disk.mkdir()
    path = tmp_path / "on_a_small_disk.py"
    path.write_text(script.format(root=str(ROOT), tests=str(ROOT / "tests")))
    command = f"mount -t tmpfs -o size=1m tmpfs {disk} && exec {sys.executable} {path} {disk} {' '.join(args)}"
    done = subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def fill(disk) -> None:
    """Fill the disk to its last byte, as a runaway log would."""
    with open(disk / "filler", "wb", buffering=0) as filler:
        try:
            while True:
                filler.write(bytes(4096))
        except OSError:
            pass


FULL_AT_OPEN_SCRIPT = r"""
import json, os, sys
sys.path[:0] = [{root!r}, {tests!r}]
from pathlib import Path
from terminal.store import Store
from conftest import make_rating
from test_storage_and_clock import fill, wreck_outbox_index

disk, damaged = Path(sys.argv[1]), sys.argv[2] == "damaged"
db = disk / "terminal.db"
store = Store(db, boot_id="1" * 32)
ids = [store.record(make_rating()).id for _ in range(20)]
store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
store.close()
if damaged:
    wreck_outbox_index(db)
for part in ("-wal", "-shm"):  # as a clean stop leaves it
    Path(f"{{db}}{{part}}").unlink(missing_ok=True)
fill(disk)  # while the terminal is off
refused = None
try:
    Store(db, boot_id="2" * 32)  # the next boot
except Exception as exc:  # (before: an OperationalError)
    refused = f"{{type(exc).__name__}}: {{exc}}"
left = sorted(p.name for p in disk.iterdir() if ".corrupt-" in p.name)
os.unlink(disk / "filler")
store = Store(db, boot_id="3" * 32)
print(json.dumps({{"refused": refused, "moved_while_full": left,
                  "pending": [p.id for p in store.pending(100)] == ids,
                  "alerts": [a["kind"] for a in store.alerts()],
                  "moved_after": sorted(p.name for p in disk.glob("terminal.db.corrupt-*")
                                        if not p.name.endswith(("-wal", "-shm")))}}))
"""


@pytest.mark.parametrize("damaged", [False, True])
def test_a_database_opened_on_a_full_disk_is_refused_clearly_and_none_of_its_ratings_stranded(tmp_path, damaged):
    """The terminal boots with its data disk full (a 1 MiB tmpfs, in a private mount namespace).
    SQLite cannot grow the -shm to run the quick check and says "disk I/O error": the sound database
    was moved aside as corrupt, the new one could not be made, and once room came back the terminal
    started on an empty database, its 20 pending ratings left in the moved file with no alert and
    nothing to salvage them. Now the open is refused as StoreFull and nothing is moved; a database
    that really is damaged is put back if its replacement cannot be made, and salvaged once it can."""
    outcome = on_a_small_disk(tmp_path, FULL_AT_OPEN_SCRIPT, "damaged" if damaged else "sound")
    assert outcome["moved_while_full"] == []  # nothing left aside while the disk was full
    assert outcome["pending"]  # every pending rating where the terminal and the sync daemon read them
    assert outcome["refused"] and outcome["refused"].startswith("StoreFull: cannot open the database")
    assert outcome["alerts"] == (["database_corrupt"] if damaged else [])
    assert len(outcome["moved_after"]) == (1 if damaged else 0)


def in_another_process(code: str) -> str:
    """Run ``code`` in a process of its own (as the other of kiosk and sync daemon), with the tests'
    helpers importable; its output. Never a descriptor of this process's on a database it holds."""
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                          cwd=ROOT / "tests", env={**os.environ, "PYTHONPATH": f"{ROOT}:{ROOT / 'tests'}"})
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_a_database_another_process_moved_aside_is_followed_by_the_stores_that_had_it_open(tmp_path):
    """The kiosk has the database open; the sync daemon restarts, finds it damaged, moves it aside and
    salvages it into a new one. The kiosk went on committing (and thanking for) ratings into the moved
    file, which nothing reads or salvages, and a lane that had it open uploaded from it, blind to the
    new one, until restarted. Now each Store sees the path is another file and opens it again."""
    path = tmp_path / "terminal.db"
    kiosk = Store(path)
    kept = [kiosk.record(make_rating()).id for _ in range(20)]
    kiosk.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    lane = Store(path)  # the upload lane, its queue read before the move
    assert len(lane.pending(100)) == 20
    in_another_process(f"from pathlib import Path; from test_storage_and_clock import wreck_outbox_index; "
                       f"wreck_outbox_index(Path({str(path)!r}))")
    alerts = in_another_process(f"from terminal.store import Store; "
                                f"print([a['kind'] for a in Store({str(path)!r}, boot_id='f' * 32).alerts()])")
    assert alerts.strip() == "['database_corrupt']"
    moved, = (p for p in tmp_path.glob("terminal.db.corrupt-*") if not p.name.endswith(("-wal", "-shm")))

    recorder = Recorder(Config(terminal=TerminalSection(id="T-TEST", window="W01", data_dir=tmp_path)), kiosk)
    thanked = recorder.record(Level.SATISFIED, InputDevice.TOUCHSCREEN, staff_no="SZ0101")  # after the move
    assert [p.id for p in lane.pending(100)] == kept + [thanked.id]  # the lane reads the new file
    restart, = lane.pending(10, table="events")  # the new chain's first place explains it
    assert (restart.wire["kind"], restart.wire["chain"]["seq"], thanked.chain.seq) == ("chain_restart", 1, 2)
    lane.mark_delivered(kept[:5])
    counts = in_another_process(f"from terminal.store import Store; s = Store({str(path)!r}); "
                                f"print(s.counts()['pending'], s.get({thanked.id!r}) is not None)")
    assert counts.split() == ["16", "True"]
    with sqlite3.connect(f"file:{moved}?mode=ro", uri=True) as old:  # (its own file: no lock of ours)
        assert old.execute("SELECT count(*) FROM ratings WHERE id = ?", [thanked.id]).fetchone() == (0,)
    kiosk.close()
    lane.close()


HELD_AT_A_FULL_START_SCRIPT = r"""
import json, os, subprocess, sys
sys.path[:0] = [{root!r}, {tests!r}]
from pathlib import Path
from terminal import config as config_module
from terminal.content import Content
from terminal.core.session import SessionRefused
from terminal.store import Store
from terminal.window import RETRY_S, Window
from test_storage_and_clock import fill

disk = Path(sys.argv[1])
toml = disk / "terminal.toml"
toml.write_text(f'[terminal]\ndemo = true\ndata_dir = "{{disk / "data"}}"\ncontent_dir = "{root}/assets/demo"\n')
config = config_module.load(toml)
held = subprocess.run([sys.executable, "-c", KIOSK, str(toml)], capture_output=True, text=True,
                      env={{**os.environ, "PYTHONPATH": {root!r}}})
fill(disk)
store = Store(config.db_path)
now = [1000.0]
window = Window(config, store, Content.load(config.content_dir), monotonic=lambda: now[0])  # the kiosk restarts
fault = window.fault
try:
    window.invite(case_no="C-NEXT")
    refused = None
except SessionRefused as exc:
    refused = exc.code
os.unlink(disk / "filler")
now[0] += RETRY_S
window.tick()
print(json.dumps({{"held": held.stdout.strip() or held.stderr[-2000:], "fault": fault, "refused": refused,
                  "fault_after": window.fault, "still_held": store.db.execute("SELECT count(*) FROM held").fetchone()[0],
                  "ratings": store.db.execute("SELECT json_extract(payload, '$.case_no'), level FROM ratings").fetchall()}}))
"""
KIOSK = """
import os, signal, sys
from terminal import config as config_module
from terminal.content import Content
from terminal.core.channels import InputDevice
from terminal.store import Store
from terminal.window import Window
config = config_module.load(sys.argv[1])
window = Window(config, Store(config.db_path), Content.load(config.content_dir))
window.swipe("0004521873")
window.invite(case_no="C-HELD")
window.press(1, InputDevice.TOUCHSCREEN)  # very dissatisfied: held while the reasons are asked
print(window.state.value, flush=True)
os.kill(os.getpid(), signal.SIGKILL)
"""


def test_a_kiosk_restarting_on_a_full_disk_with_a_held_press_is_out_of_service_not_dead(tmp_path):
    """A bad rating is held while its reasons are asked; the kiosk is killed, and starts again on a
    full disk. Committing the held press at start raised out of the window's constructor: the kiosk
    could not start at all (systemd restarting it every 2 s, nothing on the screen or the box). Now it
    starts out of service (暂停服务: no invitation taken), and once room comes back the held press
    becomes its rating and the window is back in service by itself."""
    outcome = on_a_small_disk(tmp_path, HELD_AT_A_FULL_START_SCRIPT.replace("KIOSK", repr(KIOSK)))
    assert outcome["held"] == "reasons"
    assert outcome["fault"] and "full" in outcome["fault"] and outcome["refused"] == "out_of_service"
    assert outcome["fault_after"] is None
    assert outcome["ratings"] == [["C-HELD", 1]] and outcome["still_held"] == 0


SYNC_ON_A_FULL_DISK_SCRIPT = r"""
import json, os, signal, subprocess, sys, time
sys.path[:0] = [{root!r}, {tests!r}]
from pathlib import Path
from terminal.credentials import Credentials
from terminal.store import Store
from conftest import BIN, make_rating
from test_storage_and_clock import fill

disk, credentials, log_path = Path(sys.argv[1]), Path(sys.argv[2]), Path(sys.argv[3])
creds = Credentials.load(credentials)
creds.save(disk / "data")
config = disk / "terminal.toml"
config.write_text(f'[terminal]\ndata_dir = "{{disk / "data"}}"\ncontent_dir = "{{disk / "data" / "content"}}"\n'
                  f'[sync]\nserver = "{{creds.server}}"\ninterval = 0.2\ntimeout = 2.0\nbackoff_max = 0.5\n')
kiosk = Store(disk / "data" / "terminal.db")  # the kiosk holds it open: its -wal and -shm exist
ids = [kiosk.record(make_rating(terminal_id=creds.terminal_id)).id for _ in range(30)]
kiosk.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")  # no room left in the WAL either
fill(disk)
with open(log_path, "w") as log:
    daemon = subprocess.Popen([str(BIN / "rating-sync"), "--config", str(config), "run"], stdout=log,
                              stderr=subprocess.STDOUT)
    until = time.monotonic() + 60
    while "refuses" not in log_path.read_text() and time.monotonic() < until:
        time.sleep(0.1)
    while_full = kiosk.counts()
    os.unlink(disk / "filler")
    until = time.monotonic() + 60
    while kiosk.counts()["pending"] and time.monotonic() < until:
        time.sleep(0.1)
    alive = daemon.poll() is None
    daemon.send_signal(signal.SIGTERM)
    daemon.wait(30)
print(json.dumps({{"while_full": while_full, "after": kiosk.counts(), "alive": alive, "ids": ids}}))
"""


def test_the_sync_daemon_on_a_full_disk_marks_nothing_says_so_plainly_and_delivers_once_room_comes(
        tmp_path, central, enrolled):
    """The real daemon uploads from a database on a full disk (a 1 MiB tmpfs in a private mount
    namespace): the server takes the batch, but no rating can be marked delivered. It said so as a
    bug, a traceback every 30 s, whatever its backoff; now the database's refusal is one plain
    line and the uploads wait with the backoff. Nothing is marked that was not; once room comes
    every rating is delivered, each stored once by the server (the resends were duplicates)."""
    enrolled.save(tmp_path / "credentials")
    log = tmp_path / "sync.log"
    outcome = on_a_small_disk(tmp_path, SYNC_ON_A_FULL_DISK_SCRIPT, str(tmp_path / "credentials"), str(log))
    text = log.read_text()
    assert outcome["alive"], text[-3000:]
    assert outcome["while_full"] == {"pending": 30, "delivered": 0, "dead": 0}
    assert outcome["after"] == {"pending": 0, "delivered": 30, "dead": 0}
    assert "the database refuses" in text and "database or disk is full" in text
    assert "Traceback" not in text and "step failed" not in text, text[-3000:]
    stored = central.query("SELECT rating_id FROM ratings_rating WHERE terminal_id = ?", [enrolled.terminal_id])
    assert sorted(r[0] for r in stored) == sorted(outcome["ids"])


def test_a_database_that_cannot_be_opened_again_after_a_move_is_tried_again_at_the_next_use(tmp_path):
    """The file at the path changed (moved aside by the other process) and opening the new one fails
    (here a directory stands there; a full disk or a lock in the field). The store's connection was
    already closed: every later call failed with "Cannot operate on a closed database", out of
    service until a restart. Now reads go on from the file it had, and each write tries the path again."""
    path = tmp_path / "terminal.db"
    store = Store(path)
    kept = store.record(make_rating())
    in_another_process(f"import os\nfor part in ('', '-wal', '-shm'):\n"
                       f"    os.replace({str(path)!r} + part, {str(path)!r} + '.aside' + part)\n"
                       f"os.mkdir({str(path)!r})")
    with pytest.raises(StoreError, match="cannot open the database"):
        store.record(make_rating())
    assert store.get(kept.id) is not None  # read from the file this process had
    path.rmdir()
    again = store.record(make_rating())
    with sqlite3.connect(f"file:{path}?mode=ro", uri=True) as db:  # (another file: no lock of ours on it)
        assert db.execute("SELECT id FROM ratings").fetchall() == [(again.id,)]
        assert json.loads(db.execute("SELECT restart FROM chain").fetchone()[0])["why"] == "database_missing"
    db.close()
    store.close()


def test_a_salvage_cut_short_by_a_kill_is_done_again_at_the_next_open(tmp_path):
    """Power that flaps after a cut damages the database, and cuts again while the store salvages it
    (a year of ratings: seconds on an SD card). Killed there, the next open found the new database
    at the path, empty, and no reason to look at the moved one: every pending rating stranded in
    terminal.db.corrupt-*, no alert, the chain begun again unexplained. Now the move is noted
    until its salvage is committed, and an unfinished one is put back and done again."""
    path = tmp_path / "terminal.db"
    store = Store(path)
    with store._writing():
        kept = [make_rating(text="一" * 100) for _ in range(30_000)]
        for rating in kept:
            store._insert(rating.to_wire(), "pending")
    store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    store.close()
    wreck_outbox_index(path)
    opener = subprocess.Popen([sys.executable, "-c", f"from terminal.store import Store; Store({str(path)!r})"],
                              env={**os.environ, "PYTHONPATH": str(ROOT)})
    # killed once the damaged file is aside and the new one made: while it salvages
    assert wait_for(lambda: path.exists() and any(tmp_path.glob("terminal.db.corrupt-*")), 30, interval=0.001)
    opener.kill()
    opener.wait()
    store = Store(path)
    assert store.counts() == {"pending": 30_000, "delivered": 0, "dead": 0}
    assert [a["kind"] for a in store.alerts()] == ["database_corrupt"]
    assert json.loads(store.db.execute("SELECT restart FROM chain").fetchone()[0])["why"] == "database_corrupt"
    assert len([p for p in tmp_path.glob("terminal.db.corrupt-*") if not p.name.endswith(("-wal", "-shm"))]) == 1
    store.close()
