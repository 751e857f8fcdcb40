"""One screen per file pair: ``name.py`` (behaviour) and ``name.kv`` (layout)."""

from .rating import RatingScreen
from .thanks import ThanksScreen

__all__ = ["RatingScreen", "ThanksScreen"]
