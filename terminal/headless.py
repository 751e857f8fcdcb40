"""A box-only terminal: the same window session as the kiosk, with no screen and no Kivy.

``rating-terminal run --headless`` takes presses from the USB button box (``[box]``) and/or GPIO
buttons (``[gpio]``), badges from the readers (``[badge]``) and invitations from the invite API
(``[invite]``). The box's LEDs show the session (prompt, thanks, paused) and the voice prompts play
through ALSA (``[kiosk] volume`` and ``audio_device``); the session rules,
records and uploads are exactly the kiosk's. systemd-friendly: READY once running, the watchdog
fed from the main loop, a clean stop on SIGTERM, and a clean exit for systemd to start it again
once it is enrolled again (``Reenrollment``) and no session is in progress.
"""

from __future__ import annotations

import logging
import threading

from terminal import systemd
from terminal.config import Config
from terminal.content import content_stamp, load_or_none
from terminal.credentials import Reenrollment
from terminal.core.channels import InputDevice
from terminal.store import Store
from terminal.voice import AplayPlayer, Voice
from terminal.window import Window

log = logging.getLogger("rating-terminal")
TICK_S = 0.1
CONTENT_CHECK_S = 5.0


def run(config: Config, stop: threading.Event) -> None:
    from hardware.badge import start_readers
    from terminal.credentials import needs_enrollment
    if needs_enrollment(config):
        config = _enroll_first(config, stop)
        if config is None:
            return
    reenrolled = Reenrollment(config)
    store = Store(config.db_path)
    window = Window(config, store, load_or_none(config.content_dir), screen=False)  # a press is the whole rating
    devices: list = []
    voice = Voice(config.kiosk.volume, player=AplayPlayer(config.kiosk.audio_device))
    window.listeners.append(spoken(voice, config.terminal.language))

    def on_device(device: InputDevice):
        return lambda kind, key: window.device_key(kind, key, device)

    box = None
    if config.box.port:
        from hardware.buttonbox import led_for, start_box
        box = start_box(config.box.port, config.box.serial, on_device(InputDevice.BUTTON_BOX), config.box.baudrate)
        window.listeners.append(lambda what, detail: box.set_led(led_for(window.state, window.fault))
                                if what in ("state", "fault") else None)
        devices.append(box)
    gpio = None
    if config.gpio.buttons:
        from hardware.gpio_buttons import GpioButtons
        gpio = GpioButtons(config.gpio.buttons, on_device(InputDevice.GPIO_BUTTONS),
                           config.gpio.staff_key if config.gpio.staff_key >= 0 else None, config.gpio.leds)
    if box is None and gpio is None:
        log.warning("headless terminal with neither [box] port nor [gpio] buttons: it can take no presses")
    readers = start_readers(config.badge.wedge, config.badge.serial, config.badge.baudrate,
                            lambda number: log.info("badge: %s", window.swipe(number).message))
    server = None
    if config.invite.listen:
        from terminal.invite_api import InviteServer
        server = InviteServer.for_window(window, config).start()

    stamp, since_check = content_stamp(config.content_dir), 0.0
    systemd.notify("READY=1\nSTATUS=running")
    log.info("headless terminal running: window %s, session %s", config.terminal.window, window.state.value)
    try:
        while not stop.wait(TICK_S):
            window.tick()
            systemd.notify("WATCHDOG=1")
            if reenrolled.new_identity() and window.retire_when_calm():
                log.warning("leaving to start again as terminal %s (systemd: Restart=always)",
                            reenrolled.new.terminal_id)
                break
            since_check += TICK_S
            if since_check >= CONTENT_CHECK_S:
                since_check = 0.0
                if box:
                    window.note_devices([{"device": "button_box", **box.state()}])
                if content_stamp(config.content_dir) != stamp:
                    stamp = content_stamp(config.content_dir)
                    window.reload(load_or_none(config.content_dir))
    finally:
        systemd.notify("STOPPING=1")
        for reader in readers:
            reader.stop()
        if server:
            server.stop()
        if box:
            box.stop()
        if gpio:
            gpio.close()
        store.close()
        log.info("headless terminal stopped")


def spoken(voice: Voice, language: str):
    """The window's listener that says its prompts and called tickets (run under the window's lock)."""
    return lambda what, detail: (voice.say(detail, language) if what == "say" else
                                 voice.call(detail, language) if what == "call" else None)


def _enroll_first(config: Config, stop: threading.Event) -> Config | None:
    """A box-only terminal has no screen to enroll on: it waits for ``[terminal] provision_file``
    (or ``rating-terminal provision``) and then runs as the window it was enrolled for. It takes no
    press before that: a rating made under no terminal's id could never be delivered."""
    from terminal import provisioning
    from terminal.config import with_credentials
    path = config.terminal.provision_file
    systemd.notify(f"READY=1\nSTATUS=not enrolled: waiting for {path}")
    log.warning("not enrolled: waiting for %s (server and code) or rating-terminal provision", path)

    def report(outcome) -> None:
        if outcome.error:
            retry = "; trying again" if outcome.error.retry else "; waiting for a corrected file"
            log.error("not enrolled: %s%s", outcome.error.detail or outcome.error.reason, retry)

    if provisioning.wait_for_enrollment(config, stop, report, lambda: systemd.notify("WATCHDOG=1")) is None:
        log.info("headless terminal stopped before it was enrolled")
        return None
    return with_credentials(config)
