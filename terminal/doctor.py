"""``rating-terminal doctor``: every check a technician needs before the doors open, one line each.

Each check returns a ``Check`` — pass, warn, fail or skip (the terminal has no such part) — with
what was found and, when it is not a pass, what to do. The judgements (``judge_*``) are pure
functions of what was measured, so their thresholds are tested on their own; the probes around
them touch the real thing: the database file, the disk, the kernel's NTP state, the central
server over HTTP with the terminal's own signed request, the box's serial port, udev, ALSA.

A probe never changes the terminal: the database is opened read-only, the box is asked for its
hello only when no running terminal holds its port (the kiosk opens it exclusively), and nothing
secret is printed.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import json
import os
import shutil
import sqlite3
import stat
import subprocess
import time
from dataclasses import asdict, dataclass
from datetime import datetime, timezone
from pathlib import Path

from terminal.config import ASSETS, Config
from terminal.core.checks import plausible_seconds

PASS, WARN, FAIL, SKIP = "pass", "warn", "fail", "skip"
FONT = ASSETS / "fonts" / "NotoSansSC-Regular.subset.otf"
DISK_FAIL_BYTES = 100 * 1024 * 1024
DISK_WARN_BYTES = 1024 * 1024 * 1024
QUEUE_WARN_AGE_S = 3600
CLOCK_WARN_S, CLOCK_FAIL_S = 2.0, 60.0


@dataclass
class Check:
    name: str
    status: str
    detail: str
    advice: str = ""

    def line(self) -> str:
        text = f"{self.status.upper():5} {self.name:15} {self.detail}"
        return text + (f"\n      {'':15} → {self.advice}" if self.advice else "")


# -- pure judgements --------------------------------------------------------------------------------

def judge_disk(free_bytes: int, path: Path) -> Check:
    free = f"{free_bytes / 1024 / 1024:,.0f} MiB free on {path}"
    if free_bytes < DISK_FAIL_BYTES:
        return Check("disk", FAIL, free, "ratings are refused when the disk is full: remove old logs "
                                         "(journalctl --vacuum-size=50M) or replace the SD card")
    if free_bytes < DISK_WARN_BYTES:
        return Check("disk", WARN, free, "less than 1 GiB left: clean up before it fills")
    return Check("disk", PASS, free)


def judge_queue(pending: int, oldest_age_s: float | None) -> Check:
    if not pending:
        return Check("queue", PASS, "no ratings waiting to be sent")
    detail = f"{pending} ratings waiting, the oldest for {_age(oldest_age_s)}"
    if oldest_age_s is not None and oldest_age_s >= QUEUE_WARN_AGE_S:
        return Check("queue", WARN, detail, "they are kept and will be sent: check the server line above and "
                                           "`systemctl status rating-sync`")
    return Check("queue", PASS, detail)


def judge_dead_letters(dead: int) -> Check:
    if not dead:
        return Check("dead letters", PASS, "none")
    return Check("dead letters", WARN, f"{dead} records the server refused, kept on this terminal",
                 "they never block the rest; see them with `rating-terminal status` and report them to the "
                 "central server's operator")


def judge_clock(ntp_synced: bool | None, offset_s: float | None) -> Check:
    """NTP state from the kernel, and the offset from the central server's clock when it answered."""
    ntp = {True: "NTP synchronised", False: "NTP not synchronised", None: "NTP state unknown"}[ntp_synced]
    if offset_s is None:
        status = PASS if ntp_synced else WARN
        return Check("clock", status, f"{ntp}; server time not available",
                     "" if ntp_synced else "enable systemd-timesyncd and check the NTP server is reachable")
    detail = f"{ntp}; {abs(offset_s):.1f} s {'behind' if offset_s > 0 else 'ahead of'} the server"
    if abs(offset_s) > CLOCK_FAIL_S:
        return Check("clock", FAIL, detail, "ratings carry a wrong time until NTP fixes it (the server corrects "
                                            "them by boot time meanwhile): check timedatectl and the NTP server")
    if not ntp_synced or abs(offset_s) > CLOCK_WARN_S:
        return Check("clock", WARN, detail, "without NTP the time is wrong after every power cut (a Pi has no "
                                            "battery clock): enable systemd-timesyncd and allow NTP (UDP 123)")
    return Check("clock", PASS, detail)


