"""The one config loader for every process on a terminal (kiosk, headless, sync, tools).

A TOML file with ``[terminal]``, ``[kiosk]``, ``[sync]``, ``[invite]``, ``[badge]``, ``[box]`` and ``[gpio]`` tables. Where it is:
``--config PATH``, else ``$RATING_TERMINAL_CONFIG``, else ``/etc/rating-terminal/terminal.toml``;
with no file at all the embedded defaults below run a demo terminal on loopback. Unknown keys and
wrong types are errors, so a typo in the field never silently falls back to a default.
"""

from __future__ import annotations

import os
import tomllib
from dataclasses import dataclass, field, fields, replace
from pathlib import Path

from terminal.core.key_pin import PinError, parse_pin

SYSTEM_CONFIG = Path("/etc/rating-terminal/terminal.toml")


def _assets() -> Path:
    """Fonts, images, sounds and demo content: beside the source in a checkout, or where an
    install puts them (``data_files`` in setup.cfg: <prefix>/share/rating-terminal/assets)."""
    import sys
    checkout = Path(__file__).resolve().parent.parent / "assets"
    installed = Path(sys.prefix) / "share" / "rating-terminal" / "assets"
    return checkout if checkout.is_dir() or not installed.is_dir() else installed


ASSETS = _assets()


class ConfigError(ValueError):
    pass


def _within(default, low, high):
    """A setting with the range it must fall in (checked when the file is read)."""
    return field(default=default, metadata={"range": (low, high)})


@dataclass(frozen=True)
class TerminalSection:
    """Who this terminal is and where it keeps its data (``[terminal]``)."""
    id: str = "T-DEMO-01"  # replaced by the id in credentials.json once the terminal is enrolled
    window: str = "W01"
    data_dir: Path = Path("var/terminal")
    content_dir: Path | None = None  # default: <data_dir>/content, maintained by sync
    language: str = "zh_CN"
    # first boot: a technician's server and enrollment code on the boot partition (removed once used)
    provision_file: Path = Path("/boot/firmware/provision.toml")
    demo: bool = False  # true: an un-enrolled terminal runs as the demo terminal (demo, tests, benchmarks);
    #                     false: it takes no ratings until enrolled (provisioning screen, provision_file)


@dataclass(frozen=True)
class KioskSection:
    """The touchscreen: its size, rotation and input, the voice, who is on duty at start (``[kiosk]``)."""
    fullscreen: bool = False
    width: int = _within(1280, 320, 7680)
    height: int = _within(800, 240, 4320)
    console_keys: bool = False  # demo only: keys 1-5 on the console act as presses
    volume: float = _within(0.8, 0.0, 1.0)  # voice prompts; 0 = silent
    audio_device: str = ""  # ALSA device for a box-only terminal's prompts (aplay -D); "" = default
    rotation: int = _within(0, 0, 270)  # degrees: 0, 90, 180 or 270 (a screen mounted portrait)
    touch_input: str = ""  # "" = the window's own touch/mouse events; or "mtdev:/dev/input/eventN",
    #                        "hidinput:/dev/input/eventN": exactly one input provider either way
    staff_no: str = ""  # logged in at start, for a window without a badge reader; "" = 暂停服务 until a badge
    mobile_url: str = ""  # the central server as raters' phones reach it (https://); "" = no QR code to add by phone


@dataclass(frozen=True)
class SyncSection:
    """How the sync daemon reaches the central server, and how often (``[sync]``)."""
    server: str = "http://127.0.0.1:8000"  # https:// to anything off this machine (check_server_url)
    ca_file: Path | None = None  # PEM bundle of a private CA to trust for the server; None = the system's
    server_key_pin: str = ""  # optional SHA-256 of the server's public key (hex, or sha256/<base64>)
    disk_reserve_mb: int = _within(128, 16, 100_000)  # free disk content pulls must leave for ratings
    batch_size: int = _within(1000, 1, 1000)  # the central server takes at most 1000 per batch
    interval: float = _within(5.0, 0.05, 3600.0)  # seconds between polls of an empty queue
    timeout: float = _within(15.0, 0.1, 600.0)
    backoff_max: float = _within(300.0, 0.1, 86400.0)
    heartbeat_s: float = _within(60.0, 0.5, 3600.0)  # between heartbeats, ±10 % jitter, whatever uploads do
    content_s: float = _within(900.0, 5.0, 86400.0)  # between content checks, even if no heartbeat said so


@dataclass(frozen=True)
class InviteSection:
    """The local invite API for the window's business system (see terminal/invite_api.py)."""
    listen: str = ""  # "host:port": "127.0.0.1:8766", or this terminal's own LAN address; "" = off
    allow: list = field(default_factory=list, metadata={"networks": True})  # peers, e.g. ["192.168.10.21/32"];
    #                                                                  [] = this machine only (loopback)
    max_body: int = _within(4096, 256, 65536)
    max_connections: int = _within(64, 4, 1024)  # open at once, in all
    per_address: int = _within(8, 1, 256)  # open at once from one address


