"""Cases (办件) from business systems: reported over signed HTTP, the mobile number encrypted at rest
and shown masked, one counted rating per case and number across every channel, a follow-up rating
within its period, and a default rating for a completed case no channel rated."""

import datetime
import hashlib
import json
import os
import stat
import time

import pytest
import requests
from django.core.management import call_command
from django.utils import timezone

from central.ratings import auth, cases, defaults, personal_data
from central.ratings.models import BusinessSystem, Case, Policy, Rating, Window, WorkOrder
from terminal.core import signing
from terminal.core.channels import InputDevice
from terminal.core.levels import Level

from conftest import CST, ingest_ratings, make_rating, race

pytestmark = pytest.mark.central
NOW = datetime.datetime.now(CST)
MOBILE = "13812345678"


def a_case(number: str, **fields) -> dict:
    return {"case_no": number, "item_code": "11440100MB2C000010-001", "item_name": "不动产登记",
            "window": "W01", "staff_no": "SZ0101", "applicant_type": "person", "mobile": "+86 138-1234-5678",
            "status": "accepted", "accepted_at": (NOW - datetime.timedelta(hours=1)).isoformat(), **fields}


def completed(case: dict, hours_ago: float = 0.5) -> dict:
    """The case done ``hours_ago`` (accepted an hour before that, unless it says earlier)."""
    accepted = min(datetime.datetime.fromisoformat(case["accepted_at"]), NOW - datetime.timedelta(hours=hours_ago + 1))
    return {**case, "status": "completed", "accepted_at": accepted.isoformat(),
            "completed_at": (NOW - datetime.timedelta(hours=hours_ago)).isoformat()}


def post_case(url: str, system: dict, body: dict, headers: dict | None = None) -> tuple[requests.Response, dict]:
    data = json.dumps(body, ensure_ascii=False).encode()
    headers = headers or signing.signed_headers(system["system_id"], system["secret"], "POST", "/api/v1/cases",
                                                data, time.time(), id_header=signing.HEADER_SYSTEM)
    return requests.post(url + "/api/v1/cases", data=data, timeout=10,
                         headers={"Content-Type": "application/json", **headers}), headers


def answer_is_signed(reply: requests.Response, secret: str, nonce: str) -> bool:
    return signing.verify_answer(secret, nonce, reply.status_code, reply.headers[signing.HEADER_SERVER_TIME],
                                 hashlib.sha256(reply.content).hexdigest(),
                                 reply.headers.get(signing.HEADER_ANSWER_SIGNATURE, ""))


def add_system(central, name: str) -> dict:
    done = central.manage("add_system", name)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