def _age(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    if seconds < 120:
        return f"{seconds:.0f} s"
    if seconds < 7200:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"


# -- probes ---------------------------------------------------------------------------------------

def kernel_ntp_synced() -> bool | None:
    """The kernel's own answer (adjtimex): what timedatectl's NTPSynchronized reports."""
    class Timex(ctypes.Structure):
        _fields_ = [("modes", ctypes.c_uint), ("offset", ctypes.c_long), ("freq", ctypes.c_long),
                    ("maxerror", ctypes.c_long), ("esterror", ctypes.c_long), ("status", ctypes.c_int),
                    ("rest", ctypes.c_long * 32)]
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"), use_errno=True)
        timex = Timex()
        state = libc.adjtimex(ctypes.byref(timex))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return not (timex.status & 0x0040) and state != 5  # STA_UNSYNC, TIME_ERROR


def check_config(config: Config) -> Check:
    return Check("config", PASS, f"{config.source}; terminal {config.terminal.id}, window {config.terminal.window}")


def check_credentials(config: Config) -> Check:
    from terminal.credentials import FILENAME, Credentials, CredentialsError
    path = config.terminal.data_dir / FILENAME
    try:
        creds = Credentials.load(config.terminal.data_dir)
    except CredentialsError as exc:
        return Check("credentials", FAIL, str(exc), "provision again: rating-terminal provision --server URL --code CODE")
    if creds is None:
        return Check("credentials", FAIL, f"not enrolled ({path} missing)",
                     "get an enrollment code for this window from the central server, then type it on the "
                     "kiosk's provisioning screen, or put it in "
                     f"{config.terminal.provision_file}, or rating-terminal provision --server URL --code CODE")
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & 0o077:
        return Check("credentials", WARN, f"{creds.terminal_id} at {creds.window}; {path} is mode {mode:o}",
                     f"others can read the terminal's secret: chmod 600 {path}")
    return Check("credentials", PASS, f"{creds.terminal_id} at {creds.window_name or creds.window} ({creds.hall}), "
                                      f"server {creds.server}")


def read_database(config: Config) -> tuple[Check, dict]:
    """Open the database read-only: its health, schema version and queue, never a write."""
    from terminal.store import SCHEMA_VERSION
    path = config.db_path
    if not path.exists():
        return Check("database", WARN, f"{path} does not exist yet",
                     "it is created when the kiosk or the sync daemon starts"), {}
    try:
        db = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=5)
        try:
            verdict = db.execute("PRAGMA quick_check").fetchone()[0]
            version = db.execute("PRAGMA user_version").fetchone()[0]
            facts = {}
            if version:
                facts = {"pending": db.execute("SELECT count(*) FROM ratings WHERE state = 'pending'").fetchone()[0],
                         "dead": db.execute("SELECT count(*) FROM ratings WHERE state = 'dead'").fetchone()[0],
                         "oldest": db.execute("SELECT min(recorded_at) FROM ratings WHERE state = 'pending'"
                                              ).fetchone()[0]}
        finally:
            db.close()
    except sqlite3.DatabaseError as exc:
        return Check("database", FAIL, f"{path}: {exc}",
                     "restart the kiosk: it moves a corrupt database aside and salvages every readable rating"), {}
    if verdict != "ok":
        return Check("database", FAIL, f"{path}: {verdict[:200]}",
                     "restart the kiosk: it moves a corrupt database aside and salvages every readable rating"), {}
    if version > SCHEMA_VERSION:
        return Check("database", FAIL, f"schema v{version} is newer than this software (v{SCHEMA_VERSION})",
                     "the software was downgraded: install the version that wrote this database"), facts
    if version < SCHEMA_VERSION:
        return Check("database", WARN, f"schema v{version}; this software upgrades it to v{SCHEMA_VERSION}",
                     "restart rating-kiosk (or rating-sync): the upgrade keeps every rating"), facts
    return Check("database", PASS, f"{path}, schema v{version}, quick_check ok"), facts


MAX_HEALTH_BYTES = 64 * 1024  # the central server's health page is under 200 bytes


