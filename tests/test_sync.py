"""The sync daemon against the real central server, and against servers that misbehave."""

import dataclasses
import json
import os
import random
import socket
import signal
import subprocess
import threading
import time

import pytest

from sync.backoff import Backoff
from sync.client import CentralClient, TransientError
from sync.outbox import Uploader
from terminal import config as terminal_config_module
from terminal.core.levels import Level
from terminal.store import Store, StoreError

from terminal.credentials import Credentials

import fake_central
from conftest import BIN, make_rating, payloads, wait_for
from fake_central import FakeCentral

NOBODY = Credentials(terminal_id="T-TEST", secret="x" * 43, server="http://unused", window="W01")


@pytest.fixture
def store(tmp_path):
    s = Store(tmp_path / "terminal.db")
    yield s
    s.close()


def test_drain_delivers_everything_once(store, central, enrolled):
    ratings = [make_rating(Level(1 + i % 5), terminal_id=enrolled.terminal_id) for i in range(1200)]
    for r in ratings:
        store.record(r)
    before = central.count()
    result = Uploader(store, central.client(enrolled), batch_size=500).drain()
    assert (result.delivered, result.dead, result.batches) == (1200, 0, 3)
    assert store.counts() == {"pending": 0, "delivered": 1200, "dead": 0}
    assert central.count() == before + 1200
    # forget that they were delivered (a lost acknowledgement): a resend stores nothing new
    store.db.execute("UPDATE ratings SET state = 'pending'")
    result = Uploader(store, central.client(enrolled)).drain()
    assert result.delivered == 1200 and central.count() == before + 1200


def test_the_next_batch_is_made_while_the_one_before_is_on_its_way(store, central, enrolled):
    """The upload thread only sends: the next batch is read and compressed meanwhile, so the
    server does not wait on the terminal between two batches (bench/sync_drain.py)."""
    for i in range(900):
        store.record(make_rating(Level(1 + i % 5), terminal_id=enrolled.terminal_id))
    client = central.client(enrolled)
    made, next_made, overlapped = [], threading.Event(), []
    make_body, send = client.batch_body, client.upload

    def batch_body(payloads, clock, outbox):
        made.append(len(payloads))
        if len(made) == 2:
            next_made.set()
        return make_body(payloads, clock, outbox)

    def upload(payloads, clock, outbox, body=None):
        if not overlapped:  # the first batch waits, on the wire, for the second to be made
            overlapped.append(next_made.wait(10))
        return send(payloads, clock, outbox, body)

    client.batch_body, client.upload = batch_body, upload
    result = Uploader(store, client, batch_size=300).drain()
    assert overlapped == [True] and made == [300, 300, 300]
    assert (result.delivered, result.batches) == (900, 3) and store.counts()["pending"] == 0


def test_rejected_item_becomes_a_dead_letter_and_the_rest_go_on(store, central, enrolled):
    good = [make_rating(terminal_id=enrolled.terminal_id) for _ in range(4)]
    poison = make_rating(terminal_id=enrolled.terminal_id)
    for r in good[:2] + [poison] + good[2:]:
        store.record(r)
    # the same id already at the server with other content: the server refuses it for good
    central.client(enrolled).upload(payloads({**poison.to_wire(), "level": 1}), {})
    result = Uploader(store, central.client(enrolled)).drain()
    assert (result.delivered, result.dead) == (4, 1)
    dead = store.get(poison.id)
    assert dead["state"] == "dead" and dead["dead_reason"].startswith("id_conflict")


class Misbehaving(FakeCentral):
    status, content_type, body, headers_out = 200, "text/html", b"<html>Welcome to hall Wi-Fi</html>", {}

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.answer(self.status, self.body, self.content_type, self.headers_out)


@pytest.fixture
def misbehaving():
    """A server answering one way; ``signed``: with the terminal's secret (a buggy server of
    ours), else unsigned (a captive portal, a proxy, an impostor)."""
    def serve(status, content_type, body, headers_out=None, signed=False):
        handler = type("H", (Misbehaving,), dict(status=status, content_type=content_type, body=body,
                                                 headers_out=headers_out or {},
                                                 secret=NOBODY.secret if signed else None))
        server, url = fake_central.serve(handler)
        servers.append(server)
        return url
    servers = []
    yield serve
    for s in servers:
        s.shutdown()


