"""GPIO buttons through gpiozero's own MockFactory: presses, bounce, held buttons, LEDs."""

import time

import pytest
from gpiozero.pins.mock import MockFactory

from hardware.gpio_buttons import GpioButtons

from conftest import wait_for

PINS, STAFF, LEDS = [17, 27, 22, 23, 24], 25, [5, 6, 13, 19, 26]


@pytest.fixture
def rig():
    factory = MockFactory()
    events = []
    buttons = GpioButtons(PINS, lambda kind, key: events.append((kind, key)), staff_key_pin=STAFF,
                          led_pins=LEDS, bounce_s=0.03, stuck_after=0.5, pin_factory=factory)
    yield factory, buttons, events
    buttons.close()
    factory.reset()


def press(factory, pin, hold=0.05):
    factory.pin(pin).drive_low()  # pulled up: pressed is low
    time.sleep(hold)
    factory.pin(pin).drive_high()
    time.sleep(0.05)



def test_each_pin_is_its_level_best_first_and_the_staff_key(rig):
    factory, _, events = rig
    for pin in PINS + [STAFF]:
        press(factory, pin)
    assert wait_for(lambda: len(events) == 6, 3, 0.01)
    assert events == [("press", 5), ("press", 4), ("press", 3), ("press", 2), ("press", 1), ("press", 6)]


def test_a_bounce_burst_is_one_press(rig):
    factory, _, events = rig
    pin = factory.pin(PINS[1])
    for _ in range(5):  # contact bounce, faster than the bounce time
        pin.drive_low()
        time.sleep(0.002)
        pin.drive_high()
        time.sleep(0.002)
    pin.drive_low()
    time.sleep(0.1)
    pin.drive_high()
    time.sleep(0.2)
    assert events == [("press", 4)]


def test_a_held_button_is_one_press_and_one_stuck_report(rig):
    factory, _, events = rig
    factory.pin(PINS[4]).drive_low()
    assert wait_for(lambda: ("stuck", 1) in events, 3, 0.01)
    time.sleep(0.8)  # held on: no more presses, no more reports
    factory.pin(PINS[4]).drive_high()
    assert events == [("press", 1), ("stuck", 1)]


def test_leds_show_one_level(rig):
    factory, buttons, _ = rig
    buttons.show(4)
    assert [factory.pin(p).state for p in LEDS] == [0, 1, 0, 0, 0]
    buttons.show(None)
    assert [factory.pin(p).state for p in LEDS] == [0, 0, 0, 0, 0]


def test_five_pins_are_required():
    with pytest.raises(ValueError, match="five button pins"):
        GpioButtons([1, 2, 3], lambda *_: None, pin_factory=MockFactory())