@dataclass(frozen=True)
class BadgeSection:
    """Staff badge readers (see hardware/badge.py); both may be set."""
    wedge: str = ""  # a keyboard-wedge reader's input device, e.g. /dev/input/by-id/usb-…-event-kbd
    serial: str = ""  # a serial reader's port, e.g. /dev/ttyUSB0
    baudrate: int = _within(9600, 1200, 115200)


@dataclass(frozen=True)
class BoxSection:
    """The USB button box (see hardware/buttonbox.py and firmware/)."""
    port: str = ""  # /dev/rating-box (the udev rule's stable name), "auto" (found by udev), "" = none
    serial: str = ""  # with "auto": the box's board id (its USB serial), if several are plugged in
    baudrate: int = _within(115200, 9600, 921600)


@dataclass(frozen=True)
class GpioSection:
    """Buttons wired to the Pi's GPIO (see hardware/gpio_buttons.py); BCM pin numbers."""
    buttons: list = field(default_factory=list, metadata={"pins": 5})  # 非常满意 first; [] = none
    staff_key: int = _within(-1, -1, 27)  # the 请评价 key's pin; -1 = none
    leds: list = field(default_factory=list, metadata={"pins": 5})  # in the same order, or []


@dataclass(frozen=True)
class Config:
    """A terminal's settings, a section per TOML table; ``source`` says where they were read from."""
    terminal: TerminalSection = field(default_factory=TerminalSection)
    kiosk: KioskSection = field(default_factory=KioskSection)
    sync: SyncSection = field(default_factory=SyncSection)
    invite: InviteSection = field(default_factory=InviteSection)
    badge: BadgeSection = field(default_factory=BadgeSection)
    box: BoxSection = field(default_factory=BoxSection)
    gpio: GpioSection = field(default_factory=GpioSection)
    source: str = "embedded defaults"

    @property
    def db_path(self) -> Path:
        return self.terminal.data_dir / "terminal.db"

    @property
    def technician_pin_path(self) -> Path:
        """The technician PIN's hash (mode 600), written by ``rating-terminal set-pin``."""
        return self.terminal.data_dir / "technician-pin"

    @property
    def invite_token_path(self) -> Path:
        return self.terminal.data_dir / "invite-token"

    @property
    def content_dir(self) -> Path:
        return self.terminal.content_dir or self.terminal.data_dir / "content"


def check_server_url(url: str, where: str = "server") -> str:
    """The central server's URL, if it is one a terminal may talk to: https://, or http:// only
    to this machine (loopback: the demo, tests). No user, password, query or fragment in it."""
    import ipaddress
    from urllib.parse import urlsplit
    try:
        parts = urlsplit(url)
        host = parts.hostname or ""
        parts.port  # noqa: B018 -- a bad port raises here
    except ValueError as exc:
        raise ConfigError(f"{where}: {_shown(url)!r} is not a URL ({exc})") from None
    if parts.scheme not in ("https", "http") or not host:
        raise ConfigError(f"{where}: {_shown(url)!r} must be https://host[:port]")
    if parts.username or parts.password or parts.query or parts.fragment:
        raise ConfigError(f"{where}: no user, password, query or fragment in the server URL (secrets never go in URLs)")
    if parts.scheme == "http":
        try:
            loopback = host == "localhost" or ipaddress.ip_address(host).is_loopback
        except ValueError:
            loopback = False
        if not loopback:
            raise ConfigError(f"{where}: {url} is plain http to another machine; use https://{parts.netloc}"
                              f"{parts.path} (for a hall's own CA, set [sync] ca_file)")
    return url.rstrip("/")


def _shown(url: str) -> str:
    """A refused URL as its error may say it: without a user, password, query or fragment (a URL
    refused for its scheme or its port may still hold a secret, and the error is logged)."""
    scheme, sep, rest = url.partition("://")
    if not sep:
        scheme, rest = "", url
    return scheme + sep + rest.rpartition("@")[2].split("?")[0].split("#")[0]


def load(path: str | os.PathLike | None = None) -> Config:
    """Read the config file (see module docstring for where) and validate it."""
    if path is None:
        env = os.environ.get("RATING_TERMINAL_CONFIG")
        path = Path(env) if env else (SYSTEM_CONFIG if SYSTEM_CONFIG.exists() else None)
    if path is None:
        return with_credentials(Config())
    path = Path(path)
    try:
        raw = tomllib.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except UnicodeDecodeError as exc:
        raise ConfigError(f"config file {path} is not UTF-8 text (byte {exc.start})") from None
    except OSError as exc:  # a folder, a file we may not read: a clear error, not a traceback at every restart
        raise ConfigError(f"config file {path} cannot be read: {exc.strerror}") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None
    return with_credentials(from_dict(raw, source=str(path), base=path.parent))


