"""Run the real kiosk app on a test display and follow a script of steps (a JSON list).

    python tests/kiosk_driver.py CONFIG SCRIPT RESULT

Steps (each a dict with "do"):
  wait_screen  {"screen", "timeout"}   until that screen is shown and its transition is over
  touch        {"target"}              a touch down/up at the centre of the widget with that id,
                                       dispatched through Kivy's input pipeline
  screenshot   {"path"}                the window as drawn (after one more frame)
  centres      {"path"}                write the level buttons' centres in X screen coordinates,
                                       so a test can click them with xdotool
  targets      {"path"}                every widget with an id or a tag on the screen: its centre in X
                                       screen coordinates (for xdotool), written atomically
  glyph_check  {}                      render every CJK character on the screen with the kiosk's
                                       font and compare it with the font's missing-glyph box
  swipe        {"badge"}               a badge read by a reader (as the badge readers deliver it)
  invite       {"case_no", ...}        an invitation, as the invite API or the 请评价 key gives it
  call         {"ticket_no"}           the queue system calls a ticket to this window
  box_press    {"level"}               a press on the button box
  set_pin      {"pin"}                 the technician PIN, as rating-terminal set-pin stores it
  type         {"target", "text"}      text typed into the text input with that id
  sleep        {"seconds"}             let time pass (timeouts run on the kiosk's own clock)
  write_file   {"path", "text"}        write a file (as sync swapping in new content would)
  wait_text    {"text", "timeout"}     until a label on the screen shows that text
  freeze       {"seconds"}             block the UI loop, as a hung screen would
  keys         {"names"}               keyboard keys pressed on the window (e.g. escape, f1)
  close        {}                      the window manager asks the window to close
  expect_exit  {"timeout"}             until the app stops by itself (as after enrolling); the last step
The RESULT file gets a JSON object with what the steps found; exit status 1 on a failed step.
"""

from __future__ import annotations

import json
import sys
import time
import traceback
import unicodedata
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from terminal import config as config_module, kiosk  # noqa: E402

config_path, script_path, result_path = sys.argv[1:4]
config = config_module.load(config_path)
kiosk.prepare_kivy(config)

from kivy.config import Config as KivyConfig  # noqa: E402

KivyConfig.set("graphics", "position", "custom")  # top-left corner, so window = screen coordinates
KivyConfig.set("graphics", "left", "0")
KivyConfig.set("graphics", "top", "0")

from kivy.clock import Clock  # noqa: E402
from kivy.core.text import Label as CoreLabel  # noqa: E402
from kivy.core.window import Window  # noqa: E402
from kivy.tests.common import UnitTestTouch  # noqa: E402
from kivy.uix.label import Label  # noqa: E402

from terminal.core.channels import InputDevice  # noqa: E402

MISSING = "\U000F0000"  # a private-use code point no font here has: renders as the .notdef box


def render(text: str) -> bytes:
    label = CoreLabel(text=text, font_size=48)
    label.refresh()
    return bytes(label.texture.pixels)


def ideograph(char: str) -> bool:
    """A Chinese character of any block: the basic one (U+4E00–U+9FFF), Extension A, the
    supplementary-plane extensions (rare characters of names: 刘䶮, 赵孟𫖯) or the compatibility ones."""
    return unicodedata.name(char, "").startswith(("CJK UNIFIED IDEOGRAPH", "CJK COMPATIBILITY IDEOGRAPH"))


def glyph_check(screen) -> dict:
    texts = [w.text for w in screen.walk() if isinstance(w, Label)]
    chars = sorted({c for t in texts for c in t if ideograph(c)})
    box = render(MISSING)
    tofu = [c for c in chars if render(c) == box]
    distinct = len({render(c) for c in chars})
    clipped = [w.text for w in screen.walk() if isinstance(w, Label) and w.text and w.opacity > 0 and overflows(w)]
    clipped += [f"a list showing less than one whole item: {item.text}" for item in slivers(screen)]
    return {"cjk_chars": len(chars), "distinct_renderings": distinct, "tofu": tofu, "texts": texts,
            "clipped": clipped, "checked": chars}


def shown(widget) -> bool:
    while widget is not None:
        if widget.opacity <= 0:
            return False
        widget = widget.parent if widget.parent is not widget else None
    return True


def slivers(screen) -> list:
    """The first item of every visible scrolling list too short to show one of its items whole: a
    strip of half-drawn text (say, the reason tags above a docked keyboard on a 7-inch screen)."""
    from kivy.uix.scrollview import ScrollView
    found = []
    for view in screen.walk():
        if isinstance(view, ScrollView) and view.children and shown(view):
            items = [w for w in view.children[0].children if isinstance(w, Label) and w.text]
            if items and 0 < view.height < min(w.height for w in items) - 2:
                found.append(items[-1])
    return found


def overflows(label) -> bool:
    """Text wider or taller than its label: cut off on screen, or drawn over its neighbours. A
    label whose ``text_size`` fixes both sides gets a texture of exactly that size, however many
    wrapped lines its text needs: its text is measured again at the label's width."""
    width, height = label.texture_size
    if None not in label.text_size:
        from kivy.core.text.markup import MarkupLabel
        free = (MarkupLabel if label.markup else CoreLabel)(
            text=label.text, font_size=label.font_size, font_name=label.font_name, bold=label.bold,
            italic=label.italic, line_height=label.line_height, padding=label.padding,
            text_size=(label.text_size[0], None))
        free.refresh()
        width, height = free.content_size
    return width > label.width + 2 or height > label.height + 2


