"""The touchscreen kiosk (Kivy). ``run`` prepares Kivy before any of its windowing is imported."""

from __future__ import annotations

import gc
import logging
import os

from terminal.config import ASSETS, Config

FONT = ASSETS / "fonts" / "NotoSansSC-Regular.subset.otf"


def prepare_kivy(config: Config) -> None:
    """Settings that Kivy reads at import time: must run before ``kivy.core.window`` is imported."""
    os.environ.setdefault("KIVY_NO_ARGS", "1")  # our argparse owns the command line
    os.environ.setdefault("KIVY_NO_CONSOLELOG", "0")
    os.environ.setdefault("KIVY_CLIPBOARD", "sdl2")  # not xsel/xclip: not installed on a kiosk
    # Kivy logs through Python's logging like the rest of the terminal (to journald, at the level the
    # command set), instead of taking over the root logger: its own mode lowers the root level to
    # everything (every library's DEBUG lines), writes log files on the SD card and captures stderr
    os.environ.setdefault("KIVY_LOG_MODE", "PYTHON")
    if "SDL_AUDIODRIVER" not in os.environ and not has_sound_card():
        # no card to play voice prompts on: say so once, instead of ALSA's lines and SDL's CRITICAL
        os.environ["SDL_AUDIODRIVER"] = "dummy"
        logging.getLogger("rating-terminal").info("no sound card (/proc/asound/cards): voice prompts are silent")
    from kivy.config import Config as KivyConfig
    from kivy.logger import LOG_LEVELS
    logging.getLogger("kivy").setLevel(LOG_LEVELS.get(KivyConfig.get("kivy", "log_level"), logging.INFO))

    if config.kiosk.rotation not in (0, 90, 180, 270):
        raise ValueError(f"[kiosk] rotation must be 0, 90, 180 or 270, got {config.kiosk.rotation}")

    def kivy_set(section: str, key: str, value: str) -> None:
        """Our default, unless the environment (KCFG_<SECTION>_<KEY>, as the systemd unit sets them) says."""
        if f"KCFG_{section.upper()}_{key.upper()}" not in os.environ:
            KivyConfig.set(section, key, value)

    kivy_set("graphics", "width", str(config.kiosk.width))
    kivy_set("graphics", "height", str(config.kiosk.height))
    kivy_set("graphics", "fullscreen", "auto" if config.kiosk.fullscreen else "0")
    kivy_set("graphics", "show_cursor", "0" if config.kiosk.fullscreen else "1")  # no cursor on a kiosk
    kivy_set("graphics", "rotation", str(config.kiosk.rotation))
    kivy_set("graphics", "allow_screensaver", "0")  # the screen stays awake
    KivyConfig.set("kivy", "exit_on_escape", "0")  # a citizen must not be able to close the kiosk
    KivyConfig.set("kivy", "keyboard_mode", "systemanddock")  # an on-screen keyboard for the reasons' text
    # Exactly one input provider, so one touch is one event: Kivy's defaults (a probesysfs
    # provider beside the window's own mouse events) deliver a touchscreen tap twice.
    for option in KivyConfig.options("input"):
        KivyConfig.remove_option("input", option)
    from_environment = {k[len("KCFG_INPUT_"):].lower(): v for k, v in os.environ.items()
                        if k.startswith("KCFG_INPUT_") and v}  # an empty value switches a provider off
    if from_environment:  # the unit's word (e.g. KCFG_INPUT_MOUSE=mouse,disable_multitouch): only these
        for name, provider in from_environment.items():
            KivyConfig.set("input", name, provider)
    elif config.kiosk.touch_input:
        provider, _, device = config.kiosk.touch_input.partition(":")
        if provider not in ("mtdev", "hidinput") or not device:
            raise ValueError(f"[kiosk] touch_input must be mtdev:<device> or hidinput:<device>, "
                             f"got {config.kiosk.touch_input!r}")
        KivyConfig.set("input", "touchscreen", f"{provider},{device}")
        os.environ["SDL_TOUCH_MOUSE_EVENTS"] = "0"  # SDL must not also turn the touches into clicks
    else:
        KivyConfig.set("input", "mouse", "mouse,disable_multitouch")

    # Every label uses the shipped CJK font: Kivy's default font name is "Roboto".
    from kivy.core.text import LabelBase
    LabelBase.register(name="Roboto", fn_regular=str(FONT))


def has_sound_card(cards: str = "/proc/asound/cards") -> bool:
    """Whether ALSA lists a sound card (a Pi has its own; a server or a container may have none)."""
    try:
        listed = open(cards, encoding="utf-8", errors="replace").read()
    except OSError:
        return False
    return any(line.strip()[:1].isdigit() for line in listed.splitlines())


def make_app(config: Config):
    """The window's kiosk, or, for a terminal not enrolled yet, the provisioning screen alone
    (``provision_app``: imported only then, so an enrolled kiosk starts as before)."""
    from terminal.credentials import needs_enrollment
    if needs_enrollment(config):
        from .provision_app import ProvisionApp
        return ProvisionApp(config)
    from .app import KioskApp
    return KioskApp(config)


def start(config: Config):
    """The kiosk's start, up to its app (``run``; bench/kiosk_probe.py measures this same path).

    No cyclic garbage collection until the first frame is drawn: start makes hundreds of
    thousands of objects (Kivy's and our modules, the widgets), nearly all long-lived, and
    collections walking them cost ~12 ms of the start (bench/kiosk_ui.py). A frame after the first,
    one collection frees what start left behind, ``gc.freeze`` sets the survivors aside so that no
    later collection, which may come in the middle of a press, walks them again, and collection
    resumes."""
    gc.disable()
    try:
        prepare_kivy(config)
        app = make_app(config)
        from kivy.clock import Clock
        from kivy.core.window import Window

        def first_frame(*_args) -> None:
            Window.unbind(on_flip=first_frame)
            Clock.schedule_once(_collect_and_freeze, 0)
        Window.bind(on_flip=first_frame)
    except BaseException:
        gc.enable()
        raise
    return app


def _collect_and_freeze(_dt=None) -> None:
    gc.collect()
    gc.freeze()
    gc.enable()


def run(config: Config) -> None:
    """Run the kiosk until the technician menu closes it or SIGTERM/SIGINT arrives (systemctl stop).
    Our handler goes in before SDL starts: SDL keeps a handler it finds, and its own would turn the
    signal into a window-close request, which the kiosk refuses (only the technician menu may close
    it), so systemd would wait out its stop timeout and kill it."""
    import threading
    from terminal import systemd
    stop = threading.Event()
    systemd.stop_on_signals(stop)  # before start: start opens the window, and SDL with it
    app = start(config)  # after enrolling, the provisioning app returns: systemd starts the kiosk again
    from kivy.clock import Clock
    Clock.schedule_interval(lambda _dt: app.stop() if stop.is_set() else None, 0.2)
    app.run()
