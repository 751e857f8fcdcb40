"""One screen per file pair: ``name.py`` (behaviour) and ``name.kv`` (layout); ``common.kv`` holds
the widgets several screens share. ``screen_class`` gives a screen's class, importing its module
only when the screen is first built: the kiosk's first frame waits for the screen it shows, not
for the technician's."""

from __future__ import annotations

import importlib

#: screen name -> its class, in terminal/kiosk/screens/<name>.py
SCREEN_CLASS_NAMES = {"paused": "PausedScreen", "attract": "AttractScreen", "rating": "RatingScreen",
                      "indicators": "IndicatorsScreen", "reasons": "ReasonsScreen", "thanks": "ThanksScreen",
                      "pin": "PinScreen", "technician": "TechnicianScreen", "touchtest": "TouchTestScreen"}
TECHNICIAN_SCREENS = ("pin", "technician", "touchtest")  # staff-facing, behind the PIN
#: Every screen's background: the window's clear colour, which is filled at every frame anyway, not a
#: rectangle over the whole screen that filled every pixel a second time (a 1280x800 frame took 7 ms
#: longer in Mesa's software renderer, bench/kiosk_ui.py; a Pi's GPU has little fill rate to spare)
BACKGROUND = (0.96, 0.97, 0.99, 1)


def screen_class(name: str) -> type:
    """The class of the screen ``name`` (KeyError for a name that is not a screen, before any import)."""
    class_name = SCREEN_CLASS_NAMES[name]
    return getattr(importlib.import_module(f"{__name__}.{name}"), class_name)


__all__ = ["BACKGROUND", "SCREEN_CLASS_NAMES", "TECHNICIAN_SCREENS", "screen_class"]
