"""The button box's firmware: the box logic (``box.py``) on a board's pins, USB port and watchdog.

``main.py`` only imports this module and calls ``main()``, so the module can also be imported from
the REPL (``import boxfw; boxfw.box.pending``) and by the simulator, which runs this very file in
the MicroPython unix port with a simulated ``machine`` and ``usb`` (``firmware/simboard/``).

At power-up:

* a maintenance request (the ``maint`` flag file, left by the host's MAINT command, or keys 1 and 5
  held together) stops here: no watchdog, no data port, the REPL free for ``mpremote``, every LED
  lit so the technician sees it. The flag is used once: the next reset boots normally.
* otherwise: the data port (a second USB serial port through micropython-lib's usb-device-cdc, so
  the REPL stays free; the console port when the board's MicroPython has no runtime USB), the
  watchdog, HELLO, and the main loop: scan and debounce the keys, talk to the host, show the LEDs.

Wiring and timing come from ``boxconfig.json`` on the board when it is there (see DEFAULTS); a
damaged file is ignored rather than leaving the window without a box, and so is one that is JSON
but not settings a box can run on (``problem``): a list, "30" for a number, three buttons, a
watchdog the RP2040 refuses. Such a file stopped the firmware at power-up, or at the first press.
"""

import asyncio
import json
import os
import sys
import time

import machine

import boxproto as P
from box import Box

VERSION = "0.3.2"
PRODUCT = "Rating button box"  # the USB product string the host's udev rule matches
DEFAULTS = {
    "buttons": [2, 3, 4, 5, 6],  # GPIO of keys 1..5 (5 = 非常满意), to ground, internal pull-ups
    "staff_key": 7,  # the 请评价 key, or null
    "leds": [10, 11, 12, 13, 14],  # one LED per key, active high
    "status_led": "LED",  # the board's own LED
    "debounce_ms": 30,
    "watchdog_ms": 2000,  # RP2040 allows up to 8388
}
CONFIG_FILE = "boxconfig.json"
NUMBERS = {"debounce_ms": (1, 1000), "watchdog_ms": (1, 8388)}  # the RP2040's watchdog: 1..8388 ms
MAINT_FLAG = "maint"
LOOP_MS = 1  # a keyboard scans at 1 kHz: a press waits at most a millisecond to be seen
BLINK_MS = 250

box = None  # the running Box
board = None  # the running Board


def _pin(value):
    return isinstance(value, str) or (isinstance(value, int) and not isinstance(value, bool) and value >= 0)


def problem(found):
    """Why ``found`` (boxconfig.json, parsed) is not settings a box can run on, or None."""
    if not isinstance(found, dict):
        return "not a JSON object"
    for key, value in found.items():
        if key in NUMBERS:
            low, high = NUMBERS[key]
            if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
                return "%s must be a whole number %d..%d" % (key, low, high)
        elif key in ("buttons", "leds"):
            if not isinstance(value, list) or not all(_pin(v) for v in value) \
                    or not (len(value) == 5 if key == "buttons" else len(value) <= 5):
                return "%s must be a list of %s pins" % (key, "5" if key == "buttons" else "at most 5")
        elif key in ("staff_key", "status_led"):
            if not (_pin(value) or (value is None and key == "staff_key")):
                return "%s must be a pin" % key
    return None


def settings(overrides=None):
    values = dict(DEFAULTS)
    try:
        with open(CONFIG_FILE) as f:
            found = json.load(f)
        why = problem(found)
        if why:
            print("boxfw: ignoring", CONFIG_FILE + ":", why)
        else:
            values.update(found)
    except OSError:
        pass  # no file: the defaults
    except ValueError as exc:
        print("boxfw: ignoring damaged", CONFIG_FILE, exc)
    values.update(overrides or {})
    return values


