"""Default ratings (默认评价): a service invited and left unrated for 7 natural days gets 基本满意 on
channel 7, once; a real rating is never overwritten, and a late one supersedes the default."""

import datetime

import pytest
from django.core.management import call_command

from central.ratings import defaults, stats
from central.ratings.models import Policy, Rating
from terminal.core.levels import Level

from conftest import CST, ingest_events, ingest_ratings, make_event, make_rating, race

pytestmark = [pytest.mark.central, pytest.mark.django_db]
NOW = datetime.datetime.now(CST)  # the command runs at the real time too


def invite(node, days_ago: float, case_no=None, session_id=None):
    event = make_event("invited", terminal_id=node.terminal_id, now=NOW - datetime.timedelta(days=days_ago),
                       session_id=session_id or f"s-{days_ago}-{case_no}", case_no=case_no, item_code="ITEM-1")
    assert ingest_events(node, event) == ["accepted"]
    return event


def defaults_made():
    return Rating.objects.filter(device="system")


def test_unrated_after_seven_days_gets_one_default_rating(hall):
    old = invite(hall, 7.5, case_no="C-OLD")
    invite(hall, 6.9, case_no="C-RECENT")  # not yet seven days
    outcome = defaults.apply(NOW)
    assert (outcome.created, outcome.superseded) == (1, 0)
    made = defaults_made().get()
    assert (made.level, made.channel, made.case_no, made.session_id) == (3, 7, "C-OLD", old.session_id)
    assert made.rated_at == datetime.datetime.fromisoformat(old.at) + datetime.timedelta(days=7)
    assert (made.window_code, made.staff_no, made.item_code) == ("W01", "SZ0101", "ITEM-1")
    assert defaults.apply(NOW).created == 0  # idempotent
    call_command("default_ratings", stdout=open("/dev/null", "w"))
    assert defaults_made().count() == 1


def test_the_same_case_invited_twice_gets_one_default(hall):
    invite(hall, 9, case_no="C-TWICE", session_id="first")
    invite(hall, 8, case_no="C-TWICE", session_id="second")
    assert defaults.apply(NOW).created == 1
    assert defaults_made().get().session_id == "first"


def test_a_rated_service_gets_no_default_by_case_or_by_session(hall):
    by_case = invite(hall, 10, case_no="C-RATED")
    by_session = invite(hall, 10, session_id="sess-rated")
    ingest_ratings(hall, make_rating(Level.SATISFIED, terminal_id=hall.terminal_id, case_no="C-RATED"),
                   make_rating(Level.VERY_SATISFIED, terminal_id=hall.terminal_id, session_id=by_session.session_id))
    assert by_case.case_no and defaults.apply(NOW).created == 0


def test_a_late_real_rating_supersedes_the_default_and_is_untouched(hall):
    event = invite(hall, 8, case_no="C-LATE")
    defaults.apply(NOW)
    real = make_rating(Level.VERY_DISSATISFIED, terminal_id=hall.terminal_id, case_no="C-LATE",
                       session_id=event.session_id, reasons=("attitude",))
    ingest_ratings(hall, real)  # a terminal back after more than a week offline: it takes the case's place
    default = defaults_made().get()
    assert default.excluded and real.id in default.excluded_why
    stored = Rating.objects.get(rating_id=real.id)
    assert (stored.level, stored.excluded, stored.channel) == (1, False, 4)
    assert defaults.apply(NOW).superseded == 0
    day = default.rated_at.astimezone(CST).date()  # a day before the real rating's
    assert stats.totals(stats.Query(day, day)).total == 0  # the default no longer counts
    assert stats.totals(stats.Query(day, NOW.date())).levels == [0, 0, 0, 0, 1]
    assert Rating.objects.filter(case_no="C-LATE").count() == 2  # both kept


def test_the_configuration_is_respected(hall):
    Policy.objects.update_or_create(pk=1, defaults={"default_after_days": 3, "default_level": int(Level.SATISFIED),
                                                    "default_channel": 5})
    invite(hall, 3.5, case_no="C-CONF")
    invite(hall, 2.5, case_no="C-TOO-NEW")
    assert defaults.apply(NOW).created == 1
    made = defaults_made().get()
    assert (made.case_no, made.level, made.channel) == ("C-CONF", 4, 5)


def test_an_invite_naming_another_windows_case_gives_that_case_no_default_here(hall):
    """A case its business system reported counts only at its own window (``ingest.settle_cases``):
    a W01 terminal's invitation naming W02's case once made the case's default rating W01's, with
    W01's staff member, and W02 lost it."""
    from central.ratings import auth, cases
    done = NOW - datetime.timedelta(days=10)
    cases.report(auth.add_system("业务系统"), {
        "case_no": "C-W02", "window": "W02", "status": "completed", "accepted_at": (done - datetime.timedelta(hours=1)).isoformat(),
        "completed_at": done.isoformat()})
    invite(hall, 10, case_no="C-W02")
    assert defaults.apply(NOW).created == 1
    made = defaults_made().get()
    assert (made.case_no, made.window_code, made.staff_no, made.case_counted) == ("C-W02", "W02", "", True)


@pytest.mark.django_db(transaction=True)
def test_a_default_made_while_a_real_rating_of_the_case_is_stored_is_not_made_nor_sent_upward(hall):
    """A phone rates a case seven days done while the default run is under way: the run's default
    loses the case's place to it (the unique place, not a look made before) and so is no rating.
    Before, the run still counted it as made and queued it upward: an outbox item of no rating,
    pending for ever (the platform's backlog, and its alert, never cleared)."""
    from django.utils import timezone

    from central.ratings import cases, direct, exports
    from central.ratings.models import BusinessSystem, UpwardItem, UpwardPlatform
    from terminal.core.channels import Channel
    UpwardPlatform.objects.create(code="PROV", name="省平台", profile=exports.shipped_text("provincial"))
    system = BusinessSystem.objects.create(system_id="S-TEST", name="测试", secret="s" * 43)
    done = timezone.now() - datetime.timedelta(days=8)
    cases.report(system, {"case_no": "C-LATE", "window": "W01", "status": "completed",
                          "accepted_at": (done - datetime.timedelta(hours=1)).isoformat(),
                          "completed_at": done.isoformat()})
    outcome = race(lambda: direct.rate(window_code="W01", level=Level.SATISFIED, channel=Channel.QR_CODE,
                                       device="phone", case_no="C-LATE"),
                   lambda: defaults.apply(timezone.now()))
    assert Rating.objects.filter(case_no="C-LATE").values_list("device", "case_counted").get() == ("phone", True)
    stored = set(Rating.objects.values_list("rating_id", flat=True))
    assert set(UpwardItem.objects.values_list("rating_id", flat=True)) <= stored  # every item is of a rating
    assert outcome.created == defaults_made().count() == 0  # nothing said made that was not
