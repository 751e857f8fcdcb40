"""Tamper evidence: every rating and event carries its terminal's gapless sequence number and the
digest of the record before it, and the central server notices what was made and never arrived,
two records in one place, and a chain that began again (explained or not).

The terminal side is the real store and uploader; the central side a real server of its own (its
alert rules set to fire at once) whose timer job, ``rating-central tick``, runs the chain check."""

import json
import shutil
import sqlite3

import pytest

from sync.client import EVENTS
from sync.outbox import Uploader
from terminal import config as config_module
from terminal.core import chain
from terminal.core.levels import Level
from terminal.recorder import Recorder
from terminal.store import Store

from conftest import make_event, make_rating, start_central

pytestmark = [pytest.mark.central, pytest.mark.slow]


@pytest.fixture(scope="module")
def server(tmp_path_factory, central_database_url):
    central = start_central(tmp_path_factory.mktemp("chain-central"), workers=1, database_url=central_database_url())
    central.query("UPDATE ratings_alertrule SET minutes = 0 WHERE kind IN ('chain_gap', 'chain_restart')")
    yield central
    central.stop()


class Terminal:
    """One enrolled terminal: its store, a recorder (which sends a chain restart first), an uploader."""

    def __init__(self, server, folder, creds=None):
        self.server, self.folder = server, folder
        self.creds = creds or server.enroll()
        self.config = config_module.from_dict({"terminal": {"id": self.creds.terminal_id, "window": "W01",
                                                            "data_dir": str(folder)}})
        self.open()

    def open(self):
        self.store = Store(self.folder / "terminal.db")
        self.recorder = Recorder(self.config, self.store)

    def close(self):
        self.store.close()

    def rate(self, n: int, level=Level.SATISFIED) -> list:
        return [self.store.record(make_rating(level, terminal_id=self.creds.terminal_id)) for _ in range(n)]

    def send(self):
        client = self.server.client(self.creds)
        rated = Uploader(self.store, client).drain()
        Uploader(self.store, client, outbox=EVENTS).drain()
        return rated

    def heartbeat(self):
        self.server.client(self.creds).heartbeat({"version": "test", "queue_depth": self.store.counts()["pending"],
                                                  "chain": self.store.chain_head(self.creds.terminal_id)})


def tick(server) -> None:
    done = server.manage("tick")
    assert done.returncode == 0, done.stderr


def alerts(server, terminal_id: str) -> dict[str, str]:
    return dict(server.query("SELECT r.kind, a.detail FROM ratings_alert a JOIN ratings_alertrule r "
                             "ON r.id = a.rule_id WHERE a.subject = ? AND a.cleared_at IS NULL", [terminal_id]))


def chains_of(server, terminal_id: str) -> list[tuple]:
    return server.query("SELECT epoch, contiguous, head_seq, missing, forks, first_of_terminal, restart_why "
                        "FROM ratings_chain WHERE terminal_id = ? ORDER BY first_seen, id", [terminal_id])


def test_records_are_chained_in_order_across_ratings_and_events(server, tmp_path):
    t = Terminal(server, tmp_path)
    ratings = t.rate(2)
    login = t.store.record_event(make_event("login", terminal_id=t.creds.terminal_id))
    ratings += t.rate(1)
    links = [r.chain for r in ratings[:2]] + [login.chain, ratings[2].chain]
    assert [link.seq for link in links] == [1, 2, 3, 4] and len({link.epoch for link in links}) == 1
    assert links[0].prev == chain.GENESIS
    assert links[1].prev == ratings[0].digest() and links[2].prev == ratings[1].digest()
    assert links[3].prev == login.digest()
    assert t.store.chain_head() == {"epoch": links[0].epoch, "seq": 4, "digest": ratings[2].digest()}
    t.send()
    tick(server)
    ((epoch, contiguous, head, missing, forks, first, why),) = chains_of(server, t.creds.terminal_id)
    forks = forks if isinstance(forks, list) else json.loads(forks)  # jsonb on PostgreSQL, text on SQLite
    assert (epoch, contiguous, head, missing, forks, bool(first)) == (links[0].epoch, 4, 4, "", [], True)
    assert alerts(server, t.creds.terminal_id) == {}


def test_a_terminal_enrolled_again_begins_a_chain_of_its_own(server, tmp_path):
    """A terminal enrolled again (its window moved in the fleet's inventory, or provision --force)
    keeps its database. Its new identity's records took the old chain's next places (4, 5) and its
    heartbeat reported the old chain's head as the new identity's: the central server missed 1..3 of
    a terminal that never had them, a false alarm of suppressed records."""
    old = Terminal(server, tmp_path)
    made = old.rate(3)
    assert old.send().delivered == 3
    new = Terminal(server, tmp_path, creds=server.enroll())  # the same database, a new identity
    new.heartbeat()  # nothing made as the new identity yet: the old chain's head is not its
    tick(server)
    assert chains_of(server, new.creds.terminal_id) == []
    ratings = new.rate(2)
    assert [r.chain.seq for r in ratings] == [1, 2] and ratings[0].chain.prev == chain.GENESIS
    assert ratings[0].chain.epoch != made[0].chain.epoch
    assert new.send().delivered == 2
    new.heartbeat()
    tick(server)
    assert [row[:3] for row in chains_of(server, new.creds.terminal_id)] == [(ratings[0].chain.epoch, 2, 2)]
    assert [row[:3] for row in chains_of(server, old.creds.terminal_id)] == [(made[0].chain.epoch, 3, 3)]
    assert alerts(server, new.creds.terminal_id) == {} and alerts(server, old.creds.terminal_id) == {}


