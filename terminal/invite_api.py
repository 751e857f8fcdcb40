"""The local invite API: how the window's business system says "this case is done, please rate".

HTTP on the address in ``[invite] listen`` (off by default), answered in the kiosk (or headless)
process, where the window's session lives. Every request carries the terminal's invite token,
either as ``Authorization: Bearer <token>`` (from this machine or a trusted cable) or as a signature
(from a business system on another machine): ``X-Timestamp``, ``X-Nonce`` and ``X-Signature`` =
hex HMAC-SHA256 with the token over ``METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nSHA256(body)``, exactly as
terminals sign for the central server (``terminal.core.signing``), so the token itself never
crosses the LAN. The token is in ``<data_dir>/invite-token`` (mode 600, made on first start, shown
by ``rating-terminal invite-token``), never in a URL and never logged.

    POST /v1/invite            {"case_no": "…", "item_code": "…", "staff_no": "…", "ticket_no": "…"}  (all optional)
        201 {"session_id", "state": "invited", "expires_in_s"}
        409 {"error": "busy" | "paused" | "staff_not_here"}    503 {"error": "out_of_service"}
    POST /v1/call              {"ticket_no": "A012"}   the queue system calls a ticket here: shown,
                               announced, carried by the next rating; 409 paused
    POST /v1/pause, /v1/resume  暂停服务 / 恢复服务 from the queue system, the staff still logged in
    GET  /v1/sessions/<id>     {"session_id", "case_no", "item_code", "staff_no", "source",
                                "outcome": "open" | "rated" | "expired" | "abandoned", "rated"}
    GET  /v1/state             {"state", "staff_no", "window"}
    GET  /v1/openapi.json      this API's OpenAPI document (no token needed)

``staff_no``, when given, must be the staff member logged in at this window. Errors are
``{"error": code, "detail": text}``: 400 bad_json / bad_field / bad_request, 401 bad_token /
bad_signature / stale_timestamp / replayed_nonce, 404 not_found, 405 method_not_allowed,
411 length_required, 413 too_large, 503 busy_connections. The answer says whether a case was
rated, never how: staff must not see or steer the rating (三不).

It stays up on a hostile LAN: one asyncio loop in its own thread serves every connection
(``h11`` parses HTTP), so idle connections cost a socket, not a thread. A peer outside
``[invite] allow`` is closed before a byte is read; past ``max_connections`` in all or
``per_address`` from one address a connection is refused at once; a request's head must arrive
within ``HEAD_TIMEOUT_S`` and its body within ``BODY_TIMEOUT_S`` (slowloris); heads are at most
``MAX_HEAD_BYTES``. The window's own work runs on a small thread pool, never in the loop.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import hmac
import ipaddress
import json
import logging
import re
import secrets
import threading
import time
from collections import OrderedDict
from pathlib import Path

import h11

from terminal.config import listen_address
from terminal.core import signing
from terminal.core.checks import InvalidRecord
from terminal.core.session import SessionRefused
from terminal.credentials import write_private
from terminal.store import StoreError
from terminal.window import Window

log = logging.getLogger("rating-terminal.invite")
FIELDS = ("case_no", "item_code", "staff_no", "ticket_no")
QUEUE_ACTIONS = ("/v1/call", "/v1/pause", "/v1/resume")  # the queue system's (排队叫号)
_SESSION_PATH = re.compile(r"^/v1/sessions/([A-Za-z0-9_-]{8,64})$")
HEAD_TIMEOUT_S = 5.0
BODY_TIMEOUT_S = 5.0
SEND_TIMEOUT_S = 5.0
MAX_HEAD_BYTES = 8192
BACKLOG = 4096  # a crowd of connects waits in the kernel's queue, not in front of the business system's
DEFAULT_ALLOW = ("127.0.0.0/8", "::1/128")
MAX_NONCES = 100_000  # signed requests' nonces remembered, in memory and in the store


def load_or_create_token(path: Path) -> str:
    try:
        token = path.read_text(encoding="utf-8").strip()
        if len(token) >= 24:
            return token
    except FileNotFoundError:
        pass
    token = secrets.token_urlsafe(32)
    write_private(path, token + "\n")
    return token


class Refusal(Exception):
    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


class InviteServer:
    def __init__(self, window: Window, listen: str, token: str, max_body: int = 4096,
                 allow: tuple[str, ...] | list[str] = (), max_connections: int = 64, per_address: int = 8):
        self.host, self.port = listen_address(listen)  # ConfigError (a ValueError) if it is not one
        self.handler = Handler(window, token, max_body)
        self.allow = [ipaddress.ip_network(a, strict=False) for a in (allow or DEFAULT_ALLOW)]
        self.max_connections, self.per_address = max_connections, per_address
        self.open: dict[str, int] = {}  # peer address -> connections open
        self.refused = 0
        self.pool = concurrent.futures.ThreadPoolExecutor(4, thread_name_prefix="invite-work")
        self.loop = asyncio.new_event_loop()
        self.ready = threading.Event()
        self.server: asyncio.AbstractServer | None = None
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._serve, name="invite-api", daemon=True)

    @classmethod
    def for_window(cls, window: Window, config) -> "InviteServer":
        """The server ``[invite]`` describes, with the terminal's own token."""
        invite = config.invite
        return cls(window, invite.listen, load_or_create_token(config.invite_token_path), invite.max_body,
                   invite.allow, invite.max_connections, invite.per_address)

    @property
    def address(self) -> str:
        return f"{self.host}:{self.port}"

    def start(self) -> "InviteServer":
        self.thread.start()
        if not self.ready.wait(10):
            raise RuntimeError(f"the invite API did not start on {self.address} within 10 s")
        if self.failure:
            raise self.failure
        log.info("invite API listening on %s, from %s", self.address, ", ".join(map(str, self.allow)))
        return self

    def stop(self) -> None:
        if self.loop.is_running():
            asyncio.run_coroutine_threadsafe(self._shutdown(), self.loop)
        self.thread.join(5)
        self.pool.shutdown(wait=False, cancel_futures=True)

    async def _shutdown(self) -> None:
        """Stop listening, end every open connection, then the loop."""
        self.server.close()
        current = asyncio.current_task()
        tasks = [t for t in asyncio.all_tasks() if t is not current]
        for task in tasks:
            task.cancel()
        await asyncio.gather(*tasks, return_exceptions=True)
        self.loop.stop()

    def _serve(self) -> None:
        asyncio.set_event_loop(self.loop)
        try:
            self.server = self.loop.run_until_complete(
                asyncio.start_server(self._connection, self.host, self.port, backlog=BACKLOG, limit=MAX_HEAD_BYTES))
            self.port = self.server.sockets[0].getsockname()[1]
        except Exception as exc:  # OSError, and whatever else a bind refuses: start() raises it, never "listening"
            self.failure = exc
            self.ready.set()
            return
        self.ready.set()
        try:
            self.loop.run_forever()
        finally:
            self.loop.close()

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = (writer.get_extra_info("peername") or ("?",))[0]
        try:
            allowed = any(ipaddress.ip_address(peer) in net for net in self.allow)
        except ValueError:
            allowed = False
        if not allowed:
            self.refused += 1
            writer.transport.abort()  # not a byte read, not a byte written
            return
        if sum(self.open.values()) >= self.max_connections or self.open.get(peer, 0) >= self.per_address:
            self.refused += 1  # refused at once, before reading: an idle crowd cannot make us wait
            writer.write(_raw(503, {"error": "busy_connections", "detail": "too many connections; try again"}))
            writer.close()
            return
        self.open[peer] = self.open.get(peer, 0) + 1
        try:
            await self._serve_connection(reader, writer, peer)
        except (ConnectionError, asyncio.IncompleteReadError, h11.LocalProtocolError):
            pass
        except asyncio.CancelledError:  # stopping: end quietly (3.11's streams log a cancelled handler)
            pass
        finally:
            self.open[peer] -= 1
            if not self.open[peer]:
                del self.open[peer]
            writer.close()

    async def _serve_connection(self, reader, writer, peer: str) -> None:
        conn = h11.Connection(h11.SERVER, max_incomplete_event_size=MAX_HEAD_BYTES)
        while True:
            try:
                request = await asyncio.wait_for(_next(conn, reader, h11.Request), HEAD_TIMEOUT_S)
                if request is None:
                    return  # the peer closed between requests
                body = await asyncio.wait_for(self._body(conn, reader, request), BODY_TIMEOUT_S)
            except asyncio.TimeoutError:
                return await _refuse(conn, writer, 408, "timeout", "request not sent in time")
            except Refusal as exc:
                return await _refuse(conn, writer, exc.status, exc.code, exc.detail)
            except (h11.RemoteProtocolError, ValueError) as exc:  # h11 refuses what is not HTTP/1.1
                return await _refuse(conn, writer, 400, "bad_request", _short(exc))
            method, target = request.method.decode("ascii", "replace"), request.target.decode("ascii", "replace")
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in request.headers}
            status, payload = await asyncio.get_running_loop().run_in_executor(
                self.pool, self.handler.handle, method, target, headers, body, peer)
            keep = status < 400 and conn.their_state is h11.DONE and "close" not in headers.get("connection", "")
            await _send(conn, writer, status, payload, close=not keep)
            if not keep or conn.our_state is not h11.DONE:
                return
            conn.start_next_cycle()

    async def _body(self, conn: h11.Connection, reader, request: h11.Request) -> bytes:
        """The request's body, never more than ``max_body`` bytes whatever the method or framing:
        a POST says its length first, and any body (a GET's, a chunked one) is counted as it comes."""
        lengths = [v for k, v in request.headers if k == b"content-length"]
        if request.method == b"POST" and not lengths:
            raise Refusal(411, "length_required", "send a Content-Length")
        if lengths and int(lengths[0]) > self.handler.max_body:
            raise Refusal(413, "too_large", f"body over {self.handler.max_body} bytes")
        parts, size = [], 0
        while True:
            event = await _next(conn, reader, (h11.Data, h11.EndOfMessage))
            if event is None:
                raise ConnectionError("closed in the middle of a request")
            if isinstance(event, h11.EndOfMessage):
                return b"".join(parts)
            size += len(event.data)
            if size > self.handler.max_body:
                raise Refusal(413, "too_large", f"body over {self.handler.max_body} bytes")
            parts.append(event.data)


