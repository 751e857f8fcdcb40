"""A simulated micropython-lib ``usb.device``: enough for ``boxfw.open_link``."""


class _Device:
    def __init__(self):
        self.interfaces, self.strings = (), {}

    def init(self, *interfaces, **kwargs):
        self.interfaces, self.strings = interfaces, kwargs


_device = _Device()


def get():
    return _device
