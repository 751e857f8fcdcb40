"""The window: its rating session with the effects carried out, for every front end to share.

The kiosk's screens, a headless box-only terminal, the badge readers and the local invite API all
talk to one ``Window``. Each call runs the pure session rules (``terminal.core.session``), makes
the resulting records durable (``Recorder.carry_out``) and only then tells the listeners, so a
screen that says 感谢您的评价 always follows a committed rating. Calls come from several threads
(the UI loop, the invite API, device readers); a lock keeps them one at a time.

What a device thread or a timer calls never raises (``_survives``): whatever a record's content or
a bug does, it is logged with its traceback, counted for the heartbeat (``errors``), and the box's
thread, the badge reader and the UI's clock go on taking the next press.
"""

from __future__ import annotations

import functools
import logging
import threading
import time
from dataclasses import dataclass, replace
from typing import Callable

from terminal.clock import SystemClock
from terminal.config import Config
from terminal.content import Content, StaffMember
from terminal.core.channels import InputDevice
from terminal.core.levels import Level
from terminal.core.session import Commit, Hold, Rules, Say, Service, Session, SessionRefused, State
from terminal.recorder import NotRecorded, Recorder
from terminal.store import Store, StoreError

log = logging.getLogger("rating-terminal")

__all__ = ["Window", "SwipeResult", "SessionRefused", "State"]


@dataclass(frozen=True)
class SwipeResult:
    """What a badge read did (login, logout or nothing), for the staff member at the counter."""
    action: str  # login | logout | unknown
    staff: StaffMember | None = None

    @property
    def known(self) -> bool:
        return self.action != "unknown"

    @property
    def message(self) -> str:
        """For the staff member at the counter (the kiosk shows it translated)."""
        if not self.known:
            return "工作证未登记，请联系管理员"
        return f"{self.staff.name} {'已登录' if self.action == 'login' else '已退出'}"


RETRY_S = 5.0  # how often records that storage refused are tried again
MAX_UNRECORDED = 1000  # records kept in memory while storage refuses (ratings kept before events)


def _bounded(effects: list) -> list:
    """At most MAX_UNRECORDED records: events (a child hammering a faulted box) give way first."""
    if len(effects) <= MAX_UNRECORDED:
        return effects
    ratings = [e for e in effects if isinstance(e, (Commit, Hold))][-MAX_UNRECORDED:]
    room = MAX_UNRECORDED - len(ratings)
    events = [e for e in effects if not isinstance(e, (Commit, Hold))][-room:] if room else []
    kept = {id(e) for e in ratings + events}
    log.error("%d record(s) dropped while storage refuses", len(effects) - len(kept))
    return [e for e in effects if id(e) in kept]


def _survives(fallback=None):
    """For what device threads and timers call: an unexpected failure is logged, counted and
    survived (returning ``fallback``), so one bad record never stops the thread that reads the box."""
    def wrap(method):
        @functools.wraps(method)
        def guarded(self, *args, **kwargs):
            try:
                return method(self, *args, **kwargs)
            except Exception as exc:
                self._survived(method.__name__, exc)
                return fallback
        return guarded
    return wrap


