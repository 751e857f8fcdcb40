"""The kiosk of a terminal that is not enrolled yet: one screen, to enroll it (``screens/provision``).

It takes no ratings, opens no device and no invite API: a rating made under no terminal's id
could never be delivered. The technician types the server and the window's enrollment code on
the screen, or the ``provision.toml`` on the boot partition does it (``terminal.provisioning``,
retried with backoff in a thread while the network comes up). Both go through the one
``provisioning.enroll``.

Once enrolled, the app stops and the process exits with status 0; systemd starts the kiosk again
(``Restart=always`` in rating-kiosk.service), which now finds ``credentials.json`` and builds the
window's own screens, and this screen never shows again unless the credentials are removed.
Exiting is simpler and sturdier than rebuilding in place: the real kiosk then starts exactly as on
every later boot (config with the enrolled id, window and server; devices opened once), with
nothing left over from the provisioning screen.
"""

from __future__ import annotations

import logging
import threading
from pathlib import Path

from kivy.app import App
from kivy.clock import Clock, mainthread
from kivy.lang import Builder
from kivy.properties import BooleanProperty, StringProperty
from kivy.uix.screenmanager import NoTransition, ScreenManager

from terminal import i18n, provisioning, systemd
from terminal.config import Config
from terminal.core.provision import ProvisionError, check_request

from .screens import BACKGROUND

log = logging.getLogger("rating-terminal")
SCREENS = Path(__file__).parent / "screens"
LEAVE_AFTER_S = 1.5  # the success message stays this long before the kiosk restarts


class ProvisionApp(App):
    language = StringProperty(i18n.DEFAULT)
    other_language = StringProperty("")
    status = StringProperty("")  # Chinese source text, shown through tr (see terminal.core.provision)
    status_detail = StringProperty("")  # what exactly, for the technician (English, never the code)
    status_kind = StringProperty("info")  # info, error or ok: the colour of the status line
    retrying = BooleanProperty(False)  # the boot file is tried again by itself
    busy = BooleanProperty(False)

    def __init__(self, config: Config, **kwargs):
        super().__init__(**kwargs)
        self.terminal_config = config
        self.language = config.terminal.language if config.terminal.language in i18n.LANGUAGES else i18n.DEFAULT
        self.enrolled = None  # the credentials once enrolled: the kiosk then restarts
        self._stopping = threading.Event()

    def tr(self, text: str, _language: str | None = None) -> str:
        return i18n.tr(text, self.language)

    def switch_language(self) -> None:
        names = list(i18n.LANGUAGES)
        self.language = names[(names.index(self.language) + 1) % len(names)]

    def on_language(self, _app, language: str) -> None:
        names = list(i18n.LANGUAGES)
        self.other_language = i18n.LANGUAGES[names[(names.index(language) + 1) % len(names)]]
        self.title = self.tr("评价器")

    def build(self):
        self.on_language(self, self.language)
        Builder.load_file(str(SCREENS / "common.kv"))
        Builder.load_file(str(SCREENS / "provision.kv"))
        from .screens.provision import ProvisionScreen
        self.screens = ScreenManager(transition=NoTransition())
        self.screens.add_widget(ProvisionScreen(name="provision"))
        Clock.schedule_interval(lambda _dt: systemd.notify("WATCHDOG=1"), systemd.watchdog_interval())
        threading.Thread(target=self._watch_boot_file, name="provision-file", daemon=True).start()
        return self.screens

    def on_start(self):
        from kivy.core.window import Window as KivyWindow
        KivyWindow.clearcolor = BACKGROUND
        KivyWindow.bind(on_request_close=lambda *_args, **_kw: True)
        KivyWindow.bind(on_textinput=lambda _w, text: self.screens.current_screen.type_text(text))
        KivyWindow.bind(on_key_down=self._key_down)
        Clock.schedule_once(lambda _dt: systemd.notify("READY=1\nSTATUS=not enrolled: provisioning screen"), 0)
        log.warning("not enrolled: showing the provisioning screen (or put the server and code in %s)",
                    self.terminal_config.terminal.provision_file)

    def on_stop(self):
        self._stopping.set()

    def open_settings(self, *largs):
        return False

    def _key_down(self, _window, key, *_args):
        """A USB keyboard works too: backspace and enter (letters come as text input)."""
        if key == 8:
            self.screens.current_screen.backspace()
        elif key == 13:
            self.screens.current_screen.submit()

    # -- enrolling ---------------------------------------------------------------------------

    def enroll(self, server: str, code: str) -> None:
        """What the technician typed: checked at once, then sent from a thread (the UI stays live)."""
        if self.busy or self.enrolled:
            return
        try:
            request = check_request(server, code)
        except ProvisionError as exc:
            self._show("error", exc.reason, exc.detail)
            return
        self.busy = True
        self._show("info", "正在连接服务器…")
        threading.Thread(target=self._enroll, args=(request,), name="enroll", daemon=True).start()

    def _enroll(self, request) -> None:
        try:
            creds = provisioning.enroll(self.terminal_config, request)
        except provisioning.AlreadyEnrolled:
            creds = provisioning.enrolled(self.terminal_config)
        except ProvisionError as exc:
            log.warning("enrollment from the screen failed: %s", exc.detail or exc.reason)
            self._failed(exc)
            return
        except Exception as exc:  # a bug must leave the screen usable, not end the kiosk
            log.exception("enrollment from the screen failed")
            self._failed(ProvisionError("注册失败", type(exc).__name__))
            return
        self._done(creds)

    @mainthread
    def _failed(self, exc: ProvisionError) -> None:
        self.busy = False
        self._show("error", exc.reason, exc.detail)

    def _watch_boot_file(self) -> None:
        creds = provisioning.wait_for_enrollment(self.terminal_config, self._stopping, self._boot_file_tried)
        if creds:
            self._done(creds)

    @mainthread
    def _boot_file_tried(self, outcome) -> None:
        if outcome.error and not self.busy:
            self._show("error", outcome.error.reason, outcome.error.detail, outcome.error.retry)

    @mainthread
    def _done(self, creds) -> None:
        if self.enrolled:
            return
        self.enrolled, self.busy = creds, True
        self._show("ok", "注册成功，正在进入窗口界面…", f"{creds.terminal_id} · {creds.window_name or creds.window}")
        log.info("enrolled: the kiosk restarts into window %s", creds.window)
        Clock.schedule_once(lambda _dt: self.stop(), LEAVE_AFTER_S)

    def _show(self, kind: str, status: str, detail: str = "", retrying: bool = False) -> None:
        self.status_kind, self.status, self.status_detail, self.retrying = kind, status, detail, retrying
