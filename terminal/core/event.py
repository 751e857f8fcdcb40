"""Terminal events: staff logins and logouts, session events and suspected misuse.

They travel to the central server beside the ratings, by the same exactly-once rules (an id made
on the terminal, a digest to tell a replay from a conflict), but they are never ratings: a press
during the thank-you screen is an event of kind ``misuse``, never counted in any score.
"""

from __future__ import annotations

import uuid
from dataclasses import dataclass
from datetime import datetime

from .chain import Link
from .channels import InputDevice
from .checks import (MAX_MONO_MS, InvalidRecord, bool_, build, check_fields, enum, ident, integer, one_of, text,
                     timestamp)
from .levels import Level
from .rating import wire_digest

KINDS = ("login", "logout", "invited", "invite_expired", "session_abandoned", "misuse", "chain_restart",
         "ticket_called", "queue_paused", "queue_resumed")
MISUSE = ("paused", "no_session", "cooldown", "repeat", "during_thanks", "flood")  # flood: presses counted in one
RESTART = ("database_corrupt", "database_missing")  # why a terminal began a new hash chain
#: the kinds that must say why, and what they may say
WHY = {"misuse": MISUSE, "chain_restart": RESTART}


@dataclass(frozen=True)
class Event:
    """Something at the window besides a rating (``KINDS``: a login, an invitation, a misuse…),
    recorded, chained and delivered as a rating is."""
    id: str
    terminal_id: str
    window: str
    kind: str
    at: str  # wall-clock time with its UTC offset, as the terminal's clock said
    mono_ms: int
    boot_id: str
    clock_synced: bool
    app_version: str
    staff_no: str | None = None
    session_id: str | None = None
    case_no: str | None = None
    item_code: str | None = None
    level: Level | None = None  # misuse: the level that was pressed
    device: InputDevice | None = None
    why: str | None = None  # misuse: paused | no_session | …; chain_restart: database_corrupt | …
    detail: str | None = None  # chain_restart: what was lost and salvaged; misuse flood: how many presses (JSON text)
    chain: Link | None = None
    ticket_no: str | None = None  # ticket_called, invited: the queue ticket

    @classmethod
    def create(cls, *, kind: str, now: datetime, mono_ms: int, boot_id: str, clock_synced: bool,
               **fields) -> "Event":
        if now.tzinfo is None:
            raise ValueError("the event time needs a timezone-aware datetime")
        fields = {k: (v.value if isinstance(v, InputDevice) else int(v) if isinstance(v, Level) else v)
                  for k, v in fields.items()}
        return cls.from_wire({"id": uuid.uuid4().hex, "kind": kind, "at": now.isoformat(timespec="milliseconds"),
                              "mono_ms": mono_ms, "boot_id": boot_id, "clock_synced": clock_synced, **fields})

    @classmethod
    def from_wire(cls, data: object) -> "Event":
        values = check_fields(data, FIELDS, "event")
        kind = values["kind"]
        if (kind in WHY) != ("why" in values):
            raise InvalidRecord({"why": f"{' and '.join(WHY)} events, and only they, say why"})
        if kind in WHY and values["why"] not in WHY[kind]:
            raise InvalidRecord({"why": f"{values['why']!r} is not one of {', '.join(WHY[kind])}"})
        return build(cls, values)

    def to_wire(self) -> dict:
        d = {name: getattr(self, name) for name in FIELDS}
        d["level"] = int(self.level) if self.level is not None else None
        d["device"] = self.device.value if self.device is not None else None
        for optional in ("detail", "chain", "ticket_no"):  # absent, not null, in earlier wire versions' events
            if getattr(self, optional) is None:
                del d[optional]
        if self.chain is not None:
            d["chain"] = self.chain.to_wire()
        return d

    def digest(self) -> str:
        return wire_digest(self.to_wire())


FIELDS = {
    "id": (True, ident),
    "terminal_id": (True, text(64)),
    "window": (True, text(64)),
    "kind": (True, one_of(KINDS)),
    "at": (True, timestamp),
    "mono_ms": (True, integer(0, MAX_MONO_MS)),
    "boot_id": (True, text(64)),
    "clock_synced": (True, bool_),
    "app_version": (True, text(32)),
    "staff_no": (False, text(64)),
    "session_id": (False, text(64)),
    "case_no": (False, text(50)),
    "item_code": (False, text(64)),
    "level": (False, Level.parse),
    "device": (False, enum(InputDevice)),
    "why": (False, one_of(MISUSE + RESTART)),
    "detail": (False, text(2000)),
    "chain": (False, Link.from_wire),
    "ticket_no": (False, text(16)),
}
