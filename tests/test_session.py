"""The session rules, state by state, with time stepped by hand (pure core: no Kivy, no I/O)."""

import itertools

import pytest

from terminal.core.channels import InputDevice
from terminal.core.checks import InvalidRecord
from terminal.core.levels import Level
from terminal.core.session import (Commit, Draft, Flag, Hold, Log, Rules, Say, Session, SessionRefused,
                                   State)

TOUCH, BOX = InputDevice.TOUCHSCREEN, InputDevice.BUTTON_BOX
GOOD, BAD = Level.VERY_SATISFIED, Level.VERY_DISSATISFIED


def session(**rules) -> Session:
    ids = (f"id{n:04d}" for n in itertools.count())
    return Session(Rules(**rules), new_id=lambda: next(ids))


def logged_in(**rules) -> Session:
    s = session(**rules)
    s.swipe("SZ0101", 0)
    return s


def kinds(effects) -> list:
    return [type(e).__name__ + (f":{e.kind}" if isinstance(e, Log) else f":{e.why}" if isinstance(e, Flag)
                                else f":{e.prompt}" if isinstance(e, Say) else "") for e in effects]


def committed(effects) -> Draft:
    (draft,) = [e.draft for e in effects if isinstance(e, Commit)]
    return draft


# -- paused ----------------------------------------------------------------------------------------

def test_paused_takes_no_rating_and_refuses_invitations():
    s = session()
    assert s.state is State.PAUSED
    effects = s.press(GOOD, BOX, 1)
    assert kinds(effects) == ["Flag:paused"] and effects[0].staff_no is None
    with pytest.raises(SessionRefused) as refused:
        s.invite(1, case_no="C1")
    assert refused.value.code == "paused"
    assert s.state is State.PAUSED


# -- login, logout, switch ------------------------------------------------------------------------

def test_badge_logs_in_a_second_swipe_logs_out_another_switches():
    s = session()
    assert kinds(s.swipe("SZ0101", 0)) == ["Log:login"] and s.state is State.IDLE and s.staff_no == "SZ0101"
    effects = s.swipe("SZ0102", 5)
    assert kinds(effects) == ["Log:logout", "Log:login"]
    assert [e.staff_no for e in effects] == ["SZ0101", "SZ0102"] and s.staff_no == "SZ0102"
    assert kinds(s.swipe("SZ0102", 9)) == ["Log:logout"] and s.state is State.PAUSED and s.staff_no is None
    assert s.logout(10) == []  # nobody to log out


def test_a_login_under_a_staff_number_no_record_can_carry_is_refused():
    """Every rating made under it would fail to be recorded: refused at the login, nothing changes."""
    s = logged_in()
    for bad in ("S" * 65, "", "SZ\x07", 101):
        with pytest.raises(InvalidRecord, match="staff_no"):
            s.swipe(bad, 1)
        assert s.state is State.IDLE and s.staff_no == "SZ0101"


def test_logout_during_reasons_keeps_the_held_rating():
    s = logged_in()
    s.invite(1)
    s.press(BAD, TOUCH, 2)
    effects = s.logout(3)
    assert kinds(effects) == ["Commit", "Log:logout"]
    assert committed(effects).reasons_missing and s.state is State.PAUSED


def test_switch_during_an_unanswered_invitation_abandons_it():
    s = logged_in()
    service, _ = s.invite(1, case_no="C1")
    effects = s.swipe("SZ0102", 2)
    assert kinds(effects) == ["Log:session_abandoned", "Log:logout", "Log:login"]
    assert s.lookup(service.session_id).report()["outcome"] == "abandoned"


# -- invite mode ----------------------------------------------------------------------------------

def test_invite_mode_idle_press_is_flagged_not_counted():
    s = logged_in()
    effects = s.press(GOOD, TOUCH, 1)
    assert kinds(effects) == ["Flag:no_session"] and effects[0].staff_no == "SZ0101"
    assert s.state is State.IDLE


def test_good_rating_after_invitation_commits_and_thanks():
    s = logged_in()
    service, effects = s.invite(1, case_no="C-2026-001", item_code="ITEM-1")
    assert kinds(effects) == ["Log:invited", "Say:invite"] and s.state is State.INVITED
    effects = s.press(GOOD, TOUCH, 3, stamp="t3")
    assert kinds(effects) == ["Commit", "Say:thanks"] and s.state is State.THANKS
    draft = committed(effects)
    assert (draft.level, draft.case_no, draft.item_code, draft.staff_no, draft.session_id, draft.stamp) == \
        (GOOD, "C-2026-001", "ITEM-1", "SZ0101", service.session_id, "t3")
    assert s.lookup(service.session_id).report() == {
        "session_id": service.session_id, "case_no": "C-2026-001", "item_code": "ITEM-1", "staff_no": "SZ0101",
        "ticket_no": None, "source": "api", "outcome": "rated", "rated": True}  # whether, never how (三不)


