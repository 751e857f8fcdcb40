"""A simulated ``machine`` for running the box's firmware (``boxfw``) in the MicroPython unix port.

Put this directory first on MICROPYPATH and run ``main.py``, as the board would. Set up by the
environment:

    BOX_SIM_BOARD   the board id, hex (machine.unique_id)
    BOX_SIM_HELD    keys held down at power-up, e.g. "1,5"
    BOX_SIM_KEYS    "stdin": fingers on stdin, LEDs on stdout (see Fingers); otherwise no one
                    touches the keys and stdout stays free for the console
    BOX_SIM_LINK    the data port's pseudo-terminal (see usb/device/cdc.py)

``reset()`` ends the process with RESET_EXIT, so whoever runs the board can power it up again.
"""

import os
import select
import sys
import time

RESET_EXIT = 86
_board = os.getenv("BOX_SIM_BOARD") or "".join("%02x" % b for b in os.urandom(4))
_held = [int(k) for k in (os.getenv("BOX_SIM_HELD") or "").split(",") if k]
_input_pins = []


class Pin:
    IN, OUT, PULL_UP = 0, 1, 1

    def __init__(self, id, mode=IN, pull=None, value=None):
        if not isinstance(id, (int, str)):  # as the board's machine.Pin refuses it
            raise TypeError("can't convert to int")
        self.id, self.mode = id, mode
        self.level = 1 if mode == Pin.IN else (value or 0)
        if mode == Pin.IN:
            _input_pins.append(self)
            if len(_input_pins) in _held:  # keys are made in order 1..6
                self.level = 0

    def value(self, v=None):
        if v is None:
            return self.level
        self.level = 1 if v else 0


def unique_id():
    return bytes(int(_board[i:i + 2], 16) for i in range(0, len(_board), 2))


def reset():
    sys.exit(RESET_EXIT)


class Fingers:
    """Key presses from stdin: ``D3`` down, ``U3`` up, ``B3`` contact bounce on key 3 (a change
    on every loop, twelve times, ending down), ``R3`` a release that bounces (twelve changes, ending up), ``STATS`` prints loops, queue and dropped presses,
    ``Q`` quits. Prints ``READY boot_id`` once running and, when the LEDs change, ``LEDS 11111 1 1 0``:
    the key LEDs' and status LED's pins, then the mode and key they show (a host's LED command
    has key 0; the box's own feedback to a press, the key pressed).

    The next key change waits until the box has taken in the last one (its debounced state
    matches the pins), as a finger is never quicker than the debounce, however slow a loaded
    machine makes the loop; the first waits for the box's first scan (a key down before it is
    one held at power-up, which is no press)."""

    def __init__(self):
        self.poller = select.poll()
        self.poller.register(sys.stdin, select.POLLIN)
        self.down = [False] * 6
        self.queued, self.bouncing = [], []
        self.last_change = time.ticks_ms() - 1000
        self.leds = None

    def step(self):
        import boxfw
        box, board = boxfw.box, boxfw.board
        now = time.ticks_ms()
        if self.leds is None:
            print("READY", box.boot_id)
        while self.poller.poll(0):
            line = sys.stdin.readline().strip()
            if not line or line == "Q":
                sys.exit(0)
            if line == "STATS":
                print("STATS", box.loops, len(box.pending), box.dropped_presses)
            elif line[0] in "DUBR" and line[1:].isdigit() and 1 <= int(line[1:]) <= len(board.keys):
                self.queued.append(line)
        if self.bouncing:
            index, left, ending_down = self.bouncing[0]
            self.down[index] = (left % 2 == 0) == ending_down
            self.bouncing[0][1] -= 1
            if self.bouncing[0][1] < 0:
                self.bouncing.pop(0)
                self.last_change = now
        elif self.queued and box.raw is not None and box.down == self.down \
                and time.ticks_diff(now, self.last_change) > box.debounce_ms:  # raw None: keys not scanned yet
            line = self.queued.pop(0)
            if line[0] in "BR":
                self.bouncing.append([int(line[1:]) - 1, 12, line[0] == "B"])
            else:
                self.down[int(line[1:]) - 1] = line[0] == "D"
            self.last_change = now
        for pin, down in zip(board.keys, self.down):
            pin.level = 0 if down else 1
        leds = "%s %d %d %d" % ("".join(str(led.level) for led in board.leds), board.status.level, board.mode,
                                board.lit)
        if leds != self.leds:
            print("LEDS", leds)
            self.leds = leds


class WDT:
    """Fed once per main loop, which is when the simulated fingers move."""

    def __init__(self, id=0, timeout=5000):
        if not 1 <= timeout <= 8388:  # as the RP2040's machine.WDT refuses it
            raise ValueError("WDT timeout too long")
        self.timeout, self.feeds = timeout, 0
        self.fingers = Fingers() if os.getenv("BOX_SIM_KEYS") == "stdin" else None

    def feed(self):
        self.feeds += 1
        if self.fingers:
            self.fingers.step()
