"""First boot: a terminal not enrolled yet enrolls from its screen or from provision.toml on the
boot partition, against the real central server, and then runs as the window it was enrolled for.
Hostile provision files and wrong codes are refused with a reason and change nothing."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import threading

import pytest
from PIL import Image

from terminal.core.provision import CODE_ALPHABET, ProvisionError, normalise_code, parse_file
from terminal.credentials import Credentials
from terminal.provisioning import read_boot_file, wait_for_enrollment

import kiosk
from conftest import BIN, ROOT, wait_for
from kiosk import SCREENSHOTS

NAMES = {"-": "dash", ":": "colon", "/": "slash", ".": "dot"}


def unenrolled(terminal_config, server: str = "http://127.0.0.1:9", **kiosk_keys):
    """A terminal config that needs enrolling (not the demo terminal the other tests run)."""
    path = terminal_config(server=server, **kiosk_keys)
    path.write_text(path.read_text().replace("demo = true", "demo = false"))
    return path


def typed(text: str) -> list[dict]:
    """Touches on the provisioning screen's own keys for ``text`` (dashes of a code are skipped)."""
    return [{"do": "touch", "target": f"key_{NAMES.get(c, c.lower())}"} for c in text]


def restarted(tmp_path):
    """A work folder for the kiosk's second start (as systemd's restart)."""
    (tmp_path / "again").mkdir()
    return tmp_path / "again"


def boot_file(tmp_path, text: str):
    path = tmp_path / "boot" / "provision.toml"
    path.parent.mkdir(exist_ok=True)
    path.write_text(text, encoding="utf-8")
    return path


# -- the request, pure ----------------------------------------------------------------------

def test_a_provision_file_is_two_keys_and_the_code_is_put_in_central_s_form():
    request = parse_file('\ufeffserver = "https://pj.example.gov.cn/"\r\ncode = "abcd efgh-jkmn"\r\n'.encode())
    assert (request.server, request.code) == ("https://pj.example.gov.cn", "ABCD-EFGH-JKMN")
    assert "ABCD" not in repr(request)  # the code is a secret until spent
    assert request == parse_file(b'server = "https://pj.example.gov.cn"\ncode = "ABCDEFGHJKMN"\n')
    assert parse_file(b'server = "http://127.0.0.1:8000"\ncode = "ABCD-EFGH-JKMN"').server == "http://127.0.0.1:8000"
    from central.ratings import auth
    assert auth.CODE_ALPHABET == CODE_ALPHABET  # what central issues is what the terminal checks


@pytest.mark.parametrize("data, words", [
    (b"x" * 5000, "larger than 4096 bytes"),
    (b'server = "https://a.example"\ncode = "' + b"A" * 5000 + b'"', "larger than 4096 bytes"),
    (b"server = 1\ncode = 2\n", "server must be a string in quotes, got int"),
    (b'server = ["https://a.example"]\ncode = "ABCD-EFGH-JKMN"', "server must be a string in quotes, got list"),
    (b'server = "https://a.example"\ncode = 123456789012', "code must be a string in quotes, got int"),
    (b'server = "https://a.example"\n[code]\nx = 1', "code must be a string in quotes, got dict"),
    (b'server = "http://pj.example.gov.cn"\ncode = "ABCD-EFGH-JKMN"', "plain http to another machine"),
    (b'server = "http://10.0.0.5:8000"\ncode = "ABCD-EFGH-JKMN"', "plain http to another machine"),
    (b'server = "https://user:pw@pj.example.gov.cn"\ncode = "ABCD-EFGH-JKMN"', "no user, password"),
    (b'server = "file:///etc/passwd"\ncode = "ABCD-EFGH-JKMN"', "must be https://host"),
    (b'server = "https://a.example"\ncode = "ABCD-EFGH-JKMN"\ndata_dir = "/etc"', "unknown key(s) 'data_dir'"),
    (b'server = "https://a.example"\ncode = "ABCD-EFGH-JKMN"\nca_file = "../../etc/shadow"', "unknown key(s) 'ca_file'"),
    (b'server = "https://a.example"\ncode = "../../../etc/passwd"', "only the letters A-Z and digits 2-9"),
    (b'server = "https://a.example"\ncode = "ABCD-EFGH-JK10"', "never use 0, O, 1 or I"),
    (b'server = "https://a.example"\ncode = "ABCD-EFGH"', "this one 8"),
    (b'server = "https://a.example\\u0000x"\ncode = "ABCD-EFGH-JKMN"', "printable"),
    (b'server = "https://a.example"\n', "code is missing"),
    (b'server = "https://a.example"\ncode = "ABCD-EFGH-JKMN"\ncode = "x"', "not valid TOML"),
    (b'\xff\xfeserver = "x"', "not UTF-8"),
    (b"[[[", "not valid TOML"),
])
def test_a_hostile_provision_file_is_refused_with_a_reason(data, words):
    with pytest.raises(ProvisionError) as refused:
        parse_file(data)
    assert words in refused.value.detail and refused.value.reason
    assert not refused.value.retry


