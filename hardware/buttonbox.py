"""Host side of the button box link (pyserial): the same codec the box runs (``firmware.boxproto``).

Every PRESS and STUCK is acknowledged, even a repeat (the box resends until it hears the ACK);
a repeat is recognised by (boot id, sequence) and dropped, so a press crosses the link any number
of times and counts once. A new boot id (the box restarted) starts a new sequence space.
Garbage, corrupt frames and frames of the wrong shape are dropped by the codec and counted.

A press the box kept while this host was away (restarting: the box sends it again until heard)
is not someone pressing now; in walk-up mode it would become a rating by whoever had left. So a
press is taken only after this link's HELLO (the answer to its ASK: what came before it may have
waited in a buffer, with the age it had when first sent; it is not acknowledged, and the box
sends it again with its age now), and a press older than MAX_PRESS_AGE_MS is acknowledged,
logged and counted (``stale_presses``), never passed on. A box of firmware 0.2.0 or before
sends no age: its presses are taken as before, with a warning to flash it.

Until this link's HELLO the host sends nothing but ASK: whatever answers may not be a box.
A box's REPL port, configured by mistake (it is usually /dev/ttyACM0, the data port ttyACM1),
takes 0x03 in an LED frame as Ctrl-C and stops the firmware. The LED mode asked for meanwhile
is kept and sent with every HELLO, so a box that restarted or was replugged shows the session's
LEDs again. A frame from a boot other than the one that said HELLO is treated as one before it:
a box running now has no press of an earlier boot (a reset empties its queue), so such a press is
an old frame replayed, never a rating; a box that restarted unheard says HELLO when asked.
A port that has said no HELLO NO_HELLO_S after opening is logged as not a box, and reported
with no firmware, so the technician's doctor says so. The same boot's HELLO again (an answer to
ASK) is nothing new: not logged, not answered.

``on_event(kind, key)`` is called from the link's thread with kind ``"press"`` or ``"stuck"``
and key 1..5 (a level, 5 = 非常满意) or 6 (the 请评价 key).
"""

from __future__ import annotations

import logging
import threading
import time
from collections import OrderedDict
from typing import Callable, Union

from firmware import boxproto as P

log = logging.getLogger("rating-terminal.box")
REMEMBER = 4096  # (boot id, seq) pairs kept to drop repeats; far more than the box ever resends
#: A press older than this when it arrives was made before the host (re)started: the terminal's
#: units restart 2 s after a stop (RestartSec), while a press on a working link arrives within
#: milliseconds, or a few resends (0.15 s each) over a faulty one.
MAX_PRESS_AGE_MS = 2000
NO_HELLO_S = 5.0  # a box answers ASK at once, and says HEARTBEAT every 2 s (each asked again)


def led_for(state, fault: str | None = None) -> int:
    """What the box's LEDs say for a session state (terminal.core.session.State), or ERROR while
    the window cannot record (``Window.fault``): the box lights a key's thanks the moment it is
    pressed, so a press that was not kept must put that right."""
    if fault:
        return P.LED_ERROR
    return {"paused": P.LED_PAUSED, "invited": P.LED_PROMPT, "thanks": P.LED_THANKS}.get(
        getattr(state, "value", state), P.LED_OFF)


Port = Union[str, Callable[[], "str | None"]]  # a device, or where the box is now (BoxFinder.port)


def start_box(port: str, board_serial: str, on_event: Callable[[str, int], None],
              baudrate: int = 115200) -> "ButtonBoxLink":
    """The link for ``[box]``: a device path, or "auto" to follow the box through udev."""
    finder = None
    if port == "auto":
        from hardware.boxfinder import BoxFinder
        finder = BoxFinder("data", board_serial or None).start()
    link = ButtonBoxLink(finder.port if finder else port, on_event, baudrate)
    link.finder = finder
    return link.start()


