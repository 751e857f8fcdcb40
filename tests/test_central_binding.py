"""A record counts only where it truly belongs: the signing terminal's window, a channel its device
sends, a staff member on a roster that window was served, a plausible time, one counted rating per
case and number. Each way a W01 terminal's secret could rate elsewhere is refused or flagged, and
every refused item is kept."""

from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from central.ratings import content, stats
from central.ratings.ingest import EVENTS, ingest
from central.ratings.models import Rating, RejectedItem, ServedStaff, Staff, WorkOrder
from terminal.core.channels import Channel, InputDevice
from terminal.core.levels import Level

from conftest import CST, ingest_ratings, make_event, make_rating

pytestmark = [pytest.mark.central, pytest.mark.django_db]


def results(node, *wires):
    return {r.id: (r.status, r.reason or "") for r in ingest(list(wires), node)}


def test_a_w01_terminal_cannot_rate_another_window_or_colleague(hall):
    tid = hall.terminal_id
    honest = make_rating(Level.VERY_SATISFIED, terminal_id=tid)
    other_window = make_rating(Level.VERY_DISSATISFIED, terminal_id=tid, window="W02", staff_no="SZ0201",
                               reasons=("attitude",))
    no_such_window = make_rating(Level.VERY_SATISFIED, terminal_id=tid, window="W99")
    other_staff = make_rating(Level.VERY_DISSATISFIED, terminal_id=tid, staff_no="SZ0201", reasons=("attitude",))
    unknown_staff = make_rating(Level.DISSATISFIED, terminal_id=tid, staff_no="NOBODY", reasons=("slow",))
    system_default = make_rating(Level.VERY_SATISFIED, terminal_id=tid, channel=Channel.SYSTEM_DEFAULT)
    box_as_tablet = make_rating(Level.VERY_SATISFIED, terminal_id=tid, device=InputDevice.BUTTON_BOX,
                                channel=Channel.HALL_TABLET)
    got = results(hall, *(r.to_wire() for r in (honest, other_window, no_such_window, other_staff, unknown_staff,
                                                 system_default, box_as_tablet)))
    assert got[honest.id] == ("accepted", "")
    expected = {other_window.id: "window_mismatch", no_such_window.id: "window_mismatch",
                other_staff.id: "staff_not_on_roster", unknown_staff.id: "staff_not_on_roster",
                system_default.id: "channel_not_allowed", box_as_tablet.id: "channel_not_allowed"}
    for rid, code in expected.items():
        assert got[rid][0] == "rejected" and got[rid][1].startswith(code), (rid, got[rid])
        assert RejectedItem.objects.get(rating_id=rid).code == code  # kept, with its reason code
    assert list(Rating.objects.values_list("rating_id", flat=True)) == [honest.id]
    assert not WorkOrder.objects.exists()  # no bad rating of W02 (or of SZ0201) opened an order
    today = timezone.localdate()
    windows = {row.key for row in stats.table(stats.Query(today - timedelta(days=1), today))}
    assert windows == {"W01"}  # W99 never reaches /public/ or a ranking


def test_events_are_bound_the_same_way(hall):
    tid = hall.terminal_id
    login = make_event("login", terminal_id=tid)
    elsewhere = make_event("login", terminal_id=tid, window="W02", staff_no="SZ0201")
    colleague = make_event("login", terminal_id=tid, staff_no="SZ0201")
    got = {r.id: r for r in ingest([e.to_wire() for e in (login, elsewhere, colleague)], hall, EVENTS)}
    assert got[login.id].status == "accepted"
    assert got[elsewhere.id].reason.startswith("window_mismatch")
    assert got[colleague.id].reason.startswith("staff_not_on_roster")


def test_a_roster_served_earlier_still_counts_after_the_staff_member_moves(hall):
    manifest, _ = content.manifest(hall)
    content.note_served(hall, manifest)  # the terminal pulled the roster with SZ0102 on it
    assert ServedStaff.objects.filter(window_code="W01", staff_no="SZ0102").exists()
    Staff.objects.filter(staff_no="SZ0102").update(window=None)  # moved away before the queue drained
    queued = make_rating(Level.SATISFIED, terminal_id=hall.terminal_id, staff_no="SZ0102")
    assert ingest_ratings(hall, queued) == ["accepted"]


