"""The local invite API on loopback, in front of a real window session and a real database."""

import json
import socket
import threading

import pytest
import requests

from terminal.core.channels import InputDevice
from terminal.invite_api import InviteServer, load_or_create_token


@pytest.fixture
def api(window):
    token = load_or_create_token(window.config.invite_token_path)
    server = InviteServer(window, "127.0.0.1:0", token, per_address=16).start()
    session = requests.Session()
    session.headers["Authorization"] = f"Bearer {token}"
    yield f"http://{server.address}", session, window
    server.stop()


def test_token_file_is_private_and_stable(tmp_path):
    path = tmp_path / "invite-token"
    token = load_or_create_token(path)
    assert len(token) >= 40 and oct(path.stat().st_mode & 0o777) == "0o600"
    assert load_or_create_token(path) == token


def test_invite_then_rate_then_ask_whether_the_case_was_rated(api):
    url, http, window = api
    window.swipe("0004521873")
    assert http.get(f"{url}/v1/state").json() == {"state": "idle", "window": "W01", "staff_no": "SZ0101"}
    answer = http.post(f"{url}/v1/invite", json={"case_no": "C-2026-42", "item_code": "ITEM-1"})
    assert answer.status_code == 201 and answer.json()["state"] == "invited"
    session_id = answer.json()["session_id"]
    assert http.get(f"{url}/v1/sessions/{session_id}").json()["outcome"] == "open"
    window.press(4, InputDevice.TOUCHSCREEN)
    report = http.get(f"{url}/v1/sessions/{session_id}").json()
    assert report["rated"] is True and report["case_no"] == "C-2026-42"
    assert "level" not in report  # whether, never how (三不)
    (case_no,) = window.store.db.execute("SELECT json_extract(payload, '$.case_no') FROM ratings").fetchone()
    assert case_no == "C-2026-42"


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "Basic x"}])
def test_bad_token_is_refused_and_changes_nothing(api, headers):
    url, http, window = api
    window.swipe("0004521873")
    answer = requests.post(f"{url}/v1/invite", json={"case_no": "C1"}, headers=headers)
    assert answer.status_code == 401 and answer.json()["error"] == "bad_token"
    assert window.state.value == "idle"