def test_only_the_first_press_counts_later_ones_are_flagged():
    s = logged_in()
    s.invite(1)
    s.press(BAD, BOX, 2)
    assert s.state is State.REASONS
    assert kinds(s.press(GOOD, BOX, 2.1)) == ["Flag:repeat"]
    s.submit(["slow"], "", 3)
    assert kinds(s.press(GOOD, BOX, 3.5)) == ["Flag:during_thanks"]
    s.tick(3 + 3.0)
    assert s.state is State.IDLE
    assert kinds(s.press(GOOD, BOX, 7)) == ["Flag:no_session"]


def test_invitation_expires_after_its_press_window():
    s = logged_in(invite_timeout_s=10)
    service, _ = s.invite(100, case_no="C9")
    assert s.tick(109.9) == [] and s.state is State.INVITED
    effects = s.tick(110)
    assert kinds(effects) == ["Log:invite_expired"] and effects[0].case_no == "C9"
    assert s.state is State.IDLE and s.lookup(service.session_id).outcome == "expired"
    assert kinds(s.press(GOOD, BOX, 111)) == ["Flag:no_session"]


def test_invite_while_a_session_is_open_is_refused_but_during_thanks_starts_the_next():
    s = logged_in()
    s.invite(1)
    with pytest.raises(SessionRefused) as refused:
        s.invite(2)
    assert refused.value.code == "busy"
    s.press(GOOD, TOUCH, 3)
    assert s.state is State.THANKS
    s.invite(4, case_no="next")
    assert s.state is State.INVITED and s.service.case_no == "next"


def test_an_invitation_may_name_only_the_staff_member_logged_in():
    s = logged_in()
    with pytest.raises(SessionRefused) as refused:
        s.invite(1, staff_no="SZ0102")  # a token holder pinning the next rating on a colleague
    assert refused.value.code == "staff_not_here" and s.state is State.IDLE
    s.invite(1, staff_no="SZ0101")
    assert committed(s.press(GOOD, TOUCH, 2)).staff_no == "SZ0101"


@pytest.mark.parametrize("field, value", [("case_no", "C\x7f1"), ("case_no", "\ud800"), ("item_code", "a\x00b"),
                                          ("case_no", "办" * 51), ("staff_no", "")])
def test_an_invitation_holds_only_text_a_record_can(field, value):
    s = logged_in()
    with pytest.raises(InvalidRecord) as refused:
        s.invite(1, **{field: value})
    assert field in refused.value.problems and s.state is State.IDLE


# -- bad ratings: reasons, walk-away --------------------------------------------------------------

def test_bad_rating_asks_reasons_and_records_them():
    s = logged_in(reason_codes=("attitude", "slow"))
    s.invite(1)
    effects = s.press(BAD, TOUCH, 2)
    assert kinds(effects) == ["Hold"] and s.state is State.REASONS  # held at once, not yet committed
    effects = s.submit(["slow", "attitude", "slow"], "  等了 很久\n", 5)
    draft = committed(effects)
    assert draft.reasons == ("slow", "attitude") and draft.text == "等了 很久" and not draft.reasons_missing
    assert kinds(effects) == ["Commit", "Say:thanks"] and s.state is State.THANKS


def test_unknown_reason_tag_is_an_error_and_changes_nothing():
    s = logged_in(reason_codes=("attitude",))
    s.invite(1)
    s.press(BAD, TOUCH, 2)
    with pytest.raises(ValueError, match="bogus"):
        s.submit(["bogus"], "", 3)
    assert s.state is State.REASONS


def test_walking_away_from_reasons_still_records_the_rating_with_reasons_missing():
    s = logged_in(reasons_timeout_s=30)
    s.invite(1)
    s.press(Level.DISSATISFIED, TOUCH, 2)
    assert s.tick(31.9) == []
    effects = s.tick(32)
    draft = committed(effects)
    assert draft.level is Level.DISSATISFIED and draft.reasons_missing
    assert kinds(effects) == ["Commit"] and s.state is State.IDLE  # nobody there to thank