class Window:
    def __init__(self, config: Config, store: Store, content: Content | None,
                 clock: SystemClock | None = None, monotonic: Callable[[], float] = time.monotonic,
                 screen: bool = True):
        self.config, self.store = config, store
        self.screen = screen  # False: a box-only terminal (see Rules.screen)
        self.recorder = Recorder(config, store, clock)
        self.monotonic = monotonic
        self.lock = threading.RLock()
        self.listeners: list[Callable[[str, object], None]] = []  # (what, detail): state | say | fault
        self.fault: str | None = None  # why ratings cannot be recorded now; None again once they can
        self.unrecorded: list = []  # records storage refused, in order: tried again every RETRY_S
        self._retry_at = 0.0
        self.errors = 0  # failures survived (see _survives), reported in the heartbeat
        self.last_level: Level | None = None  # of the last committed rating: the thank-you repeats it
        self.last_rating_id: str | None = None  # and its id, for the QR code to add to it by phone
        self._devices: list[dict] | None = None  # as last written for the heartbeat
        self.content = content
        self.session = Session(self._rules(content))
        self._next_rules: Rules | None = None  # from content that came mid-session (see _calm_rules)
        self.retired = False  # takes no more input: the process leaves (see retire_when_calm)
        self._use_content(content)
        self._carry_out([])  # the recorder's catch-up (held presses): out of service while storage refuses it
        if config.kiosk.staff_no:  # a window without a badge reader: this staff member is on duty
            self._run(self.session.swipe, config.kiosk.staff_no, self.monotonic())

    # -- what front ends call ----------------------------------------------------------------

    @property
    def state(self) -> State:
        return self.session.state

    @property
    def staff(self) -> StaffMember | None:
        no = self.session.staff_no
        if no is None:
            return None
        found = self.content.staff.get(no) if self.content else None
        return found or StaffMember(staff_no=no, name=no, window=self.config.terminal.window)

    @property
    def rules(self) -> Rules:
        return self.session.rules

    @property
    def rating_for_phone(self) -> str | None:
        """The rating a QR code on screen lets the rater add to by phone: the one being made on the
        reasons screen (its id is the rating's), the one just made on the thank-you screen."""
        if self.state is State.REASONS and self.session.draft is not None:
            return self.session.draft.id
        if self.state is State.THANKS:
            return self.last_rating_id
        return None

    @_survives(SwipeResult("unknown"))
    def swipe(self, badge_id: str) -> SwipeResult:
        """A badge was read: log in, log out (same badge) or switch; an unknown badge changes nothing."""
        badge_id = badge_id.strip()
        holders = [s for s in (self.content.staff.values() if self.content else ()) if s.badge_id == badge_id
                   and badge_id]
        if len(holders) > 1:  # a card reissued without clearing the old entry: whose services would it be?
            log.error("badge (ending …%s) is on %d roster entries (%s): refused until the roster names one",
                      badge_id[-4:], len(holders), ", ".join(s.staff_no for s in holders))
            return SwipeResult("unknown")
        if not holders:
            log.warning("unknown badge swiped (ending …%s)", badge_id[-4:])
            return SwipeResult("unknown")
        member = holders[0]
        with self.lock:
            leaving = member.staff_no == self.session.staff_no
            self._run(self.session.swipe, member.staff_no, self.monotonic())
        return SwipeResult("logout" if leaving else "login", member)

    @_survives()
    def press(self, level: Level | int, device: InputDevice) -> None:
        with self.lock:
            self._run(self.session.press, Level(level), device, self.monotonic(), self.recorder.stamp())

    def retire_when_calm(self) -> bool:
        """Take no more input from now on if no session is in progress (paused or idle) and every
        record is kept, and say whether the window is retired: its process is about to leave (the
        terminal was enrolled again, ``Reenrollment``). Never mid-session, so no rating carries parts
        of two identities, and never with records waiting in memory for storage; not on the
        thank-you screen either, which a rater may still be reading (or scanning its QR code)."""
        with self.lock:
            if not self.retired and self.session.state in (State.PAUSED, State.IDLE) and not self.unrecorded \
                    and not self.fault:
                self.retired = True
                log.warning("window retired: no more input until the terminal starts again")
            return self.retired

    def invite(self, *, case_no: str | None = None, item_code: str | None = None, staff_no: str | None = None,
               source: str = "api", ticket_no: str | None = None) -> Service:
        """Open a rating session (SessionRefused: paused or busy)."""
        with self.lock:
            if self.fault:
                raise SessionRefused("out_of_service", f"the terminal cannot record ratings: {self.fault}")
            if self.retired:
                raise SessionRefused("out_of_service", "the terminal is starting again as newly enrolled")
            service, effects = self.session.invite(self.monotonic(), case_no=case_no, item_code=item_code,
                                                   staff_no=staff_no, source=source, ticket_no=ticket_no)
            self._carry_out(effects)
            log.info("session: invited (%s%s)", source, f", case {case_no}" if case_no else "")
            return service

    def call(self, ticket_no: str) -> None:
        """The queue system called a ticket to this window (SessionRefused when not serving)."""
        with self.lock:
            self._run(self.session.call, ticket_no, self.monotonic())

    def pause(self) -> None:
        """暂停服务 from the queue system; the staff member stays logged in."""
        with self.lock:
            self._run(self.session.pause, self.monotonic())

    def resume(self) -> None:
        with self.lock:
            self._run(self.session.resume, self.monotonic())

    @_survives()
    def device_key(self, kind: str, key: int, device: InputDevice) -> str | None:
        """A key on a button box or GPIO buttons: 1..5 rate, 6 is the staff's 请评价 key.
        Returns why nothing happened (a stuck key, a refused invitation), or None."""
        if kind == "stuck":
            log.warning("%s key %d is held down (stuck?)", device.value, key)
            return f"{device.value} key {key} is held down"
        if key == 6:
            try:
                self.invite(source="key")
            except SessionRefused as exc:
                log.info("请评价 key: %s", exc)
                return str(exc)
            return None
        self.press(key, device)
        return None

    @_survives()
    def score(self, dimension: str, level: Level | int) -> None:
        with self.lock:
            self._run(self.session.score, dimension, Level(level), self.monotonic())

    @_survives()
    def submit(self, reasons: list[str], text: str = "") -> None:
        with self.lock:
            self._run(self.session.submit, reasons, text, self.monotonic())

    @_survives()
    def logout(self) -> None:
        with self.lock:
            self._run(self.session.logout, self.monotonic())

    @_survives()
    def tick(self) -> None:
        with self.lock:
            if (self.unrecorded or self.fault) and self.monotonic() >= self._retry_at:
                self._carry_out([])  # storage may work again (a lock released, room made)
            self._run(self.session.tick, self.monotonic())

    def report(self, session_id: str) -> dict | None:
        with self.lock:
            service = self.session.lookup(session_id)
            return service.report() if service else None

    @_survives()
    def note_devices(self, states: list[dict]) -> None:
        """The button box's (and other devices') health, for the sync daemon's heartbeat; written
        only when it changes, without the ever-changing seconds since the box was heard."""
        lasting = [{k: v for k, v in state.items() if k != "seconds_since_heard"} for state in states]
        if lasting == self._devices:
            return
        try:
            self.store.set_state(devices=lasting)
            self._devices = lasting
        except StoreError as exc:
            log.warning("device state not kept: %s", exc)

    @_survives()
    def reload(self, content: Content | None) -> None:
        """New content from sync: roster and settings now; new rules from the next idle moment."""
        with self.lock:
            self.content = content
            self._use_content(content)
            self._next_rules = self._rules(content)
            self._calm_rules()
        self._tell("state", self.session.state)

    # -- inside ------------------------------------------------------------------------------

    def _calm_rules(self) -> None:
        """Rules that came with content during a session take over once it is over (paused, idle or
        thanks): a session keeps the rules it began with, and the next one never starts with stale ones."""
        if self._next_rules is not None and self.session.state in (State.PAUSED, State.IDLE, State.THANKS):
            self.session.rules, self._next_rules = self._next_rules, None

    def _run(self, step, *args) -> None:
        if self.retired:  # the process is leaving: a press now would be a session it cannot finish
            if step.__name__ != "tick":
                log.warning("session: %s while the terminal starts again: not taken", step.__name__)
            return
        before = self.session.state
        effects = step(*args)
        self._calm_rules()
        if effects or self.session.state is not before:  # a quiet tick tells nobody anything
            self._carry_out(effects)
        if self.session.state is not before:
            log.info("session: %s -> %s", before.value, self.session.state.value)

    def _carry_out(self, effects) -> None:
        """Make the effects' records durable, then tell the front ends. While storage refuses, the
        records wait in ``unrecorded`` in order (newer ones behind them), a rating's service does
        not say rated, nobody is thanked and invitations are refused (``fault``); each tick after
        RETRY_S tries again, and the terminal is back in service once they are all kept."""
        effects = self.unrecorded + effects  # the recorder keeps records in order and hands back the rest
        try:
            rest = self.recorder.carry_out(effects)
        except NotRecorded as exc:  # full, locked or broken storage: never thank for a rating not kept
            self._kept([e for e in effects if not any(e is f for f in exc.effects)])
            self._not_recorded(exc)
            return
        self._kept(effects)
        if self.fault:
            log.warning("storage works again: %d record(s) kept late, back in service", len(effects) - len(rest))
            self.fault, self.unrecorded = None, []
            self._tell("fault", None)
        for effect in rest:
            if isinstance(effect, Say) and effect.prompt == "call":
                self._tell("call", effect.ticket_no)  # shown and announced: 请 A012 号到…窗口办理
            elif isinstance(effect, Say):
                self._tell("say", effect.prompt)
        self._tell("state", self.session.state)

    def _kept(self, records: list) -> None:
        """These records are on disk: a rating among them is rated (and the thank-you's to show)."""
        for effect in records:
            if isinstance(effect, Commit):
                self.last_level, self.last_rating_id = effect.draft.level, effect.draft.id
                self.session.recorded(effect.draft)

    def _not_recorded(self, exc: NotRecorded) -> None:
        self.unrecorded = _bounded(exc.effects)
        self._retry_at = self.monotonic() + RETRY_S
        for effect in self.unrecorded:
            if isinstance(effect, Commit):
                self.session.unrecorded(effect.draft)
        if self.fault is None:
            log.error("cannot record: %s", exc)
        self.fault = str(exc)
        self._tell("fault", self.fault)

    def _survived(self, what: str, exc: Exception) -> None:
        self.errors += 1
        log.error("%s failed and was survived (%d so far): %s: %s", what, self.errors, type(exc).__name__, exc,
                  exc_info=exc)
        try:
            self.store.set_state(errors={"count": self.errors, "last": f"{what}: {type(exc).__name__}: {exc}"[:300]})
        except Exception:  # the store may be what failed
            pass

    def _tell(self, what: str, detail: object) -> None:
        for listener in list(self.listeners):
            try:
                listener(what, detail)
            except Exception:  # a broken screen must not lose the session
                log.exception("listener failed on %s", what)

    def _use_content(self, content: Content | None) -> None:
        window = content.windows.get(self.config.terminal.window, {}) if content else {}
        self.recorder.dept_code = window.get("department")

    def _rules(self, content: Content | None) -> Rules:
        if content is None:
            return Rules(screen=self.screen)
        codes = tuple(t["code"] for t in content.reason_tags if isinstance(t, dict) and "code" in t)
        try:
            return replace(Rules.from_settings(content.settings, codes), screen=self.screen)
        except ValueError as exc:
            log.error("content settings rejected, defaults used: %s", exc)
            return Rules(reason_codes=codes, screen=self.screen)
