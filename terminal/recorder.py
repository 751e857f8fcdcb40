"""Turn what happens at the window into durable records: the step every input device ends in.

``Recorder.carry_out`` performs a session's effects against the database: ``Hold`` and
``Commit`` become held drafts and ratings, ``Flag`` and ``Log`` become events. Each returns only
after the commit (fsync), so a thank-you shown afterwards is a promise kept.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from datetime import datetime

import terminal
from terminal.clock import SystemClock
from terminal.config import Config
from terminal.core.channels import InputDevice
from terminal.core.event import Event
from terminal.core.levels import Level
from terminal.core.rating import Rating
from terminal.core.session import Commit, Draft, Effect, Flag, Hold, Log
from terminal.store import Store, StoreError

log = logging.getLogger("rating-terminal")


def is_record(effect: Effect) -> bool:
    """Whether the effect is something to keep (a rating, a held press, an event), not to say."""
    return isinstance(effect, (Hold, Commit, Flag, Log))


class NotRecorded(StoreError):
    """A record could not be made part way through a list of effects: ``effects`` are the records
    not made (the one that failed and those after it, in order), for the window to try again.
    The cause is storage refusing it, or anything else: content no record can hold (a code over
    MAX_CODE that slipped past the checks where it came in), a bug. Any of them means the same to
    the rater and the business system: not kept, so never thanked and never reported rated."""

    def __init__(self, cause: Exception, effects: list[Effect]):
        super().__init__(str(cause))
        self.effects = effects


@dataclass(frozen=True)
class Stamp:
    """The clock readings taken at the moment something happened (a press is stamped when made,
    even if its rating is committed later, after the reasons)."""

    now: datetime
    mono_ms: int
    boot_id: str
    synced: bool


class Recorder:
    def __init__(self, config: Config, store: Store, clock: SystemClock | None = None):
        self.config, self.store = config, store
        self.clock = clock or SystemClock()
        self.dept_code: str | None = None  # the window's department, from the content
        self._restart_taken = 0  # the store's open whose chain restart was taken
        self._held_released = False
        try:
            self._catch_up()
        except Exception as exc:  # a full disk at start: out of service at the first record instead
            log.error("cannot finish starting the records (tried again before the next one): %s", exc)

    def _catch_up(self) -> None:
        """What the records owe before anything new, at start and then before each record until it
        is done: a chain that replaced another (a corrupt or vanished database, or one another
        process moved aside: ``Store.follow``) says so first, and the presses held when the terminal
        stopped become the ratings they are (their sessions cannot go on). Done at start only, a full
        disk then stopped the terminal from starting at all, out of service with nothing on screen."""
        self.store.follow()
        if self.store.opens != self._restart_taken:
            self.store.take_restart(lambda info: self._event(None, kind="chain_restart", why=info["why"],
                                                             detail=json.dumps(info, ensure_ascii=False)))
            self._restart_taken = self.store.opens
        if not self._held_released:  # at start only: later a held draft is a live session's
            released = self.store.release_held()
            self._held_released = True
            if released:
                log.warning("%d rating(s) held when the terminal stopped were committed with what they had",
                            len(released))

    def stamp(self) -> Stamp:
        return Stamp(self.clock.now(), self.clock.monotonic_ms(), self.clock.boot_id(), self.clock.synced())

    def record(self, level: Level, device: InputDevice, *, staff_no: str | None,
               dept_code: str | None = None, **fields) -> Rating:
        """Build a rating stamped now and commit it (a press with no session around it)."""
        rating = self._rating(self.stamp(), level=level, device=device, staff_no=staff_no,
                              dept_code=dept_code or self.dept_code, **fields)
        self._catch_up()
        return self.store.record(rating)

    def rating(self, draft: Draft) -> Rating:
        stamp = draft.stamp if isinstance(draft.stamp, Stamp) else self.stamp()
        return self._rating(stamp, id=draft.id, level=draft.level, device=draft.device, staff_no=draft.staff_no,
                            dept_code=self.dept_code, case_no=draft.case_no, item_code=draft.item_code,
                            session_id=draft.session_id, scores=dict(draft.scores), reasons=list(draft.reasons),
                            text=draft.text, ticket_no=draft.ticket_no)

    def carry_out(self, effects: list[Effect]) -> list[Effect]:
        """Make each record durable, in order; return the effects that are not records (``Say``).
        NotRecorded if a record cannot be made, for whatever reason (storage, its content, a bug):
        what came before it is kept, the rest is handed back. The one place records are told from
        the rest: callers pass effects as they come."""
        records, rest = [], []
        for effect in effects:
            (records if is_record(effect) else rest).append(effect)
        try:
            self._catch_up()
        except Exception as exc:
            raise NotRecorded(exc, records) from exc
        for index, record in enumerate(records):
            try:
                self._make_durable(record)
            except Exception as exc:  # not only StoreError: any failure here is a record not kept
                raise NotRecorded(exc, records[index:]) from exc
        return rest

    def _make_durable(self, effect: Effect) -> None:
        if isinstance(effect, Hold):
            self.store.hold(self.rating(effect.draft))
        elif isinstance(effect, Commit):
            self.store.record(self.rating(effect.draft))
        elif isinstance(effect, Flag):
            detail = None
            if effect.suppressed:  # a flood: the presses it stands for, by why
                detail = json.dumps({"suppressed": sum(n for _, n in effect.suppressed),
                                     "why": dict(effect.suppressed)}, ensure_ascii=False)
            self.store.record_event(self._event(effect.stamp, kind="misuse", why=effect.why, level=effect.level,
                                                device=effect.device, staff_no=effect.staff_no,
                                                session_id=effect.session_id, detail=detail))
        else:  # Log
            self.store.record_event(self._event(None, kind=effect.kind, staff_no=effect.staff_no,
                                                session_id=effect.session_id, case_no=effect.case_no,
                                                item_code=effect.item_code, ticket_no=effect.ticket_no))

    def _rating(self, stamp: Stamp, **fields) -> Rating:
        fields = {k: v for k, v in fields.items() if v is not None}
        return Rating.create(now=stamp.now, mono_ms=stamp.mono_ms, boot_id=stamp.boot_id, clock_synced=stamp.synced,
                             terminal_id=self.config.terminal.id, window=self.config.terminal.window,
                             app_version=terminal.__version__, **fields)

    def _event(self, stamp: Stamp | None, **fields) -> Event:
        stamp = stamp if isinstance(stamp, Stamp) else self.stamp()
        return Event.create(now=stamp.now, mono_ms=stamp.mono_ms, boot_id=stamp.boot_id, clock_synced=stamp.synced,
                            terminal_id=self.config.terminal.id, window=self.config.terminal.window,
                            app_version=terminal.__version__, **{k: v for k, v in fields.items() if v is not None})
