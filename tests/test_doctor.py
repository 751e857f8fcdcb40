"""``rating-terminal doctor`` against a healthy simulated terminal — enrolled at the real central
server on loopback, content pulled, the real box firmware on a pseudo-terminal, a serial badge
reader's port, ALSA's null device — and against each failure it checks, each reported with its
advice and the right exit status."""

import json
import os
import sqlite3
import subprocess
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest

from firmware import version as firmware_version
from firmware.cable import Cable
from firmware.sim import SimulatedBox
from terminal import config as config_module
from terminal import doctor

from conftest import BIN, free_port, make_rating, wait_for

HEALTHY = {"config", "credentials", "database", "queue", "dead letters", "disk", "server", "signed request",
           "content", "button box", "badge reader", "audio"}


def write_config(path, data_dir, server, box_port="", badge="", **kiosk):
    kiosk_lines = "".join(f'{k} = "{v}"\n' for k, v in {"audio_device": "null", **kiosk}.items())
    path.write_text(f'[terminal]\ndata_dir = "{data_dir}"\n[kiosk]\n{kiosk_lines}'
                    f'[sync]\nserver = "{server}"\ntimeout = 5.0\n[box]\nport = "{box_port}"\n'
                    f'[badge]\nserial = "{badge}"\n', encoding="utf-8")
    return path


def cli(config_path, *args, env=None):
    return subprocess.run([str(BIN / "rating-terminal"), "--config", str(config_path), *args], capture_output=True,
                          text=True, timeout=60, env={**os.environ, **(env or {})})


@pytest.fixture
def rig(central, tmp_path):
    """A provisioned box-only terminal with its content, its box and its badge reader's port: the
    technician's flow (provision, pull content) through the real commands."""
    cable = Cable()
    box = SimulatedBox(cable.box_end, tmp_path / "flash")
    reader_master, reader_slave = os.openpty()
    path = write_config(tmp_path / "terminal.toml", tmp_path / "data", central.url, cable.host_end,
                        os.ttyname(reader_slave))
    done = cli(path, "provision", "--server", central.url, "--code", central.enroll_code("W02"))
    assert done.returncode == 0, done.stderr
    pulled = subprocess.run([str(BIN / "rating-sync"), "--config", str(path), "pull-content"], capture_output=True,
                            text=True, timeout=60)
    assert pulled.returncode == 0, pulled.stderr
    yield path, box, done.stdout + done.stderr + pulled.stdout + pulled.stderr
    box.close()
    cable.close()
    os.close(reader_master)
    os.close(reader_slave)


@pytest.fixture
def terminal(rig):
    return rig[0]


def checks_by_name(checks) -> dict:
    return {c["name"] if isinstance(c, dict) else c.name: c if isinstance(c, dict) else vars(c) for c in checks}


def clock_expected() -> str:
    """The clock check passes only where the kernel says NTP synchronised this machine."""
    return doctor.PASS if doctor.kernel_ntp_synced() else doctor.WARN


def test_a_healthy_terminal_passes_every_check(terminal):
    done = cli(terminal, "doctor", "--headless", "--json")
    report = json.loads(done.stdout)
    found = checks_by_name(report["checks"])
    assert {name for name, c in found.items() if c["status"] == "pass"} >= HEALTHY, done.stdout
    assert found["clock"]["status"] == clock_expected()
    assert found["display"]["status"] == found["touch"]["status"] == "skip"  # a box-only terminal
    assert f"firmware {firmware_version()}" in found["button box"]["detail"]
    assert done.returncode == 0 and report["ok"] is True
    secret = json.loads((terminal.parent / "data" / "credentials.json").read_text())["secret"]
    assert secret not in done.stdout + done.stderr
    text = cli(terminal, "doctor", "--headless")
    assert text.returncode == 0 and "PASS  button box" in text.stdout


def run_in_process(path, headless=True):
    return checks_by_name(doctor.run(config_module.load(path), headless=headless))


