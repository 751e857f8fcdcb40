"""The rating record and its wire form: the one contract between terminal and central.

A rating is made on the terminal, gets its id there, and is sent as a JSON object whose fields are
listed in ``FIELDS``. The terminal writes it with ``to_wire``; the central server reads it with
``from_wire``, which checks every field of untrusted input and reports all problems at once.
``digest`` tells an identical replay (a duplicate) from a different rating under a reused id.
``chain`` (``chain.Link``) is the rating's place in its terminal's hash chain, set by the store
when it commits the rating; a record of the previous wire version has none, and its wire form
then has no ``chain`` key at all, so its digest is what it always was.
"""

from __future__ import annotations

import hashlib
import uuid
from dataclasses import dataclass, field
from datetime import datetime

import orjson

from .chain import Link
from .channels import Channel, InputDevice
from .checks import MAX_MONO_MS, InvalidRecord, bool_, build, check_fields, enum, ident, integer, text, timestamp
from .levels import Level

InvalidRating = InvalidRecord  # the name the server's ingest and the tests know

MAX_CASE_NO = 50  # 办件编号 is at most 50 characters in the provincial interfaces
MAX_TICKET = 16  # a queue ticket, e.g. A012
MAX_TEXT = 500
MAX_CODE = 64
MAX_REASONS = 20
MAX_INDICATOR = 32  # an indicator's name, as ``scores`` is keyed


@dataclass(frozen=True)
class Rating:
    """A citizen's rating of one service, as the terminal recorded it and the wire carries it
    (``FIELDS`` checks each field)."""
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
    chain: Link | None = None
    ticket_no: str | None = None  # the queue ticket the service was called by (排队叫号)

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
        if self.chain is None:
            del d["chain"]
        else:
            d["chain"] = self.chain.to_wire()
        if self.ticket_no is None:  # absent, not null: a record without one keeps its earlier digest
            del d["ticket_no"]
        return d

    def digest(self) -> str:
        """sha256 of the canonical JSON form: equal digests mean the same rating."""
        return wire_digest(self.to_wire())

    @classmethod
    def from_wire(cls, data: object) -> "Rating":
        """Validate untrusted input; raise InvalidRating naming every bad field."""
        return build(cls, check_fields(data, FIELDS, "rating"))


def canonical(wire: dict) -> tuple[str, str]:
    """The record's canonical JSON text (sorted keys, no spaces, UTF-8) and its SHA-256: what it is
    stored as at the central server, what tells a replay from another record under the same id, and
    what the next record's ``chain.prev`` names. Made by orjson, byte for byte what
    ``json.dumps(sort_keys=True, ensure_ascii=False, separators=(",", ":"))`` makes of a record
    (checked by a property test), fifteen times faster: every rating of a drain passes here."""
    data = orjson.dumps(wire, option=orjson.OPT_SORT_KEYS)
    return data.decode(), hashlib.sha256(data).hexdigest()


def wire_digest(wire: dict) -> str:
    return canonical(wire)[1]


def _scores(v):
    if not isinstance(v, dict):
        raise TypeError("must be an object of indicator -> level")
    if len(v) > 16:
        raise ValueError("too many indicators")
    return {text(MAX_INDICATOR)(k): int(Level.parse(s)) for k, s in v.items()}


def _reasons(v):
    if not isinstance(v, list):
        raise TypeError("must be a list of reason tags")
    if len(v) > MAX_REASONS:
        raise ValueError(f"at most {MAX_REASONS} reason tags")
    return tuple(text(MAX_CODE)(r) for r in v)


#: name -> (required, check); the order is the record's.
FIELDS = {
    "id": (True, ident),
    "terminal_id": (True, text(MAX_CODE)),
    "window": (True, text(MAX_CODE)),
    "level": (True, Level.parse),
    "channel": (True, enum(Channel)),
    "device": (True, enum(InputDevice)),
    "rated_at": (True, timestamp),
    "mono_ms": (True, integer(0, MAX_MONO_MS)),
    "boot_id": (True, text(MAX_CODE)),
    "clock_synced": (True, bool_),
    "app_version": (True, text(32)),
    "staff_no": (False, text(MAX_CODE)),
    "dept_code": (False, text(MAX_CODE)),
    "case_no": (False, text(MAX_CASE_NO)),
    "item_code": (False, text(MAX_CODE)),
    "session_id": (False, text(MAX_CODE)),
    "scores": (False, _scores),
    "reasons": (False, _reasons),
    "text": (False, text(MAX_TEXT, allow_empty=True)),
    "rating_no": (False, integer(1, 2)),
    "anonymous": (False, bool_),
    "chain": (False, Link.from_wire),
    "ticket_no": (False, text(MAX_TICKET)),
}
