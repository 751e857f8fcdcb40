"""Staff badge readers: USB keyboard-wedge readers (evdev) and serial readers (pyserial).

A keyboard-wedge reader "types" the badge number and Enter. Its input device is grabbed
(``EVIOCGRAB``), so the keystrokes reach only us, never the kiosk's UI or a console. The keys are
decoded by ``WedgeDecoder``, which drops anything typed slower than a reader types (a person at a
keyboard) and anything too long to be a badge.

A serial reader sends the number as ASCII, framed by STX/ETX (0x02 … 0x03) or ended by CR/LF.
``SerialDecoder`` takes bytes in any chunks and returns whole badge numbers; noise and garbled
frames are dropped with a log line, never turned into a login.

Both readers call ``on_badge(number)`` from their own thread; ``terminal.window.Window.swipe`` is
thread-safe and decides what the badge means. A number read again within ``REREAD_S`` of its last
read is the card still lying on the reader, not a second swipe (which would log out). That memory
(``LastCard``) is one for all of a window's readers: a reader with both a keyboard and a serial
interface, or two readers side by side, read one card twice, and the second read logged out.
"""

from __future__ import annotations

import logging
import threading
import time
from typing import Callable

log = logging.getLogger("rating-terminal.badge")
MIN_LEN, MAX_LEN = 4, 32
KEY_GAP_S = 0.3  # a reader types a whole badge in well under this per key; people are slower
REREAD_S = 2.0  # the same number again sooner after its last read: the card still lies on the reader


def _valid(number: str) -> bool:
    return MIN_LEN <= len(number) <= MAX_LEN and number.isascii() and number.isalnum()


class WedgeDecoder:
    """evdev key events -> badge numbers. Pure: feed (code, value, timestamp) in order."""

    def __init__(self):
        from evdev import ecodes
        self.ecodes = ecodes
        self.keys = {getattr(ecodes, f"KEY_{c}"): c for c in "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZ"}
        self.keys.update({getattr(ecodes, f"KEY_KP{d}"): d for d in "0123456789"})
        self.buffer: list[str] = []
        self.last = 0.0
        self.shift = False

    def feed(self, event) -> str | None:
        """One ``evdev.InputEvent``; returns a badge number when Enter completes one."""
        ec = self.ecodes
        if event.type != ec.EV_KEY:
            return None
        if event.code in (ec.KEY_LEFTSHIFT, ec.KEY_RIGHTSHIFT):
            self.shift = event.value != 0
            return None
        if event.value != 1:  # only key-down; auto-repeat (2) and key-up (0) say nothing new
            return None
        now = event.timestamp()
        if self.buffer and now - self.last > KEY_GAP_S:
            self.buffer.clear()  # typed by a person, or a reader cut off: start again
        self.last = now
        if event.code in (ec.KEY_ENTER, ec.KEY_KPENTER):
            number, self.buffer = "".join(self.buffer), []
            if _valid(number):
                return number
            if number:
                log.warning("badge reader sent %d characters that are not a badge number", len(number))
            return None
        char = self.keys.get(event.code)
        if char is None:
            self.buffer.clear()
        elif len(self.buffer) < MAX_LEN + 1:
            self.buffer.append(char if self.shift or not char.isalpha() else char.lower())
        return None


class SerialDecoder:
    """Bytes from a serial reader -> badge numbers, whatever the chunking."""

    STX, ETX = 0x02, 0x03

    def __init__(self):
        self.buffer = bytearray()
        self.discarding = False  # inside an overlong run of noise: drop until the frame ends

    def feed(self, data: bytes) -> list[str]:
        found = []
        for byte in data:
            if byte == self.STX:
                self.buffer.clear()
                self.discarding = False
            elif byte in (self.ETX, 0x0D, 0x0A):
                number = self.buffer.decode("ascii", errors="replace").strip()
                self.buffer.clear()
                if self.discarding:
                    self.discarding = False
                elif _valid(number):
                    found.append(number)
                elif number:
                    log.warning("serial badge reader: dropped a garbled frame of %d bytes", len(number))
            elif self.discarding:
                continue
            elif len(self.buffer) < MAX_LEN:
                self.buffer.append(byte)
            else:
                self.buffer.clear()
                self.discarding = True
                log.warning("serial badge reader: noise longer than any badge, dropped")
        return found


