"""sd_notify without a dependency: READY, WATCHDOG and STATUS to $NOTIFY_SOCKET (Type=notify).

Used by the sync daemon and by the kiosk, whose watchdog pings come from its UI loop: a frozen UI
stops pinging and systemd restarts it.
"""

from __future__ import annotations

import os
import socket


def notify(message: str) -> bool:
    """Send one notification; False when not run by systemd (no $NOTIFY_SOCKET)."""
    address = os.environ.get("NOTIFY_SOCKET")
    if not address:
        return False
    if address.startswith("@"):
        address = "\0" + address[1:]  # abstract namespace
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM | socket.SOCK_CLOEXEC) as sock:
        sock.setblocking(False)  # never wait on a reader: the kiosk's UI loop sends these
        try:
            sock.sendto(message.encode(), address)
        except OSError:  # no reader, or its queue is full: this ping is lost, the next one may pass
            return False
    return True


def watchdog_interval(default: float = 5.0) -> float:
    """How often to ping: a third of systemd's WatchdogSec ($WATCHDOG_USEC), else ``default``."""
    try:
        return max(0.1, int(os.environ["WATCHDOG_USEC"]) / 3_000_000)
    except (KeyError, ValueError):
        return default