class ButtonBoxLink:
    def __init__(self, port: Port, on_event: Callable[[str, int], None], baudrate: int = 115200):
        self.port, self.baudrate, self.on_event = port, baudrate, on_event
        self.seen: OrderedDict[tuple[int, int], None] = OrderedDict()
        self.hello: tuple | None = None  # (boot_id, version, board)
        self.last_heard = 0.0
        self.dropped_frames = 0
        self.repeats = 0
        self.stale_presses = 0  # presses older than MAX_PRESS_AGE_MS, dropped
        self.synced = False  # this link's HELLO has come: presses after it are sent now
        self.ageless = False  # a box too old to say its presses' age was heard (and warned of)
        self.failures = 0  # unexpected failures the thread survived
        self.connected = threading.Event()
        self.stopping = threading.Event()
        self.serial = None
        self.current_port: str | None = None
        self.finder = None  # the BoxFinder behind port = "auto"
        self.led: int | None = None  # the LED mode last asked for, sent with each HELLO
        self.lock = threading.RLock()
        self.thread = threading.Thread(target=self._run_forever, name="button-box", daemon=True)

    def start(self) -> "ButtonBoxLink":
        self.thread.start()
        return self

    def stop(self) -> None:
        self.stopping.set()
        self.thread.join(5)
        if self.finder:
            self.finder.stop()

    def set_led(self, mode: int) -> bool:
        """Show ``mode`` now if the box has said HELLO on this link, and again after each HELLO."""
        with self.lock:
            self.led = mode
            return self.synced and self._write(P.encode(P.LED, mode))

    def state(self) -> dict:
        """For the technician menu and the heartbeat."""
        return {"port": self.current_port, "connected": self.connected.is_set(),
                "firmware": self.hello[1] if self.hello else None, "board": self.hello[2] if self.hello else None,
                "seconds_since_heard": round(time.monotonic() - self.last_heard, 1) if self.last_heard else None,
                "dropped_frames": self.dropped_frames, "repeats": self.repeats, "stale_presses": self.stale_presses}

    # -- inside ------------------------------------------------------------------------------

    def _run_forever(self) -> None:
        """The box gets unplugged: wait, open again, for as long as the terminal runs."""
        while not self.stopping.is_set():
            try:
                self._run()
            except OSError as exc:
                log.warning("button box on %s: %s; reopening", self.current_port, exc)
            except Exception:  # a bug must not end the thread every later press comes through
                self.failures += 1
                log.exception("button box link failed (%d so far); reopening", self.failures)
            finally:
                self.connected.clear()
            self.stopping.wait(0.2)  # replugged boxes come back within a fraction of a second

    def _run(self) -> None:
        import serial
        decoder = P.Decoder()
        port = self.port() if callable(self.port) else self.port
        self.current_port = port
        if not port:
            return  # not plugged in (yet)
        try:
            # exclusive: a second opener (another terminal process, or doctor) is refused, not interleaved
            link = serial.serial_for_url(port, baudrate=self.baudrate, timeout=0.05, exclusive=True)
        except serial.SerialException as exc:
            raise OSError(str(exc)) from None
        with link:
            with self.lock:
                self.serial, self.synced, self.hello = link, False, None
            self.connected.set()
            log.info("button box link open on %s", port)
            self._write(P.encode(P.ASK))  # a box that booted before us: its HELLO again
            silent_since = time.monotonic()  # None once HELLO came or the silence was logged
            try:
                while not self.stopping.is_set():
                    data = link.read(max(1, link.in_waiting))  # what is there, or wait for one byte
                    if data:
                        for kind, fields in decoder.feed(data):
                            self._handle(kind, fields)
                        self.dropped_frames = decoder.dropped
                    if silent_since is not None and not self.synced \
                            and time.monotonic() - silent_since >= NO_HELLO_S:
                        silent_since = None
                        log.warning("nothing on %s has said HELLO in %.0f s: not a button box's data port (its "
                                    "REPL, usually the first of its two ports? another device?) or a box without "
                                    "its firmware; nothing but ASK is sent to it", port, NO_HELLO_S)
            except serial.SerialException as exc:
                raise OSError(str(exc)) from None
            finally:
                with self.lock:
                    self.serial = None

    def _handle(self, kind: int, fields: tuple) -> None:
        if kind not in (P.HELLO, P.PRESS, P.STUCK, P.HEARTBEAT):
            return  # the host's own frames, echoed (a modem): not a box, and nothing to answer
        self.last_heard = time.monotonic()
        if kind == P.HELLO:
            if fields == self.hello:
                return  # the same boot again (an answer to ASK): nothing new to log or light
            with self.lock:
                self.hello, self.synced = fields, True
                if self.led is not None:  # a box just started shows no LEDs: the session's again
                    self._write(P.encode(P.LED, self.led))
            log.info("button box %s, firmware %s, boot %08x", fields[2], fields[1], fields[0])
        elif not self.synced or fields[0] != self.hello[0]:  # no HELLO yet (lost?), or from another boot
            self._write(P.encode(P.ASK))  # a press is not acknowledged: the box sends it again
        elif kind != P.HEARTBEAT:
            boot_id, seq, key, age_ms = fields
            self._write(P.encode(P.ACK, boot_id, seq))
            if (boot_id, seq) in self.seen:
                self.repeats += 1
                return
            self.seen[(boot_id, seq)] = None
            while len(self.seen) > REMEMBER:
                self.seen.popitem(last=False)
            if age_ms is None and not self.ageless:
                self.ageless = True  # said once
                log.warning("button box firmware %s sends presses without their age: a press it kept while "
                            "this terminal restarted is taken as new; run rating-terminal flash-box",
                            self.hello[1] if self.hello else "?")
            if age_ms is not None and age_ms > MAX_PRESS_AGE_MS:
                self.stale_presses += 1
                log.warning("button box %s of key %d made %.1f s ago, before this terminal was listening: "
                            "dropped (%d so far)", P.NAMES[kind], key, age_ms / 1000, self.stale_presses)
                return
            self.on_event("press" if kind == P.PRESS else "stuck", key)

    def _write(self, frame: bytes) -> bool:
        with self.lock:
            link = self.serial
            if link is None:
                return False
            try:
                link.write(frame)
                return True
            except (OSError, Exception) as exc:  # serial.SerialException included
                log.warning("button box write failed: %s", exc)
                return False