def test_a_rating_deleted_on_the_terminal_raises_the_gap_alert_naming_it(server, tmp_path):
    t = Terminal(server, tmp_path)
    ratings = t.rate(6, Level.VERY_DISSATISFIED)
    t.store.db.execute("DELETE FROM ratings WHERE id = ?", [ratings[2].id])  # someone with the SD card
    t.store.db.execute("DELETE FROM ratings WHERE id = ?", [ratings[5].id])  # the last one, too
    assert t.send().delivered == 4
    tick(server)
    assert "缺少第 3 号" in alerts(server, t.creds.terminal_id)["chain_gap"]  # 4 and 5 arrived after it
    t.heartbeat()  # the terminal's own head says 6 exist
    tick(server)
    detail = alerts(server, t.creds.terminal_id)["chain_gap"]
    assert "缺少第 3, 6 号记录" in detail and "已产生、未送达" in detail


def test_a_heartbeat_head_no_chain_can_have_adds_no_chain(server, tmp_path):
    """A head is believed only with an epoch a record could carry (32 lowercase hex) and a whole seq:
    any 32 characters each heartbeat added a chain of nothing, a gap alert of a chain that is not."""
    t = Terminal(server, tmp_path)
    t.rate(1)
    t.send()
    good = t.store.chain_head()
    for head in ({**good, "epoch": "Z" * 32, "seq": 5}, {**good, "epoch": good["epoch"].upper(), "seq": 5},
                 {**good, "epoch": "f" * 32, "seq": True}, {**good, "epoch": "e" * 32, "seq": 2.0}):
        t.server.client(t.creds).heartbeat({"version": "test", "queue_depth": 0, "chain": head})
        tick(server)
    assert [row[:3] for row in chains_of(server, t.creds.terminal_id)] == [(good["epoch"], 1, 1)]
    assert "chain_gap" not in alerts(server, t.creds.terminal_id)
    t.heartbeat()  # its true head is still taken
    tick(server)
    assert [row[:3] for row in chains_of(server, t.creds.terminal_id)] == [(good["epoch"], 1, 1)]


def test_a_refused_record_is_not_a_gap(server, tmp_path):
    t = Terminal(server, tmp_path)
    good = t.rate(1)
    t.store.record(make_rating(terminal_id=t.creds.terminal_id, window="W02"))  # refused: another window
    good += t.rate(1)
    result = t.send()
    assert (result.delivered, result.dead) == (2, 1)
    tick(server)
    assert chains_of(server, t.creds.terminal_id)[0][1:4] == (3, 3, "")
    assert "chain_gap" not in alerts(server, t.creds.terminal_id)


def test_a_restored_backup_forks_the_chain_and_both_records_are_kept(server, tmp_path):
    t = Terminal(server, tmp_path / "t")
    t.rate(3)
    t.send()
    t.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    shutil.copy(tmp_path / "t" / "terminal.db", tmp_path / "backup.db")
    later = t.rate(2, Level.VERY_DISSATISFIED)
    t.send()
    t.close()
    shutil.copy(tmp_path / "backup.db", tmp_path / "t" / "terminal.db")  # the bad ratings "never happened"
    t.open()
    replacements = t.rate(2, Level.VERY_SATISFIED)
    assert [r.chain.seq for r in replacements] == [4, 5]
    assert t.send().delivered == 2  # other ids: the server keeps them, and sees the fork
    tick(server)
    assert "第 4–5 号有两份不同内容" in alerts(server, t.creds.terminal_id)["chain_fork"]
    held = {r[0] for r in server.query("SELECT rating_id FROM ratings_rating WHERE terminal_id = ?",
                                       [t.creds.terminal_id])}
    assert {r.id for r in later + replacements} <= held


