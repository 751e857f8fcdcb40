"""Find the button box by what it says it is, not by which ttyACM number it got (pyudev).

The box is MicroPython on an RP2040 (USB 2e8a:0005) with a second serial port added at run time
(usb-device-cdc) under the product string ``firmware.PRODUCT``: interface 00 is the REPL,
interface 02 the data port. The udev rule (``hardware/udev/70-rating-box.rules``) names the
same ports /dev/rating-box and /dev/rating-box-repl; this finder is for a terminal configured
with ``port = "auto"``, and for ``flash-box`` finding the REPL of a box in maintenance mode,
which has only its REPL and the board's own product string.

The monitor is started before the first enumeration, so a box plugged in between the two is
seen by one or the other; the same event arriving by both is harmless.
"""

from __future__ import annotations

import logging
import threading
from typing import Callable, Mapping

import firmware

log = logging.getLogger("rating-terminal.box")
VENDOR_ID, PRODUCT_ID = "2e8a", "0005"  # Raspberry Pi RP2040 running MicroPython
DATA_INTERFACE, REPL_INTERFACE = "02", "00"


def udev_model(product: str) -> str:
    """udev's ID_MODEL for a product string: spaces and the like become underscores."""
    return "".join(c if c.isalnum() or c in "-_." else "_" for c in product)


def role(props: Mapping[str, str], serial: str | None = None) -> str | None:
    """'data' or 'repl' if a tty device's udev properties are one of a box's ports, else None.
    ``serial`` (the board id, ID_SERIAL_SHORT) picks one box when several are plugged in."""
    if props.get("SUBSYSTEM") != "tty" or props.get("ID_VENDOR_ID") != VENDOR_ID \
            or props.get("ID_MODEL_ID") != PRODUCT_ID:
        return None
    if serial and props.get("ID_SERIAL_SHORT", "").lower() != serial.lower():
        return None
    interface = props.get("ID_USB_INTERFACE_NUM")
    if interface == DATA_INTERFACE and props.get("ID_MODEL") == udev_model(firmware.declared("PRODUCT")):
        return "data"
    if interface == REPL_INTERFACE:
        return "repl"
    return None


def _props(device) -> dict[str, str]:
    return {"SUBSYSTEM": device.subsystem, **dict(device.properties)}


def find_ports(serial: str | None = None, context=None) -> dict[str, str]:
    """One look, no monitor: {"data": node, "repl": node} for the box's ports plugged in now."""
    import pyudev
    found: dict[str, str] = {}
    for device in (context or pyudev.Context()).list_devices(subsystem="tty"):
        kind = role(_props(device), serial)
        if kind and device.device_node:
            found.setdefault(kind, device.device_node)
    return found


class BoxFinder:
    """The current device node of a box's port, kept up to date from udev events.

        finder = BoxFinder("data").start()
        ButtonBoxLink(finder.port, on_event)     # a callable: asked again at every reconnect
    """

    def __init__(self, want: str = "data", serial: str | None = None, context=None,
                 on_change: Callable[[str | None], None] | None = None):
        self.want, self.serial, self.on_change = want, serial, on_change
        self.context = context
        self.nodes: dict[str, str] = {}  # sys path -> device node of every matching port
        self.lock = threading.Lock()
        self.observer = None

    def start(self) -> "BoxFinder":
        import pyudev
        self.context = self.context or pyudev.Context()
        monitor = pyudev.Monitor.from_netlink(self.context)
        monitor.filter_by("tty")
        self.observer = pyudev.MonitorObserver(monitor, callback=lambda device: self.seen(device.action, device))
        self.observer.start()  # first the monitor, then the enumeration
        for device in self.context.list_devices(subsystem="tty"):
            self.seen("add", device)
        return self

    def stop(self) -> None:
        if self.observer:
            self.observer.stop()

    def seen(self, action: str | None, device) -> None:
        """A device from the enumeration (action "add") or an event."""
        props = _props(device)
        with self.lock:
            before = self.port()
            if action == "remove":
                self.nodes.pop(device.sys_path, None)
            elif role(props, self.serial) == self.want and device.device_node:
                self.nodes[device.sys_path] = device.device_node
            after = self.port()
            several = len(set(self.nodes.values())) > 1
        if several and action != "remove":
            log.warning("%d button boxes plugged in; set [box] serial to choose one", len(self.nodes))
        if after != before:
            log.info("button box %s port: %s", self.want, after or "gone")
            if self.on_change:
                self.on_change(after)

    def port(self) -> str | None:
        return min(self.nodes.values(), default=None)