def test_a_business_system_reports_a_case_when_accepted_and_when_done(central, enrolled):
    system = add_system(central, "不动产登记系统")
    case = a_case("C-HTTP-0001")
    first, headers = post_case(central.url, system, case)
    assert first.status_code == 201, first.text
    assert first.json() | {"server_time": None} == {"case_no": "C-HTTP-0001", "outcome": "created", "status": "accepted",
                                                    "window": "W01", "mobile": "138****5678", "server_time": None}
    assert answer_is_signed(first, system["secret"], headers[signing.HEADER_NONCE])
    again, _ = post_case(central.url, system, case, headers)  # the very same request, replayed
    assert again.status_code == 401 and again.json()["error"] == "replayed_nonce"
    done, _ = post_case(central.url, system, completed(case))
    assert (done.status_code, done.json()["outcome"], done.json()["status"]) == (200, "updated", "completed")
    same, _ = post_case(central.url, system, completed(case))
    assert same.json()["outcome"] == "unchanged"
    back, _ = post_case(central.url, system, case)  # a done case does not go back to accepted
    assert back.status_code == 409 and back.json()["error"] == "case_already_done"

    other = add_system(central, "排队叫号系统")
    theirs, _ = post_case(central.url, other, completed(case, 0.1))
    assert theirs.status_code == 409 and theirs.json()["error"] == "case_of_another_system"
    # a terminal's key does not report cases, and a system's key is no terminal's
    data = json.dumps(a_case("C-HTTP-0002")).encode()
    as_terminal = signing.signed_headers(enrolled.terminal_id, enrolled.secret, "POST", "/api/v1/cases", data, time.time())
    refused, _ = post_case(central.url, system, a_case("C-HTTP-0002"), as_terminal)
    assert refused.status_code == 401 and refused.json()["error"] == "unsigned"
    forged = signing.signed_headers(system["system_id"], enrolled.secret, "POST", "/api/v1/cases", data, time.time(),
                                    id_header=signing.HEADER_SYSTEM)
    refused, _ = post_case(central.url, system, a_case("C-HTTP-0002"), forged)
    assert refused.status_code == 401 and refused.json()["error"] == "bad_signature"

    stored = central.query("SELECT status, mobile_masked, mobile_token, mobile_index, item_name FROM ratings_case "
                           "WHERE case_no = ?", ["C-HTTP-0001"])
    assert [row[:2] for row in stored] == [("completed", "138****5678")]
    assert MOBILE not in stored[0][2] and MOBILE not in stored[0][3] and stored[0][4] == "不动产登记"
    if not central.database_url:  # the clear number is nowhere in the database's files
        for name in ("central.db", "central.db-wal"):
            path = central.data_dir / name
            assert not path.exists() or MOBILE.encode() not in path.read_bytes(), name
    assert central.query("SELECT last_seen FROM ratings_businesssystem WHERE system_id = ?",
                         [system["system_id"]])[0][0] is not None  # the admin sees when each system last called
    key = central.data_dir / "data_key"  # made on first use, beside the data, its owner's alone
    assert stat.S_IMODE(key.stat().st_mode) == 0o600 and len(key.read_bytes().strip()) == 44

    assert central.query("UPDATE ratings_businesssystem SET revoked_at = ? WHERE system_id = ?",
                         [datetime.datetime.now(datetime.timezone.utc) if central.database_url
                          else datetime.datetime.utcnow().strftime("%Y-%m-%d %H:%M:%S"), system["system_id"]]) == []
    revoked, _ = post_case(central.url, system, a_case("C-HTTP-0003"))
    assert revoked.status_code == 403 and revoked.json()["error"] == "revoked"


@pytest.mark.django_db
@pytest.mark.parametrize("change, code, named", [
    ({"mobile": "12345"}, "invalid_case", "mobile"),
    ({"mobile": "1381234567８"}, "invalid_case", "mobile"),
    ({"window": "W99"}, "unknown_window", "W99"),
    ({"staff_no": "NOBODY"}, "unknown_staff", "NOBODY"),
    ({"dept_code": "NO-SUCH"}, "unknown_department", "NO-SUCH"),
    ({"status": "completed"}, "invalid_case", "completed_at"),
    ({"status": "done"}, "invalid_case", "status"),
    ({"applicant_type": "alien"}, "invalid_case", "applicant_type"),
    ({"accepted_at": "2026-12-04 10:00"}, "invalid_case", "accepted_at"),
    ({"accepted_at": "2199-01-01T00:00:00+08:00"}, "invalid_case", "future"),
    ({"case_no": "C" * 51}, "invalid_case", "case_no"),
    ({"item_name": "不动产\u0000登记"}, "invalid_case", "item_name"),
    ({"colour": "red"}, "invalid_case", "colour"),
])
def test_a_bad_report_is_refused_naming_what_is_wrong_and_nothing_is_stored(hall, change, code, named):
    system = BusinessSystem.objects.create(system_id="S-TEST", name="测试", secret="s" * 43)
    with pytest.raises(cases.CaseRefused) as refused:
        cases.report(system, a_case("C-BAD", **change))
    assert refused.value.code == code and named in refused.value.detail
    assert not Case.objects.exists()