def test_not_enrolled(tmp_path, central):
    path = write_config(tmp_path / "t.toml", tmp_path / "data", central.url)
    done = cli(path, "doctor", "--headless", "--json")
    found = checks_by_name(json.loads(done.stdout)["checks"])
    assert done.returncode == 1
    assert found["credentials"]["status"] == "fail" and "rating-terminal provision" in found["credentials"]["advice"]
    assert found["content"]["status"] == "fail" and found["signed request"]["status"] == "skip"
    assert found["button box"]["status"] == "skip" and found["badge reader"]["status"] == "warn"


def test_server_unreachable(terminal):
    creds_file = terminal.parent / "data" / "credentials.json"  # the enrolled server wins over the config's
    creds = json.loads(creds_file.read_text())
    creds_file.write_text(json.dumps({**creds, "server": "http://127.0.0.1:9"}))
    done = cli(terminal, "doctor", "--headless")
    assert done.returncode == 1
    assert "FAIL  server" in done.stdout and "check the network" in done.stdout
    assert "SKIP  signed request" in done.stdout


def test_revoked_credentials(terminal, central):
    creds = json.loads((terminal.parent / "data" / "credentials.json").read_text())
    assert central.manage("revoke", creds["terminal_id"]).returncode == 0
    found = run_in_process(terminal)
    assert found["signed request"]["status"] == "fail" and "revoked" in found["signed request"]["advice"]
    assert found["server"]["status"] == "pass"


def test_stale_content_is_a_warning_only(terminal):
    etag_file = terminal.parent / "data" / "content" / ".etag"
    etag_file.write_text(json.dumps({"etag": "0" * 64}))
    done = cli(terminal, "doctor", "--headless", "--json")
    found = checks_by_name(json.loads(done.stdout)["checks"])
    assert found["content"]["status"] == "warn" and "pull-content" in found["content"]["advice"]
    assert done.returncode == 0


def test_box_missing_silent_and_held_by_the_running_terminal(terminal, tmp_path):
    import serial
    gone = tmp_path / "gone.toml"
    gone.write_text(terminal.read_text().replace('[box]\nport = "', f'[box]\nport = "{tmp_path}/nothing#'))
    assert run_in_process(gone)["button box"]["status"] == "fail"
    silent = Cable()  # a port with nothing behind it
    try:
        mute = tmp_path / "mute.toml"
        config = config_module.load(terminal)
        mute.write_text(terminal.read_text().replace(config.box.port, silent.host_end))
        found = run_in_process(mute)["button box"]
        assert found["status"] == "fail" and "no hello" in found["detail"] and "flash-box" in found["advice"]
        with serial.Serial(silent.host_end, exclusive=True):  # the kiosk holds the port
            held = run_in_process(mute)["button box"]
            assert held["status"] == "fail" and "held by the running terminal" in held["detail"]
            db = sqlite3.connect(config.db_path)
            db.execute("INSERT INTO sync_state (key, value) VALUES ('devices', ?)", [json.dumps(
                [{"device": "button_box", "connected": True, "firmware": None, "board": None}])])
            db.commit()
            wrong = run_in_process(mute)["button box"]  # open, but nothing there said HELLO: the REPL?
            assert wrong["status"] == "fail" and "no hello" in wrong["detail"] and "data port" in wrong["advice"]
            db.execute("UPDATE sync_state SET value = ? WHERE key = 'devices'", [json.dumps(
                [{"device": "button_box", "connected": True, "firmware": "0.2.0", "board": "5e5e0001"}])])
            db.commit()
            db.close()
            assert run_in_process(mute)["button box"]["status"] == "pass"
    finally:
        silent.close()


def test_badge_reader_missing(terminal, tmp_path):
    config = config_module.load(terminal)
    gone = tmp_path / "nobadge.toml"
    gone.write_text(terminal.read_text().replace(config.badge.serial, str(tmp_path / "ttyUSB9")))
    found = run_in_process(gone)["badge reader"]
    assert found["status"] == "fail" and "USB cable" in found["advice"]


