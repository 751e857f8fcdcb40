"""Fake central servers for the tests: an HTTP handler that answers as the central server's API
does, signing each answer with a terminal's secret (``secret``: a compromised or buggy server
that knows it) or not at all (``secret = None``: a captive portal, a proxy, an impostor)."""

from __future__ import annotations

import hashlib
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

from terminal.core import signing


class FakeCentral(BaseHTTPRequestHandler):
    secret: str | None = None

    def answer(self, status: int, body: bytes, content_type: str = "application/json",
               headers: dict | None = None, body_sha256: str | None = None, declared: int | None = None) -> None:
        """Send one answer, signed over this request's nonce when ``secret`` is set."""
        server_time = f"{time.time():.3f}"
        self.send_response(status)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(len(body) if declared is None else declared))
        self.send_header(signing.HEADER_SERVER_TIME, server_time)
        for key, value in (headers or {}).items():
            self.send_header(key, value)
        if self.secret is not None:
            nonce = self.headers.get(signing.HEADER_NONCE, "")
            digest = body_sha256 or hashlib.sha256(body).hexdigest()
            self.send_header(signing.HEADER_ANSWER_SIGNATURE,
                             signing.sign_answer(self.secret, nonce, status, server_time, digest))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if declared is not None:
            self.close_connection = True

    def log_message(self, *args):
        pass


def serve(handler: type) -> tuple[ThreadingHTTPServer, str]:
    """Run ``handler`` on a loopback port in a thread; the server and its URL."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    server.daemon_threads = True
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server, f"http://127.0.0.1:{server.server_port}"


def trickling(start: bytes, seconds: float = 15.0) -> type:
    """A server (or a proxy before it) that reads the request, sends ``start`` (a status line and
    the head's beginning, or a whole head promising a body), then a byte every 0.1 s for
    ``seconds``: each read comes well within a client's timeout, the answer never ends."""

    class Trickle(BaseHTTPRequestHandler):
        def trickle(self):
            if self.command == "POST":
                self.rfile.read(int(self.headers["Content-Length"]))
            end = time.monotonic() + seconds
            try:
                self.wfile.write(start)
                while time.monotonic() < end:
                    self.wfile.write(b"a")
                    self.wfile.flush()
                    time.sleep(0.1)
            except OSError:
                pass
            self.close_connection = True
        do_GET = do_POST = trickle

        def log_message(self, *args):
            pass
    return Trickle