@pytest.mark.django_db
def test_the_number_is_encrypted_under_the_data_key_and_found_after_a_key_rotation(hall, monkeypatch):
    from cryptography.fernet import Fernet
    old, new = Fernet.generate_key().decode(), Fernet.generate_key().decode()
    monkeypatch.setenv("RATING_CENTRAL_DATA_KEYS", old)
    personal_data.forget_keys()
    system = BusinessSystem.objects.create(system_id="S-TEST", name="测试", secret="s" * 43)
    try:
        case = cases.report(system, a_case("C-KEY", mobile="0086 13812345678")).case
        assert Fernet(old.encode()).decrypt(case.mobile_token.encode()).decode() == MOBILE
        assert [c.case_no for c in cases.cases_of_mobile("138 1234 5678")] == ["C-KEY"]
        monkeypatch.setenv("RATING_CENTRAL_DATA_KEYS", f"{new},{old}")  # rotated: the new key first
        personal_data.forget_keys()
        assert personal_data.decrypt(case.mobile_token) == MOBILE  # the old token still reads
        assert [c.case_no for c in cases.cases_of_mobile(MOBILE)] == ["C-KEY"]  # and is still found
        rotated = personal_data.reencrypt(case.mobile_token)
        assert Fernet(new.encode()).decrypt(rotated.encode()).decode() == MOBILE
        monkeypatch.setenv("RATING_CENTRAL_DATA_KEYS", Fernet.generate_key().decode())  # a key that never held it
        personal_data.forget_keys()
        with pytest.raises(ValueError, match="no longer configured"):
            personal_data.decrypt(case.mobile_token)
        assert not cases.cases_of_mobile(MOBILE).exists()
    finally:
        monkeypatch.delenv("RATING_CENTRAL_DATA_KEYS")
        personal_data.forget_keys()


@pytest.fixture
def reported(hall):
    """A case its business system reported done at W01, half an hour ago."""
    system = BusinessSystem.objects.create(system_id="S-TEST", name="测试", secret="s" * 43)
    return cases.report(system, completed(a_case("C-CROSS"))).case


@pytest.mark.django_db
def test_one_rating_counts_per_case_whatever_the_channel_and_no_other_window_can_use_it_up(hall, reported):
    from central.ratings import auth
    elsewhere = auth.enroll(auth.issue_code(Window.objects.get(code="W02"))[0])
    elsewhere.enrolled_at -= datetime.timedelta(days=400)
    elsewhere.save()
    intruder = make_rating(Level.VERY_DISSATISFIED, terminal_id=elsewhere.terminal_id, window="W02", staff_no="SZ0201",
                           case_no="C-CROSS", reasons=("attitude",))
    assert ingest_ratings(elsewhere, intruder) == ["accepted"]  # kept, as evidence ...
    stored = Rating.objects.get(rating_id=intruder.id)
    assert stored.flags == ["case_elsewhere"] and stored.excluded and stored.case_counted is None  # ... never counted

    tablet = make_rating(Level.VERY_SATISFIED, terminal_id=hall.terminal_id, case_no="C-CROSS")
    box = make_rating(Level.SATISFIED, terminal_id=hall.terminal_id, case_no="C-CROSS", device=InputDevice.BUTTON_BOX)
    assert ingest_ratings(hall, tablet, box) == ["accepted", "accepted"]
    counted = Rating.objects.filter(case_no="C-CROSS", case_counted=True)
    assert [r.rating_id for r in counted] == [tablet.id]  # the W01 rating holds the case's place
    second = Rating.objects.get(rating_id=box.id)  # a second first rating from another channel
    assert second.flags == ["duplicate_case"] and second.excluded


