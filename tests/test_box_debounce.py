"""The firmware's debounce (firmware/box.py, the file that is flashed) under CPython on a made-up
clock: a press counts on its first edge, one press per bounce burst, none on a release's bounces."""

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "firmware"))

import box as firmware  # noqa: E402
import boxproto as P  # noqa: E402

DEBOUNCE = firmware.DEBOUNCE_MS


class Pins:
    """Key 2's pin, as a list of (from_ms, down) changes, and the box stepped each millisecond."""

    def __init__(self):
        self.keys = [False] * 6
        self.sent = []  # (ms, kind, key)
        self.now = 0
        self.box = firmware.Box(lambda: self.keys, self._write, lambda: b"", lambda mode, key: None,
                                boot_id=7, version="t", board="b")
        self.decoder = P.Decoder()

    def _write(self, frame):
        for kind, fields in self.decoder.feed(bytes(frame)):
            if kind in (P.PRESS, P.STUCK):
                self.sent.append((self.now, kind, fields[2]))
                self.box._command(P.ACK, (fields[0], fields[1]))  # the host acknowledges at once

    def run(self, until, changes=()):
        changes = dict(changes)
        while self.now < until:
            self.now += 1
            if self.now in changes:
                self.keys[1] = changes[self.now]
            self.box.step(self.now)

    def presses(self):
        return [ms for ms, kind, key in self.sent if kind == P.PRESS and key == 2]


def bounce(start, changes, ending_down, every=1):
    """``changes`` changes of the pin from ``start``, one each ``every`` ms, the last one ``ending_down``."""
    return {start + n * every: ending_down if (changes - 1 - n) % 2 == 0 else not ending_down for n in range(changes)}


@pytest.fixture
def pins():
    rig = Pins()
    rig.run(1000)  # still since boot
    return rig


def test_a_press_counts_on_its_first_edge(pins):
    pins.run(1200, {1001: True})
    assert pins.presses() == [1001]  # the same millisecond: nothing waits for the pin to settle


def test_a_bounce_burst_is_one_press(pins):
    burst = bounce(1001, 11, ending_down=True)
    assert burst[1001] is True and burst[1011] is True
    pins.run(1300, burst)
    assert pins.presses() == [1001]


def test_a_release_that_bounces_is_no_press(pins):
    pins.run(1100, {1001: True})
    burst = bounce(1101, 12 + 1, ending_down=False, every=2)
    assert burst[1101] is False and burst[1101 + 24] is False  # released first, settles released
    pins.run(1500, burst)
    assert pins.presses() == [1001]
    assert pins.box.down[1] is False
    pins.run(1600, {1550: True})  # the next press, once the key has been still
    assert pins.presses() == [1001, 1550]


def test_a_second_press_inside_the_debounce_time_counts_once_settled(pins):
    pins.run(1200, {1001: True, 1100: False, 1110: True})  # released, pressed again 10 ms later
    assert pins.presses() == [1001, 1110 + DEBOUNCE]


def test_a_glitch_is_taken_back_once_the_pin_settles(pins):
    pins.run(1100, {1001: True, 1002: False})
    assert pins.presses() == [1001] and pins.box.down[1] is False  # released after the debounce time
    pins.run(1200, {1150: True})
    assert pins.presses() == [1001, 1150]


def test_a_held_key_is_one_press_and_one_stuck_report(pins):
    pins.run(1000 + firmware.STUCK_MS + 100, {1001: True})
    assert [(ms, kind) for ms, kind, _ in pins.sent] == [(1001, P.PRESS), (1001 + firmware.STUCK_MS, P.STUCK)]


def test_a_key_down_at_power_up_is_no_press_but_is_reported_stuck():
    """A press is an edge: a key already down when the box starts (stuck, or something resting on
    it) was sent as a press on the first scan, so every reset or replug of a box with a stuck key
    made a rating. It is taken as held since power-up: reported once as stuck, and a press again
    once released and pressed."""
    rig = Pins()
    rig.keys[1] = True
    rig.run(firmware.STUCK_MS + 100)
    assert [(ms, kind) for ms, kind, _ in rig.sent] == [(firmware.STUCK_MS + 1, P.STUCK)]
    rig.run(firmware.STUCK_MS + 200, {firmware.STUCK_MS + 150: False})
    rig.run(firmware.STUCK_MS + 300, {firmware.STUCK_MS + 250: True})
    assert rig.presses() == [firmware.STUCK_MS + 250]