def test_an_implausible_time_is_stored_as_received_and_flagged(hall):
    tid = hall.terminal_id
    long_before = make_rating(Level.VERY_SATISFIED, terminal_id=tid, now=hall.enrolled_at.astimezone(CST)
                              - timedelta(days=90))
    future = make_rating(Level.VERY_SATISFIED, terminal_id=tid, now=datetime(2099, 1, 1, 9, tzinfo=CST))
    unsynced_future = make_rating(Level.VERY_SATISFIED, terminal_id=tid, now=datetime(2099, 1, 1, 9, tzinfo=CST),
                                  clock_synced=False, boot_id="f" * 32)
    fine = make_rating(Level.SATISFIED, terminal_id=tid, now=datetime.now(CST) - timedelta(days=3))
    before = timezone.now()
    assert ingest_ratings(hall, long_before, future, unsynced_future, fine) == ["accepted"] * 4
    after = timezone.now()
    for r in (long_before, future, unsynced_future):
        stored = Rating.objects.get(rating_id=r.id)
        assert stored.flags == ["time_implausible"]
        assert before <= stored.rated_at <= after  # the time it was received: no other period, no page top
        assert stored.rated_at_terminal == datetime.fromisoformat(r.rated_at)  # the original is kept
        assert stored.rated_on == timezone.localdate(stored.rated_at)
    kept = Rating.objects.get(rating_id=fine.id)
    assert kept.flags == [] and kept.rated_at == datetime.fromisoformat(fine.rated_at)


def test_one_counted_first_rating_per_case_and_one_follow_up(hall):
    tid = hall.terminal_id
    first = make_rating(Level.VERY_DISSATISFIED, terminal_id=tid, case_no="BJ2026-001", reasons=("slow",))
    repeats = [make_rating(Level.VERY_SATISFIED, terminal_id=tid, case_no="BJ2026-001") for _ in range(4)]
    follow_up = make_rating(Level.SATISFIED, terminal_id=tid, case_no="BJ2026-001", rating_no=2)
    second_follow_up = make_rating(Level.VERY_SATISFIED, terminal_id=tid, case_no="BJ2026-001", rating_no=2)
    other_case = make_rating(Level.VERY_SATISFIED, terminal_id=tid, case_no="BJ2026-002")
    ingest_ratings(hall, first, repeats[0])  # two first ratings in one batch
    ingest_ratings(hall, *repeats[1:], follow_up)
    ingest_ratings(hall, second_follow_up, other_case)
    counted = Rating.objects.filter(excluded=False)
    assert sorted(counted.values_list("rating_id", flat=True)) == sorted([first.id, follow_up.id, other_case.id])
    for r in repeats + [second_follow_up]:
        stored = Rating.objects.get(rating_id=r.id)  # stored, not counted, and marked why
        assert stored.excluded and stored.flags == ["duplicate_case"] and stored.case_counted is None
    assert Rating.objects.count() == 8
    assert WorkOrder.objects.get().rating.rating_id == first.id
    today = timezone.localdate()
    assert stats.totals(stats.Query(today - timedelta(days=1), today)).total == 3


def test_a_real_rating_takes_the_case_from_the_default_one(hall):
    from central.ratings import defaults
    invited = make_event("invited", terminal_id=hall.terminal_id, case_no="BJ2026-009", session_id="s-9",
                         now=datetime.now(CST) - timedelta(days=8))
    assert [r.status for r in ingest([invited.to_wire()], hall, EVENTS)] == ["accepted"]
    assert defaults.apply().created == 1
    late = make_rating(Level.SATISFIED, terminal_id=hall.terminal_id, case_no="BJ2026-009", session_id="s-9")
    assert ingest_ratings(hall, late) == ["accepted"]
    real = Rating.objects.get(rating_id=late.id)
    default = Rating.objects.get(device="system")
    assert (real.excluded, real.case_counted) == (False, True)
    assert default.excluded and default.case_counted is None and late.id in default.excluded_why


def test_a_batch_racing_another_request_settles_each_item_on_its_own(hall, monkeypatch):
    """Another request stored one of the batch's ratings after this one looked: the unique index
    refuses the whole insert (INSERT on SQLite, COPY on PostgreSQL), and each item is settled
    alone — that one a duplicate, the rest accepted, nothing lost or doubled."""
    from central.ratings import ingest as ingest_module
    batch = [make_rating(terminal_id=hall.terminal_id, case_no=f"RACE-{i}") for i in range(4)]
    assert ingest_ratings(hall, batch[0]) == ["accepted"]  # the other request
    monkeypatch.setattr(ingest_module, "stored_digests", lambda kind, ids: {})  # looked before it committed
    assert ingest_ratings(hall, *batch) == ["duplicate", "accepted", "accepted", "accepted"]
    assert Rating.objects.filter(rating_id__in=[r.id for r in batch]).count() == 4


