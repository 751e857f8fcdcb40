"""One measured Kivy process for bench/kiosk_ui.py (run it through that script, not by hand).

    python bench/kiosk_probe.py MODE OUT [CONFIG] [N]

MODE: ``bare-start`` / ``kiosk-start`` — write the wall time of the first frame and the RSS then;
``bare-press`` / ``kiosk-press`` — N touches, each timed from the touch to the first frame that
shows the next screen (the kiosk: the thank-you, after the rating is committed).
"""

from __future__ import annotations

import json
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

mode, out = sys.argv[1], Path(sys.argv[2])
kiosk_mode = mode.startswith("kiosk")

if kiosk_mode:  # the kiosk's own start path (kiosk.run's): enrolled (or demo), so the window's app
    from terminal import config as config_module, kiosk
    kiosk_app = kiosk.start(config_module.load(sys.argv[3]))
else:
    import os
    os.environ.setdefault("KIVY_NO_ARGS", "1")

from kivy.app import App  # noqa: E402
from kivy.clock import Clock  # noqa: E402
from kivy.core.window import Window  # noqa: E402

if mode.endswith("press"):  # kivy.tests.common imports pytest (60 ms, 10 MiB): never in a start's figures
    from kivy.tests.common import UnitTestTouch  # noqa: E402


def rss_mib() -> float:
    for line in open("/proc/self/status"):
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


class BareApp(App):
    """The floor: a Kivy window with a label and a button switching between two screens."""

    def build(self):
        from kivy.uix.button import Button
        from kivy.uix.label import Label
        from kivy.uix.screenmanager import NoTransition, Screen, ScreenManager
        self.screens = ScreenManager(transition=NoTransition())  # as the kiosk shows its thank-you
        first, second = Screen(name="rating"), Screen(name="thanks")
        self.button = Button(text="press")
        self.button.bind(on_release=lambda *_: setattr(self.screens, "current", "thanks"))
        first.add_widget(self.button)
        second.add_widget(Label(text="thanks"))
        self.screens.add_widget(first)
        self.screens.add_widget(second)
        return self.screens


def make_app():
    if kiosk_mode:
        app = kiosk_app
        assert type(app).__name__ == "KioskApp", f"measured {type(app).__name__}, not the window's kiosk"
        return app
    return BareApp()


app = make_app()
result: dict = {}


def first_frame(*_):
    Window.unbind(on_flip=first_frame)
    result.update(first_frame_wall=time.time(), rss_mib=rss_mib(), window_size=list(Window.size))
    if mode.endswith("start"):
        Clock.schedule_once(lambda _dt: app.stop(), 0.5)
    else:
        Clock.schedule_once(lambda _dt: presser.next(), 1.0)


class Presser:
    """Touch, then note the first frame on which the next screen is current."""

    def __init__(self, n: int):
        self.n, self.samples, self.t0 = n, [], 0.0

    def next(self):
        if len(self.samples) >= self.n:
            result["samples_ms"] = self.samples
            result["rss_after_mib"] = rss_mib()
            return app.stop()
        screens = app.screens
        if kiosk_mode and app.window.state.value != "invited":
            if app.window.state.value == "idle":
                app.window.invite()
            return Clock.schedule_once(lambda _dt: self.next(), 0.02)
        if not kiosk_mode and screens.current != "rating":
            screens.current = "rating"
        if screens.current != "rating" or screens.transition.is_active:
            return Clock.schedule_once(lambda _dt: self.next(), 0.02)
        target = screens.current_screen.ids["level_4"] if kiosk_mode else app.button
        x, y = target.to_window(*target.center)
        Window.bind(on_flip=self.flipped)
        self.t0 = time.perf_counter()
        touch = UnitTestTouch(x, y)
        touch.touch_down()
        touch.touch_up()

    def flipped(self, *_):
        if app.screens.current == "thanks":
            Window.unbind(on_flip=self.flipped)
            self.samples.append((time.perf_counter() - self.t0) * 1000)
            if len(self.samples) % 50 == 0:
                result.setdefault("rss_every_50_mib", []).append(round(rss_mib(), 1))
            Clock.schedule_once(lambda _dt: self.next(), 0.3)


presser = Presser(int(sys.argv[4]) if len(sys.argv) > 4 else 200)
Window.bind(on_flip=first_frame)
app.run()
out.write_text(json.dumps(result))
