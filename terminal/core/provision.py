"""What a technician asks for at first boot: a server and a one-time enrollment code (pure, no I/O).

The same request comes from the touchscreen, from ``rating-terminal provision`` or from a
``provision.toml`` left on the boot partition (a FAT file system anyone may have edited: it is
read bounded and every part checked). The file holds exactly two keys::

    server = "https://pj.example.gov.cn"
    code = "ABCD-EFGH-JKLM"

TLS trust for the server (a hall's own CA, a key pin) is the terminal's own ``[sync] ca_file``
and ``server_key_pin``: a file on a removable card never decides whom the terminal trusts.
Errors carry ``reason``, a short Chinese sentence for the screen (translated like every other
kiosk text), and ``detail``, what exactly is wrong, for the technician and the log; neither ever
holds the code.
"""

from __future__ import annotations

import tomllib
from dataclasses import dataclass, field

#: the letters central issues codes in (central/ratings/auth.py takes it from here): no 0/O, 1/I
CODE_ALPHABET = "ABCDEFGHJKLMNPQRSTUVWXYZ23456789"
CODE_LENGTH = 12
MAX_FILE_BYTES = 4096  # two short lines and comments; anything bigger is not a provision file
MAX_SERVER_CHARS = 256
MAX_CODE_CHARS = 32


class ProvisionError(ValueError):
    """``reason``: for the screen (Chinese source text); ``detail``: what exactly, for the log."""

    def __init__(self, reason: str, detail: str, retry: bool = False):
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason, self.detail, self.retry = reason, detail, retry


@dataclass(frozen=True)
class Request:
    server: str
    code: str = field(repr=False)  # a secret until it is spent: never printed, never logged


def normalise_code(text: str) -> str:
    """The code as central issued it (``ABCD-EFGH-JKLM``), from what was typed: any case, with or
    without the dashes and spaces."""
    if not isinstance(text, str) or len(text) > MAX_CODE_CHARS:
        raise ProvisionError("注册码格式不对", f"an enrollment code is {CODE_LENGTH} letters and digits, "
                                           "as ABCD-EFGH-JKLM")
    raw = text.replace("-", "").replace(" ", "").upper()
    wrong = sorted({c for c in raw if c not in CODE_ALPHABET})
    if wrong:
        hint = " (codes never use 0, O, 1 or I)" if set(wrong) & set("01OI") else ""
        raise ProvisionError("注册码格式不对", f"an enrollment code has only the letters A-Z and digits 2-9{hint}")
    if len(raw) != CODE_LENGTH:
        raise ProvisionError("注册码格式不对", f"an enrollment code has {CODE_LENGTH} letters and digits, "
                                           f"this one {len(raw)}")
    return "-".join(raw[i:i + 4] for i in range(0, CODE_LENGTH, 4))


def check_request(server: object, code: object) -> Request:
    """A request the terminal may send: an allowed server URL (``check_server_url``) and a
    well-formed code."""
    from terminal.config import ConfigError, check_server_url
    if not isinstance(server, str) or not server.strip():
        raise ProvisionError("服务器地址不对", "the server is a URL such as https://pj.example.gov.cn")
    if len(server) > MAX_SERVER_CHARS or not server.isprintable():
        raise ProvisionError("服务器地址不对", f"the server URL must be printable and at most {MAX_SERVER_CHARS} "
                                          "characters")
    try:
        url = check_server_url(server.strip(), "server")
    except ConfigError as exc:
        raise ProvisionError("服务器地址不对", str(exc)) from None
    return Request(url, normalise_code(code))


def parse_file(data: bytes, name: str = "provision.toml") -> Request:
    """A provision file's bytes (UTF-8, a BOM allowed as Windows editors write it) as a request."""
    bad = "provision.toml 文件无效"
    if len(data) > MAX_FILE_BYTES:
        raise ProvisionError(bad, f"{name} is larger than {MAX_FILE_BYTES} bytes")
    try:
        raw = tomllib.loads(data.decode("utf-8-sig"))
    except UnicodeDecodeError:
        raise ProvisionError(bad, f"{name} is not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ProvisionError(bad, f"{name} is not valid TOML: {exc}") from None
    unknown = sorted(set(raw) - {"server", "code"})
    if unknown:
        shown = ", ".join(repr(k[:40]) for k in unknown[:5])
        raise ProvisionError(bad, f"{name}: unknown key(s) {shown}; it holds only server and code")
    for key in ("server", "code"):
        if key not in raw:
            raise ProvisionError(bad, f"{name}: {key} is missing")
        if not isinstance(raw[key], str):
            raise ProvisionError(bad, f"{name}: {key} must be a string in quotes, got {type(raw[key]).__name__}")
    try:
        return check_request(raw["server"], raw["code"])
    except ProvisionError as exc:
        raise ProvisionError(bad, f"{name}: {exc.detail}") from None


#: an enrollment refusal's error code (central/ratings/auth.py) -> what the screen says
_REFUSALS = {
    "code_invalid": "注册码无效或已过期",
    "code_expired": "注册码无效或已过期",
    "code_used": "注册码已被使用，请重新获取",
    "bad_code": "注册码格式不对",
}


def failure(status: int | None, code: str | None, detail: str) -> ProvisionError:
    """What a failed enrollment call means to the technician, and whether trying again may help
    (the network coming up, a busy server) or only a new code or address will."""
    if status is None:
        tls = "SSL" in detail or "certificate" in detail or "pinned" in detail
        return ProvisionError("服务器证书无法验证" if tls else "服务器无法连接", detail, retry=True)
    if code in _REFUSALS:
        return ProvisionError(_REFUSALS[code], detail)
    if status == 429 or status >= 500:
        return ProvisionError("服务器暂时无法处理", detail, retry=True)
    if status == 201:
        return ProvisionError("服务器应答无效", detail, retry=True)
    return ProvisionError("该地址不是评价中心服务器", detail)