@pytest.mark.django_db
def test_a_follow_up_rating_counts_once_and_only_within_its_period(hall, reported):
    Policy.objects.update_or_create(pk=1, defaults={"followup_days": 15})
    first = make_rating(Level.SATISFIED, terminal_id=hall.terminal_id, case_no="C-CROSS",
                        now=NOW - datetime.timedelta(days=18))
    on_time = make_rating(Level.VERY_SATISFIED, terminal_id=hall.terminal_id, case_no="C-CROSS", rating_no=2,
                          now=NOW - datetime.timedelta(days=6))
    again = make_rating(Level.DISSATISFIED, terminal_id=hall.terminal_id, case_no="C-CROSS", rating_no=2,
                        reasons=("slow",), now=NOW - datetime.timedelta(days=4))
    assert ingest_ratings(hall, first, on_time, again) == ["accepted"] * 3
    got = {r.rating_id: (r.case_counted, r.flags) for r in Rating.objects.filter(case_no="C-CROSS")}
    assert got == {first.id: (True, []), on_time.id: (True, []), again.id: (None, ["duplicate_case"])}

    late_case = cases.report(BusinessSystem.objects.get(), completed(a_case("C-LATE"), hours_ago=24 * 30)).case
    late_first = make_rating(Level.SATISFIED, terminal_id=hall.terminal_id, case_no=late_case.case_no,
                             now=NOW - datetime.timedelta(days=29))
    late = make_rating(Level.VERY_SATISFIED, terminal_id=hall.terminal_id, case_no=late_case.case_no, rating_no=2)
    assert ingest_ratings(hall, late_first, late) == ["accepted", "accepted"]
    stored = Rating.objects.get(rating_id=late.id)
    assert stored.flags == ["followup_late"] and stored.excluded and stored.case_counted is None
    # with no first rating known, the period runs from the case's completion
    bare = cases.report(BusinessSystem.objects.get(), completed(a_case("C-BARE"), hours_ago=24 * 16)).case
    follow = make_rating(Level.SATISFIED, terminal_id=hall.terminal_id, case_no=bare.case_no, rating_no=2)
    assert ingest_ratings(hall, follow) == ["accepted"]
    assert Rating.objects.get(rating_id=follow.id).flags == ["followup_late"]


@pytest.mark.django_db
def test_a_completed_case_no_channel_rated_gets_one_default_after_seven_days(hall):
    system = BusinessSystem.objects.create(system_id="S-TEST", name="测试", secret="s" * 43)
    old = cases.report(system, completed(a_case("C-QUIET", accepted_at=(NOW - datetime.timedelta(days=9)).isoformat()),
                                         hours_ago=24 * 8)).case
    cases.report(system, completed(a_case("C-FRESH"), hours_ago=24 * 6))  # not yet seven days
    rated = cases.report(system, completed(a_case("C-RATED"), hours_ago=24 * 8)).case
    cases.report(system, a_case("C-OPEN", accepted_at=(NOW - datetime.timedelta(days=30)).isoformat()))  # never done
    tablet = make_rating(Level.SATISFIED, terminal_id=hall.terminal_id, case_no=rated.case_no)
    assert ingest_ratings(hall, tablet) == ["accepted"]
    assert defaults.apply(NOW).created == 1
    made = Rating.objects.get(device="system")
    assert (made.case_no, made.window_code, made.staff_no, made.channel, made.level) == ("C-QUIET", "W01", "SZ0101", 7, 3)
    assert made.rated_at == old.completed_at + datetime.timedelta(days=7) and made.case_counted
    assert made.terminal_id == "S-TEST"  # who reported the case
    call_command("default_ratings", stdout=open(os.devnull, "w"))
    assert Rating.objects.filter(device="system").count() == 1


@pytest.mark.django_db
def test_the_case_pages_show_the_number_masked_and_a_manager_only_their_department(hall, reported):
    import io

    from django.contrib.auth.models import User
    from django.test import Client

    tablet = make_rating(Level.VERY_SATISFIED, terminal_id=hall.terminal_id, case_no="C-CROSS")
    assert ingest_ratings(hall, tablet) == ["accepted"]
    pages = {}
    for name, role, dept in [("admin1", "hall_admin", None), ("own", "department_manager", reported.department.code),
                             ("other", "department_manager", Window.objects.get(code="W02").department.code)]:
        call_command("add_user", name, "--role", role, *(["--department", dept] if dept else []),
                     "--password-stdin", stdin=io.StringIO(f"pw-{name}-Qx7k\n"), stderr=io.StringIO())
        client = Client()
        client.force_login(User.objects.get(username=name))
        pages[name] = (client.get("/admin/ratings/case/"), client.get(f"/admin/ratings/case/{reported.pk}/change/"))
    listing, detail = pages["admin1"]
    assert listing.status_code == detail.status_code == 200
    for page in (listing, detail):
        text = page.content.decode()
        assert "C-CROSS" in text and "138****5678" in text and MOBILE not in text
    assert tablet.id[:12] in detail.content.decode()  # its ratings, every channel
    assert "C-CROSS" in pages["own"][0].content.decode()
    assert reported.department != Window.objects.get(code="W02").department  # the demo hall's W02 is another's
    assert "C-CROSS" not in pages["other"][0].content.decode() and pages["other"][1].status_code in (302, 404)


