"""A USB cable made of two pseudo-terminals and a relay thread, with faults on demand.

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
    def __init__(self, seed: int = 1):
        self.box_master, box_slave = os.openpty()
        self.host_master, host_slave = os.openpty()
        for fd in (box_slave, host_slave, self.box_master, self.host_master):
            tty.setraw(fd)
        self.box_end, self.host_end = os.ttyname(box_slave), os.ttyname(host_slave)
        self._slaves = (box_slave, host_slave)  # kept open so the ends survive reopening
        self.rng = random.Random(seed)
        self.drop = self.duplicate = self.corrupt = 0.0
        self.running = True
        self.thread = threading.Thread(target=self._relay, daemon=True)
        self.thread.start()

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
        pairs = {self.box_master: self.host_master, self.host_master: self.box_master}
        while self.running:
            ready, _, _ = select.select(list(pairs), [], [], 0.05)
            for fd in ready:
                try:
                    data = os.read(fd, 4096)
                except OSError:
                    continue
                try:
                    os.write(pairs[fd], self._mangle(data))
                except OSError:
                    pass

    def close(self) -> None:
        self.running = False
        self.thread.join(2)
        for fd in (self.box_master, self.host_master, *self._slaves):
            os.close(fd)
