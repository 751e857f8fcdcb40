"""One screen per file pair: ``name.py`` (behaviour) and ``name.kv`` (layout); ``common.kv`` holds
the widgets several screens share. ``SCREENS`` maps a session state to the screen that shows it."""

from .attract import AttractScreen
from .indicators import IndicatorsScreen
from .paused import PausedScreen
from .rating import RatingScreen
from .reasons import ReasonsScreen
from .thanks import ThanksScreen

SCREEN_CLASSES = {"paused": PausedScreen, "attract": AttractScreen, "rating": RatingScreen,
                  "indicators": IndicatorsScreen, "reasons": ReasonsScreen, "thanks": ThanksScreen}

__all__ = ["SCREEN_CLASSES"]
