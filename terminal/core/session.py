"""Rating sessions: the rules of one rating per service (一次一评), in one place, with no I/O.

The touchscreen kiosk and a headless box-only terminal drive the same ``Session``. They tell it
what happened (a badge swipe, an invitation, a press, chosen reasons, the passing of time) and
carry out the effects it returns, in order: ``Hold`` a draft durably, ``Commit`` a rating durably,
``Flag`` suspected misuse, ``Log`` a staff or session event, ``Say`` a voice prompt. Then they show
the screen named by ``session.state``. Time comes in as monotonic seconds, so tests step it.

States::

    paused   nobody logged in (暂停服务): presses are flagged, nothing is rated, invitations refused
    idle     staff logged in, no service being rated: the attract screen. In ``invite`` mode a
             press is flagged (no session); in ``walk-up`` mode a press starts a session, except
             during the cooldown after the last rating (flagged)
    invited  the rating screen after an invitation (business system or the 请评价 key): the first
             press within ``invite_timeout_s`` is the rating; after that the invitation expires
    rating   the level is in; indicator ratings (服务效率 …) are asked when the settings name them
    reasons  a bad rating: reason tags and free text
    thanks   感谢您的评价: presses are flagged

A press that does not end the session (indicators or reasons follow) is held (``Hold``) the moment
it is made; one that does is committed at once. A rater who walks away from the indicator or
reasons screen, a logout, a badge switch or a power cut still leaves the rating: it is committed
with what was given, reasons missing (on restart the adapter commits whatever is still held).
Low ratings are never discouraged, delayed or hidden: every level is taken the same way.
"""

from __future__ import annotations

import uuid
from collections import OrderedDict
from dataclasses import dataclass, field, replace
from enum import Enum
from typing import Callable

from .channels import InputDevice
from .checks import InvalidRecord, text
from .levels import Level
from .rating import MAX_CASE_NO, MAX_CODE, MAX_INDICATOR, MAX_TICKET


class State(str, Enum):
    PAUSED = "paused"
    IDLE = "idle"
    INVITED = "invited"
    RATING = "rating"
    REASONS = "reasons"
    THANKS = "thanks"


MODES = ("invite", "walk-up")
#: Misuse kept one event per press, at most this many per MISUSE_WINDOW_S; the rest of the window's
#: presses are counted into one ``flood`` event when it ends: a box or GPIO line flooding presses
#: leaves its evidence without filling the disk (at most 21 events in 10 minutes, ~3,000 a day).
MISUSE_BURST = 20
MISUSE_WINDOW_S = 600.0
#: the in-hall indicators of the field (整体满意度 is the main level itself)
INDICATORS = ("服务效率", "服务水平", "服务态度")
MAX_TEXT = 500


class SessionRefused(Exception):
    """An invitation that cannot be taken now; ``code`` is machine-readable (paused, busy, staff_not_here)."""

    def __init__(self, code: str, message: str):
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Rules:
    """How this terminal runs sessions: from the window's content settings."""

    mode: str = "invite"
    dimensions: tuple[str, ...] = ()
    reason_codes: tuple[str, ...] = ()  # empty: any tag (the content names none)
    invite_timeout_s: float = 10.0  # the field's default press window after a prompt
    reasons_timeout_s: float = 30.0
    thanks_seconds: float = 3.0
    walkup_cooldown_s: float = 5.0
    # False on a box-only terminal: no screen to ask indicators or reasons on, so the press is the
    # whole rating, thanked at once (a bad one is recorded with its reasons missing, as when a
    # citizen walks away from the reasons screen) and the next citizen need not wait.
    screen: bool = True

    @classmethod
    def from_settings(cls, settings: dict, reason_codes: tuple[str, ...] = ()) -> "Rules":
        """Rules from ``content.json`` settings; a bad value is a ValueError naming it."""
        rules, problems = {}, []
        mode = settings.get("rating_mode", cls.mode)
        if mode not in MODES:
            problems.append(f"rating_mode {mode!r} is not one of {', '.join(MODES)}")
        rules["mode"] = mode
        dims = settings.get("dimensions", [])
        if (not isinstance(dims, list) or not all(_indicator(d) for d in dims) or len(dims) > 8
                or len(set(dims)) != len(dims)):  # a name twice: its scores are one key, never all given
            problems.append(f"dimensions must be a list of at most 8 different indicator names "
                            f"(text of at most {MAX_INDICATOR} characters: a rating keys its scores by them)")
            dims = []
        rules["dimensions"] = tuple(dims)
        for key in ("invite_timeout_s", "reasons_timeout_s", "thanks_seconds", "walkup_cooldown_s"):
            value = settings.get(key, getattr(cls, key))
            if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 3600:
                problems.append(f"{key} must be a number of seconds 0..3600, got {value!r}")
                value = getattr(cls, key)
            rules[key] = float(value)
        if problems:
            raise ValueError("; ".join(problems))
        return cls(reason_codes=tuple(reason_codes), **rules)


