"""A fault-injecting HTTP proxy on loopback, in front of the real central server.

Each request gets the fault its ``plan`` picks. Faults that say "after" forward the request first,
so the central server has committed whatever it was sent before the terminal hears anything:
exactly the cases where a naive client would send again and double a rating, or give up and lose
one. ``applied`` counts the faults really served, so a test can show it met each of them.
"""

from __future__ import annotations

import http.client
import socket
import struct
import threading
import time
from collections import Counter
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Callable
from urllib.parse import urlsplit

FAULTS = {
    "pass": "forward and relay the answer",
    "reset_before": "reset the connection without forwarding",
    "reset_after": "forward (the server commits), then reset the connection",
    "error_after": "forward (the server commits), then answer 500",
    "too_many": "answer 429 with Retry-After: 1",
    "unavailable": "answer 503",
    "portal": "answer 200 with a captive portal's HTML page",
    "slow": "forward (the server commits), then answer after the client's timeout",
    "truncated": "forward (the server commits), then send half the answer and close",
}
HOP_BY_HOP = {"connection", "keep-alive", "proxy-connection", "transfer-encoding", "te", "trailer", "upgrade", "host"}


class FaultProxy:
    def __init__(self, upstream: str, plan: Callable[[str, str], str], slow_seconds: float = 2.0):
        target = urlsplit(upstream)
        self.upstream = (target.hostname, target.port)
        self.plan, self.slow_seconds = plan, slow_seconds
        self.applied: Counter[str] = Counter()
        self.lock = threading.Lock()
        proxy = self
        handler = type("Handler", (_Handler,), {"proxy": proxy})
        self.server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def forward(self, method: str, path: str, headers: dict, body: bytes) -> tuple[int, list, bytes]:
        conn = http.client.HTTPConnection(*self.upstream, timeout=60)
        try:
            conn.request(method, path, body=body or None, headers=headers)
            response = conn.getresponse()
            return response.status, response.getheaders(), response.read()
        finally:
            conn.close()


class _Handler(BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.1"  # keep-alive, as the sync client's session uses it
    proxy: FaultProxy

    def do_GET(self):
        self.handle_one()

    do_POST = do_GET

    def handle_one(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
        fault = self.proxy.plan(self.command, self.path)
        with self.proxy.lock:
            self.proxy.applied[fault] += 1
        if fault == "reset_before":
            return self.reset()
        if fault == "too_many":
            return self.reply(429, [("Content-Type", "text/plain"), ("Retry-After", "1")], b"slow down")
        if fault == "unavailable":
            return self.reply(503, [("Content-Type", "text/html")], b"<html>maintenance</html>")
        if fault == "portal":
            return self.reply(200, [("Content-Type", "text/html; charset=utf-8")],
                              "<html><body>欢迎使用大厅免费 Wi-Fi，请先登录</body></html>".encode())
        headers = {k: v for k, v in self.headers.items() if k.lower() not in HOP_BY_HOP}
        status, answer_headers, answer = self.proxy.forward(self.command, self.path, headers, body)
        if fault == "reset_after":
            return self.reset()
        if fault == "error_after":
            return self.reply(500, [("Content-Type", "text/html")], b"<html>internal error</html>")
        if fault == "slow":
            time.sleep(self.proxy.slow_seconds)
        kept = [(k, v) for k, v in answer_headers if k.lower() not in HOP_BY_HOP | {"content-length"}]
        if fault == "truncated":
            return self.reply(status, kept, answer, cut=True)
        self.reply(status, kept, answer)

    def reply(self, status: int, headers: list, body: bytes, cut: bool = False) -> None:
        try:
            self.send_response(status)
            for k, v in headers:
                self.send_header(k, v)
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body[: len(body) // 2] if cut else body)
            self.wfile.flush()
        except OSError:
            self.close_connection = True
            return
        if cut:
            self.close_connection = True

    def reset(self) -> None:
        """Close with RST (SO_LINGER 0): the client sees 'connection reset by peer'."""
        self.connection.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close_connection = True
        self.connection.close()

    def handle(self) -> None:
        try:
            super().handle()
        except (OSError, ValueError):  # the connection we just reset on purpose
            pass

    def finish(self) -> None:
        try:
            super().finish()
        except (OSError, ValueError):
            pass

    def log_message(self, *args) -> None:
        pass