def with_credentials(config: Config) -> Config:
    """Once enrolled, the terminal's id, window and server are those the central server issued."""
    from terminal.credentials import Credentials, CredentialsError
    try:
        creds = Credentials.load(config.terminal.data_dir)
    except CredentialsError as exc:
        raise ConfigError(str(exc)) from None
    if creds is None:
        return config
    check_server_url(creds.server, f"{config.terminal.data_dir}/credentials.json")
    return replace(config, terminal=replace(config.terminal, id=creds.terminal_id, window=creds.window),
                   sync=replace(config.sync, server=creds.server))


def from_dict(raw: dict, *, source: str = "dict", base: Path = Path(".")) -> Config:
    sections = {f.name: f.type for f in fields(Config) if f.name != "source"}
    unknown = set(raw) - set(sections)
    if unknown:
        raise ConfigError(f"{source}: unknown section(s) {', '.join(sorted(unknown))}")
    built = {}
    for name, default in ((f.name, f.default_factory()) for f in fields(Config) if f.name != "source"):
        built[name] = _section(default, raw.get(name, {}), f"{source} [{name}]", base)
    built["sync"] = replace(built["sync"], server=check_server_url(built["sync"].server, f"{source} [sync] server"))
    if built["kiosk"].mobile_url:
        built["kiosk"] = replace(built["kiosk"], mobile_url=check_server_url(built["kiosk"].mobile_url,
                                                                             f"{source} [kiosk] mobile_url"))
    try:
        parse_pin(built["sync"].server_key_pin)
    except PinError as exc:
        raise ConfigError(f"{source} [sync]: {exc}") from None
    if built["invite"].listen:
        try:
            listen_address(built["invite"].listen)
        except ConfigError as exc:
            raise ConfigError(f"{source} [invite] {exc}") from None
    for section, key in (("terminal", "id"), ("terminal", "window"), ("kiosk", "staff_no")):
        value = getattr(built[section], key)
        if value or key != "staff_no":  # staff_no "" is nobody on duty
            check_code(value, f"{source} [{section}] {key}")
    return Config(**built, source=source)


def listen_address(listen: str) -> tuple[str, int]:
    """``[invite] listen`` as (host, port): "host:port" or "[v6]:port", the port 0..65535 (0: any
    free one, for tests). Checked when the file is read: a port the socket cannot take left the
    invite API dead while the log said it listened."""
    host, _, port = listen.rpartition(":")
    if not host.strip("[]") or not (port.isascii() and port.isdigit()) or int(port) > 65535:
        raise ConfigError(f"listen must be host:port with a port 0..65535, got {listen!r}")
    return host.strip("[]"), int(port)


def check_code(value: str, where: str) -> str:
    """A terminal id, window code or staff number that every record made under it can carry (text
    of at most MAX_CODE characters, no control characters): refused here, where it comes in, since
    a rating made under one that is not fails to be recorded, and the terminal is out of service."""
    from terminal.core.checks import text
    from terminal.core.rating import MAX_CODE
    try:
        return text(MAX_CODE)(value)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"{where} {exc}: a record cannot carry it") from None


def _section(default, values: dict, where: str, base: Path):
    if not isinstance(values, dict):
        raise ConfigError(f"{where} must be a table")
    known = {f.name: f for f in fields(default)}
    changes = {}
    for key, value in values.items():
        if key not in known:
            raise ConfigError(f"{where}: unknown key {key!r} (known: {', '.join(known)})")
        current = getattr(default, key)
        kind = type(current) if current is not None else Path
        if isinstance(current, Path) or kind is Path:
            if not isinstance(value, str):
                raise ConfigError(f"{where} {key} must be a path string")
            value = Path(value) if Path(value).is_absolute() else base / value
        elif kind is float and isinstance(value, int) and not isinstance(value, bool):
            value = float(value)
        elif type(value) is not kind:
            raise ConfigError(f"{where} {key} must be {kind.__name__}, got {type(value).__name__}")
        if known[key].metadata.get("networks"):
            import ipaddress
            try:
                value = [str(ipaddress.ip_network(v, strict=False)) for v in value]
            except (TypeError, ValueError) as exc:
                raise ConfigError(f"{where} {key} must be addresses or networks like \"192.168.10.0/24\": {exc}") from None
        pins = known[key].metadata.get("pins")
        if pins and (len(value) not in (0, pins) or not all(type(p) is int and 0 <= p <= 27 for p in value)):
            raise ConfigError(f"{where} {key} must be {pins} BCM pin numbers 0..27, or []")
        low, high = known[key].metadata.get("range", (value, value))
        if not low <= value <= high:
            raise ConfigError(f"{where} {key} = {value} is outside {low}..{high}")
        changes[key] = value
    return replace(default, **changes)
