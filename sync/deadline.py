"""A deadline for a whole HTTP call, under requests: its timeout bounds each read from the socket,
so a server (or a proxy before it) that sends its status line and headers a byte at a time, each
byte within the timeout, would hold a call for as long as it liked, and with it the sync daemon's
lane or a platform's upward push.

``within(until)`` sets the calling thread's deadline (``time.monotonic()``); the connections of a
``tls.session`` read their answer through ``_Bounded``, which gives each read only the time left
(never more than the timeout) and fails with ``TimeoutError`` once none is left: requests reports
it as a ``ReadTimeout``, as for a silent server. The body's reads are bounded the same way.
Sending needs nothing more: the request goes in one ``sendall``, which the socket's timeout bounds
in all, so a server that reads it a trickle at a time is given up too (tests/test_sync.py).
"""

from __future__ import annotations

import contextlib
import io
import socket
import threading
import time

from urllib3.connection import HTTPConnection, HTTPSConnection

_current = threading.local()


@contextlib.contextmanager
def within(until: float):
    """Calls made by this thread inside the block end by ``until`` (``time.monotonic()``)."""
    before = getattr(_current, "until", None)
    _current.until = until
    try:
        yield
    finally:
        _current.until = before


class _Bounded:
    """A connected socket as http.client reads it (``makefile``, ``recv_into``), every read bounded
    by the deadline; anything else goes to the socket itself."""

    def __init__(self, sock: socket.socket, until: float):
        self._sock, self._until = sock, until
        self._timeout = sock.gettimeout()

    def settimeout(self, value) -> None:
        self._timeout = value
        self._sock.settimeout(value)

    def recv_into(self, buffer, nbytes: int = 0, flags: int = 0) -> int:
        left = self._until - time.monotonic()
        if left <= 0:
            raise TimeoutError("the call's deadline passed while its answer was still coming")
        self._sock.settimeout(left if self._timeout is None else min(self._timeout, left))
        return self._sock.recv_into(buffer, nbytes, flags)

    def makefile(self, mode: str = "rb", buffering: int = -1, **_kw):
        """What ``socket.makefile`` makes for reading, reading through this object."""
        if mode != "rb":
            return self._sock.makefile(mode, buffering)
        self._sock._io_refs += 1  # as socket.makefile counts it: closing the file releases it
        raw = socket.SocketIO(self, "rb")
        return io.BufferedReader(raw, io.DEFAULT_BUFFER_SIZE if buffering in (-1, None) else buffering)

    def _decref_socketios(self) -> None:
        self._sock._decref_socketios()

    def __getattr__(self, name: str):
        return getattr(self._sock, name)


class DeadlineMixin:
    """For urllib3's connections: the answer to a request made ``within`` a deadline is read
    through ``_Bounded``."""

    def getresponse(self, *args, **kwargs):
        until = getattr(_current, "until", None)
        if until is None or self.sock is None:
            return super().getresponse(*args, **kwargs)
        real = self.sock
        self.sock = bounded = _Bounded(real, until)
        try:
            return super().getresponse(*args, **kwargs)
        finally:
            if self.sock is bounded:  # (an answer that closes the connection has set it to None)
                self.sock = real


class DeadlineHTTPConnection(DeadlineMixin, HTTPConnection):
    pass


class DeadlineHTTPSConnection(DeadlineMixin, HTTPSConnection):
    pass