def test_without_a_screen_a_bad_press_is_the_whole_rating_and_is_thanked_at_once():
    """A box-only terminal: no reasons or indicator screen to wait 30 s on while the next citizen queues."""
    s = logged_in(screen=False, dimensions=("服务效率",), reason_codes=("slow",))
    s.invite(1)
    effects = s.press(Level.VERY_DISSATISFIED, BOX, 2)
    draft = committed(effects)
    assert draft.level is Level.VERY_DISSATISFIED and draft.reasons_missing and draft.scores == {}
    assert kinds(effects) == ["Commit", "Say:thanks"] and s.state is State.THANKS
    s.tick(2 + 3)  # the thank-you's seconds
    assert s.state is State.IDLE


def test_low_ratings_take_the_same_path_as_high_ones():
    for level in Level:
        s = logged_in()
        s.invite(1)
        effects = s.press(level, BOX, 2)
        assert isinstance(effects[0], Hold if level.is_bad else Commit) and effects[0].draft.level is level
        if level.is_bad:
            effects = s.submit([], "", 3)  # even with nothing chosen: recorded, flagged as such
        assert committed(effects).level is level


# -- indicator ratings ----------------------------------------------------------------------------

def test_indicator_ratings_when_configured():
    s = logged_in(dimensions=("服务效率", "服务水平", "服务态度"))
    s.invite(1)
    assert kinds(s.press(GOOD, TOUCH, 2)) == ["Hold"] and s.state is State.RATING
    s.score("服务效率", Level.SATISFIED, 3)
    s.score("不存在", Level.SATISFIED, 3)  # not configured: ignored
    s.score("服务水平", Level.VERY_SATISFIED, 4)
    effects = s.score("服务态度", Level.VERY_SATISFIED, 5)
    assert committed(effects).scores == {"服务效率": 4, "服务水平": 5, "服务态度": 5}
    assert s.state is State.THANKS


def test_indicators_then_reasons_for_a_bad_rating_and_walk_away_keeps_partial_scores():
    s = logged_in(dimensions=("服务效率", "服务态度"), reasons_timeout_s=20)
    s.invite(1)
    s.press(BAD, TOUCH, 2)
    s.score("服务态度", Level.VERY_DISSATISFIED, 10)
    assert s.tick(29) == []  # each answer gives the rater more time
    s.submit([], "", 12)  # skip the rest of the indicators
    assert s.state is State.REASONS
    draft = committed(s.tick(32))
    assert draft.scores == {"服务态度": 1} and draft.reasons_missing


# -- walk-up mode ---------------------------------------------------------------------------------

def test_walk_up_mode_is_always_open_with_a_cooldown():
    s = logged_in(mode="walk-up", walkup_cooldown_s=5, thanks_seconds=3)
    effects = s.press(GOOD, BOX, 10)
    assert kinds(effects) == ["Commit", "Say:thanks"]
    assert committed(effects).session_id and s.lookup(committed(effects).session_id).source == "walk-up"
    assert kinds(s.press(GOOD, BOX, 11)) == ["Flag:during_thanks"]
    s.tick(13)
    assert s.state is State.IDLE
    assert kinds(s.press(GOOD, BOX, 14)) == ["Flag:cooldown"]
    assert kinds(s.press(Level.SATISFIED, BOX, 15)) == ["Commit", "Say:thanks"]


def test_walk_up_mode_still_needs_someone_logged_in():
    s = session(mode="walk-up")
    assert kinds(s.press(GOOD, BOX, 1)) == ["Flag:paused"]


# -- settings -------------------------------------------------------------------------------------

def test_rules_from_content_settings_and_their_errors():
    rules = Rules.from_settings({"rating_mode": "walk-up", "dimensions": ["服务效率"], "invite_timeout_s": 15,
                                 "reasons_timeout_s": 30, "thanks_seconds": 3, "walkup_cooldown_s": 5},
                                ("attitude",))
    assert rules.mode == "walk-up" and rules.dimensions == ("服务效率",) and rules.invite_timeout_s == 15.0
    assert Rules.from_settings({}) == Rules()
    with pytest.raises(ValueError, match="rating_mode 'sometimes'.*invite_timeout_s"):
        Rules.from_settings({"rating_mode": "sometimes", "invite_timeout_s": -1})


def test_remembers_a_bounded_number_of_services():
    s = logged_in(mode="walk-up", walkup_cooldown_s=0, thanks_seconds=0)
    first = committed(s.press(GOOD, BOX, 1)).session_id
    for t in range(2, Session.KEEP_SERVICES + 5):
        s.tick(t)
        s.press(GOOD, BOX, t)
    assert len(s.services) == Session.KEEP_SERVICES and s.lookup(first) is None