@dataclass(frozen=True)
class Draft:
    """A rating in the making; ``stamp`` is the adapter's clock reading at the press."""

    id: str
    session_id: str
    level: Level
    device: InputDevice
    staff_no: str | None
    case_no: str | None = None
    item_code: str | None = None
    ticket_no: str | None = None
    scores: dict = field(default_factory=dict)
    reasons: tuple[str, ...] = ()
    text: str = ""
    stamp: object = None

    @property
    def reasons_missing(self) -> bool:
        return self.level.is_bad and not self.reasons and not self.text.strip()


class Effect:
    pass


@dataclass(frozen=True)
class Hold(Effect):
    """Keep this draft durably: if nothing else happens, it becomes the rating."""
    draft: Draft


@dataclass(frozen=True)
class Commit(Effect):
    """Record this rating durably (releasing the held draft of the same id) before going on."""
    draft: Draft


@dataclass(frozen=True)
class Flag(Effect):
    """A press that is not a rating: kept as suspected misuse, never counted. ``flood``: the
    presses of a misuse window past MISUSE_BURST, ``suppressed`` counting them by why (the level,
    device and stamp are the last one's)."""
    why: str  # paused | no_session | cooldown | repeat | during_thanks | flood
    level: Level
    device: InputDevice
    staff_no: str | None
    session_id: str | None
    stamp: object = None
    suppressed: tuple[tuple[str, int], ...] = ()  # flood: (why, presses not kept one by one)


@dataclass(frozen=True)
class Log(Effect):
    """A staff or session event for the record: login, logout, invited, invite_expired,
    session_abandoned (a logout or badge switch ended an invitation nobody answered), and from the
    queue system ticket_called, queue_paused, queue_resumed."""
    kind: str
    staff_no: str | None
    session_id: str | None = None
    case_no: str | None = None
    item_code: str | None = None
    ticket_no: str | None = None


@dataclass(frozen=True)
class Say(Effect):
    """A voice prompt to play."""
    prompt: str  # invite (请您对我的服务做出评价) | thanks (感谢您的评价) | call (请 A012 号到本窗口办理)
    ticket_no: str | None = None


@dataclass
class Service:
    """One service to be rated, as the invite API reports it (never the level: 三不)."""

    session_id: str
    case_no: str | None
    item_code: str | None
    staff_no: str | None
    source: str
    outcome: str = "open"  # open | rated | unsaved (pressed, storage refused: tried again) | expired | abandoned
    ticket_no: str | None = None

    def report(self) -> dict:
        return {"session_id": self.session_id, "case_no": self.case_no, "item_code": self.item_code,
                "staff_no": self.staff_no, "ticket_no": self.ticket_no, "source": self.source,
                "outcome": self.outcome, "rated": self.outcome == "rated"}