def test_the_boot_file_is_read_only_when_it_is_a_small_regular_file(tmp_path):
    assert read_boot_file(tmp_path / "none.toml") is None
    secret = tmp_path / "secret"
    secret.write_text("server = 'https://a.example'\ncode = 'ABCD-EFGH-JKMN'\n")
    (tmp_path / "link.toml").symlink_to(secret)
    os.mkfifo(tmp_path / "fifo.toml")  # a reader that blocked on it would hang the kiosk's start
    (tmp_path / "dir.toml").mkdir()
    for name, words in (("link.toml", "symbolic link"), ("fifo.toml", "not a regular file"),
                        ("dir.toml", "not a regular file")):
        with pytest.raises(ProvisionError, match=words):
            read_boot_file(tmp_path / name)


def test_every_reason_the_screen_can_show_is_translated():
    from terminal import i18n
    """The reasons (terminal/core/provision.py) and the screen's word keys reach tr as variables."""
    reasons = set()
    for path in (ROOT / "terminal" / "core" / "provision.py", ROOT / "terminal" / "kiosk" / "screens" / "provision.py",
                 ROOT / "terminal" / "kiosk" / "provision_app.py"):
        reasons |= set(re.findall(r'"([^"]*[\u4e00-\u9fff][^"]*)"', path.read_text(encoding="utf-8")))
    assert len(reasons) >= 12 and "服务器无法连接" in reasons and "删除" in reasons and "正在连接服务器…" in reasons
    assert sorted(r for r in reasons if i18n.tr(r, "en") == r) == []


# -- the command line ----------------------------------------------------------------------

def test_the_command_line_refuses_a_malformed_code_before_calling_and_enrolls_with_a_good_one(
        terminal_config, central, tmp_path):
    config = unenrolled(terminal_config, central.url)
    run = lambda *args: subprocess.run([str(BIN / "rating-terminal"), "--config", str(config), "provision", *args],
                                       capture_output=True, text=True, timeout=60)
    bad = run("--server", central.url, "--code", "ABCD-EFGH-JK10")
    assert bad.returncode == 1 and "never use 0, O, 1 or I" in bad.stderr
    plain = run("--server", "http://pj.example.gov.cn", "--code", "ABCD-EFGH-JKMN")
    assert plain.returncode == 1 and "plain http to another machine" in plain.stderr
    code = central.enroll_code("W01")
    good = run("--server", central.url, "--code", code.lower().replace("-", ""))
    assert good.returncode == 0 and "enrolled as T" in good.stdout, good.stderr
    assert code not in good.stdout + good.stderr
    again = run("--server", central.url, "--code", central.enroll_code("W01"))
    assert again.returncode == 1 and "already enrolled" in again.stderr
    assert Credentials.load(tmp_path / "data").window == "W01"


# -- the kiosk -------------------------------------------------------------------------------