async def _next(conn: h11.Connection, reader: asyncio.StreamReader, wanted):
    """The next h11 event of the wanted kind, reading as needed; None if the peer closed cleanly."""
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await reader.read(4096))
            continue
        if event is h11.PAUSED or isinstance(event, h11.ConnectionClosed):
            return None
        if isinstance(event, wanted):
            return event
        raise h11.RemoteProtocolError(f"unexpected {type(event).__name__}")


async def _send(conn: h11.Connection, writer: asyncio.StreamWriter, status: int, payload: dict, close: bool) -> None:
    data = _json(payload)
    headers = [("content-type", "application/json; charset=utf-8"), ("content-length", str(len(data))),
               ("server", "rating-terminal-invite/2")] + ([("connection", "close")] if close else [])
    writer.write(conn.send(h11.Response(status_code=status, headers=headers)) + conn.send(h11.Data(data=data))
                 + conn.send(h11.EndOfMessage()))
    await _drain(writer)


async def _refuse(conn: h11.Connection, writer: asyncio.StreamWriter, status: int, code: str, detail: str) -> None:
    """Answer an error and close: through h11 if a request head came, else as plain bytes."""
    payload = {"error": code, "detail": detail}
    if conn.our_state is h11.SEND_RESPONSE:
        await _send(conn, writer, status, payload, close=True)
    else:
        writer.write(_raw(status, payload))
        await _drain(writer)