@pytest.mark.parametrize("status, content_type, body, signed, why", [
    (200, "text/html", b"<html>Welcome to hall Wi-Fi</html>", False, "not signed"),
    (200, "application/json", b'{"results": []}', False, "not signed"),  # a proxy's lookalike
    (200, "text/html", b"<html>Welcome to hall Wi-Fi</html>", True, "captive portal"),
    (200, "application/json", b'{"ok": true}', True, "malformed acknowledgement"),
    (200, "application/json", b'{"results": [{"id": "nobody", "status": "accepted"}]}', True, "no acknowledgement"),
    (502, "text/html", b"bad gateway", False, "not signed"),
    (502, "text/html", b"bad gateway", True, "HTTP 502"),
])
def test_only_a_valid_acknowledgement_counts(store, misbehaving, status, content_type, body, signed, why):
    r = make_rating()
    store.record(r)
    with pytest.raises(TransientError, match=why):
        Uploader(store, CentralClient(misbehaving(status, content_type, body, signed=signed), NOBODY)).drain()
    row = store.get(r.id)
    assert row["state"] == "pending" and row["attempts"] == 1 and row["last_error"]


def test_retry_after_is_reported(store, misbehaving):
    store.record(make_rating())
    url = misbehaving(429, "application/json", b'{"error": "slow down"}', {"Retry-After": "7"}, signed=True)
    with pytest.raises(TransientError) as caught:
        Uploader(store, CentralClient(url, NOBODY)).drain()
    assert caught.value.retry_after == 7 and caught.value.status == 429


def test_backoff_is_jittered_growing_capped_and_honours_retry_after():
    b = Backoff(base=1, cap=60, rng=random.Random(4))
    delays = [b.next_delay() for _ in range(12)]
    ceilings = [min(60, 2 ** i) for i in range(12)]
    assert all(0 <= d <= c for d, c in zip(delays, ceilings))
    assert max(delays[8:]) > 8  # it does grow
    assert b.next_delay(retry_after=45) >= 45
    assert b.next_delay(retry_after=10_000) == 60
    b.reset()
    assert b.next_delay() <= 1


def test_backoff_keeps_its_cap_after_a_long_weekend_of_failures():
    """Thousands of failures in a row (a hall offline for days at the 300 s cap) stay at the cap:
    2 ** 1024 as a float overflowed, and the daemon then retried every 30 s with a traceback."""
    b = Backoff(base=1.0, cap=300.0, rng=random.Random(5))  # as the daemon makes it: floats
    delays = [b.next_delay() for _ in range(5000)]
    assert all(0 <= d <= 300 for d in delays) and max(delays[-100:]) > 150
    assert b.next_delay(retry_after=20) >= 20