def check_server(config: Config) -> tuple[Check, float | None]:
    """The central server's health page, unsigned; returns the clock offset it showed."""
    import requests
    from sync import deadline, tls
    url = f"{config.sync.server.rstrip('/')}/api/v1/health"
    started = time.monotonic()
    timeout = min(config.sync.timeout, 10)
    from sync.client import TransientError, read_bounded
    raw = None
    try:
        with tls.session(config.sync.ca_file, config.sync.server_key_pin) as http, \
                deadline.within(started + 2 * timeout):  # a server trickling its answer cannot hold the technician
            with http.get(url, timeout=timeout, stream=True) as reply:
                try:  # unsigned, from whatever answers there: read no more than a health page is
                    raw = read_bounded(reply, MAX_HEALTH_BYTES, started + 2 * timeout)
                except TransientError:
                    pass
    except requests.RequestException as exc:
        return Check("server", FAIL, f"{url}: {type(exc).__name__}",
                     "check the network (cable, Wi-Fi, VLAN), DNS and [sync] server in the config; "
                     f"from here: curl {url}"), None
    rtt = time.monotonic() - started
    offset = None
    try:
        offset = float(reply.headers["X-Server-Time"]) + rtt / 2 - time.time()
    except (KeyError, ValueError):
        pass
    if not plausible_seconds(offset):  # nan, inf, 1e300: no clock is that far off, nothing to judge
        offset = None
    try:
        body = json.loads(raw) if raw is not None else None
    except (ValueError, RecursionError):  # not JSON, or nested past what Python can read
        body = None
    if reply.status_code != 200 or not isinstance(body, dict) or body.get("status") != "ok":
        what = f"HTTP {reply.status_code}" + ("" if isinstance(body, dict) else ", not the central server's JSON")
        return Check("server", FAIL, f"{url}: {what}",
                     "a captive portal or proxy may be answering: ask the hall's network administrator"), offset
    return Check("server", PASS, f"{url}: ok, version {body.get('version', '?')}, {rtt * 1000:.0f} ms"), offset


def check_signed(config: Config) -> tuple[Check, Check]:
    """A signed request with the terminal's own secret: is it still welcome, and is its content current?"""
    from sync import content as sync_content
    from sync.client import TransientError
    from sync.daemon import client_for
    from terminal.credentials import Credentials, CredentialsError
    try:
        creds = Credentials.load(config.terminal.data_dir)
    except CredentialsError:
        creds = None
    local = sync_content.current_etag(config.content_dir)
    if creds is None:
        return (Check("signed request", SKIP, "not enrolled"),
                Check("content", WARN if local else FAIL, f"version {local[:12] if local else 'none'}",
                      "" if local else "provision, then rating-sync pull-content"))
    client = client_for(config, creds, timeout=min(config.sync.timeout, 10))
    try:
        manifest, etag = client.content(local)
    except TransientError as exc:
        if exc.status in (401, 403):
            return (Check("signed request", FAIL, f"refused: {exc.code or exc}",
                          "this terminal's credentials were revoked or replaced: get a new enrollment code and "
                          "rating-terminal provision --force --server URL --code CODE"),
                    Check("content", SKIP, "cannot compare without a signed request"))
        return (Check("signed request", FAIL, str(exc)[:200], "see the server line above"),
                Check("content", SKIP, "cannot compare without a signed request"))
    signed = Check("signed request", PASS, f"accepted for {creds.terminal_id}")
    if local is None:
        return signed, Check("content", FAIL, "no content pulled yet", "rating-sync pull-content (or start rating-sync)")
    if manifest is not None:
        return signed, Check("content", WARN, f"local version {local[:12]}, the server has {etag[:12]}",
                             "rating-sync pulls it within minutes; now: rating-sync pull-content")
    return signed, Check("content", PASS, f"version {local[:12]}, same as the server's")


def check_display() -> Check:
    display = os.environ.get("DISPLAY")
    if display:
        number = display.split(":")[-1].split(".")[0]
        socket_path = Path(f"/tmp/.X11-unix/X{number}")
        if display.startswith(":") and not socket_path.exists():
            return Check("display", FAIL, f"DISPLAY={display} but no X server socket",
                         "start the kiosk from its systemd unit (KMS, no X needed), or start the X server")
        return Check("display", PASS, f"X display {display}")
    if os.environ.get("WAYLAND_DISPLAY"):
        return Check("display", PASS, f"Wayland display {os.environ['WAYLAND_DISPLAY']}")
    cards = sorted(str(p) for p in Path("/dev/dri").glob("card*")) if Path("/dev/dri").exists() else []
    if cards:
        return Check("display", PASS, f"KMS/DRM: {', '.join(cards)}")
    return Check("display", FAIL, "no X or Wayland display and no /dev/dri card",
                 "check the screen's cable and that the vc4 KMS overlay is on (dtoverlay=vc4-kms-v3d in "
                 "/boot/firmware/config.txt)")


