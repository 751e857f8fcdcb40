"""A strict reference implementation of the SMS gateway interface the central server speaks (docs/integrators.md,
"SMS"), for tests and for a carrier adapter's integrator to test against. On loopback only.

    POST /v1/messages   {"id", "to", "text"}  signed by the central server (X-System-Id, X-Timestamp,
                        X-Nonce, X-Signature: terminal.core.signing, with the credentials the central
                        server's ``add_system`` gave the gateway)
      202 {"id", "provider_id"}   taken (or taken before: the same id is one SMS, whatever the resends)
      400 {"error"}               a field missing or wrong: to not a mainland mobile, text empty or over 500
      401 {"error"}               unsigned, mis-signed, stale or replayed
    Every answer carries X-Server-Time and X-Answer-Signature (HMAC over the request's nonce, status,
    time and body hash), so the central server believes only its gateway.

``reply(text, sender)`` delivers a rater's reply to the central server's ``/api/v1/sms/inbound``,
signed the same way. ``fail_next`` makes the next sends fail in a chosen way (``unavailable``: 503;
``lost``: taken, but the answer never arrives; ``unsigned``: an answer without signature), so tests
can show a case still gets exactly one SMS.
"""

from __future__ import annotations

import hashlib
import json
import re
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from terminal.core import signing  # noqa: E402

MOBILE = re.compile(r"1[3-9][0-9]{9}")


class Gateway:
    def __init__(self, system_id: str, secret: str, central_url: str = ""):
        self.system_id, self.secret, self.central_url = system_id, secret, central_url.rstrip("/")
        self.delivered: dict[str, dict] = {}  # our id -> the SMS as handed to the carrier: each id once
        self.requests = 0
        self.fail_next: list[str] = []
        self.nonces: set[str] = set()
        self.lock = threading.Lock()
        gateway = self
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), type("Handler", (_Handler,), {"gateway": gateway}))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def reply(self, text: str, sender: str, reply_id: str | None = None, received_at: str | None = None):
        """A rater's reply, as the carrier hands it over: delivered to the central server, signed."""
        import requests
        body = json.dumps({"id": reply_id or f"MO{time.time_ns()}", "from": sender, "text": text,
                           "received_at": received_at}, ensure_ascii=False).encode()
        path = "/api/v1/sms/inbound"
        headers = signing.signed_headers(self.system_id, self.secret, "POST", path, body, time.time(),
                                         id_header=signing.HEADER_SYSTEM)
        answer = requests.post(self.central_url + path, data=body, timeout=10,
                               headers={"Content-Type": "application/json", **headers})
        assert signing.verify_answer(self.secret, headers[signing.HEADER_NONCE], answer.status_code,
                                     answer.headers[signing.HEADER_SERVER_TIME],
                                     hashlib.sha256(answer.content).hexdigest(),
                                     answer.headers.get(signing.HEADER_ANSWER_SIGNATURE, "")), "unsigned answer"
        return answer


class _Handler(BaseHTTPRequestHandler):
    gateway: Gateway

    def do_POST(self):
        g = self.gateway
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(min(length, 65536))
        nonce = self.headers.get(signing.HEADER_NONCE, "")
        with g.lock:
            g.requests += 1
            failure = g.fail_next.pop(0) if g.fail_next else ""
        if self.path != "/v1/messages":
            return self.answer(404, {"error": "no_such_path"}, nonce)
        stamp = self.headers.get(signing.HEADER_TIMESTAMP, "")
        if (self.headers.get(signing.HEADER_SYSTEM) != g.system_id or not stamp.isdigit()
                or not signing.verify(g.secret, "POST", self.path, stamp, nonce, body,
                                      self.headers.get(signing.HEADER_SIGNATURE, ""))):
            return self.answer(401, {"error": "bad_signature"}, nonce)
        if abs(int(stamp) - time.time()) > signing.MAX_SKEW_SECONDS:
            return self.answer(401, {"error": "stale_timestamp"}, nonce)
        with g.lock:
            if nonce in g.nonces:
                return self.answer(401, {"error": "replayed_nonce"}, nonce)
            g.nonces.add(nonce)
        try:
            message = json.loads(body)
            assert set(message) == {"id", "to", "text"}, "fields are id, to, text"
            assert isinstance(message["id"], str) and 1 <= len(message["id"]) <= 64, "id: 1-64 characters"
            assert isinstance(message["to"], str) and MOBILE.fullmatch(message["to"]), "to: a mainland mobile"
            assert isinstance(message["text"], str) and 0 < len(message["text"]) <= 500, "text: 1-500 characters"
        except (ValueError, AssertionError) as exc:
            return self.answer(400, {"error": f"bad_message: {exc}"}, nonce)
        if failure == "unavailable":
            return self.answer(503, {"error": "carrier unavailable"}, nonce)
        with g.lock:
            first = g.delivered.setdefault(message["id"], {**message, "provider_id": f"P{len(g.delivered) + 1:08d}"})
        if failure == "lost":  # taken by the carrier, but the answer is lost on the way back
            self.close_connection = True
            self.connection.close()
            return None
        return self.answer(202, {"id": message["id"], "provider_id": first["provider_id"]}, nonce,
                           signed=failure != "unsigned")

    def answer(self, status: int, payload: dict, nonce: str, signed: bool = True) -> None:
        body = json.dumps(payload).encode()
        server_time = f"{time.time():.3f}"
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(body)))
        self.send_header(signing.HEADER_SERVER_TIME, server_time)
        if signed:
            self.send_header(signing.HEADER_ANSWER_SIGNATURE, signing.sign_answer(
                self.gateway.secret, nonce, status, server_time, hashlib.sha256(body).hexdigest()))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass
