"""Hostile input from the window's LAN never stops the terminal: a crowd of idle connections and a
slowloris client cannot lock the business system out, and no invitation, badge or byte can kill
the thread that reads the box (property-based fuzzing with hypothesis)."""

import json
import os
import signal
import socket
import subprocess
import threading
import time

import pytest
import requests
from hypothesis import HealthCheck, given, settings, strategies as st

from firmware.cable import Cable
from firmware.sim import SimulatedBox
from hardware.badge import SerialBadgeReader, SerialDecoder, _valid
from hardware.buttonbox import ButtonBoxLink
from terminal.core.channels import InputDevice
from terminal.invite_api import InviteServer, load_or_create_token

from conftest import BIN, free_port, wait_for

pytestmark = pytest.mark.slow


def process_fds(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def process_cpu_s(pid: int) -> float:
    fields = open(f"/proc/{pid}/stat").read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def connect_from(address: str, port: int) -> socket.socket:
    s = socket.socket()
    s.bind((address, 0))
    s.setblocking(False)
    try:
        s.connect(("127.0.0.1", port))
    except BlockingIOError:
        pass
    return s


def test_two_thousand_idle_connections_and_a_slowloris_cannot_lock_out_the_business_system(terminal_config, tmp_path):
    cable = Cable()
    port = free_port()
    config = terminal_config(staff_no="SZ0101", audio_device="null")
    with config.open("a") as f:
        f.write(f'[box]\nport = "{cable.host_end}"\n[invite]\nlisten = "127.0.0.1:{port}"\n'
                f'allow = ["127.0.0.1", "127.0.0.2"]\n')  # the attacker at .2 is even allowed; .3 is not
    terminal = subprocess.Popen([str(BIN / "rating-terminal"), "--config", str(config), "run", "--headless"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "DISPLAY": ""})
    firmware = SimulatedBox(cable.box_end, tmp_path / "flash")
    crowd: list[socket.socket] = []
    try:
        token_file = tmp_path / "data" / "invite-token"
        assert wait_for(token_file.exists, 20)
        auth = {"Authorization": "Bearer " + token_file.read_text().strip()}
        api = f"http://127.0.0.1:{port}/v1"
        assert wait_for(lambda: _state(api, auth) == "idle", 20)
        fds, cpu = process_fds(terminal.pid), process_cpu_s(terminal.pid)
        closed_slowly = threading.Event()

        def slow_head():
            """A client that sends its head one byte every half second: the server hangs up on it."""
            s = socket.create_connection(("127.0.0.1", port), source_address=("127.0.0.2", 0))
            s.settimeout(0.5)
            started = time.monotonic()
            try:
                for byte in b"POST /v1/invite HTTP/1.1\r\nHost: x\r\n" * 50:
                    s.send(bytes([byte]))
                    try:
                        if not s.recv(4096):
                            break
                    except socket.timeout:
                        pass
                    except OSError:
                        break
            except OSError:
                pass
            closed_slowly.elapsed = time.monotonic() - started
            closed_slowly.set()
            s.close()

        loris = threading.Thread(target=slow_head, daemon=True)
        loris.start()
        for i in range(2000):
            crowd.append(connect_from("127.0.0.2" if i % 4 else "127.0.0.3", port))
        began = time.monotonic()
        invited = requests.post(f"{api}/invite", json={"case_no": "C-UNDER-ATTACK"}, headers=auth, timeout=1.0)
        assert invited.status_code == 201, invited.text
        assert time.monotonic() - began < 1.0
        held = process_fds(terminal.pid) - fds
        assert held <= 64 + 8, f"{held} more file descriptors while 2,000 connections wait"
        assert wait_for(closed_slowly.is_set, 15), "the slowloris client was never cut off"
        assert closed_slowly.elapsed < 8  # the head timeout (5 s), not the client, ended it
        used = process_cpu_s(terminal.pid) - cpu
        assert used < 3.0, f"{used:.1f} s of CPU for the storm: spinning?"
        firmware.key("D5")  # the box's thread, and the session, are as they were
        firmware.key("U5")
        session = invited.json()["session_id"]
        assert wait_for(lambda: requests.get(f"{api}/sessions/{session}", headers=auth, timeout=2).json()["rated"], 10)
    finally:
        for s in crowd:
            s.close()
        terminal.send_signal(signal.SIGTERM)
        output, _ = terminal.communicate(timeout=20)
        firmware.close()
        cable.close()
    assert terminal.returncode == 0, output[-2000:]


def _state(api, auth):
    try:
        return requests.get(f"{api}/state", headers=auth, timeout=2).json()["state"]
    except requests.ConnectionError:
        return None


# -- the invite API, fuzzed, in front of a real window and a real box -----------------------------

@pytest.fixture(scope="module")
def terminal_with_box(tmp_path_factory):
    """A window on a real database, its invite API, and the real box firmware on a cable into it."""
    import shutil
    from conftest import ROOT
    from terminal import config as config_module
    from terminal.content import Content
    from terminal.store import Store
    from terminal.window import Window
    folder = tmp_path_factory.mktemp("fuzzed")
    shutil.copytree(ROOT / "assets" / "demo", folder / "content")
    config = config_module.from_dict({"terminal": {"data_dir": str(folder / "data"),
                                                   "content_dir": str(folder / "content")}})
    store = Store(config.db_path)
    window = Window(config, store, Content.load(config.content_dir), screen=False)
    token = load_or_create_token(config.invite_token_path)
    server = InviteServer(window, "127.0.0.1:0", token, per_address=64).start()
    cable = Cable()
    link = ButtonBoxLink(cable.host_end, lambda kind, key: window.device_key(kind, key, InputDevice.BUTTON_BOX)).start()
    firmware = SimulatedBox(cable.box_end, folder / "flash")
    assert wait_for(link.connected.is_set, 20)
    yield window, server, token, firmware
    firmware.close()
    link.stop()
    cable.close()
    server.stop()
    store.close()


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=60),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4), max_leaves=12)
NASTY = ["\\ud800", "\\udfff", "\\u0000", "\\u007f", "\\u001b[2J", "A" * 60, "１２３", "\\ud83d\\ude00"]


