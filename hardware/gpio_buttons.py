"""The five rating buttons (and the 请评价 key, and LEDs) wired straight to the Pi's GPIO pins.

gpiozero does the pin work, so the same code runs on a Pi 4 (RPi.GPIO/lgpio), a Pi 5 (lgpio) and
in tests on gpiozero's own ``MockFactory``. Wiring: each button between its pin and ground (the
internal pull-up is used); each LED from its pin through a resistor to ground.

Presses come out the same way as from the button box: ``on_event(kind, key)`` with kind
``"press"`` or ``"stuck"`` and key 1..5 (a level, 5 = 非常满意) or 6 (请评价). A bounce burst is
one press: an edge within ``bounce_s`` of the key's previous edge is ignored. That filter is ours,
not the pin driver's, because drivers debounce differently (and gpiozero's mock pins not at all).
A button held longer than ``stuck_after`` seconds is reported once as stuck and gives no more
presses until released.
"""

from __future__ import annotations

import logging
import time
from typing import Callable, Sequence

log = logging.getLogger("rating-terminal.gpio")


class GpioButtons:
    def __init__(self, button_pins: Sequence[int], on_event: Callable[[str, int], None],
                 staff_key_pin: int | None = None, led_pins: Sequence[int] = (), bounce_s: float = 0.03,
                 stuck_after: float = 5.0, pin_factory=None):
        from gpiozero import LED, Button
        if len(button_pins) != 5:
            raise ValueError("five button pins, best level (非常满意) first")
        self.on_event, self.bounce_s = on_event, bounce_s
        pins = list(button_pins) + ([staff_key_pin] if staff_key_pin is not None else [])
        self.buttons = []
        self.last_edge: dict[int, float] = {}
        for index, pin in enumerate(pins):
            key = 5 - index if index < 5 else 6  # the pins are listed best first: 5, 4, 3, 2, 1
            button = Button(pin, pull_up=True, bounce_time=None, hold_time=stuck_after, pin_factory=pin_factory)
            button.when_pressed = lambda _b=None, k=key: self._edge(k, pressed=True)
            button.when_released = lambda _b=None, k=key: self._edge(k, pressed=False)
            button.when_held = lambda _b=None, k=key: self.on_event("stuck", k)
            self.buttons.append(button)
        self.leds = [LED(pin, pin_factory=pin_factory) for pin in led_pins]

    def _edge(self, key: int, pressed: bool) -> None:
        now = time.monotonic()
        settled = now - self.last_edge.get(key, float("-inf")) >= self.bounce_s
        self.last_edge[key] = now
        if pressed and settled:
            self.on_event("press", key)

    def show(self, key: int | None) -> None:
        """Light the LED of one level (1..5), or none."""
        for index, led in enumerate(self.leds):
            led.value = key is not None and 5 - index == key

    def close(self) -> None:
        for device in self.buttons + self.leds:
            device.close()