def test_the_rules_import_no_user_interface():
    """The same core drives the touchscreen and a headless box-only terminal."""
    import subprocess
    import sys
    code = "import sys, terminal.core.session, terminal.recorder; print(sorted(m for m in sys.modules if m.startswith('kivy')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"


# -- the queue system (排队叫号) ------------------------------------------------------------------

def test_a_called_ticket_is_announced_and_carried_by_the_next_services_rating_only():
    s = logged_in()
    effects = s.call("A012", 1.0)
    assert effects == [Log("ticket_called", "SZ0101", ticket_no="A012"), Say("call", "A012")]
    service, effects = s.invite(2.0, case_no="C-1")
    assert service.ticket_no == "A012" and effects[0].ticket_no == "A012"  # the invited event names it
    assert committed(s.press(Level.VERY_SATISFIED, InputDevice.TOUCHSCREEN, 3.0)).ticket_no == "A012"
    s.tick(10.0)
    service, _ = s.invite(11.0)  # the ticket was served: the next service has none until the next call
    assert service.ticket_no is None
    s.tick(30.0)
    s.call("A013", 31.0)
    service, _ = s.invite(32.0, ticket_no="B007")  # the invitation's own ticket wins
    assert service.ticket_no == "B007" and service.report()["ticket_no"] == "B007"
    with pytest.raises(InvalidRecord):
        s.call("A" * 17, 40.0)


def test_the_queue_system_pauses_and_resumes_the_window_with_its_staff_still_logged_in():
    s = logged_in()
    s.invite(1.0, case_no="C-2")
    effects = s.pause(2.0)
    assert s.state is State.PAUSED and s.staff_no == "SZ0101"
    assert kinds(effects) == ["Log:session_abandoned", "Log:queue_paused"]
    assert kinds(s.press(Level.SATISFIED, InputDevice.BUTTON_BOX, 3.0)) == ["Flag:paused"]
    with pytest.raises(SessionRefused) as refused:
        s.invite(4.0)
    assert refused.value.code == "paused" and "not serving" in str(refused.value)
    with pytest.raises(SessionRefused):
        s.call("A014", 5.0)
    assert s.pause(6.0) == []  # already paused: nothing more
    assert kinds(s.resume(7.0)) == ["Log:queue_resumed"] and s.state is State.IDLE
    assert s.resume(8.0) == []
    s.pause(9.0)
    s.swipe("SZ0101", 10.0)  # the badge still logs out, and the pause goes with it
    assert (s.state, s.staff_no, s.queue_paused) == (State.PAUSED, None, False)
    assert s.resume(11.0) == [] and s.state is State.PAUSED  # resume never logs anyone in


def test_a_press_after_the_time_is_up_is_not_the_rating_even_without_a_tick():
    """Timeouts fall due at the press itself: on the kiosk the clock ticks on the UI thread, and a
    stalled UI let a press 25 s after a 10 s invitation count as the case's rating."""
    s = logged_in(invite_timeout_s=10)
    service, _ = s.invite(0, case_no="CASE-7")
    effects = s.press(GOOD, BOX, 25)
    assert kinds(effects) == ["Log:invite_expired", "Flag:no_session"]
    assert service.outcome == "expired" and s.state is State.IDLE
    s.invite(30, case_no="CASE-8")
    s.press(BAD, TOUCH, 31)  # to the reasons screen, 30 s to give them
    late = s.submit(["slow"], "", 70)
    assert committed(late).reasons == () and s.state is State.IDLE  # kept as it was when time ran out


def test_indicator_names_a_record_cannot_hold_are_refused():
    """An indicator's score is keyed by its name in the rating (at most 32 characters of text): a
    longer name made each rating scored on it fail to be recorded while the session said rated."""
    from terminal.core.rating import Rating
    from conftest import make_rating
    for dims in (["服" * 33], ["服务效率\x1b"]):
        with pytest.raises(ValueError, match="dimensions"):
            Rules.from_settings({"dimensions": dims})
    longest = Rules.from_settings({"dimensions": ["服" * 32]}).dimensions[0]
    with pytest.raises(ValueError, match="different"):  # scored once under its one key: never all given
        Rules.from_settings({"dimensions": ["服务效率", "服务态度", "服务效率"]})
    assert isinstance(make_rating(scores={longest: 5}), Rating)