def test_a_request_reads_its_terminal_window_and_hall_in_one_query_as_the_orm_would(
        hall, django_assert_num_queries):
    """auth's hand-written join gives what Django's select_related gives, every field converted."""
    from central.ratings import auth
    from central.ratings.models import ContentGeneration, Terminal
    from django.forms.models import model_to_dict
    from django.utils import timezone

    Terminal.objects.filter(pk=hall.pk).update(heartbeat={"版本": "1.0", "devices": [{"connected": False}]},
                                               clock_offset_s=-1.5, last_seen=timezone.now(),
                                               device_down_since=timezone.now() - timedelta(minutes=5))
    ContentGeneration.objects.all().delete()
    assert auth.calling_terminal(hall.terminal_id).province_generation == 0  # no change yet: as content counts it
    ContentGeneration.objects.create(pk=1, number=41)
    with django_assert_num_queries(1):
        read = auth.calling_terminal(hall.terminal_id)
        window, place = read.window, read.window.hall
    assert read.get_deferred_fields() == {"heartbeat"}  # no request needs the last heartbeat's JSON
    orm = Terminal.objects.select_related("window__hall").get(pk=hall.pk)
    for mine, theirs in ((read, orm), (window, orm.window), (place, orm.window.hall)):
        assert type(mine) is type(theirs) and mine.pk == theirs.pk
        assert {f.attname: getattr(mine, f.attname) for f in mine._meta.concrete_fields} == \
               {f.attname: getattr(theirs, f.attname) for f in theirs._meta.concrete_fields}, model_to_dict(mine)
    assert read.enrolled_at.tzinfo is not None and read.heartbeat["版本"] == "1.0"
    assert read.province_generation == 41
    assert auth.calling_terminal("T-NOBODY") is None
    assert auth.calling_terminal(hall.terminal_id + "' OR '1'='1") is None


def test_the_heartbeat_etag_follows_every_content_change_without_rebuilding(hall, django_assert_max_num_queries):
    """Each request reads its terminal with window and hall (auth.calling_terminal); the ETag then
    costs no further query, and moves with any change to what that terminal pulls."""
    from central.ratings import auth, content
    from central.ratings.models import Notice, Staff

    def fresh():
        return auth.calling_terminal(hall.terminal_id)

    first = content.etag_for(fresh())
    node = fresh()
    with django_assert_max_num_queries(0):  # the province's number came with the terminal; the ETag from memory
        assert content.etag_for(node) == first
    Notice.objects.create(hall=hall.window.hall, title="新通知", body="今天下午停电")
    second = content.etag_for(fresh())
    assert second != first and second == content.manifest(fresh())[1]
    member = Staff.objects.get(staff_no="SZ0101")
    member.name = "李明"
    member.save()
    assert content.etag_for(fresh()) not in (first, second)


def test_a_batch_sent_again_after_a_lost_answer_keeps_each_refused_item_once(hall):
    """The terminal sends the batch again when the answer is lost on the way: the good records are
    duplicates, and the refused ones are refused again, but each is kept once, so the admin's list,
    the metric of refusals by reason and the stored evidence count what came, not how often. The
    same content sent by another terminal, or refused for another reason, is another refusal."""
    tid = hall.terminal_id
    good = make_rating(Level.VERY_SATISFIED, terminal_id=tid)
    elsewhere = make_rating(Level.VERY_DISSATISFIED, terminal_id=tid, window="W02", reasons=("attitude",))
    junk = {"id": "not-a-rating-0001", "level": 9, "extra": "x" * 30000}  # longer than the stored excerpt
    batch = [good.to_wire(), elsewhere.to_wire(), junk, dict(junk)]  # the junk twice in one batch too
    first = [r.status for r in ingest(batch, hall)]
    assert first == ["accepted", "rejected", "rejected", "rejected"]
    assert RejectedItem.objects.count() == 2
    again = ingest(batch, hall)
    assert [r.status for r in again] == ["duplicate", "rejected", "rejected", "rejected"]
    assert sorted(RejectedItem.objects.values_list("code", flat=True)) == ["invalid", "window_mismatch"]
    other_junk = {**junk, "extra": "x" * 29999 + "y"}  # the same first 20,000 characters, other content
    assert [r.status for r in ingest([other_junk], hall)] == ["rejected"]
    assert RejectedItem.objects.count() == 3
    from central.ratings import auth
    from central.ratings.models import Window
    neighbour = auth.enroll(auth.issue_code(Window.objects.get(code="W01"))[0])
    assert [r.status for r in ingest([junk], neighbour)] == ["rejected"]
    assert RejectedItem.objects.count() == 4