class Board:
    """Keys wired to ground (pressed reads 0) and LEDs, as machine.Pin objects."""

    def __init__(self, s):
        Pin = machine.Pin
        pins = list(s["buttons"]) + ([s["staff_key"]] if s["staff_key"] is not None else [])
        self.keys = [Pin(n, Pin.IN, Pin.PULL_UP) for n in pins]
        self.leds = [Pin(n, Pin.OUT, value=0) for n in s["leds"]]
        self.status = Pin(s["status_led"], Pin.OUT, value=0)
        self.mode, self.lit = P.LED_OFF, 0

    def read_keys(self):
        down = [not key.value() for key in self.keys]
        while len(down) < 6:
            down.append(False)
        return down

    def set_leds(self, mode, key):
        self.mode, self.lit = mode, key
        self.show(0)

    def show(self, now):
        """Prompt: every key lit, inviting a press. Thanks: the pressed key lit. Paused and off:
        dark. Error: dark keys and the status LED blinking. The status LED is on while running."""
        for i, led in enumerate(self.leds):
            led.value(self.mode == P.LED_PROMPT or (self.mode == P.LED_THANKS and self.lit == i + 1))
        if self.mode == P.LED_ERROR:
            self.status.value((now // BLINK_MS) % 2)
        else:
            self.status.value(1)

    def maintenance(self):
        for led in self.leds:
            led.value(1)
        self.status.value(1)


class CdcLink:
    """The data port: micropython-lib's CDCInterface with no timeout. A write the host does not
    take (port closed, buffer full) is dropped: an unacknowledged press is sent again anyway."""

    def __init__(self, cdc):
        self.cdc = cdc

    def read(self):
        return self.cdc.read(64) or b""

    def write(self, frame):
        if self.cdc.is_open():
            self.cdc.write(frame)


class ConsoleLink:
    """Fallback for a MicroPython without runtime USB: frames on the console port. Ctrl-C is
    turned off, as 0x03 can occur inside a frame; maintenance comes by MAINT or keys 1 and 5."""

    def __init__(self):
        import micropython
        import select
        micropython.kbd_intr(-1)
        self.poll = select.poll()
        self.poll.register(sys.stdin, select.POLLIN)

    def read(self):
        data = bytearray()
        while len(data) < 64 and self.poll.poll(0):
            data.extend(sys.stdin.buffer.read(1))
        return bytes(data)

    def write(self, frame):
        sys.stdout.buffer.write(frame)


def open_link():
    try:
        import usb.device
        from usb.device.cdc import CDCInterface
    except ImportError:
        return ConsoleLink()
    cdc = CDCInterface(timeout=0)
    usb.device.get().init(cdc, builtin_driver=True, manufacturer_str="rating-terminal", product_str=PRODUCT)
    return CdcLink(cdc)


def board_id():
    return "".join("%02x" % b for b in machine.unique_id())


def maintenance_requested(keys):
    try:
        os.remove(MAINT_FLAG)
        return True
    except OSError:
        return keys[0] and keys[4]


async def scan_and_talk(wdt):
    """The main loop. Time is counted from boot in a plain int: ticks_ms wraps after 12 days."""
    elapsed, last = 0, time.ticks_ms()
    while not box.maintenance:
        now = time.ticks_ms()
        elapsed += time.ticks_diff(now, last)
        last = now
        wdt.feed()  # fed only here, once a loop: a stuck loop resets the box
        box.step(elapsed)
        board.show(elapsed)
        await asyncio.sleep_ms(LOOP_MS)
    with open(MAINT_FLAG, "w") as f:  # the host asked for maintenance: come back up in it
        f.write("1")
    machine.reset()


def main(overrides=None):
    global box, board
    s = settings(overrides)
    board = Board(s)
    if maintenance_requested(board.read_keys()):
        board.maintenance()
        print("rating box %s: maintenance mode, REPL free; reset to leave" % VERSION)
        return
    link = open_link()
    wdt = machine.WDT(timeout=s["watchdog_ms"])
    boot_id = int.from_bytes(os.urandom(4), "big")
    box = Box(board.read_keys, link.write, link.read, board.set_leds, boot_id, VERSION, board_id(),
              s["debounce_ms"])
    box.hello()
    asyncio.run(scan_and_talk(wdt))