def test_typing_the_server_and_code_on_the_screen_enrolls_and_the_kiosk_comes_back_as_the_window(
        display, terminal_config, central, tmp_path):
    """Real pointer events (xdotool -> Xvfb -> SDL2 -> Kivy) on the screen's own keys: no keyboard."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    config = unenrolled(terminal_config)  # the config's server is not the one typed: the typed one wins
    code = central.enroll_code("W01")
    targets, shot_empty, shot_typed = (tmp_path / "targets.json", SCREENSHOTS / "provision-zh.png",
                                       SCREENSHOTS / "provision-typed-zh.png")
    shot_typed.unlink(missing_ok=True)
    driver, result = kiosk.start(config, [
        {"do": "wait_screen", "screen": "provision"},
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(shot_empty)},
        {"do": "targets", "path": str(targets)},
        {"do": "wait_text", "text": code + "|", "timeout": 60},  # typed by the clicks below
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(shot_typed)},
        {"do": "wait_text", "text": "注册成功", "timeout": 60},  # after the click on 注册
        {"do": "glyph_check"},
        {"do": "expect_exit", "timeout": 10},
    ], display, tmp_path)

    where = [None]

    def click(*names: str) -> None:
        assert wait_for(targets.exists, 30) and driver.poll() is None
        centres = json.loads(targets.read_text())
        for name in names:
            # --sync waits for the pointer to move: a key pressed twice in a row is clicked where it is
            move = ["mousemove", "--sync", *map(str, centres[name])] if centres[name] != where[0] else []
            subprocess.run(["xdotool", *move, "click", "1"], env={**os.environ, "DISPLAY": display},
                           check=True, timeout=10)
            where[0] = centres[name]

    keys = lambda text: [f"key_{NAMES.get(c, c.lower())}" for c in text]
    click("key_clear", *keys(central.url), "code", *keys(code))  # the field starts as https://
    assert wait_for(shot_typed.exists, 30), "the typed code never showed"
    click("enroll")
    outcome = kiosk.finish(driver, result, tmp_path)
    first, typed_in, done = outcome["glyph_checks"]
    for glyphs in outcome["glyph_checks"]:
        assert glyphs["tofu"] == [] and glyphs["clipped"] == [], glyphs
    texts = " ".join(first["texts"])
    assert "评价器首次设置：终端注册" in texts and "服务器地址" in texts and "注册码" in texts
    assert central.url in typed_in["texts"] and code + "|" in typed_in["texts"]
    assert "注册成功，正在进入窗口界面…" in " ".join(done["texts"])
    assert outcome["app"] == "ProvisionApp"
    creds = Credentials.load(tmp_path / "data")
    assert creds.server == central.url and creds.window == "W01"
    assert central.query("SELECT count(*) FROM ratings_terminal WHERE terminal_id = ?", (creds.terminal_id,)) == [(1,)]
    assert Image.open(shot_typed).size == (1280, 800)

    # systemd starts it again (Restart=always): now the window's own screens, as the enrolled terminal
    again = kiosk.run(config, [
        {"do": "wait_screen", "screen": "paused"},
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(SCREENSHOTS / "provision-after-zh.png")},
    ], display, restarted(tmp_path))
    assert again["app"] == "KioskApp" and again["terminal_id"] == creds.terminal_id
    assert "1号窗口" in " ".join(again["glyphs"]["texts"]) and "暂停服务" in " ".join(again["glyphs"]["texts"])


def test_a_wrong_code_says_so_in_plain_words_and_the_screen_stays(display, terminal_config, central, tmp_path):
    config = unenrolled(terminal_config)
    config.write_text(config.read_text().replace("[terminal]\n", '[terminal]\nlanguage = "en"\n'))
    shot = SCREENSHOTS / "provision-wrong-code-en.png"
    outcome = kiosk.run(config, [
        {"do": "wait_screen", "screen": "provision"},
        {"do": "touch", "target": "key_clear"},
        *typed(central.url),
        {"do": "touch", "target": "code"},
        *typed("ABCD-EFGH-JKMN"),  # well formed, never issued
        {"do": "touch", "target": "enroll"},
        {"do": "wait_text", "text": "Enrollment code invalid or expired", "timeout": 20},
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(shot)},
        {"do": "touch", "target": "key_back"},  # still there, still typing
        {"do": "wait_text", "text": "ABCD-EFGH-JKM|"},
        {"do": "touch", "target": "server"},
        {"do": "touch", "target": "key_clear"},
        *typed("http://10.1.2.3"),
        {"do": "touch", "target": "enroll"},
        {"do": "wait_text", "text": "The server address is not valid"},
        {"do": "touch", "target": "lang_switch"},
        {"do": "wait_text", "text": "服务器地址不对"},
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(SCREENSHOTS / "provision-bad-server-zh.png")},
        {"do": "wait_screen", "screen": "provision"},
    ], display, tmp_path)
    wrong, bad_server = outcome["glyph_checks"]
    assert wrong["tofu"] == [] and wrong["clipped"] == [] and bad_server["tofu"] == []
    assert "HTTP 403 code_invalid" in " ".join(wrong["texts"])
    assert "plain http to another machine" in " ".join(bad_server["texts"])
    assert not (tmp_path / "data" / "credentials.json").exists()


def test_a_provision_file_enrolls_the_kiosk_by_itself_and_is_removed(display, terminal_config, central, tmp_path):
    config = unenrolled(terminal_config)
    code = central.enroll_code("W02")
    path = boot_file(tmp_path, f'# put here by the technician\nserver = "{central.url}"\ncode = "{code}"\n')
    outcome = kiosk.run(config, [
        {"do": "wait_screen", "screen": "provision"},
        {"do": "expect_exit", "timeout": 30},
    ], display, tmp_path)
    assert outcome["app"] == "ProvisionApp"
    assert not path.exists()  # the spent code does not stay on the FAT partition
    creds = Credentials.load(tmp_path / "data")
    assert creds.window == "W02" and creds.server == central.url
    again = kiosk.run(config, [{"do": "wait_screen", "screen": "paused"}, {"do": "glyph_check"}],
                      display, restarted(tmp_path))
    assert again["app"] == "KioskApp" and "2号窗口" in " ".join(again["glyphs"]["texts"])


def test_a_hostile_provision_file_is_shown_as_the_reason_and_kept(display, terminal_config, tmp_path):
    config = unenrolled(terminal_config)
    path = boot_file(tmp_path, 'server = "http://pj.example.gov.cn"\ncode = "ABCD-EFGH-JKMN"\n')
    outcome = kiosk.run(config, [
        {"do": "wait_screen", "screen": "provision"},
        {"do": "wait_text", "text": "provision.toml 文件无效", "timeout": 15},
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(SCREENSHOTS / "provision-hostile-file-zh.png")},
    ], display, tmp_path)
    assert "plain http to another machine" in " ".join(outcome["glyphs"]["texts"])
    assert path.exists() and not (tmp_path / "data" / "credentials.json").exists()


def test_a_kiosk_enrolled_again_finishes_the_session_under_way_then_leaves_to_start_as_the_new_one(
        terminal_config, display, tmp_path):
    """The touchscreen kiosk, enrolled again by hand mid-session: the rating being made stays the old
    identity's (one rating, one identity), and the kiosk leaves once the session is over, for
    systemd to start it as the new terminal; until this change it recorded as the old one for good."""
    import sqlite3
    config = unenrolled(terminal_config)
    Credentials(terminal_id="T-OLD", secret="s" * 43, server="http://127.0.0.1:9", window="W01").save(tmp_path / "data")
    new = {"terminal_id": "T-NEW", "secret": "n" * 43, "server": "http://127.0.0.1:9", "window": "W02"}
    outcome = kiosk.run(config, [
        {"do": "wait_screen", "screen": "paused"},
        {"do": "swipe", "badge": "0004521873"},
        {"do": "invite", "case_no": "C-AGAIN"},
        {"do": "wait_screen", "screen": "rating"},
        {"do": "write_file", "path": str(tmp_path / "data" / "credentials.json"), "text": json.dumps(new)},
        {"do": "sleep", "seconds": 2.5},  # over twice the kiosk's look at the file: it stays for the session
        {"do": "wait_screen", "screen": "rating"},
        {"do": "box_press", "level": 4},
        {"do": "wait_screen", "screen": "thanks"},
        {"do": "expect_exit", "timeout": 15},  # after the thank-you (3 s), not during it
    ], display, tmp_path)
    assert outcome["steps"][-1] == "expect_exit"
    with sqlite3.connect(tmp_path / "data" / "terminal.db") as db:
        rated = db.execute("SELECT json_extract(payload, '$.terminal_id'), window, json_extract(payload, '$.case_no') "
                           "FROM ratings").fetchall()
        named = {row for row in db.execute("SELECT json_extract(payload, '$.terminal_id') FROM events")}
    assert rated == [("T-OLD", "W01", "C-AGAIN")] and named == {("T-OLD",)}


# -- the box-only terminal ---------------------------------------------------------------------

def test_a_headless_terminal_enrolls_from_the_boot_file_and_runs_as_its_window(terminal_config, central, tmp_path):
    config = unenrolled(terminal_config)
    path = boot_file(tmp_path, 'server = "http://pj.example.gov.cn"\ncode = "ABCD-EFGH-JKMN"\n')
    terminal = subprocess.Popen([str(BIN / "rating-terminal"), "--config", str(config), "run", "--headless"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "DISPLAY": ""})
    lines: list[str] = []
    threading.Thread(target=lambda: lines.extend(terminal.stdout), daemon=True).start()
    code = central.enroll_code("W01")
    try:
        assert wait_for(lambda: any("plain http to another machine" in line for line in lines), 20), lines
        assert not (tmp_path / "data" / "terminal.db").exists()  # no ratings before it is enrolled
        path.write_text(f'server = "{central.url}"\ncode = "{code}"\n')  # the technician mends it
        assert wait_for(lambda: any("headless terminal running: window W01" in line for line in lines), 20), lines
        assert not path.exists()
    finally:
        terminal.send_signal(signal.SIGTERM)
        terminal.wait(20)
    output = "".join(lines)
    assert terminal.returncode == 0 and "headless terminal stopped" in output
    assert code not in output and code.replace("-", "") not in output
    creds = Credentials.load(tmp_path / "data")
    assert creds.window == "W01" and creds.secret not in output


def test_a_box_only_terminal_enrolled_again_by_hand_starts_again_as_its_new_identity(terminal_config, central,
                                                                                    tmp_path):
    """``provision --force`` while ``rating-terminal run --headless`` runs: rating-sync signs as the
    new identity at once, and the running terminal went on recording as the old one, revoked right
    after: every record a dead letter (terminal_mismatch, window_mismatch), never counted, until
    someone restarted it. Now it leaves by itself once no session is in progress (status 0, for
    systemd's Restart=always) and starts again as the new terminal at its new window."""
    import sqlite3

    import requests

    from sync.daemon import SyncDaemon
    from terminal import config as config_module
    from terminal.core.provision import check_request
    from terminal.provisioning import enroll
    from conftest import free_port
    port = free_port()
    path = unenrolled(terminal_config, server=central.url, staff_no="SZ0101")
    with path.open("a") as f:
        f.write(f'[invite]\nlisten = "127.0.0.1:{port}"\n')
    first = enroll(config_module.load(path), check_request(central.url, central.enroll_code("W01")))
    lines: list[str] = []

    def start():
        terminal = subprocess.Popen([str(BIN / "rating-terminal"), "--config", str(path), "run", "--headless"],
                                    stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                    env={**os.environ, "DISPLAY": ""})
        threading.Thread(target=lambda: lines.extend(terminal.stdout), daemon=True).start()
        return terminal

    def pause(window: str) -> None:  # the queue system's 暂停服务: an event, no session
        assert wait_for(lambda: any(f"headless terminal running: window {window}" in line for line in lines), 20)
        auth = {"Authorization": "Bearer " + (tmp_path / "data" / "invite-token").read_text().strip()}
        answer = requests.post(f"http://127.0.0.1:{port}/v1/pause", headers=auth, timeout=5)
        assert answer.status_code == 200 and answer.json()["window"] == window

    def deliver() -> None:
        daemon = SyncDaemon(config_module.load(path))
        try:
            daemon.upload()
        finally:
            daemon.close()

    terminal = start()
    try:
        pause("W01")
        deliver()  # what the old identity made goes first: provision --force waits for it
        reenrolled = subprocess.run([str(BIN / "rating-terminal"), "--config", str(path), "provision", "--server",
                                     central.url, "--code-file", "-", "--force"], input=central.enroll_code("W02"),
                                    capture_output=True, text=True, timeout=60)
        assert reenrolled.returncode == 0, reenrolled.stderr
        assert "follows by itself" in reenrolled.stderr
        second = Credentials.load(tmp_path / "data")
        assert central.manage("revoke", first.terminal_id).returncode == 0  # as the fleet playbook does
        terminal.wait(20)  # it leaves by itself: paused, no session in progress
    finally:
        if terminal.poll() is None:
            terminal.send_signal(signal.SIGTERM)
            terminal.wait(20)
    output = "".join(lines)
    assert terminal.returncode == 0 and f"leaving to start again as terminal {second.terminal_id}" in output
    path.write_text(path.read_text().replace("SZ0101", "SZ0201"))  # W02's staff (no badge reader there)
    lines.clear()
    terminal = start()  # systemd starts it again
    try:
        pause("W02")
    finally:
        terminal.send_signal(signal.SIGTERM)
        terminal.wait(20)
    deliver()
    with sqlite3.connect(tmp_path / "data" / "terminal.db") as db:
        made = db.execute("SELECT json_extract(payload, '$.terminal_id'), json_extract(payload, '$.window'), kind, "
                          "state FROM events ORDER BY seq").fetchall()
    assert made == [(first.terminal_id, "W01", "login", "delivered"), (first.terminal_id, "W01", "queue_paused", "delivered"),
                    (second.terminal_id, "W02", "login", "delivered"),
                    (second.terminal_id, "W02", "queue_paused", "delivered")], made


def test_enrollment_from_the_file_is_retried_while_the_server_cannot_answer(terminal_config, central, tmp_path):
    """The network comes up after the terminal: the same file is tried again, with backoff."""
    import random

    from fault_proxy import FaultProxy
    from terminal import config as config_module
    faults = iter(["reset_before", "unavailable"])
    proxy = FaultProxy(central.url, lambda _method, _path: next(faults, "pass"))
    try:
        path = boot_file(tmp_path, f'server = "{proxy.url}"\ncode = "{central.enroll_code("W01")}"\n')
        config = config_module.load(unenrolled(terminal_config))
        tries = []
        gives_up = threading.Timer(30, (stop := threading.Event()).set)  # bounded, if it never tried again
        gives_up.start()
        creds = wait_for_enrollment(config, stop, tries.append, rng=random.Random(7))
        gives_up.cancel()
    finally:
        proxy.close()
    assert [(t.error.reason, t.error.retry) for t in tries[:2]] == [("服务器无法连接", True), ("服务器暂时无法处理", True)]
    assert creds is not None and tries[2].creds == creds and creds.window == "W01" and creds.server == proxy.url
    assert proxy.applied["reset_before"] == 1 and proxy.applied["unavailable"] == 1
    assert not path.exists() and Credentials.load(tmp_path / "data") == creds


def test_a_spent_file_that_cannot_be_removed_is_said_in_the_log_without_the_code(
        terminal_config, central, tmp_path, monkeypatch, caplog):
    import errno
    import logging
    from pathlib import Path

    from terminal import config as config_module, provisioning
    code = central.enroll_code("W01")
    path = boot_file(tmp_path, f'server = "{central.url}"\ncode = "{code}"\n')

    def read_only(self, *args, **kwargs):
        raise OSError(errno.EROFS, os.strerror(errno.EROFS), str(self))
    monkeypatch.setattr(Path, "unlink", read_only)
    with caplog.at_level(logging.INFO, logger="rating-terminal"):
        outcome = provisioning.from_boot_file(config_module.load(unenrolled(terminal_config)))
    assert outcome.creds and outcome.creds.window == "W01" and path.exists()
    assert f"could not remove {path} (Read-only file system)" in caplog.text
    assert code not in caplog.text and code.replace("-", "") not in caplog.text
    assert outcome.creds.secret not in caplog.text


@pytest.mark.parametrize("field, value", [("terminal_id", "T" * 65), ("window", "W" * 65), ("window", "W\x1b01")])
def test_an_enrollment_answer_whose_ids_no_record_can_carry_is_refused_and_nothing_saved(
        terminal_config, tmp_path, field, value):
    """Enrollment took ids of up to 128 characters, a record carries 64: every rating the terminal
    made under such an id failed to be recorded. The answer is refused, saying why; nothing saved."""
    import fake_central
    from terminal import config as config_module, provisioning
    from terminal.core.provision import Request

    class Enroller(fake_central.FakeCentral):
        def do_POST(self):
            self.rfile.read(int(self.headers["Content-Length"]))
            answer = {"terminal_id": "T-OK-01", "secret": "s" * 43, "window": "W01", **{field: value}}
            self.answer(201, json.dumps(answer).encode())
    server, url = fake_central.serve(Enroller)
    config = config_module.load(unenrolled(terminal_config))
    try:
        with pytest.raises(ProvisionError) as refused:
            provisioning.enroll(config, Request(url, "ABCD-EFGH-JKLM"))
    finally:
        server.shutdown()
    assert refused.value.reason == "服务器应答无效" and field in refused.value.detail
    assert "a record" in refused.value.detail
    assert Credentials.load(tmp_path / "data") is None and not (tmp_path / "data" / "credentials.json").exists()


def test_stored_credentials_whose_ids_no_record_can_carry_are_refused_with_the_reason(terminal_config, tmp_path):
    """A terminal enrolled before the check: its config does not load, saying which id and why."""
    from terminal import config as config_module
    from terminal.credentials import CredentialsError
    path = unenrolled(terminal_config)
    (tmp_path / "data").mkdir(exist_ok=True)
    (tmp_path / "data" / "credentials.json").write_text(json.dumps(
        {"terminal_id": "T" * 65, "secret": "s" * 43, "server": "http://127.0.0.1:9", "window": "W01"}))
    with pytest.raises(CredentialsError, match="terminal_id is 65 characters"):
        Credentials.load(tmp_path / "data")
    with pytest.raises(config_module.ConfigError, match="terminal_id is 65 characters, at most 64"):
        config_module.load(path)


def test_enrolling_again_waits_until_what_the_old_identity_made_is_delivered(terminal_config, central, tmp_path):
    """A rating made as the old terminal and still waiting is refused by the server once the
    terminal signs as another (terminal_mismatch: a dead letter, never counted), and the old
    identity is revoked right after (the fleet playbook). ``provision --force`` refuses while
    anything made as the old identity waits, before it spends the code; once delivered it goes on."""
    from sync.daemon import SyncDaemon
    from terminal import config as config_module
    from terminal.core.provision import check_request
    from terminal.provisioning import Undelivered, enroll
    from terminal.store import Store
    from conftest import make_rating
    config = config_module.load(terminal_config())
    first = enroll(config, check_request(central.url, central.enroll_code("W01")))
    store = Store(config.db_path)
    rating = make_rating(terminal_id=first.terminal_id)
    store.record(rating)
    code = central.enroll_code("W02")
    with pytest.raises(Undelivered) as refused:
        enroll(config, check_request(central.url, code), force=True)
    assert "1 rating(s) and 0 event(s)" in str(refused.value) and "rating-sync run --once" in str(refused.value)
    assert Credentials.load(tmp_path / "data") == first
    daemon = SyncDaemon(config_module.load(terminal_config()))
    try:
        assert daemon.upload().delivered == 1
    finally:
        daemon.close()
    second = enroll(config, check_request(central.url, code), force=True)  # the code was not spent
    assert second.window == "W02" and store.get(rating.id)["state"] == "delivered"
    # an old identity that can never send what waits (revoked, its server gone) does not lock the
    # terminal out of enrolling for ever: the technician says so, and what waits stays in the store
    stranded = make_rating(terminal_id=second.terminal_id, window="W02")
    store.record(stranded)
    third_code = central.enroll_code("W01")
    with pytest.raises(Undelivered, match="--despite-undelivered"):
        enroll(config, check_request(central.url, third_code), force=True)
    third = enroll(config, check_request(central.url, third_code), force=True, despite_undelivered=True)
    assert third.window == "W01" and store.get(stranded.id)["state"] == "pending"
    store.close()
