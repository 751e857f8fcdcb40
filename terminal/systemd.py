"""A unit's life under systemd: sd_notify without a dependency (READY, WATCHDOG and STATUS to
$NOTIFY_SOCKET, Type=notify), and a clean stop on SIGTERM.

Used by the sync daemon, the headless terminal and the kiosk, whose watchdog pings come from its
UI loop: a frozen UI stops pinging and systemd restarts it.
"""

from __future__ import annotations

import os
import signal
import socket
import threading


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


def stop_on_signals(stop: threading.Event, signals=(signal.SIGTERM, signal.SIGINT)) -> None:
    """Set ``stop`` when one of ``signals`` arrives, from a thread of its own. Setting it inside the
    handler can deadlock: the handler runs on the main thread, and if it interrupts that thread's own
    ``stop.wait`` just while the wait holds the event's lock, ``set`` waits for that lock forever
    (cpython#126434). Python writes the signal's number to the wakeup pipe at C level, lock-free; the
    watcher thread reads it and sets the event."""
    read, write = os.pipe2(os.O_CLOEXEC)
    os.set_blocking(write, False)
    signal.set_wakeup_fd(write, warn_on_full_buffer=False)
    for sig in signals:
        signal.signal(sig, lambda *_: None)  # a Python handler, so the pipe hears of it; no work here
    wanted = {int(sig) for sig in signals}

    def watch() -> None:
        while not wanted.intersection(os.read(read, 64)):
            pass
        stop.set()
    threading.Thread(target=watch, name="signals", daemon=True).start()