def test_queue_dead_letters_and_a_corrupt_database(terminal):
    from terminal.store import Store
    config = config_module.load(terminal)
    store = Store(config.db_path)
    old, dead = make_rating(), make_rating()
    store.record(old)
    store.record(dead)
    store.mark_dead(dead.id, 400, "refused")
    store.close()
    db = sqlite3.connect(config.db_path)
    db.execute("UPDATE ratings SET recorded_at = '2026-01-01T00:00:00+00:00' WHERE id = ?", [old.id])
    db.commit()
    db.close()
    found = run_in_process(terminal)
    assert found["queue"]["status"] == "warn" and "1 ratings waiting" in found["queue"]["detail"]
    assert found["dead letters"]["status"] == "warn" and "1 records" in found["dead letters"]["detail"]
    for suffix in ("-wal", "-shm"):
        config.db_path.with_name(config.db_path.name + suffix).unlink(missing_ok=True)
    config.db_path.write_bytes(b"SQLite format 3\x00" + os.urandom(4096))
    done = cli(terminal, "doctor", "--headless", "--json")
    database = checks_by_name(json.loads(done.stdout)["checks"])["database"]
    assert done.returncode == 1 and database["status"] == "fail" and "salvages" in database["advice"]


class SkewedHealth(BaseHTTPRequestHandler):
    """A central server whose clock is five minutes ahead."""

    def do_GET(self):
        import time
        body = json.dumps({"status": "ok", "database": "ok", "version": "x"}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Server-Time", f"{time.time() + 300:.3f}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def test_a_clock_far_from_the_servers_fails(tmp_path):
    server = HTTPServer(("127.0.0.1", 0), SkewedHealth)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = write_config(tmp_path / "t.toml", tmp_path / "data", f"http://127.0.0.1:{server.server_port}")
        clock = run_in_process(path)["clock"]
        assert clock["status"] == "fail" and "300" in clock["detail"] and "behind" in clock["detail"]
    finally:
        server.shutdown()
        server.server_close()


def test_display_present_and_missing(tmp_path, display, monkeypatch):
    monkeypatch.setenv("DISPLAY", display)
    assert doctor.check_display().status == doctor.PASS
    monkeypatch.delenv("DISPLAY")
    monkeypatch.delenv("WAYLAND_DISPLAY", raising=False)
    missing = doctor.check_display()
    if not list(__import__("pathlib").Path("/dev").glob("dri/card*")):
        assert missing.status == doctor.FAIL and "vc4" in missing.advice
    configured = doctor.check_touch(config_module.load(write_config(
        tmp_path / "t.toml", tmp_path / "d", "http://127.0.0.1:9", touch_input=f"mtdev:{tmp_path}/event7")))
    assert configured.status == doctor.FAIL and "event7" in configured.detail


@pytest.mark.parametrize("free, status", [(50 << 20, "fail"), (500 << 20, "warn"), (5 << 30, "pass")])
def test_disk_thresholds(free, status, tmp_path):
    check = doctor.judge_disk(free, tmp_path)
    assert check.status == status and (status == "pass") == (check.advice == "")


@pytest.mark.parametrize("synced, offset, status", [
    (True, 0.3, "pass"), (False, 0.3, "warn"), (True, 5.0, "warn"), (True, -120.0, "fail"), (False, None, "warn"),
    (True, None, "pass")])
def test_clock_judgement(synced, offset, status):
    assert doctor.judge_clock(synced, offset).status == status


def test_queue_judgement():
    assert doctor.judge_queue(0, None).status == "pass"
    assert doctor.judge_queue(5, 60).status == "pass"
    assert doctor.judge_queue(5, 7200).status == "warn"


def test_provision_doctor_rate_and_sync_end_to_end(rig, central, tmp_path):
    """The technician's flow to a first rating at the central server, with nothing secret printed."""
    import requests
    path, box, said = rig
    port = free_port()
    path.write_text(path.read_text().replace("[kiosk]\n", '[kiosk]\nstaff_no = "SZ0201"\n')
                    + f'[invite]\nlisten = "127.0.0.1:{port}"\n')
    checked = cli(path, "doctor", "--headless")
    assert checked.returncode == 0, checked.stdout
    log = (tmp_path / "terminal.log").open("w")  # a file, not a pipe nobody reads while we wait
    terminal = subprocess.Popen([str(BIN / "rating-terminal"), "--config", str(path), "run", "--headless"],
                                stdout=log, stderr=subprocess.STDOUT, text=True, env={**os.environ, "DISPLAY": ""})
    try:
        token = tmp_path / "data" / "invite-token"
        assert wait_for(token.exists, 20)
        auth = {"Authorization": "Bearer " + token.read_text().strip()}

        def state():
            try:
                return requests.get(f"http://127.0.0.1:{port}/v1/state", headers=auth, timeout=2).json()["state"]
            except requests.ConnectionError:
                return None
        assert wait_for(lambda: state() == "idle", 20)
        invited = requests.post(f"http://127.0.0.1:{port}/v1/invite", json={"case_no": "C-E2E-1"}, headers=auth,
                                timeout=5)
        assert invited.status_code == 201
        assert wait_for(lambda: state() == "invited", 10)
        box.key("D2")  # 不满意: a box-only terminal has no reasons screen to wait on
        box.key("U2")
        session = invited.json()["session_id"]
        assert wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/v1/sessions/{session}", headers=auth,
                                             timeout=5).json()["rated"], 5)
    finally:
        terminal.send_signal(__import__("signal").SIGTERM)
        terminal.wait(20)
        log.close()
    output = (tmp_path / "terminal.log").read_text()
    synced = subprocess.run([str(BIN / "rating-sync"), "--config", str(path), "run", "--once"], capture_output=True,
                            text=True, timeout=60)
    assert synced.returncode == 0, synced.stderr
    stored = central.query("SELECT level, channel, device, case_no, window_code FROM ratings_rating WHERE case_no = ?",
                           ["C-E2E-1"])
    assert stored == [(2, 5, "button_box", "C-E2E-1", "W02")]
    assert central.query("SELECT count(*) FROM ratings_workorder w JOIN ratings_rating r ON r.id = w.rating_id "
                         "WHERE r.case_no = ?", ["C-E2E-1"]) == [(1,)]  # the bad rating opened its work order
    assert 'POST /v1/invite -> 201' in output  # the journal keeps the invitation,
    assert "GET /v1/sessions" not in output and "GET /v1/state" not in output  # not the polling
    secret = json.loads((tmp_path / "data" / "credentials.json").read_text())["secret"]
    for text in (said, checked.stdout, checked.stderr, output, synced.stdout, synced.stderr):
        assert secret not in text and token.read_text().strip() not in text


