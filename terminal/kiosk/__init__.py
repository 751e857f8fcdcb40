"""The touchscreen kiosk (Kivy). ``run`` prepares Kivy before any of its windowing is imported."""

from __future__ import annotations

import os

from terminal.config import ASSETS, Config

FONT = ASSETS / "fonts" / "NotoSansSC-Regular.subset.otf"


def prepare_kivy(config: Config) -> None:
    """Settings that Kivy reads at import time: must run before ``kivy.core.window`` is imported."""
    os.environ.setdefault("KIVY_NO_ARGS", "1")  # our argparse owns the command line
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "0")
    from kivy.config import Config as KivyConfig

    KivyConfig.set("graphics", "width", str(config.kiosk.width))
    KivyConfig.set("graphics", "height", str(config.kiosk.height))
    KivyConfig.set("graphics", "fullscreen", "auto" if config.kiosk.fullscreen else "0")
    KivyConfig.set("graphics", "show_cursor", "0" if config.kiosk.fullscreen else "1")
    KivyConfig.set("input", "mouse", "mouse,disable_multitouch")
    KivyConfig.set("kivy", "exit_on_escape", "0")  # a citizen must not be able to close the kiosk

    # Every label uses the shipped CJK font: Kivy's default font name is "Roboto".
    from kivy.core.text import LabelBase
    LabelBase.register(name="Roboto", fn_regular=str(FONT))


def run(config: Config) -> None:
    prepare_kivy(config)
    from .app import KioskApp
    KioskApp(config).run()