@pytest.mark.django_db
def test_a_case_done_at_a_window_invites_its_terminal_through_the_next_heartbeat(hall, django_assert_num_queries):
    """Reported done: the window's next heartbeat answer carries the invitation; busy is asked again,
    invited ends it; a heartbeat with no case waiting costs no query more than before."""
    import time as clock

    from django.db import connection
    from django.test import Client
    from django.test.utils import CaptureQueriesContext

    def beat(**body):
        data = json.dumps({"version": "1.0", **body}).encode()
        headers = signing.signed_headers(hall.terminal_id, hall.secret, "POST", "/api/v1/heartbeat", data, clock.time())
        reply = Client().post("/api/v1/heartbeat", data, content_type="application/json",
                              **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})
        assert reply.status_code == 200, reply.content
        return reply.json()

    beat()
    with CaptureQueriesContext(connection) as quiet:
        assert "invite" not in beat()
    system = BusinessSystem.objects.create(system_id="S-TEST", name="测试", secret="s" * 43)
    cases.report(system, completed(a_case("C-LONG-AGO"), hours_ago=1))  # done an hour ago: the citizen has left
    cases.report(system, completed(a_case("C-NOW", ticket_no="A012"), hours_ago=0.02))
    offered = beat()["invite"]
    assert offered == {"case_no": "C-NOW", "item_code": "11440100MB2C000010-001", "staff_no": "SZ0101",
                       "ticket_no": "A012"}
    assert "invite" not in beat()  # offered: waiting for the terminal's word
    assert beat(invite_results=[{"case_no": "C-NOW", "outcome": "busy"}])["invite"]["case_no"] == "C-NOW"
    assert "invite" not in beat(invite_results=[{"case_no": "C-NOW", "outcome": "invited"}])
    assert Case.objects.get(case_no="C-NOW").invite_state == "invited"
    assert Case.objects.get(case_no="C-LONG-AGO").invite_state == ""
    assert not Window.objects.get(code="W01").invite_waiting
    with CaptureQueriesContext(connection) as after:
        assert "invite" not in beat()
    assert len(after) == len(quiet)  # no case waiting: the heartbeat is as cheap as ever
    # another window's terminal reporting a result for this case changes nothing
    cases.report(system, completed(a_case("C-W01-B"), hours_ago=0.01))
    assert beat()["invite"]["case_no"] == "C-W01-B"
    from central.ratings import invites
    other = auth.enroll(auth.issue_code(Window.objects.get(code="W02"))[0])
    invites.note_results(other, [{"case_no": "C-W01-B", "outcome": "invited"}])
    assert Case.objects.get(case_no="C-W01-B").invite_state == "offered"


@pytest.mark.django_db
def test_the_queue_ticket_reaches_the_central_server_with_the_rating_and_the_call(hall):
    from central.ratings.models import TerminalEvent
    from conftest import ingest_events, make_event
    rating = make_rating(Level.SATISFIED, terminal_id=hall.terminal_id, case_no="C-TICKET", ticket_no="A012")
    called = make_event("ticket_called", terminal_id=hall.terminal_id, ticket_no="A012")
    paused = make_event("queue_paused", terminal_id=hall.terminal_id)
    assert ingest_ratings(hall, rating) == ["accepted"] and ingest_events(hall, called, paused) == ["accepted"] * 2
    assert Rating.objects.get(rating_id=rating.id).ticket_no == "A012"
    assert TerminalEvent.objects.get(event_id=called.id).ticket_no == "A012"
    assert TerminalEvent.objects.get(event_id=paused.id).kind == "queue_paused"