class HostileHealth(BaseHTTPRequestHandler):
    """Something answering at the server's address (a captive portal, a hostile box on the LAN):
    ``self.server.answer`` picks what it says."""

    def do_GET(self):
        kind = self.server.answer
        body = {"nested": b"[" * 200_000 + b"]" * 200_000,
                "huge": b'{"status": "ok", "pad": "' + b"x" * (20 * 1024 * 1024) + b'"}'}.get(
            kind, json.dumps({"status": "ok", "version": "x"}).encode())
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("X-Server-Time", {"nan": "nan", "inf": "inf"}.get(kind, "1e300"))
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        try:
            self.wfile.write(body)
        except OSError:
            pass  # the doctor stopped reading: as it should

    def log_message(self, *args):
        pass


@pytest.mark.parametrize("answer", ["nested", "huge", "nan", "inf"])
def test_a_hostile_answer_at_the_servers_address_is_a_failed_check_not_a_crash(tmp_path, answer):
    """The health page is read unsigned: an answer nested past Python's recursion limit crashed the
    doctor, one of 20 MB was read whole into memory, and a server time of nan, inf or 1e300 gave a
    clock offset no clock has (inf s behind)."""
    server = HTTPServer(("127.0.0.1", 0), HostileHealth)
    server.answer = answer
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        path = write_config(tmp_path / "t.toml", tmp_path / "data", f"http://127.0.0.1:{server.server_port}")
        checks = run_in_process(path)
        if answer in ("nested", "huge"):
            assert checks["server"]["status"] == "fail" and "not the central server's" in checks["server"]["detail"]
        else:
            assert checks["server"]["status"] == "pass"
        detail = checks["clock"]["detail"]
        assert "inf" not in detail and "nan" not in detail and "0" * 20 not in detail, detail
    finally:
        server.shutdown()
        server.server_close()