async def _drain(writer: asyncio.StreamWriter) -> None:
    """Wait for an answer to leave, at most ``SEND_TIMEOUT_S``: a peer that never reads its answers
    would otherwise hold its connection, and one of the few slots, for ever."""
    try:
        await asyncio.wait_for(writer.drain(), SEND_TIMEOUT_S)
    except asyncio.TimeoutError:
        writer.transport.abort()
        raise ConnectionError("the peer did not read its answer in time") from None


class Handler:
    """What a request means, in plain synchronous Python (run on the server's thread pool)."""

    def __init__(self, window: Window, token: str, max_body: int):
        self.window, self.token, self.max_body = window, token, max_body
        self.nonces: OrderedDict[str, tuple[float, int]] = OrderedDict()  # nonce -> (monotonic when seen, its timestamp)
        self.lock = threading.Lock()
        with window.lock:  # the store's one connection is the window's
            kept = window.store.nonces()
        now = time.monotonic()  # held as if seen now: a full 2 * MAX_SKEW_SECONDS from this start
        for nonce, signed_at in kept[-MAX_NONCES:]:
            self.nonces[nonce] = (now, signed_at)
        self.stored = {nonce for nonce, _ in kept}  # the nonces the store holds (a changing request's)
        self.unstored: list[str] = []  # of those, the ones memory forgot: the store forgets them at its next write

    def handle(self, method: str, target: str, headers: dict, body: bytes, peer: str) -> tuple[int, dict]:
        try:
            status, payload = self._route(method, target, headers, body)
        except Refusal as exc:
            status, payload = exc.status, {"error": exc.code, "detail": exc.detail}
        except Exception as exc:  # a broken disk or a bug: an answer still, and the traceback in the log
            log.exception("invite API: %s %s failed", method, target[:80])
            status, payload = 500, {"error": "internal_error", "detail": f"{type(exc).__name__}: see the terminal's log"}
        quiet = method == "GET" and status < 300  # a business system may poll several times a second
        (log.debug if quiet else log.info)("%s %s %s -> %d", peer, method, target[:80], status)
        return status, payload

    def _route(self, method: str, target: str, headers: dict, body: bytes) -> tuple[int, dict]:
        if method == "GET" and target == "/v1/openapi.json":
            return 200, OPENAPI
        if method not in ("GET", "POST"):
            raise Refusal(405, "method_not_allowed", "use POST /v1/invite or GET")
        self._authorise(method, target, headers, body)
        if method == "POST" and target in QUEUE_ACTIONS:
            return self._queue(target, body)
        if method == "POST":
            if target != "/v1/invite":
                raise Refusal(404, "not_found", f"no POST {target[:80]}")
            fields = self._invitation(body)
            try:
                service = self.window.invite(source="api", **fields)
            except SessionRefused as exc:
                raise Refusal(503 if exc.code == "out_of_service" else 409, exc.code, str(exc)) from None
            except InvalidRecord as exc:
                raise Refusal(400, "bad_field", str(exc)) from None
            return 201, {"session_id": service.session_id, "state": "invited",
                         "expires_in_s": self.window.rules.invite_timeout_s}
        if target == "/v1/state":
            staff = self.window.staff
            return 200, {"state": self.window.state.value, "window": self.window.config.terminal.window,
                         "staff_no": staff.staff_no if staff else None}
        found = _SESSION_PATH.match(target)
        report = self.window.report(found.group(1)) if found else None
        if report is None:
            raise Refusal(404, "not_found", "no such session (only recent sessions are kept)")
        return 200, report

    def _queue(self, target: str, body: bytes) -> tuple[int, dict]:
        """The queue system: call a ticket to this window (shown and announced, carried by the next
        rating), or pause and resume the window (暂停服务 / 恢复服务) with its staff still logged in."""
        fields = self._invitation(body)
        try:
            if target == "/v1/call":
                if set(fields) != {"ticket_no"}:
                    raise Refusal(400, "bad_field", 'body must be {"ticket_no": "A012"}')
                self.window.call(fields["ticket_no"])
            elif fields:
                raise Refusal(400, "bad_field", "pause and resume take no body")
            elif target == "/v1/pause":
                self.window.pause()
            else:
                self.window.resume()
        except SessionRefused as exc:
            raise Refusal(409, exc.code, str(exc)) from None
        except InvalidRecord as exc:
            raise Refusal(400, "bad_field", str(exc)) from None
        staff = self.window.staff
        return 200, {"state": self.window.state.value, "window": self.window.config.terminal.window,
                     "staff_no": staff.staff_no if staff else None}

    def _authorise(self, method: str, target: str, headers: dict, body: bytes) -> None:
        if "x-signature" in headers:
            return self._check_signature(method, target, headers, body)
        scheme, _, given = headers.get("authorization", "").partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(given.strip().encode("utf-8", "replace"), self.token.encode()):
            raise Refusal(401, "bad_token", "send Authorization: Bearer <the terminal's invite token>, or sign the request")

    def _check_signature(self, method: str, target: str, headers: dict, body: bytes) -> None:
        timestamp, nonce = headers.get("x-timestamp", ""), headers.get("x-nonce", "")
        if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12
                and 8 <= len(nonce) <= 64 and nonce.isascii() and nonce.isalnum()):
            raise Refusal(401, "bad_signature", "X-Timestamp (Unix seconds) and X-Nonce (8-64 letters or digits) needed")
        if not signing.verify(self.token, method, target, timestamp, nonce, body, headers["x-signature"]):
            raise Refusal(401, "bad_signature", "signature does not match")
        now, signed_at = time.time(), int(timestamp)
        if abs(signed_at - now) > signing.MAX_SKEW_SECONDS:
            raise Refusal(401, "stale_timestamp", "timestamp more than 300 s from the terminal's clock")
        with self.lock:
            forget = self._forget_old_nonces(now)
            if nonce in self.nonces:
                raise Refusal(401, "replayed_nonce", "this nonce has been used before")
            while len(self.nonces) >= MAX_NONCES:  # bounded whatever a signer does
                forget.append(self.nonces.popitem(last=False)[0])
            self.unstored += [n for n in forget if n in self.stored]
            self.stored.difference_update(forget)
            if method != "GET":  # a GET changes nothing if replayed after a restart, and may come several times a second
                try:
                    with self.window.lock:  # the store's one connection is the window's
                        self.window.store.keep_nonce(nonce, signed_at, self.unstored)
                except StoreError as exc:  # not kept: after a restart it could be taken again
                    raise Refusal(503, "out_of_service", f"the terminal cannot keep the request's nonce: {exc}") from None
                self.stored.add(nonce)
                self.unstored = []
            self.nonces[nonce] = (time.monotonic(), signed_at)

    def _forget_old_nonces(self, now: float) -> list[str]:
        """Forget a nonce only once its request could not be accepted again: held for twice the
        allowed skew by the monotonic clock, and its own timestamp past and stale by the wall clock. Aged by
        the wall clock alone, one request while the clock ran ahead wiped every nonce, and a
        captured request replayed after the clock was put right was accepted again. Returns those
        forgotten, for the store to forget too.

        A changing request's nonce is kept in the terminal's database as well (``Store.keep_nonce``,
        committed before the request is taken) and loaded at start, held as if seen then: in memory
        only, a request captured less than MAX_SKEW_SECONDS before a restart was taken again once
        after it. A GET's is not: replayed, it changes nothing, and a business system polling
        several times a second would cost the SD card a write each time.
        Refusing instead every request signed before the process started would need the signer's
        clock to agree with ours: one behind would be refused for its lag after each restart, and
        a captured request from one ahead would still pass."""
        window, forgotten = signing.MAX_SKEW_SECONDS, []
        while self.nonces:
            held_since, signed_at = next(iter(self.nonces.values()))
            if time.monotonic() - held_since < 2 * window or now - signed_at <= window:
                break
            forgotten.append(self.nonces.popitem(last=False)[0])
        return forgotten

    @staticmethod
    def _invitation(raw: bytes) -> dict:
        try:
            body = json.loads(raw.decode("utf-8"), parse_constant=_no_constants) if raw.strip() else {}
        except (UnicodeDecodeError, ValueError, RecursionError) as exc:
            raise Refusal(400, "bad_json", f"body is not UTF-8 JSON: {_short(exc)}") from None
        if not isinstance(body, dict):
            raise Refusal(400, "bad_json", "body must be a JSON object")
        problems = [f"unknown field {k[:40]!r}" for k in body if k not in FIELDS]
        problems += [f"{k} must be text" for k in FIELDS if body.get(k) is not None and not isinstance(body[k], str)]
        if problems:
            raise Refusal(400, "bad_field", "; ".join(problems)[:500])
        return {k: v for k, v in body.items() if v is not None}