def test_once_exits_nonzero_and_keeps_ratings_when_server_is_down(terminal_config, tmp_path):
    config = terminal_config()
    dataclasses.replace(NOBODY, server="http://127.0.0.1:9").save(tmp_path / "data")  # connection refused
    store = Store(tmp_path / "data" / "terminal.db")
    store.record(make_rating())
    done = subprocess.run([str(BIN / "rating-sync"), "--config", str(config), "run", "--once"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "1 ratings stay pending" in done.stderr
    assert store.counts()["pending"] == 1


def test_a_garbled_sync_state_neither_keeps_the_daemon_from_starting_nor_stops_its_heartbeat(terminal_config, tmp_path,
                                                                                              central, enrolled):
    """A byte garbled in a sync_state value, inside a page whose structure the quick check finds
    sound, and an offset that reads back as NaN: the daemon could not start (its first read of the
    state raised), under systemd a restart loop that never delivered a rating again."""
    config = terminal_config(server=central.url)
    enrolled.save(tmp_path / "data")
    store = Store(tmp_path / "data" / "terminal.db")
    rating = store.record(make_rating(terminal_id=enrolled.terminal_id))
    store.set_state(devices=[{"device": "button_box", "connected": True}], clock_offset_s=float("nan"))
    store.db.execute("UPDATE sync_state SET value = substr(value, 1, 20) || char(127) WHERE key = 'devices'")
    store.db.conn.commit()
    assert store.db.execute("PRAGMA quick_check").fetchone() == ("ok",)
    done = subprocess.run([str(BIN / "rating-sync"), "--config", str(config), "run", "--once"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr[-2000:]
    assert store.get(rating.id)["state"] == "delivered"
    from sync.daemon import SyncDaemon
    daemon = SyncDaemon(terminal_config_module.load(config))
    try:
        report = daemon.report()
        assert report["devices"] == [] and abs(report["clock_offset_s"]) < 5  # learned again, not NaN
        assert isinstance(daemon.contact_client.heartbeat(report), dict)  # taken by the server
    finally:
        daemon.close()


@pytest.mark.parametrize("recorded_at, reported", [("2026-13-45T99:00:00+08:0\x7f", None),
                                                   ("2026-12-05T10:00:00", None),  # no zone: naive
                                                   ("0001-01-01T00:00:00+00:00", 2**31 - 1)])
def test_an_oldest_pending_rating_whose_time_is_garbled_or_absurd_does_not_stop_the_heartbeat(
        terminal_config, tmp_path, central, enrolled, recorded_at, reported):
    """The heartbeat reports how long the oldest pending rating has waited, from its recorded_at.
    One garbled (a flipped byte), without a zone, or so old the age passes what the central
    server keeps (a clock that said 1970, from 2038 on) raised or was refused, and no heartbeat
    went while that rating waited."""
    config = terminal_config(server=central.url)
    enrolled.save(tmp_path / "data")
    store = Store(tmp_path / "data" / "terminal.db")
    store.record(make_rating(terminal_id=enrolled.terminal_id))
    store.db.execute("UPDATE ratings SET recorded_at = ?", [recorded_at])
    store.db.conn.commit()
    from sync.daemon import SyncDaemon
    daemon = SyncDaemon(terminal_config_module.load(config))
    try:
        report = daemon.report()
        assert report["oldest_pending_s"] == reported and report["queue_depth"] == 1
        assert isinstance(daemon.contact_client.heartbeat(report), dict)  # taken by the server
    finally:
        daemon.close()
        store.close()


def test_a_single_drain_opens_no_contact_lane(terminal_config, tmp_path):
    """``run --once`` (and ``status``) upload only: the heartbeat lane's own database connection and
    HTTP session are opened on the lane's first use, not at every start."""
    from sync.daemon import SyncDaemon
    config = terminal_config()
    dataclasses.replace(NOBODY, server="http://127.0.0.1:9").save(tmp_path / "data")
    daemon = SyncDaemon(terminal_config_module.load(config))
    with pytest.raises(TransientError):
        Store(tmp_path / "data" / "terminal.db").record(make_rating())
        daemon.upload()
    assert "contact_store" not in vars(daemon) and "contact_client" not in vars(daemon)
    daemon.report()  # the state the contact lane reports opens it
    assert "contact_store" in vars(daemon)
    daemon.close()


def test_daemon_delivers_then_stops_cleanly_on_sigterm(terminal_config, tmp_path, central, enrolled):
    config = terminal_config(server=central.url)
    enrolled.save(tmp_path / "data")
    store = Store(tmp_path / "data" / "terminal.db")
    r = make_rating(terminal_id=enrolled.terminal_id)
    store.record(r)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    daemon = subprocess.Popen([str(BIN / "rating-sync"), "--config", str(config), "run"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                              env={**os.environ, "NOTIFY_SOCKET": str(tmp_path / "notify.sock")})
    deadline = time.monotonic() + 30
    while store.get(r.id)["state"] != "delivered" and time.monotonic() < deadline:
        time.sleep(0.1)
    daemon.send_signal(signal.SIGTERM)
    output, _ = daemon.communicate(timeout=15)
    assert store.get(r.id)["state"] == "delivered"
    assert daemon.returncode == 0 and "rating-sync stopped" in output
    notify.setblocking(False)
    messages = []
    while True:
        try:
            messages.append(notify.recv(4096).decode())
        except BlockingIOError:
            break
    assert messages[0] == "READY=1" and messages[-1] == "STOPPING=1"
    assert any(m.startswith("WATCHDOG=1\nSTATUS=0 pending") for m in messages)


def test_a_batch_the_server_cannot_read_is_split_until_the_bad_row_is_a_dead_letter(store, central, enrolled):
    ratings = [make_rating(terminal_id=enrolled.terminal_id) for _ in range(40)]
    for r in ratings:
        store.record(r)
    # one row's stored JSON damaged (a bad sector, a hand edit): the server cannot parse the batch
    store.db.execute("UPDATE ratings SET payload = substr(payload, 1, 50) WHERE id = ?", [ratings[13].id])
    before = central.count()
    uploader = Uploader(store, central.client(enrolled), batch_size=16)
    result = uploader.drain()
    assert (result.delivered, result.dead) == (39, 1)
    dead = store.get(ratings[13].id)
    assert dead["state"] == "dead" and dead["dead_status"] == 400 and "bad_json" in dead["dead_reason"]
    assert central.count() == before + 39
    for _ in range(60):
        store.record(make_rating(terminal_id=enrolled.terminal_id))
    assert uploader.drain().delivered == 60
    assert uploader.limit == 16  # back to full batches once past the bad row


def test_a_proxy_refusing_a_batch_is_not_mistaken_for_the_server(store, misbehaving):
    store.record(make_rating())
    url = misbehaving(413, "text/html", b"<html>413 Request Entity Too Large</html>")
    with pytest.raises(TransientError, match="not signed"):
        Uploader(store, CentralClient(url, NOBODY)).drain()
    assert store.counts() == {"pending": 1, "delivered": 0, "dead": 0}


def test_a_drain_sends_no_new_batch_after_its_deadline(store, central, enrolled):
    for i in range(300):
        store.record(make_rating(Level(1 + i % 5), terminal_id=enrolled.terminal_id))
    uploader = Uploader(store, central.client(enrolled), batch_size=100)
    result = uploader.drain(until=time.monotonic() - 1)  # the heartbeat is due: it goes first
    assert (result.delivered, result.batches, result.more) == (0, 0, True)
    assert store.counts()["pending"] == 300
    result = uploader.drain(until=time.monotonic() + 60)
    assert (result.delivered, result.more) == (300, False)


def daemon_through(tmp_path, enrolled, proxy, **sync) -> tuple[subprocess.Popen, Store, object]:
    """The real sync daemon, enrolled, talking to the server through ``proxy``; its store and config."""
    data = tmp_path / "data"
    dataclasses.replace(enrolled, server=proxy.url).save(data)
    path = tmp_path / "terminal.toml"
    options = "".join(f"{key} = {value}\n" for key, value in sync.items())
    path.write_text(f'[terminal]\ndata_dir = "{data}"\ncontent_dir = "{data / "content"}"\n'
                    f'[sync]\nserver = "{proxy.url}"\n{options}', encoding="utf-8")
    config = terminal_config_module.load(path)
    store = Store(config.db_path)
    daemon = subprocess.Popen([str(BIN / "rating-sync"), "--config", str(path), "run"],
                              stdout=(tmp_path / "sync.log").open("w"), stderr=subprocess.STDOUT)
    return daemon, store, config


def test_an_upload_held_on_the_wire_never_holds_up_a_heartbeat(tmp_path, central, enrolled):
    """The server (behind a proxy) takes 8 s to answer the first upload; the client waits up to 12.
    Heartbeats every 0.5 s go on all the while: the heartbeat has its own lane, not a turn after
    the upload (where it would wait the whole 8 s)."""
    from fault_proxy import FaultProxy
    heartbeats, held = [], []

    def plan(method, path):
        if path.startswith("/api/v1/heartbeat"):
            heartbeats.append(time.monotonic())
        elif path.startswith("/api/v1/ratings") and not held:
            held.append(time.monotonic())
            return "slow"
        return "pass"
    proxy = FaultProxy(central.url, plan, slow_seconds=8.0)
    waiting = Store(tmp_path / "data" / "terminal.db")
    waiting.record(make_rating(terminal_id=enrolled.terminal_id))
    waiting.close()
    daemon, store, _ = daemon_through(tmp_path, enrolled, proxy, interval=0.2, timeout=12.0, heartbeat_s=0.5)
    try:
        assert wait_for(lambda: store.counts()["delivered"] == 1, 30), (tmp_path / "sync.log").read_text()
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        proxy.close()
    during = [t for t in heartbeats if held[0] + 0.5 < t < held[0] + 7.5]
    assert len(during) >= 7, (held, heartbeats)  # 14 due in those 7 s; one lane would have sent none
    assert central.count("terminal_id = ?", [enrolled.terminal_id]) == 1  # and the slow one counted once
    store.close()


def test_heartbeats_keep_their_interval_while_uploads_fail_a_third_of_the_time(tmp_path, central, enrolled):
    """The real daemon through a proxy that faults a third of the uploads, ratings arriving all the
    while: the server hears a heartbeat every interval (±10 % jitter), never starved by the
    uploads' retries and their backoff (the default, growing to 300 s)."""
    from fault_proxy import FAULTS, FaultProxy
    from terminal.recorder import Recorder
    from terminal.core.channels import InputDevice
    faults = [f for f in FAULTS if f != "pass"]
    pattern = "..x...xx."  # a third of the uploads, two in a row among them, so the backoff grows
    heartbeats, uploads = [], []

    def plan(method, path):
        if path.startswith("/api/v1/heartbeat"):
            heartbeats.append(time.monotonic())
            return "pass"
        if path.startswith("/api/v1/ratings"):
            n = len(uploads)
            faulted_so_far = sum(u != "pass" for u in uploads)
            uploads.append(fault := faults[faulted_so_far % len(faults)] if pattern[n % len(pattern)] == "x" else "pass")
            return fault
        return "pass"
    proxy = FaultProxy(central.url, plan, slow_seconds=1.2)
    daemon, store, config = daemon_through(tmp_path, enrolled, proxy, batch_size=50, interval=0.2, timeout=1.0,
                                           heartbeat_s=2.0)
    recorder = Recorder(config, store)
    try:
        started = time.monotonic()
        end = started + 30
        while time.monotonic() < end:  # a busy hall: a rating every 50 ms
            recorder.record(Level.VERY_SATISFIED, InputDevice.TOUCHSCREEN, staff_no="SZ0101")
            time.sleep(0.05)
    finally:
        daemon.send_signal(signal.SIGTERM)
        daemon.wait(30)
        proxy.close()
    faulted = sum(u != "pass" for u in uploads)
    assert len(uploads) >= 18 and faulted >= 6, (faulted, uploads)  # the faults did happen: six kinds at least, in turn
    gaps = [round(b - a, 2) for a, b in zip(heartbeats, heartbeats[1:])]
    # planned 1.8 to 2.2 s apart, each from when the one before was due; what the server sees adds only
    # each request's own way through a busy machine (it shares two cores with the server and the hall)
    assert heartbeats[0] - started < 5 and end - heartbeats[-1] < 2.2 + 1.0, (started, heartbeats, end)
    assert max(gaps) <= 2.2 + 1.0, gaps
    assert len(heartbeats) >= (heartbeats[-1] - heartbeats[0]) / 2.2, gaps  # none skipped
    store.close()


def test_an_invitation_in_the_heartbeat_answer_goes_to_the_terminals_own_invite_api(tmp_path):
    """The central server's heartbeat answer names a case done at this window: the daemon hands it to
    this terminal's invite API with the terminal's own token, and the next heartbeat says how it went."""
    from sync.daemon import SyncDaemon
    from terminal.invite_api import load_or_create_token
    beats, invitations = [], []

    class Central(FakeCentral):
        secret = "k" * 43

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            beats.append(body)
            offer = {"case_no": "C-2026-0042", "item_code": "ITEM-1", "staff_no": "SZ0101", "ticket_no": "A012"}
            self.answer(200, json.dumps({"content_etag": "", **({"invite": offer} if len(beats) == 1 else {})}).encode())

    class InviteApi(FakeCentral):
        def do_POST(self):
            invitations.append((self.path, self.headers["Authorization"],
                                json.loads(self.rfile.read(int(self.headers["Content-Length"])))))
            self.answer(201, b'{"session_id": "s1", "state": "invited", "expires_in_s": 10}')
    central, url = fake_central.serve(Central)
    invite, invite_url = fake_central.serve(InviteApi)
    data = tmp_path / "data"
    Credentials(terminal_id="T-INVITED", secret="k" * 43, server=url, window="W01").save(data)
    path = tmp_path / "terminal.toml"
    path.write_text(f'[terminal]\ndata_dir = "{data}"\ncontent_dir = "{data / "content"}"\n'
                    f'[sync]\nserver = "{url}"\ntimeout = 5.0\nheartbeat_s = 60.0\ncontent_s = 3600.0\n'
                    f'[invite]\nlisten = "{invite_url.removeprefix("http://")}"\n', encoding="utf-8")
    daemon = SyncDaemon(terminal_config_module.load(path))
    kiosk = Store(data / "terminal.db")
    try:
        daemon.next_content = time.monotonic() + 3600
        # the database refuses the daemon's bookkeeping after the heartbeat: the kiosk holds the write
        # lock past the busy timeout. The invitation in the answer was dropped with it, and the server,
        # having offered the case, never offers it again.
        daemon.contact_store.db.execute("PRAGMA busy_timeout = 50")
        kiosk.db.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="database is locked"):
            daemon.contact_step()
        kiosk.db.conn.rollback()
        assert invitations == [("/v1/invite", f"Bearer {load_or_create_token(data / 'invite-token')}",
                                {"case_no": "C-2026-0042", "item_code": "ITEM-1", "staff_no": "SZ0101"})]
        assert "invite_results" not in beats[0]
        daemon.next_heartbeat = 0.0
        daemon.contact_step()
        assert beats[1]["invite_results"] == [{"case_no": "C-2026-0042", "outcome": "invited"}]
        daemon.next_heartbeat = 0.0
        daemon.contact_step()
        assert "invite_results" not in beats[2]  # told once, heard: not again
    finally:
        daemon.close()
        kiosk.close()
        central.shutdown()
        invite.shutdown()


class Trickle(FakeCentral):
    """A server (or a proxy before it) that signs its answer's head, then sends the body a byte
    every 0.1 s: each read comes well within the client's timeout, the answer never ends (15 s)."""
    secret = NOBODY.secret
    sha256 = "ab" * 32

    def trickle(self):
        if self.command == "POST":
            self.rfile.read(int(self.headers["Content-Length"]))
        self.answer(200, b"", "application/json", body_sha256=self.sha256 if "/files/" in self.path else None,
                    declared=100_000)
        end = time.monotonic() + 15
        try:
            while time.monotonic() < end:
                self.wfile.write(b" ")
                self.wfile.flush()
                time.sleep(0.1)
        except OSError:
            pass
    do_GET = do_POST = trickle


@pytest.mark.parametrize("call", ["heartbeat", "fetch_file"])
def test_an_answer_trickled_within_the_read_timeout_is_given_up_at_the_deadline(call):
    """requests' timeout bounds each read, not the call: without a deadline of its own the contact
    lane's heartbeat (or a content file) waited on such an answer for ever."""
    import io
    server, url = fake_central.serve(Trickle)
    client = CentralClient(url, NOBODY, timeout=0.5)
    took, error = given_up(server, lambda: client.heartbeat({}) if call == "heartbeat"
                           else client.fetch_file(Trickle.sha256, 100_000, io.BytesIO()))
    assert client.deadline_s == 2.0 and took < client.deadline_s + client.timeout + 1.0, took
    assert "not complete within its deadline" in error


def given_up(server, call) -> tuple[float, str]:
    """How long ``call`` took to fail with TransientError, and what it said; the test fails if it
    still waits after 10 s (the trickling ``server`` goes on for 15)."""
    outcome = []

    def run():
        started = time.monotonic()
        try:
            call()
        except TransientError as exc:
            outcome.append((time.monotonic() - started, str(exc)))
    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(10)
    server.shutdown()
    assert not thread.is_alive(), "the call still waits on the trickle after 10 s"
    return outcome[0]


HeadTrickle = fake_central.trickling(b"HTTP/1.1 200 OK\r\nX-Padding: ")  # its head a byte every 0.1 s


@pytest.mark.parametrize("call", ["heartbeat", "upload", "enroll", "upward"])
def test_an_answers_head_trickled_within_the_read_timeout_is_given_up_at_the_deadline(call):
    """The deadline covered the body only: a head sent a byte at a time held the call in requests
    for as long as the server liked (the daemon's lane until the watchdog restarted it; a
    platform's upward push with no watchdog at all)."""
    from sync.client import enroll
    server, url = fake_central.serve(HeadTrickle)
    client = CentralClient(url, NOBODY, timeout=0.5)

    def run():
        if call == "heartbeat":
            client.heartbeat({})
        elif call == "upload":
            client.upload({"r1": '{"id": "r1"}'}, {})
        elif call == "enroll":
            enroll(url, "ABCD-EFGH", timeout=0.5)
        else:
            from central.ratings.export_profile import parse
            from central.ratings.exports import shipped_text
            from central.ratings.upward import PlatformClient
            from sync.outbox import Outbox
            profile = parse(shipped_text("provincial"))
            platform = PlatformClient(url, "key", "s" * 43, profile, timeout=0.5)
            platform.upload({"r1@1": '{"evaluateId": "r1"}'}, {}, Outbox("PROV", profile.path, profile.batch_key))
    took, error = given_up(server, run)
    assert took < client.deadline_s + client.timeout + 1.0, (took, error)
    assert "deadline" in error or call == "enroll", error  # (enroll says it cannot reach the server)


def test_a_server_that_reads_the_request_body_a_trickle_at_a_time_is_given_up_by_the_deadline():
    """The other way to hold a call: take what it sends a little at a time, each bit well within
    the timeout. The body goes in one ``sendall``, which the socket's timeout bounds in all (not
    per write), so an upload larger than every buffer between us gives up within its deadline
    instead of taking the minutes the trickle would."""
    listener = socket.create_server(("127.0.0.1", 0))
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # inherited: the kernel's window stays small
    taken, stop = [], threading.Event()

    def trickle():  # 4 kB every 0.05 s: 80 kB/s, the body below would take over a minute
        connection, _ = listener.accept()
        with connection:
            while not stop.wait(0.05):
                chunk = connection.recv(4096)
                taken.append(len(chunk))
                if not chunk:
                    return
    threading.Thread(target=trickle, daemon=True).start()
    client = CentralClient(f"http://127.0.0.1:{listener.getsockname()[1]}", NOBODY, timeout=0.5)
    records = {f"r{i}": json.dumps({"id": f"r{i}", "text": os.urandom(60_000).hex()}) for i in range(100)}
    started = time.monotonic()
    try:
        with pytest.raises(TransientError):
            client.upload(records, {})  # about 6 MB gzipped: more than loopback's buffers hold
        took = time.monotonic() - started
    finally:
        stop.set()
        listener.close()
    assert sum(taken) > 4096, "the server read nothing: no trickle to hold the call"
    assert took < client.deadline_s + client.timeout + 1.0, took


def test_a_lane_stuck_where_no_timeout_reaches_stops_feeding_the_watchdog(terminal_config, tmp_path, monkeypatch):
    """The upload lane feeds systemd's watchdog while each lane shows progress (a loop round, or an
    answer to one of its calls), not while its thread merely lives: a contact lane answered call
    after call keeps it fed, the same lane stuck gets the daemon restarted."""
    from sync import daemon as daemon_module
    config = terminal_config()
    config.write_text(config.read_text().replace("timeout = 5.0", "timeout = 0.1"))
    dataclasses.replace(NOBODY, server="http://127.0.0.1:9").save(tmp_path / "data")
    daemon = daemon_module.SyncDaemon(terminal_config_module.load(config))
    monkeypatch.setattr(daemon_module, "STALL_GRACE_S", 0.5, raising=False)  # stalled after 0.4 + 0.1 + 0.5 s
    fed, stuck, stop = [], threading.Event(), threading.Event()
    monkeypatch.setattr(daemon_module.systemd, "notify",
                        lambda message: fed.append(time.monotonic()) if message.startswith("WATCHDOG=1") else None)
    monkeypatch.setattr(daemon, "upload_step", lambda: 0.05)

    def contact_step():  # a long content pull, one file answered every 0.3 s for 3 s; then stuck in a call
        for _ in range(10):
            time.sleep(0.3)
            daemon.contact_client.answered_at = time.monotonic()
        stuck.set()
        stop.wait()
        return 1.0
    monkeypatch.setattr(daemon, "contact_step", contact_step)
    runner = threading.Thread(target=daemon.run, args=(stop,))
    runner.start()
    try:
        assert stuck.wait(10)
        stuck_at = time.monotonic()
        time.sleep(3.0)
    finally:
        stop.set()
        runner.join(10)
        daemon.close()
    busy = [t for t in fed if t < stuck_at]
    assert len(busy) > 20 and max(b - a for a, b in zip(busy, busy[1:])) < 0.5, "a busy lane is progress"
    assert fed[-1] < stuck_at + 1.5, f"still fed {fed[-1] - stuck_at:.1f} s after the contact lane got stuck"


def test_a_heartbeat_holding_a_devices_control_characters_is_still_taken(terminal_config, tmp_path, central, enrolled):
    """A box (or anything else whose words reach the devices state or an error) said its board was
    "RP2040\\x1b[2J": the central server refused every heartbeat holding it (400 bad_heartbeat), and
    the terminal showed offline. The report escapes such text where it is assembled."""
    from sync.daemon import SyncDaemon
    config = terminal_config(server=central.url)
    enrolled.save(tmp_path / "data")
    daemon = SyncDaemon(terminal_config_module.load(config))
    try:
        daemon.contact_store.set_state(devices=[{"device": "button_box", "connected": True, "firmware": "1.2.0\x7f",
                                                 "board": "RP2040\x1b[2J"}], errors={"kiosk": "bad\x07 input"})
        daemon.next_content = time.monotonic() + 3600
        daemon.contact_step()
        state = daemon.contact_store.state()
        assert state.get("last_error") is None and state.get("last_success"), state.get("last_error")
        assert daemon.report()["devices"][0]["board"] == "RP2040\\x1b[2J"  # what it said, made visible
    finally:
        daemon.close()


def test_a_running_daemon_follows_its_terminals_enrollment_and_re_enrollment(terminal_config, tmp_path, central):
    """rating-sync starts at boot, before the screen or provision.toml enrolls the terminal, and
    runs on while a technician enrolls it again (``provision --force``, the old identity revoked):
    it signs with the credentials in the data folder now, not those it read at its start (none,
    or a revoked terminal's), or nothing would reach the server until the next reboot."""
    from sync.daemon import SyncDaemon
    from terminal.core.provision import check_request
    from terminal.provisioning import enroll
    config = terminal_config_module.load(terminal_config())
    daemon = SyncDaemon(config)
    try:
        first = enroll(config, check_request(central.url, central.enroll_code("W01")))
        store = Store(config.db_path)
        store.record(make_rating(terminal_id=first.terminal_id))
        assert daemon.upload().delivered == 1
        daemon.contact_step()
        assert daemon.contact_store.state().get("last_error") is None

        second = enroll(config, check_request(central.url, central.enroll_code("W01")), force=True)
        assert central.manage("revoke", first.terminal_id).returncode == 0
        store.record(make_rating(terminal_id=second.terminal_id))
        assert daemon.upload().delivered == 1
        daemon.next_heartbeat = 0.0
        daemon.contact_step()
        assert daemon.contact_store.state().get("last_error") is None
        assert store.counts() == {**store.counts(), "pending": 0, "dead": 0}
        store.close()
    finally:
        daemon.close()


def test_the_invite_token_never_goes_to_a_proxy_from_the_environment(tmp_path, monkeypatch):
    """The daemon hands a heartbeat's invitation to this terminal's own invite API with its bearer
    token. That call took the proxy from the environment (a technician's shell, a system-wide
    http_proxy): the token went to the proxy, which could then invite at will. Like every other
    call it now ignores the environment."""
    from sync.daemon import SyncDaemon
    seen = []

    class Listener(FakeCentral):
        def do_POST(self):
            seen.append((self.server.server_port, self.headers.get("Authorization", "")))
            self.rfile.read(int(self.headers.get("Content-Length", 0)))
            self.answer(201, b'{"session_id": "s1"}')
    proxy, proxy_url = fake_central.serve(Listener)
    invite, invite_url = fake_central.serve(Listener)
    for name in ("no_proxy", "NO_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("http_proxy", proxy_url)
    monkeypatch.setenv("HTTP_PROXY", proxy_url)
    data = tmp_path / "data"
    path = tmp_path / "terminal.toml"
    path.write_text(f'[terminal]\ndata_dir = "{data}"\n[sync]\nserver = "http://127.0.0.1:9"\n'
                    f'[invite]\nlisten = "{invite_url.removeprefix("http://")}"\n', encoding="utf-8")
    daemon = SyncDaemon(terminal_config_module.load(path))
    try:
        assert daemon.invite_locally({"case_no": "C-1"}) == "invited"
    finally:
        daemon.close()
        proxy.shutdown()
        invite.shutdown()
    assert [port for port, _ in seen] == [invite.server_port]