def check_touch(config: Config) -> Check:
    configured = config.kiosk.touch_input
    if configured:
        node = configured.split(":", 1)[-1]
        if not Path(node).exists():
            return Check("touch", FAIL, f"{configured}: {node} not found",
                         "check the touchscreen's USB cable, or set [kiosk] touch_input to its /dev/input/by-id name")
        if not os.access(node, os.R_OK):
            return Check("touch", FAIL, f"{node} not readable by this user", "add the user to the input group")
        return Check("touch", PASS, configured)
    try:
        import pyudev
        found = [d for d in pyudev.Context().list_devices(subsystem="input")
                 if d.properties.get("ID_INPUT_TOUCHSCREEN") == "1" and d.device_node]
    except (ImportError, OSError) as exc:
        return Check("touch", WARN, f"cannot ask udev ({type(exc).__name__})", "run doctor on the terminal itself")
    if not found:
        return Check("touch", WARN, "no touchscreen found by udev (ID_INPUT_TOUCHSCREEN)",
                     "the kiosk takes mouse input only: check the touchscreen's USB cable")
    names = ", ".join(d.properties.get("NAME", d.device_node).strip('"') for d in found[:3])
    return Check("touch", PASS, names)


def check_box(config: Config) -> Check:
    """The box answers its hello, or the running terminal that holds its port says it is connected."""
    if not config.box.port:
        return Check("button box", SKIP, "none configured ([box] port)")
    port = config.box.port
    if port == "auto":
        try:
            from hardware.boxfinder import find_ports
            port = find_ports(config.box.serial or None).get("data")
        except (ImportError, OSError) as exc:
            return Check("button box", FAIL, f"cannot look for it with udev ({type(exc).__name__})",
                         "set [box] port = \"/dev/rating-box\"")
        if not port:
            return Check("button box", FAIL, "no box found on USB",
                         "plug it in (lsusb should list it; the udev rule names it /dev/rating-box); "
                         "if it is new: rating-terminal flash-box")
    if not Path(port).exists():
        return Check("button box", FAIL, f"{port} not found",
                     "check the box's USB cable; a new box needs rating-terminal flash-box first")
    import serial
    from firmware import boxproto as P
    try:
        link = serial.Serial(port, baudrate=config.box.baudrate, timeout=0.1, exclusive=True)
    except serial.SerialException as exc:
        if "lock" in str(exc).lower():
            return _box_from_running_terminal(config, port)
        return Check("button box", FAIL, f"{port}: {exc}", "add the user to the dialout group, or replug the box")
    with link:
        link.reset_input_buffer()
        link.write(P.encode(P.ASK))
        decoder, deadline = P.Decoder(), time.monotonic() + 2.0
        while time.monotonic() < deadline:
            for kind, fields in decoder.feed(link.read(64)):
                if kind == P.HELLO:
                    return Check("button box", PASS, f"{port}: firmware {fields[1]}, board {fields[2]}")
    return Check("button box", FAIL, f"{port}: no hello within 2 s",
                 "the box is in maintenance mode or has other firmware: rating-terminal flash-box")


def _box_from_running_terminal(config: Config, port: str) -> Check:
    try:
        db = sqlite3.connect(f"file:{config.db_path}?mode=ro", uri=True, timeout=5)
        row = db.execute("SELECT value FROM sync_state WHERE key = 'devices'").fetchone()
        db.close()
        devices = json.loads(row[0]) if row else []
    except (sqlite3.Error, ValueError, TypeError):
        devices = []
    box = next((d for d in devices if isinstance(d, dict) and d.get("device") == "button_box"), None)
    if box and box.get("connected") and box.get("firmware"):
        return Check("button box", PASS, f"{port}: in use by the running terminal, firmware {box.get('firmware')}, "
                                         f"board {box.get('board')}")
    if box and box.get("connected"):  # open, but what answers has never said HELLO
        return Check("button box", FAIL, f"{port}: open by the running terminal, but no hello from it",
                     "not the box's data port (the REPL is usually the first of its two ports): set [box] "
                     "port = \"auto\" or \"/dev/rating-box\"; or the box needs rating-terminal flash-box")
    return Check("button box", FAIL, f"{port}: held by the running terminal, which reports it disconnected",
                 "replug the box; if it stays dark, stop the kiosk and run doctor again")