@pytest.mark.parametrize("body, code", [
    (b"{not json", "bad_json"),
    (b"[1, 2]", "bad_json"),
    (b'{"case_no": 42}', "bad_field"),
    (b'{"case_no": "' + b"9" * 51 + b'"}', "bad_field"),
    (b'{"case": "C1"}', "bad_field"),
])
def test_malformed_requests_get_a_clear_error(api, body, code):
    url, http, window = api
    window.swipe("0004521873")
    answer = http.post(f"{url}/v1/invite", data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"] == code and answer.json()["detail"]
    assert window.state.value == "idle"


def test_oversize_body_is_refused_without_reading_it(api):
    url, http, window = api
    answer = http.post(f"{url}/v1/invite", data=b"x" * 100_000)
    assert answer.status_code == 413 and answer.json()["error"] == "too_large"


def test_invite_while_paused_and_during_a_session(api):
    url, http, window = api
    answer = http.post(f"{url}/v1/invite", json={})
    assert answer.status_code == 409 and answer.json()["error"] == "paused"
    window.swipe("0004521873")
    assert http.post(f"{url}/v1/invite", json={"case_no": "A"}).status_code == 201
    answer = http.post(f"{url}/v1/invite", json={"case_no": "B"})
    assert answer.status_code == 409 and answer.json()["error"] == "busy"


def test_concurrent_invites_open_exactly_one_session(api):
    url, http, window = api
    window.swipe("0004521873")
    barrier, statuses = threading.Barrier(12), []

    def invite(n):
        s = requests.Session()
        s.headers.update(http.headers)
        barrier.wait()
        statuses.append(s.post(f"{url}/v1/invite", json={"case_no": f"C{n}"}).status_code)

    threads = [threading.Thread(target=invite, args=(n,)) for n in range(12)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sorted(statuses) == [201] + [409] * 11
    invited = window.store.db.execute("SELECT count(*) FROM events WHERE kind = 'invited'").fetchone()
    assert invited == (1,)


def test_unknown_paths_and_methods(api):
    url, http, _ = api
    assert http.get(f"{url}/v1/sessions/doesnotexist1").status_code == 404
    assert http.get(f"{url}/v1/nothing").status_code == 404
    assert http.delete(f"{url}/v1/invite").status_code == 405
    raw = socket.create_connection(tuple(url[7:].split(":")[:1]) + (int(url.rsplit(":", 1)[1]),))
    raw.sendall(b"POST /v1/invite HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer "
                + http.headers["Authorization"].split()[1].encode() + b"\r\n\r\n")
    assert b" 411 " in raw.recv(4096).split(b"\r\n")[0]
    raw.close()


def signed(token: str, method: str, path: str, body: bytes, when: float | None = None, nonce: str | None = None):
    import time
    from terminal.core import signing
    headers = signing.signed_headers("business-system", token, method, path, body, when or time.time())
    if nonce:
        headers[signing.HEADER_NONCE] = nonce
        headers[signing.HEADER_SIGNATURE] = signing.sign(token, method, path, headers[signing.HEADER_TIMESTAMP],
                                                         nonce, body)
    return {**headers, "Content-Type": "application/json"}


def test_a_business_system_on_another_machine_signs_instead_of_sending_the_token(api):
    import time
    url, http, window = api
    token = http.headers["Authorization"].split()[1]
    window.swipe("0004521873")
    body = b'{"case_no": "C-SIGNED"}'
    headers = signed(token, "POST", "/v1/invite", body, nonce="n0nce0000001")
    answer = requests.post(f"{url}/v1/invite", data=body, headers=headers, timeout=5)
    assert answer.status_code == 201, answer.text
    assert requests.post(f"{url}/v1/invite", data=body, headers=headers, timeout=5).json()["error"] == "replayed_nonce"
    forged = signed("not-the-token" * 3, "POST", "/v1/invite", body)
    assert requests.post(f"{url}/v1/invite", data=body, headers=forged, timeout=5).json()["error"] == "bad_signature"
    stale = signed(token, "POST", "/v1/invite", body, when=time.time() - 3600)
    assert requests.post(f"{url}/v1/invite", data=body, headers=stale, timeout=5).json()["error"] == "stale_timestamp"
    state = requests.get(f"{url}/v1/state", headers=signed(token, "GET", "/v1/state", b""), timeout=5)
    assert state.status_code == 200 and state.json()["state"] == "invited"


def test_an_invitation_names_only_the_staff_member_logged_in(api):
    url, http, window = api
    window.swipe("0004521873")  # 李明华, SZ0101
    answer = http.post(f"{url}/v1/invite", json={"staff_no": "SZ0102"})
    assert answer.status_code == 409 and answer.json()["error"] == "staff_not_here"
    assert http.post(f"{url}/v1/invite", json={"staff_no": "SZ0101"}).status_code == 201


@pytest.mark.parametrize("value", ["C\x7f1", "\ud800", "a\x00b", "办" * 51])
def test_text_a_record_cannot_hold_is_a_clear_400(api, value):
    url, http, window = api
    window.swipe("0004521873")
    body = json.dumps({"case_no": value}).encode()  # valid JSON, as a careless business system sends it
    answer = http.post(f"{url}/v1/invite", data=body, headers={"Content-Type": "application/json"})
    assert answer.status_code == 400 and answer.json()["error"] == "bad_field" and "case_no" in answer.json()["detail"]
    assert window.state.value == "idle" and window.errors == 0


def test_a_peer_outside_the_allowlist_is_dropped_before_a_byte_is_read(window):
    token = load_or_create_token(window.config.invite_token_path)
    server = InviteServer(window, "127.0.0.1:0", token, allow=["127.0.0.2/32"]).start()
    try:
        with socket.create_connection(("127.0.0.1", server.port), timeout=5) as s:
            s.sendall(b"GET /v1/state HTTP/1.1\r\nHost: x\r\n\r\n")
            try:
                assert s.recv(100) == b""
            except ConnectionResetError:
                pass  # aborted: the same thing, said more bluntly
        with socket.create_connection(("127.0.0.1", server.port), timeout=5, source_address=("127.0.0.2", 0)) as s:
            s.sendall(b"GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n")
            assert s.recv(100).startswith(b"HTTP/1.1 200")
        assert server.refused >= 1
    finally:
        server.stop()


def test_the_api_serves_its_openapi_document(api):
    url, _, _ = api
    document = requests.get(f"{url}/v1/openapi.json", timeout=5).json()
    assert document["openapi"].startswith("3.") and set(document["paths"]) >= {"/v1/invite", "/v1/state",
                                                                              "/v1/sessions/{session_id}"}


def test_the_queue_system_calls_a_ticket_and_pauses_and_resumes_the_window(api):
    """排队叫号 through the same API and token: a called ticket is told to the screen and voice and
    carried by the next rating; pause and resume keep the staff member logged in."""
    url, http, window = api
    told = []
    window.listeners.append(lambda what, detail: told.append((what, detail)) if what == "call" else None)
    window.swipe("0004521873")
    assert requests.post(f"{url}/v1/call", json={"ticket_no": "A012"}).status_code == 401  # the token is needed
    called = http.post(f"{url}/v1/call", json={"ticket_no": "A012"})
    assert called.status_code == 200 and called.json()["state"] == "idle" and told == [("call", "A012")]
    session_id = http.post(f"{url}/v1/invite", json={"case_no": "C-Q-1"}).json()["session_id"]
    window.press(5, InputDevice.TOUCHSCREEN)
    assert http.get(f"{url}/v1/sessions/{session_id}").json()["ticket_no"] == "A012"
    (ticket,) = window.store.db.execute("SELECT json_extract(payload, '$.ticket_no') FROM ratings").fetchone()
    assert ticket == "A012"
    for body in ({}, {"ticket_no": 12}, {"ticket_no": "A" * 17}, {"ticket_no": "A1", "case_no": "C"}):
        assert http.post(f"{url}/v1/call", json=body).json()["error"] == "bad_field", body
    paused = http.post(f"{url}/v1/pause")
    assert paused.json() == {"state": "paused", "window": "W01", "staff_no": "SZ0101"}
    assert http.post(f"{url}/v1/invite", json={}).json()["error"] == "paused"
    assert http.post(f"{url}/v1/call", json={"ticket_no": "A013"}).json()["error"] == "paused"
    assert http.post(f"{url}/v1/pause", json={"x": 1}).json()["error"] == "bad_field"
    assert http.post(f"{url}/v1/resume").json()["state"] == "idle"
    events = [k for (k,) in window.store.db.execute("SELECT json_extract(payload, '$.kind') FROM events ORDER BY seq")]
    assert [k for k in events if k in ("ticket_called", "queue_paused", "queue_resumed")] == [
        "ticket_called", "queue_paused", "queue_resumed"]
    spec = requests.get(f"{url}/v1/openapi.json").json()["paths"]
    assert {"/v1/call", "/v1/pause", "/v1/resume"} <= set(spec)


def test_a_body_on_any_request_is_bounded_as_it_arrives(api):
    """A GET with a body, or a chunked one, is counted against ``max_body`` as it comes: read whole
    before, one connection took a kiosk from 25 MB to 2 GB in seconds."""
    url, http, window = api
    token = http.headers["Authorization"].split()[1]
    port = int(url.rsplit(":", 1)[1])
    auth = f"Authorization: Bearer {token}\r\nHost: x\r\n".encode()
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /v1/state HTTP/1.1\r\n" + auth + b"Content-Length: 100000000000\r\n\r\n")
        assert s.recv(200).startswith(b"HTTP/1.1 413")  # at once, not after the body's time runs out
    chunk = b"%x\r\n%s\r\n" % (3000, b"x" * 3000)
    with socket.create_connection(("127.0.0.1", port), timeout=5) as s:
        s.sendall(b"GET /v1/state HTTP/1.1\r\n" + auth + b"Transfer-Encoding: chunked\r\n\r\n" + chunk * 3 + b"0\r\n\r\n")
        assert s.recv(200).startswith(b"HTTP/1.1 413")


def test_a_replay_stays_refused_after_the_clock_ran_ahead_and_came_back(api, monkeypatch):
    """Nonces are forgotten by the monotonic clock: one signed request while the wall clock was 15
    minutes ahead used to wipe them all, and a captured request was accepted again once the
    clock was put right."""
    import time
    from types import SimpleNamespace

    from terminal import invite_api
    url, http, window = api
    token = http.headers["Authorization"].split()[1]
    ahead = [0.0]
    monkeypatch.setattr(invite_api, "time", SimpleNamespace(time=lambda: time.time() + ahead[0],
                                                            monotonic=time.monotonic))
    captured = signed(token, "GET", "/v1/state", b"", nonce="captured0001")
    assert requests.get(f"{url}/v1/state", headers=captured, timeout=5).status_code == 200
    ahead[0] = 900.0  # the clock steps ahead; the business system signs by its own, right, clock
    later = signed(token, "GET", "/v1/state", b"", when=time.time() + 900, nonce="whileahead01")
    assert requests.get(f"{url}/v1/state", headers=later, timeout=5).status_code == 200
    ahead[0] = 0.0  # and is put right
    replay = requests.get(f"{url}/v1/state", headers=captured, timeout=5)
    assert replay.status_code == 401 and replay.json()["error"] == "replayed_nonce"


def test_a_peer_that_never_reads_its_answers_loses_its_connection(window, monkeypatch):
    """Answers leave within SEND_TIMEOUT_S or the connection is dropped: peers pipelining requests
    and never reading the answers held every connection slot for ever."""
    import time

    from terminal import invite_api
    monkeypatch.setattr(invite_api, "SEND_TIMEOUT_S", 0.5)
    token = load_or_create_token(window.config.invite_token_path)
    server = InviteServer(window, "127.0.0.1:0", token).start()
    try:
        s = socket.socket()
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
        s.connect(("127.0.0.1", server.port))
        s.setblocking(False)
        try:
            for _ in range(3000):  # until the kernel's buffers are full both ways
                s.send(b"GET /v1/openapi.json HTTP/1.1\r\nHost: x\r\n\r\n" * 10)
        except BlockingIOError:
            pass
        deadline = time.monotonic() + 15
        while server.open and time.monotonic() < deadline:  # waiting for the drop, bounded
            time.sleep(0.05)
        assert not server.open, "the server still holds the connection of a peer that reads nothing"
        s.close()
    finally:
        server.stop()


def test_a_request_captured_before_a_restart_is_refused_after_it(window):
    """Nonces were kept in memory only: a signed invitation captured less than 300 s before the
    terminal restarted was taken again once after the restart (a second session for one case).
    They are kept in the terminal's database now, so the new process refuses the replay."""
    from terminal.content import Content
    from terminal.store import Store
    from terminal.window import Window
    token = load_or_create_token(window.config.invite_token_path)
    window.swipe("0004521873")
    body = b'{"case_no": "C-CAPTURED"}'
    captured = signed(token, "POST", "/v1/invite", body, nonce="captured0002")
    server = InviteServer(window, "127.0.0.1:0", token).start()
    try:
        assert requests.post(f"http://{server.address}/v1/invite", data=body, headers=captured, timeout=5).status_code == 201
    finally:
        server.stop()
    window.store.close()  # the terminal restarts: a new process, a new store, a new window and API
    store = Store(window.config.db_path)
    again = Window(window.config, store, Content.load(window.config.content_dir))
    again.swipe("0004521873")
    server = InviteServer(again, "127.0.0.1:0", token).start()
    try:
        replay = requests.post(f"http://{server.address}/v1/invite", data=body, headers=captured, timeout=5)
        fresh = signed(token, "POST", "/v1/invite", body, nonce="fresh0000001")
        taken = requests.post(f"http://{server.address}/v1/invite", data=body, headers=fresh, timeout=5)
    finally:
        server.stop()
        store.close()
    assert replay.status_code == 401 and replay.json()["error"] == "replayed_nonce"
    assert taken.status_code == 201  # a new request is taken as ever


def test_a_polling_business_system_costs_the_card_no_write_and_no_nonce_is_left_behind(window, monkeypatch):
    """A business system may poll GET /v1/state several times a second: each signed GET was a
    durable write of its nonce (an fsync of the SD card), though a GET replayed after a restart
    changes nothing. Only a request that changes something keeps its nonce in the store, and a
    kept nonce the API forgets is forgotten there too, at the next write."""
    import time as time_module

    from terminal import invite_api
    token = load_or_create_token(window.config.invite_token_path)
    window.swipe("0004521873")
    server = InviteServer(window, "127.0.0.1:0", token).start()
    url = f"http://{server.address}"
    stored = lambda: [n for n, _ in window.store.nonces()]  # noqa: E731
    try:
        for n in range(5):
            polled = requests.get(f"{url}/v1/state", headers=signed(token, "GET", "/v1/state", b"", nonce=f"poll{n:08d}"),
                                  timeout=5)
            assert polled.status_code == 200
        assert stored() == []
        again = requests.get(f"{url}/v1/state", headers=signed(token, "GET", "/v1/state", b"", nonce="poll00000001"),
                             timeout=5)
        assert again.status_code == 401 and again.json()["error"] == "replayed_nonce"  # in memory, as ever
        body = b'{"case_no": "C-POLLED"}'
        assert requests.post(f"{url}/v1/invite", data=body, timeout=5,
                             headers=signed(token, "POST", "/v1/invite", body, nonce="invite000001")).status_code == 201
        assert stored() == ["invite000001"]
        # ten minutes on (both clocks): every nonce so far is forgotten, the stored one at the next write
        later = time_module.time() + 2 * invite_api.signing.MAX_SKEW_SECONDS + 1
        monkeypatch.setattr(invite_api.time, "time", lambda: later)
        monotonic = time_module.monotonic() + 2 * invite_api.signing.MAX_SKEW_SECONDS + 1
        monkeypatch.setattr(invite_api.time, "monotonic", lambda: monotonic)
        assert requests.get(f"{url}/v1/state", timeout=5, headers=signed(token, "GET", "/v1/state", b"", when=later,
                                                                          nonce="poll00000009")).status_code == 200
        assert requests.post(f"{url}/v1/pause", data=b"", timeout=5, headers=signed(
            token, "POST", "/v1/pause", b"", when=later, nonce="pause0000001")).status_code < 500
        assert stored() == ["pause0000001"]
    finally:
        server.stop()
