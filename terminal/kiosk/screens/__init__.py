"""One screen per file pair: ``name.py`` (behaviour) and ``name.kv`` (layout); ``common.kv`` holds
the widgets several screens share. ``SCREENS`` maps a session state to the screen that shows it."""

from .attract import AttractScreen
from .indicators import IndicatorsScreen
from .paused import PausedScreen
from .pin import PinScreen
from .rating import RatingScreen
from .reasons import ReasonsScreen
from .technician import TechnicianScreen
from .thanks import ThanksScreen
from .touchtest import TouchTestScreen

SCREEN_CLASSES = {"paused": PausedScreen, "attract": AttractScreen, "rating": RatingScreen,
                  "indicators": IndicatorsScreen, "reasons": ReasonsScreen, "thanks": ThanksScreen,
                  "pin": PinScreen, "technician": TechnicianScreen, "touchtest": TouchTestScreen}
TECHNICIAN_SCREENS = ("pin", "technician", "touchtest")  # staff-facing, behind the PIN

__all__ = ["SCREEN_CLASSES", "TECHNICIAN_SCREENS"]