class LastCard:
    """The number last read by any of a window's readers, and when (time.monotonic())."""

    def __init__(self):
        self.lock = threading.Lock()
        self.last: tuple[str, float] = ("", 0.0)

    def swiped(self, number: str) -> bool:
        """Whether a read of ``number`` now is a swipe, not the card still there since its last read."""
        now = time.monotonic()
        with self.lock:
            still_there = number == self.last[0] and now - self.last[1] < REREAD_S
            self.last = (number, now)
        return not still_there


class _ReaderThread:
    def __init__(self, name: str, on_badge: Callable[[str], None], card: LastCard | None = None):
        self.on_badge = on_badge
        self.card = card or LastCard()  # shared by the readers of one window (start_readers)
        self.stopping = threading.Event()
        self.opened = threading.Event()  # the device is open and being read
        self.thread = threading.Thread(target=self._run_forever, name=name, daemon=True)

    def start(self):
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()

    def _run_forever(self) -> None:
        """Readers get unplugged: log it, wait, open again."""
        while not self.stopping.is_set():
            try:
                self.run()
            except OSError as exc:
                log.warning("%s: %s; trying again in 2 s", self.thread.name, exc)
            except Exception:  # a bug must not end the reader: log it and read on
                log.exception("%s failed; trying again in 2 s", self.thread.name)
            self.stopping.wait(2.0)

    def run(self) -> None:
        raise NotImplementedError

    def _read(self, number: str) -> None:
        """A number read: a swipe, unless it is the card still on the reader. Readers read a card
        again and again while it lies there, and the same badge swiped again logs out: a card
        held a moment too long logged its owner in, out and in again."""
        if self.card.swiped(number):
            self.on_badge(number)


class WedgeReader(_ReaderThread):
    def __init__(self, path: str, on_badge: Callable[[str], None], card: LastCard | None = None):
        super().__init__(f"badge-wedge {path}", on_badge, card)
        self.path = path

    def run(self) -> None:
        import evdev
        device = evdev.InputDevice(self.path)
        device.grab()  # keystrokes from now on reach only us
        self.opened.set()
        decoder = WedgeDecoder()
        log.info("keyboard-wedge badge reader %s (%s) grabbed", self.path, device.name)
        try:
            for event in device.read_loop():
                if self.stopping.is_set():
                    return
                number = decoder.feed(event)
                if number:
                    self._read(number)
        finally:
            device.close()


class SerialBadgeReader(_ReaderThread):
    def __init__(self, port: str, on_badge: Callable[[str], None], baudrate: int = 9600,
                 card: LastCard | None = None):
        super().__init__(f"badge-serial {port}", on_badge, card)
        self.port, self.baudrate = port, baudrate

    def run(self) -> None:
        import serial
        decoder = SerialDecoder()
        with serial.serial_for_url(self.port, baudrate=self.baudrate, timeout=0.5) as link:
            log.info("serial badge reader on %s", self.port)
            self.opened.set()
            while not self.stopping.is_set():
                try:
                    data = link.read(64)
                except serial.SerialException as exc:
                    raise OSError(str(exc)) from None
                for number in decoder.feed(data):
                    self._read(number)


def start_readers(wedge: str, serial_port: str, baudrate: int, on_badge: Callable[[str], None]) -> list:
    readers, card = [], LastCard()
    if wedge:
        readers.append(WedgeReader(wedge, on_badge, card).start())
    if serial_port:
        readers.append(SerialBadgeReader(serial_port, on_badge, baudrate, card).start())
    return readers