def find(screen, target: str):
    """A widget by its id on the screen, or by its ``tag`` (widgets inside shared kv rules)."""
    if target in screen.ids:
        return screen.ids[target]
    for widget in screen.walk():
        if getattr(widget, "tag", None) == target:
            return widget
    raise KeyError(f"no widget {target!r} on screen {screen.name}")


class Driver:
    def __init__(self, app, steps: list[dict]):
        self.app, self.steps = app, steps
        self.index, self.started, self.frames = 0, time.monotonic(), 0
        self.result: dict = {"steps": [], "ok": False}

    def fail(self, why: str) -> None:
        self.result["error"] = why
        self.app.stop()

    def tick(self, _dt) -> None:
        try:
            self._tick()
        except Exception:
            self.fail(traceback.format_exc())

    def _tick(self) -> None:
        if self.index >= len(self.steps):
            self.result["ok"] = True
            self.app.stop()
            return
        step = self.steps[self.index]
        screens = self.app.screens
        done = True
        if step["do"] == "wait_screen":
            done = screens.current == step["screen"] and not screens.transition.is_active
            if not done and time.monotonic() - self.started > step.get("timeout", 10):
                return self.fail(f"timed out waiting for screen {step['screen']} (on {screens.current})")
        elif step["do"] == "touch":
            widget = find(screens.current_screen, step["target"])
            x, y = widget.to_window(*widget.center)
            touch = UnitTestTouch(x, y)
            touch.touch_down()
            touch.touch_up()
        elif step["do"] == "screenshot":
            self.frames += 1
            done = self.frames > 2  # let the current frame reach the buffer first
            if done:
                written = Window.screenshot(step["path"])
                Path(written).replace(step["path"])  # Kivy appends a counter to the name
        elif step["do"] == "centres":
            ids = self.app.screen("rating").ids
            centres = {}
            for code in range(1, 6):
                w = ids[f"level_{code}"]
                x, y = w.to_window(*w.center)
                centres[str(code)] = [round(x), round(Window.height - y)]
            Path(step["path"]).write_text(json.dumps(centres))
        elif step["do"] == "targets":
            screen, found = screens.current_screen, {}
            named = list(screen.ids.items()) + [(w.tag, w) for w in screen.walk() if getattr(w, "tag", None)]
            for name, w in named:
                x, y = w.to_window(*w.center)
                found[name] = [round(x), round(Window.height - y)]
            part = Path(step["path"] + ".part")
            part.write_text(json.dumps(found))
            part.replace(step["path"])
        elif step["do"] == "swipe":
            self.app.swipe(step["badge"])
        elif step["do"] == "invite":
            self.app.window.invite(**{k: v for k, v in step.items() if k != "do"})
        elif step["do"] == "call":
            self.app.window.call(step["ticket_no"])
        elif step["do"] == "box_press":
            self.app.device_press(step["level"], InputDevice.BUTTON_BOX)
        elif step["do"] == "type":
            find(screens.current_screen, step["target"]).text = step["text"]
        elif step["do"] == "set_pin":
            from terminal.core.pin import hash_pin
            config.technician_pin_path.write_text(hash_pin(step["pin"], iterations=1000))
        elif step["do"] == "write_file":
            Path(step["path"]).write_text(step["text"], encoding="utf-8")
        elif step["do"] == "wait_text":
            done = any(step["text"] in w.text for w in screens.current_screen.walk() if isinstance(w, Label))
            if not done and time.monotonic() - self.started > step.get("timeout", 10):
                return self.fail(f"timed out waiting for text {step['text']!r}")
        elif step["do"] == "freeze":
            time.sleep(step["seconds"])
        elif step["do"] == "keys":
            from kivy.core.window import Keyboard
            for name in step["names"]:
                code = Keyboard.keycodes[name]
                Window.dispatch("on_key_down", code, 0, None, [])
                Window.dispatch("on_key_up", code, 0)
        elif step["do"] == "close":
            self.result["close_refused"] = bool(Window.dispatch("on_request_close"))
        elif step["do"] == "expect_exit":
            done = False
            if time.monotonic() - self.started > step.get("timeout", 10):
                return self.fail("timed out waiting for the app to stop by itself")
        elif step["do"] == "sleep":
            done = time.monotonic() - self.started >= step["seconds"]
        elif step["do"] == "glyph_check":
            self.result["glyphs"] = glyph_check(screens.current_screen)
            self.result.setdefault("glyph_checks", []).append(self.result["glyphs"])
        else:
            return self.fail(f"unknown step {step}")
        if done:
            self.result["steps"].append(step["do"])
            self.index += 1
            self.started, self.frames = time.monotonic(), 0


app = kiosk.make_app(config)
driver = Driver(app, json.loads(Path(script_path).read_text()))
Clock.schedule_interval(driver.tick, 0)
app.run()
if driver.index == len(driver.steps) - 1 and driver.steps[-1]["do"] == "expect_exit" and "error" not in driver.result:
    driver.result["steps"].append("expect_exit")
    driver.result["ok"] = True
driver.result["app"] = type(app).__name__
driver.result["terminal_id"] = config.terminal.id  # the enrolled id, once credentials.json is there
voice = getattr(app, "voice", None)
if voice is not None:
    driver.result["voice"] = {"said": voice.said, "silent_because": voice.silent_because}
Path(result_path).write_text(json.dumps(driver.result, ensure_ascii=False, indent=1))
sys.exit(0 if driver.result["ok"] else 1)
