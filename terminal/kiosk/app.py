"""The Kivy application: app state as properties, one kv file per screen (see ``screens/``).

A press on a rating button calls ``KioskApp.rate``: the rating is committed to the local database
first, and only then does the thank-you screen appear.
"""

from __future__ import annotations

import logging
import sys
import threading
from pathlib import Path

from kivy.app import App
from kivy.clock import Clock
from kivy.lang import Builder
from kivy.properties import ListProperty, NumericProperty, StringProperty
from kivy.uix.screenmanager import FadeTransition, ScreenManager

from terminal.config import Config
from terminal.content import PLACEHOLDER_PHOTO, Content, ContentError
from terminal.core.channels import InputDevice
from terminal.core.levels import LEVELS_BEST_FIRST, Level
from terminal.recorder import Recorder
from terminal.store import Store

from .screens import RatingScreen, ThanksScreen

log = logging.getLogger("rating-terminal")
SCREENS = Path(__file__).parent / "screens"

# Background colours of the five buttons, best first; text and stars say the level too.
LEVEL_COLOURS = {
    Level.VERY_SATISFIED: (0.18, 0.49, 0.20, 1),
    Level.SATISFIED: (0.33, 0.55, 0.18, 1),
    Level.BASICALLY_SATISFIED: (0.85, 0.60, 0.05, 1),
    Level.DISSATISFIED: (0.90, 0.38, 0.00, 1),
    Level.VERY_DISSATISFIED: (0.78, 0.16, 0.16, 1),
}


class KioskApp(App):
    hall_name = StringProperty("")
    window_name = StringProperty("")
    staff_name = StringProperty("")
    staff_no = StringProperty("")
    staff_unit = StringProperty("")
    staff_title = StringProperty("")
    photo = StringProperty("")
    window_stars = NumericProperty(0)
    levels = ListProperty([])  # [(code, label, stars, colour)], best first
    last_level_label = StringProperty("")

    def __init__(self, config: Config, **kwargs):
        super().__init__(**kwargs)
        self.terminal_config = config
        self.title = "评价器"
        self.store: Store | None = None
        self.recorder: Recorder | None = None
        self.dept_code: str | None = None
        self._back_event = None

    # -- lifecycle ---------------------------------------------------------------------------

    def build(self):
        self.store = Store(self.terminal_config.db_path)
        self.recorder = Recorder(self.terminal_config, self.store)
        self.levels = [(int(lv), lv.zh, "★" * int(lv), LEVEL_COLOURS[lv]) for lv in LEVELS_BEST_FIRST]
        self.load_content()
        for kv in ("rating.kv", "thanks.kv"):
            Builder.load_file(str(SCREENS / kv))
        self.screens = ScreenManager(transition=FadeTransition(duration=0.15))
        self.screens.add_widget(RatingScreen(name="rating"))
        self.screens.add_widget(ThanksScreen(name="thanks"))
        if self.terminal_config.kiosk.console_keys:
            threading.Thread(target=self._read_console_keys, name="console-keys", daemon=True).start()
        return self.screens

    def on_start(self):
        log.info("kiosk ready: terminal %s, window %s, staff %s",
                 self.terminal_config.terminal.id, self.terminal_config.terminal.window, self.staff_no or "-")

    def on_stop(self):
        if self.store:
            self.store.close()

    def load_content(self) -> None:
        cfg = self.terminal_config
        try:
            content = Content.load(cfg.content_dir)
        except ContentError as exc:
            log.error("%s", exc)
            self.hall_name, self.window_name = "", cfg.terminal.window
            self.photo = str(PLACEHOLDER_PHOTO)
            return
        window = content.windows.get(cfg.terminal.window, {})
        self.hall_name = content.hall.get("name", "")
        self.window_name = window.get("name", cfg.terminal.window)
        self.window_stars = int(window.get("stars", 0) or 0)
        self.dept_code = window.get("department")
        on_duty = content.staff.get(cfg.kiosk.staff_no) if cfg.kiosk.staff_no else None
        if on_duty is None:
            staff = content.staff_of_window(cfg.terminal.window)
            on_duty = staff[0] if staff else None
        if on_duty:
            self.staff_name, self.staff_no = on_duty.name, on_duty.staff_no
            self.staff_unit, self.staff_title = on_duty.unit, on_duty.title
        self.photo = str(content.photo_path(on_duty))

    # -- rating ------------------------------------------------------------------------------

    def rate(self, code: int, device: InputDevice = InputDevice.TOUCHSCREEN) -> None:
        """Record a press durably, then thank the rater. Presses outside the rating screen are ignored."""
        if self.screens.current != "rating":
            log.info("press %s ignored: not on the rating screen", code)
            return
        level = Level(code)
        self.recorder.record(level, device, staff_no=self.staff_no or None, dept_code=self.dept_code)
        self.last_level_label = level.zh
        self.screens.current = "thanks"
        if self._back_event:
            self._back_event.cancel()
        self._back_event = Clock.schedule_once(self._back_to_rating, self.terminal_config.kiosk.thanks_seconds)

    def _back_to_rating(self, _dt) -> None:
        self.screens.current = "rating"

    def _read_console_keys(self) -> None:
        """Demo only: a line or key '1'..'5' on stdin presses that level (5 = 非常满意)."""
        for line in sys.stdin:
            for ch in line.strip():
                if ch in "12345":
                    Clock.schedule_once(lambda _dt, c=int(ch): self.rate(c, InputDevice.CONSOLE))