def phone_rating(window: str, case_no: str, level: Level = Level.VERY_SATISFIED, flag: tuple | None = None) -> Rating:
    """A rating typed on a phone at ``window``'s plaque (channel 3), as ``plaques.rate`` stores it."""
    from central.ratings import direct
    from terminal.core.channels import Channel
    return direct.rate(window_code=window, level=level, channel=Channel.QR_CODE, device="phone", case_no=case_no,
                       reasons=["slow"] if level.is_bad else None, flag=flag)


@pytest.mark.django_db
def test_a_rating_that_does_not_count_uses_up_no_case_sms_default_or_counted_default(hall):
    from central.ratings import sms
    system = BusinessSystem.objects.create(system_id="S-TEST", name="测试", secret="s" * 43)
    cases.report(system, completed(a_case("C-UNUSED"), hours_ago=24 * 8))
    stray = phone_rating("W02", "C-UNUSED")  # W01's case number, typed at W02's plaque
    assert stray.flags == ["case_elsewhere"] and stray.case_counted is None
    assert sms.invite(timezone.now()) == 1  # the case is still unrated: its SMS goes out
    assert defaults.apply(timezone.now()).created == 1  # and after seven days its default counts
    assert Rating.objects.get(case_no="C-UNUSED", case_counted=True).device == "system"

    phone_rating("W02", "C-UNUSED", Level.VERY_DISSATISFIED)  # nor does a stray rating un-count the default
    assert defaults.apply(timezone.now()).superseded == 0
    assert Rating.objects.get(case_no="C-UNUSED", case_counted=True).device == "system"


@pytest.mark.django_db
def test_a_rating_that_does_not_count_leaves_the_terminal_invited(hall):
    from central.ratings import invites, plaques
    system = BusinessSystem.objects.create(system_id="S-TEST", name="测试", secret="s" * 43)
    phone_rating("W01", "C-INV-1", flag=(plaques.REPEAT_RATER, "同一手机 24 小时内已评价过该窗口，保留但不计入"))
    cases.report(system, completed(a_case("C-INV-1"), hours_ago=0.02))
    assert Case.objects.get(case_no="C-INV-1").invite_state == "waiting"  # a flagged rating before the report is no rating of the case
    assert invites.offer_for(hall)["case_no"] == "C-INV-1"

    later = cases.report(system, completed(a_case("C-INV-2"), hours_ago=0.01)).case
    phone_rating("W02", later.case_no)  # flagged case_elsewhere while the case waits for the heartbeat
    assert invites.offer_for(hall)["case_no"] == "C-INV-2"


@pytest.mark.django_db
def test_a_case_reported_after_another_windows_rating_of_it_counts_at_its_own_window(hall):
    from central.ratings import exports
    from central.ratings.models import UpwardItem, UpwardPlatform
    UpwardPlatform.objects.create(code="PROV", name="省平台", profile=exports.shipped_text("provincial"))
    early = phone_rating("W02", "C-EARLY")  # typed from a ticket before the case is reported: holds the place
    own = make_rating(Level.DISSATISFIED, terminal_id=hall.terminal_id, case_no="C-EARLY", reasons=("slow",))
    assert ingest_ratings(hall, own) == ["accepted"]
    assert Rating.objects.get(rating_id=own.id).flags == ["duplicate_case"]  # nothing tells the windows apart yet

    system = BusinessSystem.objects.create(system_id="S-TEST", name="测试", secret="s" * 43)
    cases.report(system, completed(a_case("C-EARLY")))  # done at W01
    early.refresh_from_db()
    assert early.flags == ["case_elsewhere"] and early.excluded and early.case_counted is None
    stored = Rating.objects.get(rating_id=own.id)
    assert (stored.case_counted, stored.excluded, stored.flags, stored.excluded_why) == (True, False, [], "")
    assert WorkOrder.objects.filter(rating=stored).exists()  # bad and now counted: its work order opens
    told = set(UpwardItem.objects.filter(change="validity").values_list("rating_id", flat=True))
    assert told == {early.rating_id, own.id}  # the platforms hear both changes

    later = make_rating(Level.SATISFIED, terminal_id=hall.terminal_id, case_no="C-EARLY")
    assert ingest_ratings(hall, later) == ["accepted"]
    assert Rating.objects.get(rating_id=later.id).flags == ["duplicate_case"]  # one place, W01's first