class Session:
    KEEP_SERVICES = 200  # for the invite API's "was this case rated?"

    def __init__(self, rules: Rules, new_id: Callable[[], str] = lambda: uuid.uuid4().hex):
        self.rules = rules
        self.new_id = new_id
        self.state = State.PAUSED
        self.staff_no: str | None = None
        self.service: Service | None = None
        self.draft: Draft | None = None
        self.deadline: float | None = None
        self.cooldown_until = 0.0
        self.services: OrderedDict[str, Service] = OrderedDict()
        self.called_ticket: str | None = None  # the queue ticket called to this window, served next
        self.queue_paused = False  # 暂停服务 from the queue system, staff still logged in
        self.misuse_since: float | None = None  # when the current misuse window began
        self.misuse_kept = 0  # misuse events made in it, one per press
        self.misuse_suppressed: dict[str, int] = {}  # why -> presses past MISUSE_BURST in it
        self.misuse_last: Flag | None = None  # the last of those

    # -- staff -------------------------------------------------------------------------------

    def swipe(self, staff_no: str, now: float) -> list[Effect]:
        """A known badge: log in; the same badge again logs out; another staff member switches.
        InvalidRecord for a staff number no record can carry (each rating made under it would
        fail to be recorded): the login is refused, not every rating after it."""
        _code("staff_no", staff_no)
        if staff_no == self.staff_no:
            return self.logout(now)
        effects = self._close_service("abandoned")
        if self.staff_no:
            effects.append(Log("logout", self.staff_no))
        self.staff_no, self.queue_paused, self.called_ticket = staff_no, False, None
        effects.append(Log("login", staff_no))
        self._enter(State.IDLE)
        return effects

    def logout(self, now: float) -> list[Effect]:
        if self.staff_no is None:
            return []
        effects = self._close_service("abandoned")
        effects.append(Log("logout", self.staff_no))
        self.staff_no, self.queue_paused, self.called_ticket = None, False, None
        self._enter(State.PAUSED)
        return effects

    # -- the queue system (排队叫号) ------------------------------------------------------------

    def call(self, ticket_no: str, now: float) -> list[Effect]:
        """A ticket called to this window: announced (请 A012 号到…窗口办理), and carried by the next
        service's rating. SessionRefused when nobody serves here (paused)."""
        ticket_no = _ticket(ticket_no)
        if self.state is State.PAUSED:
            raise SessionRefused("paused", "this window is not serving (暂停服务)")
        self.called_ticket = ticket_no
        return [Log("ticket_called", self.staff_no, ticket_no=ticket_no), Say("call", ticket_no)]

    def pause(self, now: float) -> list[Effect]:
        """暂停服务 from the queue system, the staff member still logged in: whatever is open ends as a
        logout would end it, presses are flagged ``paused``, invitations refused until ``resume``."""
        if self.staff_no is None or self.queue_paused:
            return []
        effects = self._close_service("abandoned")
        self.queue_paused, self.called_ticket = True, None
        self._enter(State.PAUSED)
        return effects + [Log("queue_paused", self.staff_no)]

    def resume(self, now: float) -> list[Effect]:
        """恢复服务: back to serving, as before the pause."""
        if not self.queue_paused:
            return []
        self.queue_paused = False
        self._enter(State.IDLE)
        return [Log("queue_resumed", self.staff_no)]

    # -- invitations -------------------------------------------------------------------------

    def invite(self, now: float, *, case_no: str | None = None, item_code: str | None = None,
               staff_no: str | None = None, source: str = "api",
               ticket_no: str | None = None) -> tuple[Service, list[Effect]]:
        """Open the rating screen for one service; SessionRefused when paused or busy, or when the
        invitation names a staff member other than the one logged in here (a token holder cannot pin
        the next rating on a colleague); InvalidRecord when a field is not text a record can hold."""
        problems = {}
        for name, value, limit in (("case_no", case_no, MAX_CASE_NO), ("item_code", item_code, MAX_CODE),
                                   ("staff_no", staff_no, MAX_CODE), ("ticket_no", ticket_no, MAX_TICKET)):
            try:
                if value is not None:
                    text(limit)(value)
            except (TypeError, ValueError) as exc:
                problems[name] = str(exc)
        if problems:
            raise InvalidRecord(problems)
        if self.state is State.PAUSED:
            raise SessionRefused("paused", "this window is not serving (暂停服务)" if self.queue_paused
                                 else "nobody is logged in at this window (暂停服务)")
        if staff_no is not None and staff_no != self.staff_no:
            raise SessionRefused("staff_not_here", f"staff {staff_no} is not the one logged in at this window")
        if self.state in (State.INVITED, State.RATING, State.REASONS):
            raise SessionRefused("busy", f"a rating session is open ({self.state.value}); "
                                         f"wait until it ends or expires")
        service = self._open_service(case_no, item_code, staff_no or self.staff_no, source, ticket_no)
        self._enter(State.INVITED, now + self.rules.invite_timeout_s)
        return service, [Log("invited", service.staff_no, service.session_id, case_no, item_code, service.ticket_no),
                         Say("invite")]

    # -- presses -----------------------------------------------------------------------------

    def press(self, level: Level, device: InputDevice, now: float, stamp: object = None) -> list[Effect]:
        """A press on any rating input. Only the first press of an open session is a rating, and
        only before the session's time is up, whether or not a tick has run since."""
        due = self.tick(now)
        return due + self._press(Level(level), device, now, stamp)

    def _press(self, level: Level, device: InputDevice, now: float, stamp: object) -> list[Effect]:
        if self.state is State.IDLE and self.rules.mode == "walk-up":
            if now < self.cooldown_until:
                return self._flag("cooldown", level, device, stamp, now)
            self._open_service(None, None, self.staff_no, "walk-up")
            self.state = State.INVITED
        if self.state is not State.INVITED:
            why = {State.PAUSED: "paused", State.IDLE: "no_session", State.THANKS: "during_thanks"}.get(
                self.state, "repeat")
            return self._flag(why, level, device, stamp, now)
        service = self.service
        self.draft = Draft(id=self.new_id(), session_id=service.session_id, level=level, device=device,
                           staff_no=service.staff_no, case_no=service.case_no, item_code=service.item_code,
                           ticket_no=service.ticket_no, stamp=stamp)
        held = self.draft
        effects = self._next_step(now, [])
        if self.state in (State.RATING, State.REASONS):  # the session goes on: keep the press meanwhile
            effects.insert(0, Hold(held))
        return effects

    def score(self, dimension: str, level: Level, now: float) -> list[Effect]:
        """An indicator rating on the rating screen; when all are given, go on by itself."""
        due = self.tick(now)
        if self.state is not State.RATING or dimension not in self.rules.dimensions:
            return due
        self.draft = replace(self.draft, scores={**self.draft.scores, dimension: int(Level(level))})
        self.deadline = now + self.rules.reasons_timeout_s  # still there: give them time
        if len(self.draft.scores) == len(self.rules.dimensions):
            return self._next_step(now, [Hold(self.draft)])
        return [Hold(self.draft)]

    def submit(self, reasons: list[str] | tuple[str, ...], text: str, now: float) -> list[Effect]:
        """The reasons screen's submit (or the indicator screen's, with no reasons); too late (the
        session's time up, a tick or not) the rating is already kept as it was."""
        due = self.tick(now)
        if self.state is State.RATING:
            return self._next_step(now, [], scores_done=True)
        if self.state is not State.REASONS:
            return due
        unknown = [r for r in reasons if self.rules.reason_codes and r not in self.rules.reason_codes]
        if unknown:
            raise ValueError(f"unknown reason tag(s): {', '.join(unknown)}")
        text = " ".join(text.split())[:MAX_TEXT]
        self.draft = replace(self.draft, reasons=tuple(dict.fromkeys(reasons)), text=text)
        return self._commit(now, thanks=True)

    # -- time --------------------------------------------------------------------------------

    def tick(self, now: float) -> list[Effect]:
        """Call often (the UI clock, every 0.25 s is plenty): runs the timeouts that are due."""
        return self._misuse_summary(now) + self._timeouts(now)

    def _timeouts(self, now: float) -> list[Effect]:
        if self.deadline is None or now < self.deadline:
            return []
        if self.state is State.INVITED:
            return self._close_service("expired")
        if self.state in (State.RATING, State.REASONS):  # walked away: the rating stays
            return self._commit(now, thanks=False)
        if self.state is State.THANKS:
            self._enter(State.IDLE)
        return []

    def lookup(self, session_id: str) -> Service | None:
        return self.services.get(session_id)

    # -- storage -----------------------------------------------------------------------------

    def unrecorded(self, draft: Draft) -> None:
        """Storage refused the commit of ``draft`` (the window tries again): until it is kept, its
        service says ``unsaved``, never rated (a business system must not close the case on it)."""
        service = self.services.get(draft.session_id)
        if service is not None and service.outcome == "rated":
            service.outcome = "unsaved"

    def recorded(self, draft: Draft) -> None:
        """The commit of ``draft`` is on disk: its service is rated."""
        service = self.services.get(draft.session_id)
        if service is not None and service.outcome == "unsaved":
            service.outcome = "rated"

    # -- inside ------------------------------------------------------------------------------

    def _next_step(self, now: float, effects: list[Effect], scores_done: bool = False) -> list[Effect]:
        draft = self.draft
        if not self.rules.screen:
            return effects + self._commit(now, thanks=True)
        if self.rules.dimensions and not scores_done and self.state is not State.RATING:
            self._enter(State.RATING, now + self.rules.reasons_timeout_s)
            return effects
        if draft.level.is_bad:
            self._enter(State.REASONS, now + self.rules.reasons_timeout_s)
            return effects
        return effects + self._commit(now, thanks=True)

    def _commit(self, now: float, thanks: bool) -> list[Effect]:
        effects: list[Effect] = [Commit(self.draft)]
        self.service.outcome = "rated"
        self.service, self.draft = None, None
        if self.rules.mode == "walk-up":
            self.cooldown_until = now + self.rules.walkup_cooldown_s
        if thanks:
            self._enter(State.THANKS, now + self.rules.thanks_seconds)
            effects.append(Say("thanks"))
        else:
            self._enter(State.IDLE)
        return effects

    def _close_service(self, outcome: str) -> list[Effect]:
        """End whatever is open: a held rating is committed, an unrated invitation expires."""
        effects: list[Effect] = []
        if self.draft is not None:
            effects.append(Commit(self.draft))
            self.service.outcome = "rated"
        elif self.service is not None:
            self.service.outcome = outcome
            kind = "invite_expired" if outcome == "expired" else "session_abandoned"
            effects.append(Log(kind, self.service.staff_no, self.service.session_id, self.service.case_no,
                               self.service.item_code))
        self.service, self.draft = None, None
        if self.state is not State.PAUSED:
            self._enter(State.IDLE)
        return effects

    def _open_service(self, case_no, item_code, staff_no, source, ticket_no=None) -> Service:
        """A new service; it is the called ticket's unless the invitation names another (the ticket
        is then served: the next service needs the next call)."""
        service = Service(self.new_id(), case_no, item_code, staff_no, source, ticket_no=ticket_no or self.called_ticket)
        self.called_ticket = None
        self.service = service
        self.services[service.session_id] = service
        while len(self.services) > self.KEEP_SERVICES:
            self.services.popitem(last=False)
        return service

    def _flag(self, why: str, level: Level, device: InputDevice, stamp: object, now: float) -> list[Effect]:
        """The press as misuse: its own event, or, past MISUSE_BURST in this window, a count for
        the window's ``flood`` event (``_misuse_summary``)."""
        flag = Flag(why, level, device, self.staff_no, self.service.session_id if self.service else None, stamp)
        if self.misuse_since is None:
            self.misuse_since = now
        if self.misuse_kept < MISUSE_BURST:
            self.misuse_kept += 1
            return [flag]
        self.misuse_suppressed[why] = self.misuse_suppressed.get(why, 0) + 1
        self.misuse_last = flag
        return []

    def _misuse_summary(self, now: float) -> list[Effect]:
        """Once the misuse window is over: its ``flood`` event if presses were left out of it."""
        if self.misuse_since is None or now < self.misuse_since + MISUSE_WINDOW_S:
            return []
        last, suppressed = self.misuse_last, tuple(self.misuse_suppressed.items())
        self.misuse_since, self.misuse_kept, self.misuse_suppressed, self.misuse_last = None, 0, {}, None
        return [replace(last, why="flood", suppressed=suppressed)] if last else []

    def _enter(self, state: State, deadline: float | None = None) -> None:
        self.state, self.deadline = state, deadline


def _indicator(value: object) -> bool:
    """Whether ``value`` can name an indicator in a rating's scores."""
    try:
        return bool(text(MAX_INDICATOR)(value))
    except (TypeError, ValueError):
        return False


def _code(name: str, value: object, limit: int = MAX_CODE) -> str:
    """``value`` if a record's field ``name`` can hold it, else InvalidRecord naming the field."""
    try:
        return text(limit)(value)
    except (TypeError, ValueError) as exc:
        raise InvalidRecord({name: str(exc)}) from None


def _ticket(value: object) -> str:
    return _code("ticket_no", value, MAX_TICKET)
