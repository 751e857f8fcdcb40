"""A simulated micropython-lib ``usb.device.cdc``: the data port is the pseudo-terminal named by
BOX_SIM_LINK. Without it the import fails, as on a MicroPython with no runtime USB, and the
firmware falls back to the console port."""

import os
import select

_path = os.getenv("BOX_SIM_LINK")
if not _path:
    raise ImportError("no simulated data port (BOX_SIM_LINK)")


class CDCInterface:
    def __init__(self, timeout=None, **kwargs):
        self.link = open(_path, "r+b")
        self.poller = select.poll()
        self.poller.register(self.link, select.POLLIN)

    def is_open(self):
        return True

    def read(self, n):
        data = bytearray()
        while len(data) < n and self.poller.poll(0):
            chunk = self.link.read(1)
            if not chunk:
                break
            data.extend(chunk)
        return bytes(data)

    def write(self, data):
        return self.link.write(data)