@pytest.mark.django_db
def test_a_work_order_whose_rating_stops_counting_waits_for_nothing(hall, client, django_user_model):
    """A complaint typed at W02's plaque from a ticket, before the case is reported, counts and opens
    its work order. The case is then reported done at W01: the complaint is excluded, and its order
    must neither fall due, nor show as overdue or still to do (on the dashboard, the admin's filter,
    the alert and the metric), so no department is chased or appraised on a case that was not theirs.
    A re-check's exclusion is the same."""
    from central.ratings import alerts, workorders
    from central.ratings.models import AlertRule
    stray = phone_rating("W02", "C-MOVED", Level.VERY_DISSATISFIED)
    order = WorkOrder.objects.get(rating=stray)
    late = datetime.date.today() + datetime.timedelta(days=60)
    assert workorders.is_overdue(order, late)
    assert WorkOrder.objects.filter(workorders.overdue_q(late)).count() == 1

    system = BusinessSystem.objects.create(system_id="S-TEST", name="测试", secret="s" * 43)
    cases.report(system, completed(a_case("C-MOVED")))  # done at W01: W02's complaint no longer counts
    order = WorkOrder.objects.select_related("rating").get(pk=order.pk)
    assert order.rating.excluded and order.state == "open"  # kept as it stood
    assert workorders.stage_due(order) is None and not workorders.is_overdue(order, late)
    assert not WorkOrder.objects.filter(workorders.overdue_q(late)).exists()
    assert not WorkOrder.objects.filter(workorders.to_do_q()).exists()
    WorkOrder.objects.filter(pk=order.pk).update(contact_due=datetime.date(2020, 1, 6))  # long past
    rule = AlertRule.objects.create(kind="overdue", threshold=1, name="逾期工单")
    assert alerts.conditions(rule, timezone.now()) == {}
    admin_user = django_user_model.objects.create_superuser("chief", password="x" * 12)
    client.force_login(admin_user)
    page = client.get("/").content.decode()
    assert '<div class="n ">0</div><div class="t"><a href="/admin/ratings/workorder/?overdue=yes">' in page
    assert '<div class="n">0</div><div class="t"><a href="/admin/ratings/workorder/?state__exact=open">' in page
    assert f"/admin/ratings/workorder/{order.pk}/change/" in client.get("/admin/ratings/workorder/").content.decode()
    assert f"/admin/ratings/workorder/{order.pk}/change/" not in client.get(
        "/admin/ratings/workorder/?overdue=yes").content.decode()
    Rating.objects.filter(pk=stray.pk).update(excluded=False)
    assert workorders.is_overdue(WorkOrder.objects.select_related("rating").get(pk=order.pk))  # counts again: due again


@pytest.mark.django_db(transaction=True)
@pytest.mark.parametrize("first_report", [False, True], ids=["moved", "first-report"])
def test_a_report_placing_a_case_at_another_window_while_a_rating_of_it_is_stored_leaves_it_uncounted(
        hall, first_report):
    """A W01 phone rating of a case is being stored (its transaction open) when the business system
    reports the case at W02: moving it from W01, or reporting it for the first time. The report waits
    for the rating, then settles it (case_elsewhere). Before, on PostgreSQL, the report settled the
    ratings it could see and the rating, committed after, counted at W01 for W02's case: W01's
    staff credited with it, and W02's case \"rated\", so no SMS and no default came."""
    system = BusinessSystem.objects.create(system_id="S-TEST", name="测试", secret="s" * 43)
    if not first_report:
        cases.report(system, completed(a_case("C-RACE")))  # done at W01, then corrected to W02
    race(lambda: phone_rating("W01", "C-RACE", Level.VERY_DISSATISFIED),
         lambda: cases.report(system, completed(a_case("C-RACE", window="W02", staff_no="SZ0201"))))
    stray = Rating.objects.get(case_no="C-RACE")
    assert (stray.window_code, stray.case_counted, stray.excluded, stray.flags) == ("W01", None, True, ["case_elsewhere"])
    own = phone_rating("W02", "C-RACE")  # the case is still W02's to rate
    assert own.case_counted and not own.excluded
