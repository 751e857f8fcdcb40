"""A simulated USB cable (host side, not flashed): two pseudo-terminals and a relay thread, with
faults on demand.

The box's firmware (in the MicroPython unix port) opens one end, the host driver the other; the
relay copies bytes both ways and can drop, duplicate and corrupt them at random, or be unplugged.
"""

from __future__ import annotations

import os
import random
import select
import threading
import tty


class Cable:
    def __init__(self, seed: int = 1, host_link: str | None = None):
        self.box_master, self.box_slave = os.openpty()
        for fd in (self.box_master, self.box_slave):
            tty.setraw(fd)
        self.box_end = os.ttyname(self.box_slave)
        self.host_link = host_link  # a stable name for the host end, as the udev rule gives the box
        self.lock = threading.Lock()
        self._plug_host()
        self.rng = random.Random(seed)
        self.drop = self.duplicate = self.corrupt = 0.0
        self.running = True
        self.thread = threading.Thread(target=self._relay, daemon=True)
        self.thread.start()

    def _plug_host(self) -> None:
        self.host_master, self.host_slave = os.openpty()
        for fd in (self.host_master, self.host_slave):
            tty.setraw(fd)
        self.host_end = os.ttyname(self.host_slave)
        if self.host_link:
            tmp = self.host_link + ".new"
            os.symlink(self.host_end, tmp)
            os.replace(tmp, self.host_link)
            self.host_end = self.host_link

    def unplug(self) -> None:
        """The host's end goes away (its device node with it), as when the USB plug is pulled."""
        with self.lock:
            if self.host_link and os.path.lexists(self.host_link):
                os.unlink(self.host_link)
            os.close(self.host_master)
            os.close(self.host_slave)
            self.host_master = None

    def plug(self) -> None:
        with self.lock:
            self._plug_host()

    def _mangle(self, data: bytes) -> bytes:
        out = bytearray()
        for byte in data:
            r = self.rng.random()
            if r < self.drop:
                continue
            if r < self.drop + self.corrupt:
                byte ^= 1 << self.rng.randrange(8)
            out.append(byte)
            if self.rng.random() < self.duplicate:
                out.append(byte)
        return bytes(out)

    def _relay(self) -> None:
        while self.running:
            with self.lock:
                host = self.host_master
            if host is None:
                ready = []
                select.select([], [], [], 0.02)
            else:
                pairs = {self.box_master: host, host: self.box_master}
                try:
                    ready, _, _ = select.select(list(pairs), [], [], 0.05)
                except (OSError, ValueError):
                    continue
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                    os.write(pairs[fd], self._mangle(data))
                except OSError:
                    pass

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        if self.host_master is not None:
            self.unplug()
        for fd in (self.box_master, self.box_slave):
            os.close(fd)
