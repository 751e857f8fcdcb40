"""The Kivy application: app state as properties, one kv file per screen (see ``screens/``).

The screens only show the window's session (``terminal.window.Window``) and pass on what the
citizen or staff member does. A press goes ``LevelButton -> app.press -> Window.press``: the
session rules decide what it is, the record is committed to disk, and only then does the window
tell the app, which shows the screen for the new state (感谢您的评价 after a committed rating).
"""

from __future__ import annotations

import logging
import sys
import threading
import time
from pathlib import Path

from kivy.app import App
from kivy.clock import Clock, mainthread
from kivy.factory import Factory
from kivy.lang import Builder
from kivy.properties import ListProperty, NumericProperty, ObjectProperty, StringProperty
from kivy.uix.floatlayout import FloatLayout
from kivy.uix.screenmanager import NoTransition, ScreenManager

import terminal
from terminal import i18n, systemd
from terminal.config import Config
from terminal.content import PLACEHOLDER_PHOTO, Content, content_stamp, load_or_none
from terminal.core.channels import InputDevice
from terminal.core.levels import LEVELS_BEST_FIRST, Level
from terminal.core.session import State
from terminal.credentials import FOLLOW_S, Reenrollment
from terminal.store import Store
from terminal.window import Window

from .screens import BACKGROUND, TECHNICIAN_SCREENS, screen_class
from .wrap_label import WrapLabel  # noqa: F401  (registered with the Factory: the kv files use it)

log = logging.getLogger("rating-terminal")
SCREENS = Path(__file__).parent / "screens"
CONTENT_CHECK_SECONDS = 5.0

# Background colours of the five buttons, best first; text and stars say the level too.
LEVEL_COLOURS = {
    Level.VERY_SATISFIED: (0.18, 0.49, 0.20, 1),
    Level.SATISFIED: (0.33, 0.55, 0.18, 1),
    Level.BASICALLY_SATISFIED: (0.85, 0.60, 0.05, 1),
    Level.DISSATISFIED: (0.90, 0.38, 0.00, 1),
    Level.VERY_DISSATISFIED: (0.78, 0.16, 0.16, 1),
}


def screen_for(state: State, mode: str) -> str:
    if state is State.IDLE:
        return "rating" if mode == "walk-up" else "attract"
    return {State.PAUSED: "paused", State.INVITED: "rating", State.RATING: "indicators",
            State.REASONS: "reasons", State.THANKS: "thanks"}[state]


CALL_SHOWN_S = 15.0  # a called ticket stays on screen while the citizen walks up


