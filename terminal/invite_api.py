"""The local invite API: how the window's business system says "this case is done, please rate".

HTTP on the address in ``[invite] listen`` (off by default), answered in the kiosk (or headless)
process, where the window's session lives. Every request carries the terminal's invite token:
``Authorization: Bearer <token>``; the token is in ``<data_dir>/invite-token`` (mode 600, made on
first start, shown by ``rating-terminal invite-token``), never in a URL and never logged.

    POST /v1/invite            {"case_no": "…", "item_code": "…", "staff_no": "…"}  (all optional)
        201 {"session_id", "state": "invited", "expires_in_s"}
        409 {"error": "busy" | "paused"}    503 {"error": "out_of_service"}
    GET  /v1/sessions/<id>     {"session_id", "case_no", "item_code", "staff_no", "source",
                                "outcome": "open" | "rated" | "expired" | "abandoned", "rated"}
    GET  /v1/state             {"state", "staff_no", "window"}

Errors are ``{"error": code, "detail": text}``: 401 bad_token, 400 bad_json / bad_field,
404 not_found, 405 method_not_allowed, 411 length_required, 413 too_large. The answer says
whether a case was rated, never how: staff must not see or steer the rating (三不).
"""

from __future__ import annotations

import hmac
import json
import logging
import re
import secrets
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

from terminal.credentials import write_private
from terminal.core.session import SessionRefused
from terminal.window import Window

log = logging.getLogger("rating-terminal.invite")
FIELDS = {"case_no": 50, "item_code": 64, "staff_no": 64}  # name -> max length
_SESSION_PATH = re.compile(r"^/v1/sessions/([A-Za-z0-9_-]{8,64})$")


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


class InviteServer:
    def __init__(self, window: Window, listen: str, token: str, max_body: int = 4096):
        host, _, port = listen.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"[invite] listen must be host:port, got {listen!r}")
        handler = type("Handler", (_Handler,), {"window": window, "token": token, "max_body": max_body})
        self.httpd = ThreadingHTTPServer((host, int(port)), handler)
        self.httpd.daemon_threads = True
        self.address = f"{host}:{self.httpd.server_port}"
        self.thread = threading.Thread(target=self.httpd.serve_forever, name="invite-api", daemon=True)

    def start(self) -> "InviteServer":
        self.thread.start()
        log.info("invite API listening on %s", self.address)
        return self

    def stop(self) -> None:
        self.httpd.shutdown()
        self.httpd.server_close()


def _answers_500(method):
    """A fault inside (a broken disk, a bug) still gets an answer, and the log gets the traceback."""
    def wrapper(self):
        try:
            method(self)
        except Exception as exc:
            log.exception("invite API: %s %s failed", self.command, self.path)
            self._error(500, "internal_error", f"{type(exc).__name__}: see the terminal's log")
    return wrapper


class _Handler(BaseHTTPRequestHandler):
    window: Window
    token: str
    max_body: int
    server_version = "rating-terminal-invite/1"

    @_answers_500
    def do_POST(self) -> None:
        if not self._authorised():
            return
        if self.path != "/v1/invite":
            return self._error(404, "not_found", f"no POST {self.path}")
        body = self._body()
        if body is None:
            return
        try:
            service = self.window.invite(source="api", **body)
        except SessionRefused as exc:
            return self._error(503 if exc.code == "out_of_service" else 409, exc.code, str(exc))
        self._answer(201, {"session_id": service.session_id, "state": "invited",
                           "expires_in_s": self.window.rules.invite_timeout_s})

    @_answers_500
    def do_GET(self) -> None:
        if not self._authorised():
            return
        if self.path == "/v1/state":
            staff = self.window.staff
            return self._answer(200, {"state": self.window.state.value, "window": self.window.config.terminal.window,
                                      "staff_no": staff.staff_no if staff else None})
        found = _SESSION_PATH.match(self.path)
        report = self.window.report(found.group(1)) if found else None
        if report is None:
            return self._error(404, "not_found", "no such session (only recent sessions are kept)")
        self._answer(200, report)

    def do_PUT(self) -> None:
        self._error(405, "method_not_allowed", "use POST /v1/invite or GET")

    do_DELETE = do_PATCH = do_PUT

    # -- helpers -----------------------------------------------------------------------------

    def _authorised(self) -> bool:
        given = self.headers.get("Authorization", "")
        scheme, _, token = given.partition(" ")
        if scheme != "Bearer" or not hmac.compare_digest(token.strip().encode(), self.token.encode()):
            self._error(401, "bad_token", "send Authorization: Bearer <the terminal's invite token>")
            return False
        return True

    def _body(self) -> dict | None:
        length = self.headers.get("Content-Length")
        if length is None or not length.isdigit():
            self._error(411, "length_required", "send a Content-Length")
            return None
        if int(length) > self.max_body:
            self._error(413, "too_large", f"body over {self.max_body} bytes")
            return None
        raw = self.rfile.read(int(length))
        try:
            body = json.loads(raw.decode("utf-8")) if raw.strip() else {}
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            self._error(400, "bad_json", f"body is not UTF-8 JSON: {exc}")
            return None
        if not isinstance(body, dict):
            self._error(400, "bad_json", "body must be a JSON object")
            return None
        problems = [f"unknown field {k!r}" for k in body if k not in FIELDS]
        for name, limit in FIELDS.items():
            value = body.get(name)
            if value is not None and (not isinstance(value, str) or not 0 < len(value) <= limit
                                      or any(ord(c) < 32 for c in value)):
                problems.append(f"{name} must be text of 1..{limit} characters")
        if problems:
            self._error(400, "bad_field", "; ".join(problems))
            return None
        return {k: v for k, v in body.items() if v is not None}

    def _answer(self, status: int, payload: dict, close: bool = False) -> None:
        data = json.dumps(payload, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json; charset=utf-8")
        self.send_header("Content-Length", str(len(data)))
        if close:
            self.send_header("Connection", "close")
            self.close_connection = True
        self.end_headers()
        self.wfile.write(data)

    def _error(self, status: int, code: str, detail: str) -> None:
        # close: a body we did not read must not be taken for the next request
        self._answer(status, {"error": code, "detail": detail}, close=True)

    def log_message(self, fmt: str, *args) -> None:  # the request line only: tokens travel in headers
        # A business system may poll a session several times a second: answered reads go to the
        # debug level, so the journal keeps invitations, refusals and errors, not the polling.
        quiet = self.command == "GET" and len(args) > 1 and str(args[1]).startswith("2")
        (log.debug if quiet else log.info)("%s %s", self.address_string(), fmt % args)