def _no_constants(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _json(payload: dict) -> bytes:
    return json.dumps(payload, ensure_ascii=False).encode()


def _raw(status: int, payload: dict) -> bytes:
    """An error answer for a peer whose request never became one h11 could take."""
    data = _json(payload)
    return (f"HTTP/1.1 {status} Error\r\nContent-Type: application/json; charset=utf-8\r\n"
            f"Content-Length: {len(data)}\r\nConnection: close\r\n\r\n").encode("ascii") + data


def _short(exc: BaseException) -> str:
    return " ".join(str(exc).split())[:200]


OPENAPI = {
    "openapi": "3.1.0",
    "info": {"title": "Window rating terminal — local invite API", "version": "1",
             "description": "How a window's business system or queue system asks the terminal for a rating. "
                            "Authenticate with Authorization: Bearer <invite token>, or sign: X-Timestamp, X-Nonce, "
                            "X-Signature = hex HMAC-SHA256(token, METHOD\\nPATH\\nTIMESTAMP\\nNONCE\\nSHA256(body))."},
    "components": {
        "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"},
                            "signature": {"type": "apiKey", "in": "header", "name": "X-Signature"}},
        "schemas": {
            "Error": {"type": "object", "required": ["error", "detail"],
                      "properties": {"error": {"type": "string"}, "detail": {"type": "string"}}},
            "Invitation": {"type": "object", "additionalProperties": False, "properties": {
                "case_no": {"type": "string", "maxLength": 50, "description": "办件编号"},
                "item_code": {"type": "string", "maxLength": 64, "description": "事项编码"},
                "staff_no": {"type": "string", "maxLength": 64,
                             "description": "must be the staff member logged in at this window"},
                "ticket_no": {"type": "string", "maxLength": 16,
                              "description": "排队号; default: the ticket last called to this window"}}},
            "Session": {"type": "object", "properties": {
                "session_id": {"type": "string"}, "case_no": {"type": ["string", "null"]},
                "item_code": {"type": ["string", "null"]}, "staff_no": {"type": ["string", "null"]},
                "source": {"type": "string"}, "outcome": {"enum": ["open", "rated", "unsaved", "expired", "abandoned"]},
                "rated": {"type": "boolean"}}},
        }},
    "security": [{"bearer": []}, {"signature": []}],
    "paths": {
        "/v1/invite": {"post": {
            "summary": "Open a rating session for a finished case",
            "requestBody": {"content": {"application/json": {"schema": {"$ref": "#/components/schemas/Invitation"}}}},
            "responses": {
                "201": {"description": "invited", "content": {"application/json": {"schema": {
                    "type": "object", "properties": {"session_id": {"type": "string"}, "state": {"const": "invited"},
                                                     "expires_in_s": {"type": "integer"}}}}}},
                "400": {"description": "bad_json, bad_field or bad_request"},
                "401": {"description": "bad_token, bad_signature, stale_timestamp or replayed_nonce"},
                "409": {"description": "busy, paused or staff_not_here"},
                "413": {"description": "too_large"},
                "503": {"description": "out_of_service or busy_connections"}}}},
        "/v1/sessions/{session_id}": {"get": {
            "summary": "Whether a session was rated (never how)",
            "parameters": [{"name": "session_id", "in": "path", "required": True, "schema": {"type": "string"}}],
            "responses": {"200": {"description": "the session", "content": {"application/json": {"schema": {
                "$ref": "#/components/schemas/Session"}}}}, "404": {"description": "not_found"}}}},
        "/v1/call": {"post": {
            "summary": "The queue system calls a ticket to this window (请 A012 号到…窗口办理)",
            "requestBody": {"content": {"application/json": {"schema": {
                "type": "object", "required": ["ticket_no"], "additionalProperties": False,
                "properties": {"ticket_no": {"type": "string", "maxLength": 16}}}}}},
            "responses": {"200": {"description": "called: shown, announced, and carried by the next rating"},
                          "409": {"description": "paused"}}}},
        "/v1/pause": {"post": {"summary": "暂停服务: the window stops serving; its staff stays logged in",
                               "responses": {"200": {"description": "paused"}}}},
        "/v1/resume": {"post": {"summary": "恢复服务", "responses": {"200": {"description": "serving again"}}}},
        "/v1/state": {"get": {
            "summary": "The window's state and who is logged in",
            "responses": {"200": {"description": "state", "content": {"application/json": {"schema": {
                "type": "object", "properties": {"state": {"type": "string"}, "window": {"type": "string"},
                                                 "staff_no": {"type": ["string", "null"]}}}}}}}}},
        "/v1/openapi.json": {"get": {"summary": "This document", "security": [],
                                     "responses": {"200": {"description": "OpenAPI 3.1"}}}},
    },
}