class KioskApp(App):
    language = StringProperty("zh_CN")
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
    phone_qr = ObjectProperty(None, allownone=True)  # the QR code to add to the rating on screen by phone
    toast = StringProperty("")
    fault_text = StringProperty("")
    other_language = StringProperty("")  # the switch's label: the other language's own name
    home_language = StringProperty(i18n.DEFAULT)  # the terminal's own, set in the technician menu

    def __init__(self, config: Config, **kwargs):
        super().__init__(**kwargs)
        self.terminal_config = config
        self.title = "评价器"
        self.language = config.terminal.language if config.terminal.language in i18n.LANGUAGES else i18n.DEFAULT
        self.home_language = self.language
        self._last_state = None
        self._filled_rules = None  # the session rules the reasons and indicator screens were filled for
        self.tech_open = False
        self._corner_taps: list[float] = []
        self._tech_touched = 0.0
        self.store: Store | None = None
        self.window: Window | None = None
        self.content: Content | None = None
        self._content_stamp = None
        self._toast_event = None
        self.invite_server = None
        self.badge_readers: list = []
        self.box = None
        self.credentials = None
        self._phone_qr_for: str | None = None

    def tr(self, text: str, _language: str | None = None) -> str:
        """The citizen-facing text in the current language (kv passes ``app.language`` so that a
        change of language redraws every label)."""
        return i18n.tr(text, self.language)

    def switch_language(self) -> None:
        """The citizen's 中文 / English switch; the next citizen gets the terminal's own language."""
        self.language = self._next_language()

    def _next_language(self) -> str:
        names = list(i18n.LANGUAGES)
        return names[(names.index(self.language) + 1) % len(names)] if self.language in names else i18n.DEFAULT

    def on_language(self, _app, language: str) -> None:
        english = language != i18n.DEFAULT
        self.levels = [(int(lv), lv.en if english else lv.zh, "★" * int(lv), LEVEL_COLOURS[lv]) for lv in LEVELS_BEST_FIRST]
        self.title = self.tr("评价器")
        self.other_language = i18n.LANGUAGES[self._next_language()]
        if getattr(self, "screens", None):
            self._show_content()
            self._show_state()

    # -- lifecycle ---------------------------------------------------------------------------

    def build(self):
        self.store = Store(self.terminal_config.db_path)
        if self.terminal_config.kiosk.mobile_url:
            from terminal.credentials import Credentials
            self.credentials = Credentials.load(self.terminal_config.terminal.data_dir)  # None until enrolled
        self.on_language(self, self.language)
        self.content = self._read_content()
        self.window = Window(self.terminal_config, self.store, self.content)
        Builder.load_file(str(SCREENS / "common.kv"))  # each screen's own rules: with the screen (``screen``)
        # No transition effects: a change of screen is instant, and the fades' off-screen buffers
        # cost memory a Pi's GPU does not have to spare (bench/kiosk_ui.py measured them)
        self.screens = ScreenManager(transition=NoTransition())
        self._show_content()
        from terminal.voice import Voice
        self.voice = Voice(self.terminal_config.kiosk.volume)
        self.window.listeners.append(self._on_window)
        self._show_state()
        root = _Root()
        root.add_widget(self.screens)
        self.toast_label = Factory.Toast()  # login feedback and refusals, over any screen
        root.add_widget(self.toast_label)
        self.call_label = Factory.TicketCall()  # 请 A012 号到 1号窗口办理, from the queue system
        root.add_widget(self.call_label)
        self._call_event = None
        Clock.schedule_interval(lambda _dt: self.window.tick(), 0.25)
        # The watchdog is fed from the UI loop itself: a frozen UI stops feeding it and systemd
        # restarts the kiosk (WatchdogSec in its unit).
        Clock.schedule_interval(lambda _dt: systemd.notify("WATCHDOG=1"), systemd.watchdog_interval())
        Clock.schedule_interval(self._survives(self._technician_timeout), 5.0)
        Clock.schedule_interval(self._survives(self._check_content), CONTENT_CHECK_SECONDS)
        self.reenrolled = Reenrollment(self.terminal_config)
        Clock.schedule_interval(self._survives(self._follow_enrollment), FOLLOW_S)
        if self.terminal_config.kiosk.console_keys:
            threading.Thread(target=self._read_console_keys, name="console-keys", daemon=True).start()
        self._start_invite_api()
        badge = self.terminal_config.badge
        if badge.wedge or badge.serial:  # the readers' module (evdev, serial) only where a reader is
            from hardware.badge import start_readers
            self.badge_readers = start_readers(badge.wedge, badge.serial, badge.baudrate, self._badge_read)
        gpio = self.terminal_config.gpio
        self.gpio = None
        if gpio.buttons:
            from hardware.gpio_buttons import GpioButtons
            try:
                self.gpio = GpioButtons(gpio.buttons,
                                        lambda kind, key: self._device_event(kind, key, InputDevice.GPIO_BUTTONS),
                                        gpio.staff_key if gpio.staff_key >= 0 else None, gpio.leds)
            except Exception as exc:  # no GPIO here, pins taken: the touchscreen still rates
                log.error("GPIO buttons not started: %s", exc)
        box = self.terminal_config.box
        if box.port:
            from hardware.buttonbox import start_box
            try:
                self.box = start_box(box.port, box.serial,
                                     lambda kind, key: self._device_event(kind, key, InputDevice.BUTTON_BOX),
                                     box.baudrate)
            except Exception as exc:  # udev not there: the touchscreen still rates
                log.error("button box not started: %s", exc)
        return root

    @mainthread
    def _device_event(self, kind: str, key: int, device: InputDevice) -> None:
        """From the button box's or the GPIO buttons' thread, onto the UI thread."""
        self.device_press(key, device, kind)

    @mainthread
    def _badge_read(self, number: str) -> None:
        self.swipe(number)

    def _start_invite_api(self) -> None:
        cfg = self.terminal_config
        if not cfg.invite.listen:
            return
        from terminal.invite_api import InviteServer
        try:
            self.invite_server = InviteServer.for_window(self.window, cfg).start()
        except (OSError, ValueError) as exc:  # a taken port must not keep citizens from rating
            log.error("invite API not started on %s: %s", cfg.invite.listen, exc)

    def on_start(self):
        from kivy.core.window import Window as KivyWindow
        KivyWindow.clearcolor = BACKGROUND
        KivyWindow.bind(on_request_close=lambda *_args, **_kw: True)  # only the technician menu may close it
        Clock.schedule_once(lambda _dt: systemd.notify("READY=1"), 0)  # after the first frame
        log.info("kiosk ready: terminal %s, window %s, session %s", self.terminal_config.terminal.id,
                 self.terminal_config.terminal.window, self.window.state.value)

    def open_settings(self, *largs):
        """Kivy's settings panel (F1) is not for citizens: disabled."""
        return False

    def on_stop(self):
        for reader in self.badge_readers:
            reader.stop()
        if self.box:
            self.box.stop()
        if getattr(self, "gpio", None):
            self.gpio.close()
        if self.invite_server:
            self.invite_server.stop()
        if self.store:
            self.store.close()

    # -- what screens call -------------------------------------------------------------------

    def press(self, code: int, device: InputDevice = InputDevice.TOUCHSCREEN) -> None:
        self.window.press(code, device)

    def swipe(self, badge_id: str) -> None:
        result = self.window.swipe(badge_id)
        if not result.known:
            self.show_toast(self.tr("工作证未登记，请联系管理员"))
        else:
            template = "{name} 已登录" if result.action == "login" else "{name} 已退出"
            self.show_toast(self.tr(template).format(name=result.staff.name))

    def show_call(self, ticket_no: str, seconds: float = CALL_SHOWN_S) -> None:
        """A ticket the queue system called to this window: shown over any screen, and said."""
        self.call_label.text = self.tr("请 {ticket} 号到 {window} 办理").format(ticket=ticket_no, window=self.window_name)
        self.call_label.opacity = 1
        if self._call_event:
            self._call_event.cancel()
        self._call_event = Clock.schedule_once(lambda _dt: setattr(self.call_label, "opacity", 0), seconds)
        self.voice.call(ticket_no, self.language)

    def show_toast(self, text: str, seconds: float = 3.0) -> None:
        self.toast_label.text = text
        self.toast_label.opacity = 1
        if self._toast_event:
            self._toast_event.cancel()
        self._toast_event = Clock.schedule_once(lambda _dt: setattr(self.toast_label, "opacity", 0), seconds)

    def device_press(self, key: int, device: InputDevice, kind: str = "press") -> None:
        """A key on a device (button box, GPIO, console): 1..5 rate, 6 is 请评价 (see
        ``Window.device_key``); in the technician's touch test it is only counted."""
        if self.screens.current == "touchtest":
            self.screen("touchtest").device_press(key, device.value)
        elif not self.tech_open:
            refused = self.window.device_key(kind, key, device)
            if refused and key == 6:
                self.show_toast(refused)

    # -- the technician's menu ---------------------------------------------------------------

    def corner_tap(self) -> None:
        """Five taps on the hall's name within four seconds open the PIN pad."""
        now = time.monotonic()
        self._corner_taps = [t for t in self._corner_taps if now - t < 4.0] + [now]
        if len(self._corner_taps) >= 5:
            self._corner_taps = []
            self._open_technician_screen("pin")

    def try_pin(self, pin: str) -> str:
        """Check a PIN; open the menu or say why not (the guard's state survives restarts)."""
        from terminal.core.pin import PinGuard
        guard = PinGuard(_read_pin_hash(self.terminal_config), self.store.state().get("pin_guard"))
        if not guard.configured:
            return "未设置维护密码：请在终端上运行 rating-terminal set-pin"
        verdict = guard.check(pin, time.monotonic(), self.window.recorder.clock.boot_id())
        self.store.set_state(pin_guard=guard.state)
        if verdict.ok:
            log.info("technician menu opened")
            self._open_technician_screen("technician")
            return ""
        if verdict.locked_for_s > 0:
            log.warning("technician PIN locked for %.0f s after repeated wrong PINs", verdict.locked_for_s)
            return f"密码错误次数过多，已锁定，请 {int(verdict.locked_for_s // 60) + 1} 分钟后再试"
        return f"密码错误，还可尝试 {verdict.tries_left} 次"

    def open_technician(self) -> None:
        if self.tech_open:
            self._open_technician_screen("technician")

    def open_touch_test(self) -> None:
        if self.tech_open:
            self._open_technician_screen("touchtest")

    def close_technician(self) -> None:
        self.tech_open = False
        self._show_state()

    def switch_home_language(self) -> None:
        names = list(i18n.LANGUAGES)
        self.home_language = names[(names.index(self.home_language) + 1) % len(names)]
        self.language = self.home_language

    def restart(self) -> None:
        """Leave with status 0; systemd (Restart=always) starts the kiosk again."""
        log.warning("restart asked from the technician menu")
        self.stop()

    def _follow_enrollment(self, _dt) -> None:
        """Enrolled again (``provision --force``): leave with status 0 at the first moment no session
        is in progress, and systemd (Restart=always) starts the kiosk as the new identity, its window's
        content and nobody logged in."""
        if self.reenrolled.new_identity() and self.window.retire_when_calm():
            log.warning("leaving to start again as terminal %s (systemd: Restart=always)",
                        self.reenrolled.new.terminal_id)
            self.stop()

    def technician_facts(self) -> list[tuple[str, str]]:
        cfg, state = self.terminal_config, self.store.state()
        ratings, events = self.store.counts(), self.store.counts("events")
        staff = self.window.staff
        devices = [f"工牌读卡器 {r.thread.name.split(' ', 1)[1]}（{'已连接' if r.opened.is_set() else '未连接'}）"
                   for r in self.badge_readers]
        if self.box:
            box = self.box.state()
            devices.append(f"评价按键盒 {box['port']}（{'已连接' if box['connected'] else '未连接'}"
                           f"{'，固件 ' + box['firmware'] if box['firmware'] else ''}）")
        devices = devices or ["无外接设备"]
        return [
            ("终端编号", cfg.terminal.id), ("窗口", f"{cfg.terminal.window} {self.window_name}"),
            ("中心服务器", cfg.sync.server),
            ("待上传", f"评价 {ratings['pending']} 条，事件 {events['pending']} 条；死信 {ratings['dead'] + events['dead']} 条"),
            ("上次同步成功", str(state.get("last_success") or "—")),
            ("上次同步错误", str(state.get("last_error") or "—")),
            ("内容版本", self.content.version if self.content else "无"),
            ("当前工作人员", f"{staff.name}（{staff.staff_no}）" if staff else "无（暂停服务）"),
            ("评价模式", "邀请评价" if self.window.rules.mode == "invite" else "随时评价"),
            ("外接设备", "；".join(devices)),
            ("邀请接口", cfg.invite.listen or "未开启"),
            ("软件版本", terminal.__version__),
        ]

    def _open_technician_screen(self, name: str) -> None:
        self.tech_open = True
        self._tech_touched = time.monotonic()
        self.show_screen(name)

    def _survives(self, timer):
        """A timer that fails is logged and counted (as the window's own calls are), and runs again
        next time: an exception out of a Kivy clock callback would end the kiosk."""
        def guarded(dt):
            try:
                timer(dt)
            except Exception as exc:
                self.window._survived(timer.__name__, exc)
        return guarded

    def _technician_timeout(self, _dt) -> None:
        """A menu left open returns to the citizens after two minutes without a touch."""
        if self.tech_open and self.screens.current in TECHNICIAN_SCREENS:
            if time.monotonic() - self._tech_touched > 120:
                self.close_technician()

    def on_touch_anywhere(self) -> None:
        self._tech_touched = time.monotonic()

    # -- the window's news -------------------------------------------------------------------

    def _on_window(self, what: str, detail: object) -> None:
        """The window's news: at once on the UI thread (a press), else on its next frame."""
        if threading.current_thread() is threading.main_thread():
            self._apply(what, detail)
        else:
            Clock.schedule_once(lambda _dt: self._apply(what, detail))

    def _apply(self, what: str, detail: object) -> None:
        if what == "fault":  # None: storage works again
            self.fault_text = self.tr("设备存储故障，暂停评价，请联系工作人员") if detail else ""
        if what == "say":
            self.voice.say(str(detail), self.language)
        if what == "call":
            self.show_call(str(detail))
        if self.box and (what == "fault" or what == "state" and detail is not self._last_state):
            from hardware.buttonbox import led_for
            self.box.set_led(led_for(self.window.state, self.window.fault))
        if what == "state":
            if detail in (State.IDLE, State.PAUSED) and self._last_state not in (State.IDLE, State.PAUSED):
                self.language = self.home_language  # the next citizen starts in the terminal's language
            self._last_state = detail
        self._show_state()

    def _show_state(self) -> None:
        staff = self.window.staff
        self.staff_name = staff.name if staff else ""
        self.staff_no = staff.staff_no if staff else ""
        self.staff_unit = staff.unit if staff else ""
        self.staff_title = staff.title if staff else ""
        self.photo = str(self.content.photo_path(staff) if self.content else PLACEHOLDER_PHOTO)
        last = self.window.last_level
        self.last_level_label = "" if last is None else last.zh if self.language == i18n.DEFAULT else last.en
        if self.window.rules is not self._filled_rules:  # content's rules took over once a session ended
            self._filled_rules = self.window.rules
            for name in ("reasons", "indicators"):
                if self.screens.has_screen(name):
                    self._fill(name)
        self._show_phone_qr()
        if self.tech_open:  # the session goes on underneath; its screen comes back when the menu closes
            return
        name = "paused" if self.window.fault else screen_for(self.window.state, self.window.rules.mode)
        self.show_screen(name)

    def _show_phone_qr(self) -> None:
        """The QR code for the rating on screen (reasons or thank-you), made once per rating; none
        when no ``[kiosk] mobile_url`` is set or the terminal is not enrolled."""
        rating_id = self.window.rating_for_phone if self.credentials else None
        if rating_id == self._phone_qr_for:
            return
        self._phone_qr_for = rating_id
        if rating_id is None:
            self.phone_qr = None
            return
        from terminal.core.checks import plausible_seconds
        from .mobile_qr import texture, url_for
        offset = self.store.state().get("clock_offset_s")
        offset = offset if plausible_seconds(offset) else 0.0
        self.phone_qr = texture(url_for(self.terminal_config.kiosk.mobile_url, self.credentials.terminal_id,
                                        self.credentials.secret, rating_id, offset))

    def screen(self, name: str):
        """The screen of that name, built on first use (each costs memory and start-up time)."""
        if not self.screens.has_screen(name):
            Builder.load_file(str(SCREENS / f"{name}.kv"))  # once: a screen is built once
            self.screens.add_widget(screen_class(name)(name=name))
            self._fill(name)
        return self.screens.get_screen(name)

    def show_screen(self, name: str) -> None:
        if self.screens.current == name:
            return
        self.screen(name)
        self.screens.current = name

    # -- content -----------------------------------------------------------------------------

    def _read_content(self) -> Content | None:
        self._content_stamp = content_stamp(self.terminal_config.content_dir)
        return load_or_none(self.terminal_config.content_dir)

    def _check_content(self, _dt) -> None:
        """Sync swaps in new content atomically; show it without a restart. (Also the moment to
        note the box's health for the heartbeat.)"""
        if self.box:
            self.window.note_devices([{"device": "button_box", **self.box.state()}])
        if content_stamp(self.terminal_config.content_dir) == self._content_stamp:
            return
        content = self._read_content()
        if content is not None:
            log.info("new content %s", content.version)
            self.content = content
            self.window.reload(content)
            self._show_content()
            self._show_state()

    def _show_content(self) -> None:
        cfg, content = self.terminal_config, self.content
        window = content.windows.get(cfg.terminal.window, {}) if content else {}
        self.hall_name = content.hall.get("name", "") if content else ""
        self.window_name = window.get("name", cfg.terminal.window)
        self.window_stars = int(window.get("stars", 0) or 0)
        for name in ("attract", "reasons", "indicators"):
            if self.screens.has_screen(name):
                self._fill(name)

    def _fill(self, name: str) -> None:
        """Put the content into a screen that shows it (when built, and when content changes)."""
        content, screen = self.content, self.screens.get_screen(name)
        if name == "attract":
            screen.show_content(content.guides if content else [], content.notices if content else [], self.tr)
        elif name == "reasons":
            english, taken = self.language != i18n.DEFAULT, self.window.rules.reason_codes
            # only the tags this session's rules take: content that came mid-session rules the next one
            screen.show_tags([{"code": t["code"],
                               "label": (t.get("label_en") if english else None) or t.get("label", t["code"])}
                              for t in (content.reason_tags if content else []) if isinstance(t, dict) and "code" in t
                              and (not taken or t["code"] in taken)])
        elif name == "indicators":
            screen.show_dimensions(list(self.window.rules.dimensions), self.levels, self.tr)

    # -- demo --------------------------------------------------------------------------------

    def _read_console_keys(self) -> None:
        """Demo only: keys '1'..'5' press that level (5 = 非常满意), 'i' is the 请评价 key,
        'b' swipes the badge of the window's first staff member."""
        for line in sys.stdin:
            for ch in line.strip():
                if ch in "12345":
                    Clock.schedule_once(lambda _dt, c=int(ch): self.device_press(c, InputDevice.CONSOLE))
                elif ch == "i":
                    Clock.schedule_once(lambda _dt: self.device_press(6, InputDevice.CONSOLE))
                elif ch == "b" and self.content:
                    staff = self.content.staff_of_window(self.terminal_config.terminal.window)
                    if staff:
                        Clock.schedule_once(lambda _dt, b=staff[0].badge_id: self.swipe(b))


class _Root(FloatLayout):
    def on_touch_down(self, touch):
        App.get_running_app().on_touch_anywhere()
        return super().on_touch_down(touch)


def _read_pin_hash(config: Config) -> str | None:
    try:
        return config.technician_pin_path.read_text(encoding="utf-8").strip() or None
    except OSError:
        return None