def test_a_salvaged_database_restarts_the_chain_and_says_why(server, tmp_path):
    t = Terminal(server, tmp_path)
    first = t.rate(300)
    t.send()
    pending = t.rate(2)
    t.store.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    t.close()
    path = tmp_path / "terminal.db"
    data = bytearray(path.read_bytes())
    root = sqlite3.connect(path).execute("SELECT rootpage FROM sqlite_master WHERE name = 'ratings_outbox'").fetchone()[0]
    data[(root - 1) * 4096 + 8:(root - 1) * 4096 + 200] = b"\xff" * 192  # wreck an index page
    path.write_bytes(bytes(data))
    t.open()  # moved aside, 302 ratings salvaged, a new chain whose first record explains it
    after = t.rate(1)
    assert after[0].chain.epoch != first[0].chain.epoch and after[0].chain.seq == 2
    assert t.send().delivered == 3  # the two salvaged pending ones (old chain) and the new one
    tick(server)
    old, new = chains_of(server, t.creds.terminal_id)
    assert old[1:4] == (302, 302, "") and new[5:] == (False, "database_corrupt")
    assert "chain_restart" not in alerts(server, t.creds.terminal_id)
    assert "chain_gap" not in alerts(server, t.creds.terminal_id)
    detail = json.loads(server.query("SELECT restart_detail FROM ratings_chain WHERE epoch = ?", [new[0]])[0][0])
    assert detail["salvaged"] == {"ratings": 302, "events": 0} and detail["previous"]["epoch"] == old[0]
    assert {r.id for r in pending} <= {r[0] for r in server.query("SELECT rating_id FROM ratings_rating")}


def test_a_deleted_database_restarts_the_chain_and_is_alerted(server, tmp_path):
    t = Terminal(server, tmp_path)
    t.rate(2)
    t.send()
    t.close()
    for part in tmp_path.glob("terminal.db*"):
        if not part.name.endswith(".chain"):
            part.unlink()
    t.open()  # the marker beside it remembers the old chain: the terminal says its database was lost
    t.rate(1)
    t.send()
    tick(server)
    assert "数据库丢失后重建" in alerts(server, t.creds.terminal_id)["chain_restart"]


def test_an_unexplained_restart_is_alerted(server, tmp_path):
    t = Terminal(server, tmp_path)
    t.rate(2)
    t.send()
    t.close()
    for part in tmp_path.glob("terminal.db*"):
        part.unlink()  # database and marker: nothing left to say what happened
    t.open()
    t.rate(1)
    t.send()
    tick(server)
    assert "终端未说明原因" in alerts(server, t.creds.terminal_id)["chain_restart"]


def test_a_terminal_of_the_previous_version_is_accepted_and_shown_unchained(server, tmp_path):
    old = server.enroll()
    unchained = make_rating(terminal_id=old.terminal_id).to_wire()
    assert "chain" not in unchained
    acks, _ = server.client(old).upload({unchained["id"]: json.dumps(unchained)}, {})
    assert acks[unchained["id"]].status == "accepted"
    t = Terminal(server, tmp_path)
    t.rate(1)
    t.send()
    tick(server)
    session = server.login("chain-admin", server.add_user("chain-admin", "hall_admin"))
    page = session.get(f"{server.url}/terminals/", timeout=10).text
    row = lambda terminal_id: page.split(terminal_id, 1)[1].split("</tr>", 1)[0]  # noqa: E731
    assert "未链" in row(old.terminal_id) and "完整" in row(t.creds.terminal_id)


def test_an_event_whose_detail_nests_two_thousand_deep_stops_no_tick(server, tmp_path):
    """An event's ``detail`` is JSON text the terminal wrote, up to 2,000 characters: 1,999 ``[``
    made ``json.loads`` raise RecursionError, which no ``except ValueError`` caught, so one
    terminal's chain restart (or misuse flood) failed ``tick`` on every run, for every terminal."""
    honest = Terminal(server, tmp_path / "honest")
    honest.rate(1)
    honest.send()
    hostile = server.enroll()
    first, second = chain.new_epoch(), chain.new_epoch()
    nested = "[" * 1999
    rating = {**make_rating(terminal_id=hostile.terminal_id).to_wire(), "chain": chain.start(first).to_wire()}
    restart = {**make_event("chain_restart", why="database_missing", detail=nested,
                            terminal_id=hostile.terminal_id).to_wire(), "chain": chain.start(second).to_wire()}
    flood = {**make_event("misuse", why="flood", detail=nested, terminal_id=hostile.terminal_id).to_wire(),
             "chain": chain.start(second).after("0" * 63 + "1").to_wire()}
    client = server.client(hostile)
    assert {a.status for a in client.upload({rating["id"]: json.dumps(rating)}, {})[0].values()} == {"accepted"}
    acks, _ = client.upload({e["id"]: json.dumps(e) for e in (restart, flood)}, {}, EVENTS)
    assert {a.status for a in acks.values()} == {"accepted"}
    server.query("UPDATE ratings_alertrule SET threshold = 1 WHERE kind = 'misuse_burst'")
    try:
        tick(server)
    finally:
        server.query("UPDATE ratings_alertrule SET threshold = 10 WHERE kind = 'misuse_burst'")
    assert "数据库丢失后重建" in alerts(server, hostile.terminal_id)["chain_restart"]
    session = server.login("nest-admin", server.add_user("nest-admin", "hall_admin"))
    assert session.get(f"{server.url}/terminals/", timeout=10).status_code == 200