@st.composite
def invitation_bodies(draw) -> bytes:
    kind = draw(st.sampled_from(["fields", "json", "raw", "deep", "number"]))
    if kind == "fields":
        fields = {name: draw(st.sampled_from(NASTY) | st.text(max_size=70).map(json.dumps).map(lambda s: s[1:-1]))
                  for name in draw(st.sets(st.sampled_from(["case_no", "item_code", "staff_no", "other"]), max_size=4))}
        return ("{" + ",".join(f'"{k}": "{v}"' for k, v in fields.items()) + "}").encode()
    if kind == "json":
        return json.dumps(draw(json_values)).encode()
    if kind == "raw":
        return draw(st.binary(max_size=300))
    if kind == "deep":
        depth = draw(st.integers(100, 2000))
        return b"[" * depth + b"]" * depth
    return ('{"case_no": ' + "9" * draw(st.integers(1, 5000)) + "}").encode()


@st.composite
def requests_raw(draw, token: str) -> bytes:
    body = draw(invitation_bodies())
    method = draw(st.sampled_from(["POST", "GET", "PUT", "BREW", "POST"]))
    path = draw(st.sampled_from(["/v1/invite", "/v1/state", "/v1/sessions/" + "a" * 10, "/v1/../etc", "/%00"]))
    length = draw(st.sampled_from([str(len(body)), "²", "9" * 5000, "-1", "", str(len(body) + 10)]))
    auth = draw(st.sampled_from([f"Bearer {token}", "Bearer nope", "", "Basic x"]))
    head = f"{method} {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {length}\r\n"
    head += f"Authorization: {auth}\r\n" if auth else ""
    head += draw(st.sampled_from(["", "Transfer-Encoding: chunked\r\n", "X-Signature: é\r\n", "Connection: close\r\n"]))
    return head.encode("utf-8") + b"\r\n" + body


def send_raw(server: InviteServer, data: bytes) -> bytes:
    with socket.create_connection(("127.0.0.1", server.port), timeout=10) as s:
        s.sendall(data)
        s.shutdown(socket.SHUT_WR)
        chunks = []
        while chunk := s.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
def test_fuzzed_requests_never_answer_500_nor_stop_the_box(terminal_with_box, data):
    window, server, token, _ = terminal_with_box
    window.swipe("0004521873")  # logged in, so invitations can be taken
    answer = send_raw(server, data.draw(requests_raw(token)))
    status = answer.split(b" ", 2)[1] if answer.startswith(b"HTTP/1.1 ") else b""
    assert status and not status.startswith(b"5") or status == b"503", answer[:300]
    assert window.errors == 0  # nothing was merely survived: every input had its answer
    with window.lock:  # the next service: whatever was invited expires now
        window.session.tick(10 ** 9)


def test_after_the_fuzz_a_press_on_the_box_is_still_a_rating(terminal_with_box):
    window, server, token, firmware = terminal_with_box
    window.swipe("0004521873") if window.staff is None else None
    before = window.store.counts()["pending"]
    invited = requests.post(f"http://127.0.0.1:{server.port}/v1/invite", json={"case_no": "C-AFTER"},
                            headers={"Authorization": f"Bearer {token}"}, timeout=5)
    assert invited.status_code == 201, invited.text
    firmware.key("D4")
    firmware.key("U4")
    assert wait_for(lambda: window.store.counts()["pending"] == before + 1, 10)
    assert window.errors == 0


# -- badge readers ------------------------------------------------------------------------------

@given(st.lists(st.binary(max_size=80), max_size=20))
def test_the_serial_badge_decoder_takes_any_bytes(chunks):
    decoder = SerialDecoder()
    for chunk in chunks:
        for number in decoder.feed(chunk):
            assert _valid(number)


def test_a_serial_reader_fed_garbage_still_logs_the_next_badge_in(window, tmp_path):
    import pty
    import tty
    master, slave = pty.openpty()
    tty.setraw(slave)
    swiped = []
    reader = SerialBadgeReader(os.ttyname(slave), lambda number: swiped.append(window.swipe(number))).start()
    try:
        assert wait_for(reader.opened.is_set, 10)
        garbage = bytes(range(256)) * 8 + b"\x02" + "工号\ud800".encode("utf-8", "surrogatepass") + b"\x03"
        os.write(master, garbage + b"\x02" + b"9" * 500 + b"\x03")
        os.write(master, b"\x020004521873\x03")  # 李明华's badge
        assert wait_for(lambda: any(s.known for s in swiped), 10)
        assert window.staff.staff_no == "SZ0101" and reader.thread.is_alive() and window.errors == 0
    finally:
        reader.stop()
        os.close(master)
        os.close(slave)