def check_badge(config: Config) -> Check:
    badge = config.badge
    node = badge.wedge or badge.serial
    if not node:
        if config.kiosk.staff_no:
            return Check("badge reader", SKIP, f"none; {config.kiosk.staff_no} is logged in from the config")
        return Check("badge reader", WARN, "none configured, and no fixed staff member",
                     "the window shows 暂停服务 until someone logs in: set [badge] wedge or serial, "
                     "or [kiosk] staff_no")
    if not Path(node).exists():
        return Check("badge reader", FAIL, f"{node} not found", "check the reader's USB cable and the path in [badge]")
    if not os.access(node, os.R_OK):
        return Check("badge reader", FAIL, f"{node} not readable", "add the user to the input (or dialout) group")
    return Check("badge reader", PASS, node)


def check_font() -> Check:
    try:
        with FONT.open("rb") as f:
            magic = f.read(4)
        size = FONT.stat().st_size
    except OSError as exc:
        return Check("fonts", FAIL, f"{FONT}: {exc.strerror}", "reinstall the software: the Chinese font ships with it")
    if magic != b"OTTO" or size < 1_000_000:
        return Check("fonts", FAIL, f"{FONT} is not the bundled OpenType font", "reinstall the software")
    return Check("fonts", PASS, f"bundled Noto Sans SC ({size / 1024 / 1024:.1f} MiB); no system CJK font needed")


def check_audio(config: Config) -> Check:
    aplay = shutil.which("aplay")
    if not aplay:
        return Check("audio", WARN, "aplay not installed", "apt install alsa-utils (voice prompts)")
    device = config.kiosk.audio_device
    if config.kiosk.volume == 0:
        return Check("audio", SKIP, "voice prompts switched off ([kiosk] volume = 0)")
    silence = b"RIFF$\x00\x00\x00WAVEfmt \x10\x00\x00\x00\x01\x00\x01\x00\x80>\x00\x00\x00}\x00\x00\x02\x00\x10\x00data\x00\x00\x00\x00"
    done = subprocess.run([aplay, "-q", *(["-D", device] if device else [])], input=silence, capture_output=True,
                          timeout=10)
    name = device or "default"
    if done.returncode != 0:
        said = (done.stderr.decode(errors="replace").strip().splitlines() or ["failed"])[-1]
        return Check("audio", WARN, f"ALSA device {name}: {said[:150]}",
                     "voice prompts will be silent: check the speaker and [kiosk] audio_device (aplay -L lists them)")
    return Check("audio", PASS, f"ALSA device {name} plays")


# -- the whole list ---------------------------------------------------------------------------------

def run(config: Config, headless: bool = False) -> list[Check]:
    checks = [check_config(config), check_credentials(config)]
    database, facts = read_database(config)
    checks.append(database)
    if facts:
        age = None
        if facts.get("oldest"):
            age = (datetime.now(timezone.utc) - datetime.fromisoformat(facts["oldest"])).total_seconds()
        checks += [judge_queue(facts["pending"], age), judge_dead_letters(facts["dead"])]
    data_dir = config.terminal.data_dir if config.terminal.data_dir.exists() else Path(".")
    checks.append(judge_disk(shutil.disk_usage(data_dir).free, data_dir))
    server, offset = check_server(config)
    checks.append(judge_clock(kernel_ntp_synced(), offset))
    checks.append(server)
    checks += list(check_signed(config)) if server.status == PASS else [
        Check("signed request", SKIP, "server not reachable"), Check("content", SKIP, "server not reachable")]
    if headless:
        checks += [Check("display", SKIP, "box-only terminal"), Check("touch", SKIP, "box-only terminal")]
    else:
        checks += [check_display(), check_touch(config), check_font()]
    checks += [check_box(config), check_badge(config), check_audio(config)]
    return checks


def report(checks: list[Check], as_json: bool) -> str:
    if as_json:
        return json.dumps({"ok": not any(c.status == FAIL for c in checks),
                           "checks": [asdict(c) for c in checks]}, ensure_ascii=False, indent=1)
    failed = sum(c.status == FAIL for c in checks)
    warned = sum(c.status == WARN for c in checks)
    summary = "all checks pass" if not failed and not warned else f"{failed} failed, {warned} warnings"
    return "\n".join(c.line() for c in checks) + f"\n\n{summary}"
