"""The rating record and its wire form: the one contract between terminal and central.

A rating is made on the terminal, gets its id there, and is sent as a JSON object whose fields are
listed in ``FIELDS``. The terminal writes it with ``to_wire``; the central server reads it with
``from_wire``, which checks every field of untrusted input and reports all problems at once.
``digest`` tells an identical replay (a duplicate) from a different rating under a reused id.
"""

from __future__ import annotations

import hashlib
import json
import re
import uuid
from dataclasses import dataclass, field
from datetime import datetime

from .channels import Channel, InputDevice
from .levels import Level

MAX_CASE_NO = 50  # 办件编号 is at most 50 characters in the provincial interfaces
MAX_TEXT = 500
MAX_CODE = 64
MAX_REASONS = 20
_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f]")  # control characters other than tab and newline


class InvalidRating(ValueError):
    """Untrusted input that is not a rating; ``problems`` maps field name to why."""

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))


@dataclass(frozen=True)
class Rating:
    id: str
    terminal_id: str
    window: str
    level: Level
    channel: Channel
    device: InputDevice
    rated_at: str  # wall-clock time, ISO 8601 with its UTC offset, as the terminal's clock said
    mono_ms: int  # monotonic milliseconds since boot: orders ratings when the wall clock is wrong
    boot_id: str
    clock_synced: bool
    app_version: str
    staff_no: str | None = None
    dept_code: str | None = None
    case_no: str | None = None
    item_code: str | None = None
    session_id: str | None = None
    scores: dict[str, int] = field(default_factory=dict)  # indicator (服务效率 …) -> canonical level
    reasons: tuple[str, ...] = ()
    text: str = ""
    rating_no: int = 1  # 1st or 2nd rating of the same case
    anonymous: bool = True

    @classmethod
    def create(cls, *, level: Level, device: InputDevice, now: datetime, mono_ms: int,
               boot_id: str, clock_synced: bool, **fields) -> "Rating":
        """A new rating with a fresh id; the channel follows from the device unless given."""
        if now.tzinfo is None:
            raise ValueError("rated_at needs a timezone-aware datetime")
        fields.setdefault("channel", device.channel)
        return cls.from_wire({
            "id": uuid.uuid4().hex, "level": int(level), "device": device.value,
            "rated_at": now.isoformat(timespec="milliseconds"), "mono_ms": mono_ms,
            "boot_id": boot_id, "clock_synced": clock_synced,
            **{k: (list(v) if isinstance(v, tuple) else v) for k, v in fields.items()},
        })

    @property
    def reasons_missing(self) -> bool:
        """A bad rating left without a reason (the rater walked away): kept, and flagged."""
        return self.level.is_bad and not self.reasons and not self.text.strip()

    def to_wire(self) -> dict:
        d = {name: getattr(self, name) for name in FIELDS}
        d["level"] = int(self.level)
        d["channel"] = int(self.channel)
        d["device"] = self.device.value
        d["reasons"] = list(self.reasons)
        d["scores"] = dict(self.scores)
        return d

    def digest(self) -> str:
        """sha256 of the canonical JSON form: equal digests mean the same rating."""
        return wire_digest(self.to_wire())

    @classmethod
    def from_wire(cls, data: object) -> "Rating":
        """Validate untrusted input; raise InvalidRating naming every bad field."""
        if not isinstance(data, dict):
            raise InvalidRating({"rating": f"must be a JSON object, got {type(data).__name__}"})
        problems: dict[str, str] = {}
        values: dict[str, object] = {}
        for name, (required, check) in FIELDS.items():
            if name not in data or data[name] is None:
                if required:
                    problems[name] = "is required"
                continue
            try:
                values[name] = check(data[name])
            except (ValueError, TypeError) as exc:
                problems[name] = str(exc)
        unknown = sorted(set(data) - set(FIELDS))
        if unknown:
            problems["unknown fields"] = ", ".join(unknown[:10])
        if problems:
            raise InvalidRating(problems)
        return cls(**values)


def wire_digest(wire: dict) -> str:
    canonical = json.dumps(wire, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    return hashlib.sha256(canonical.encode()).hexdigest()


def _text(max_len: int, *, allow_empty: bool = False):
    def check(v):
        if not isinstance(v, str):
            raise TypeError(f"must be a string, got {type(v).__name__}")
        if not v and not allow_empty:
            raise ValueError("must not be empty")
        if len(v) > max_len:
            raise ValueError(f"is {len(v)} characters, at most {max_len} allowed")
        if _CONTROL.search(v):
            raise ValueError("contains control characters")
        return v
    return check


def _ident(v):
    if not isinstance(v, str) or not _ID.match(v):
        raise ValueError("must be 8-64 characters of letters, digits, '-' or '_'")
    return v


def _int(lo: int, hi: int):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"must be an integer, got {type(v).__name__}")
        if not lo <= v <= hi:
            raise ValueError(f"{v} is outside {lo}..{hi}")
        return v
    return check


def _bool(v):
    if not isinstance(v, bool):
        raise TypeError(f"must be true or false, got {type(v).__name__}")
    return v


def _enum(enum):
    def check(v):
        try:
            return enum(v) if not isinstance(v, bool) else enum(None)
        except ValueError:
            allowed = ", ".join(str(m.value) for m in enum)
            raise ValueError(f"{v!r} is not one of {allowed}") from None
    return check


def _timestamp(v):
    _text(40)(v)
    try:
        parsed = datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(f"{v!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError("must carry a UTC offset, e.g. 2026-11-22T10:30:00+08:00")
    return v


def _scores(v):
    if not isinstance(v, dict):
        raise TypeError("must be an object of indicator -> level")
    if len(v) > 16:
        raise ValueError("too many indicators")
    return {_text(32)(k): int(Level.parse(s)) for k, s in v.items()}


def _reasons(v):
    if not isinstance(v, list):
        raise TypeError("must be a list of reason tags")
    if len(v) > MAX_REASONS:
        raise ValueError(f"at most {MAX_REASONS} reason tags")
    return tuple(_text(MAX_CODE)(r) for r in v)


#: name -> (required, check); the order is the record's.
FIELDS = {
    "id": (True, _ident),
    "terminal_id": (True, _text(MAX_CODE)),
    "window": (True, _text(MAX_CODE)),
    "level": (True, Level.parse),
    "channel": (True, _enum(Channel)),
    "device": (True, _enum(InputDevice)),
    "rated_at": (True, _timestamp),
    "mono_ms": (True, _int(0, 2**63 - 1)),
    "boot_id": (True, _text(MAX_CODE)),
    "clock_synced": (True, _bool),
    "app_version": (True, _text(32)),
    "staff_no": (False, _text(MAX_CODE)),
    "dept_code": (False, _text(MAX_CODE)),
    "case_no": (False, _text(MAX_CASE_NO)),
    "item_code": (False, _text(MAX_CODE)),
    "session_id": (False, _text(MAX_CODE)),
    "scores": (False, _scores),
    "reasons": (False, _reasons),
    "text": (False, _text(MAX_TEXT, allow_empty=True)),
    "rating_no": (False, _int(1, 2)),
    "anonymous": (False, _bool),
}
