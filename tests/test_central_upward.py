"""Upward to the provincial and national platforms: each shipped profile's codes as its source gives
them, updates as the same record, refusals before anything is sent, dead letters and their resend;
all through the reference platform (scripts/reference_platform.py) over HTTP on loopback."""

import datetime

import pytest

from central.ratings import direct, exports, upward, workorders
from central.ratings.models import Rating, UpwardItem, UpwardPlatform, WorkOrder
from reference_platform import Platform
from terminal.core.channels import Channel
from terminal.core.levels import Level

from conftest import CST, ingest_ratings, make_rating

pytestmark = [pytest.mark.central, pytest.mark.django_db]
SECRET = "reference-platform-secret-0123456789"

#: What each profile's source gives, written out here and not read from the profiles: 浙江
#: 办件评价服务 satisfaction 5 = 非常满意 and pf 1-7 (6 短信, 7 系统默认评价); GB/T 39046-2020 code
#: list A.8 1 = 非常满意 and its channel list (6 电话, 7 短信; no default ratings).
EXPECTED = {
    "provincial": {"level_field": "satisfaction", "channel_field": "pf",
                   "level": {5: 5, 4: 4, 3: 3, 2: 2, 1: 1},
                   "channel": {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 6, 7: 7}},
    "gbt39046": {"level_field": "满意度代码", "channel_field": "评价渠道",
                 "level": {5: 1, 4: 2, 3: 3, 2: 4, 1: 5},
                 "channel": {1: 1, 2: 2, 3: 3, 4: 4, 5: 5, 6: 7, 8: 6}},
}


@pytest.fixture
def platform_for(settings):
    started = []

    def start(profile_name: str, code: str = "PROV", **faults) -> tuple[UpwardPlatform, Platform]:
        reference = Platform(exports.shipped()[profile_name], f"key-{code}", SECRET, faults, seed=7,
                             answer_delay=1.0).start()
        started.append(reference)
        settings.UPWARD = {**settings.UPWARD, code: {"url": reference.url, "key_id": f"key-{code}", "secret": SECRET,
                                                     "ca_file": ""}}
        settings.UPWARD_TIMEOUT = 0.5
        settings.AREA_CODE = "440100"
        row = UpwardPlatform.objects.create(code=code, name=f"{profile_name} 平台",
                                            profile=exports.shipped_text(profile_name))
        return row, reference

    yield start
    for reference in started:
        reference.close()


def rate(level: Level, channel: Channel, at: datetime.datetime) -> Rating:
    device = {4: "touchscreen", 5: "button_box", 7: "system"}.get(int(channel), "mobile")
    return direct.rate(window_code="W01", level=level, channel=channel, device=device, at=at,
                       reasons=["slow"] if level.is_bad else None)


@pytest.mark.parametrize("profile_name", ["provincial", "gbt39046"])
def test_every_level_and_channel_arrives_in_the_code_its_profiles_source_gives(hall, platform_for, profile_name):
    row, reference = platform_for(profile_name)
    expected = EXPECTED[profile_name]
    at = datetime.datetime(2026, 11, 2, 9, 30, 15, tzinfo=CST)
    made = {}
    for channel in expected["channel"]:
        for level in Level:
            made[rate(level, Channel(channel), at).rating_id] = (int(level), channel)
    result = upward.push(row)
    assert result.dead == 0 and result.delivered == len(made)
    assert set(reference.held) == set(made)
    for rating_id, (level, channel) in made.items():
        record = reference.held[rating_id]
        assert record[expected["level_field"]] == expected["level"][level], (rating_id, level)
        assert record[expected["channel_field"]] == expected["channel"][channel], (rating_id, channel)
    sample = reference.held[next(iter(made))]
    if profile_name == "provincial":
        assert sample["evaluateTime"] == "2026-11-02 09:30:15" and sample["dataSource"] == "hall-terminal"
    else:
        assert sample["评价时间"] == "20261102T093015" and sample["行政区划"] == "440100"


def test_a_profile_without_a_code_for_a_value_in_use_refuses_to_start_and_names_it(hall, platform_for, auditor):
    row, reference = platform_for("provincial")
    rate(Level.SATISFIED, Channel.TELEPHONE, datetime.datetime(2026, 11, 2, 10, 0, tzinfo=CST))  # a call-back: 8
    with pytest.raises(upward.NotConfigured, match=r"channel 8（电话回访） has no code in \[codes.pf\]"):
        upward.push(row)
    assert reference.requests["all"] == 0 and UpwardItem.objects.filter(state="pending").count() == 1
    answer = auditor.get("/exports/provincial.json?from=2026-11-02&to=2026-11-02")
    assert answer.status_code == 409 and "电话回访" in answer.content.decode()
    # the administrator gives call-backs the code the province prescribes: sent, nothing lost
    row.profile = row.profile.replace('"7" = 7\n', '"7" = 7\n"8" = 2\n', 1)
    row.save()
    assert upward.push(row).delivered == 1 and next(iter(reference.held.values()))["pf"] == 2


def test_a_re_check_and_a_rectification_update_the_same_record_at_a_higher_version(hall, platform_for):
    row, reference = platform_for("provincial")
    bad = make_rating(Level.VERY_DISSATISFIED, terminal_id=hall.terminal_id, reasons=("slow",))
    assert ingest_ratings(hall, bad) == ["accepted"]
    assert upward.push(row).delivered == 1
    first = reference.held[bad.id]
    assert (first["operateType"], first["isValid"], first["rectifyContent"]) == ("add", 1, "")
    order = WorkOrder.objects.get(rating__rating_id=bad.id)
    workorders.advance(order, "contacted", "已电话联系")
    workorders.advance(order, "rectified", "已增开窗口，等候缩短")
    workorders.advance(order, "closed")
    workorders.request_recheck(order, "评价人确认误评")
    from django.contrib.auth.models import User
    workorders.decide_recheck(order, exclude=True, user=User.objects.create_user("chief"))
    assert upward.push(row).delivered == 2
    latest = reference.held[bad.id]
    assert len(reference.held) == 1  # one record, never a second rating
    assert (latest["operateType"], latest["isValid"], latest["rectifyContent"]) == ("update", 0, "已增开窗口，等候缩短")
    assert latest["dataVersion"] > first["dataVersion"] and latest["rectifyTime"]
    assert [status for rid, _, status in reference.log] == ["accepted", "accepted", "accepted"]


def test_a_platforms_refusal_is_a_dead_letter_with_its_reason_and_an_administrator_resends_it(hall, platform_for):
    row, reference = platform_for("provincial")
    from central.ratings.models import Window
    Window.objects.filter(code="W01").update(department=None)  # deptCode is required by the platform
    good = make_rating(Level.SATISFIED, terminal_id=hall.terminal_id)
    ingest_ratings(hall, good)
    result = upward.push(row)
    assert (result.delivered, result.dead) == (0, 1)
    dead = UpwardItem.objects.get(rating_id=good.id)
    assert dead.state == "dead" and "deptCode is required" in dead.last_error
    from central.ratings.models import Department
    Window.objects.filter(code="W01").update(department=Department.objects.first())
    assert upward.resend(UpwardItem.objects.filter(pk=dead.pk)) == 1
    assert upward.push(row).delivered == 1 and good.id in reference.held
    assert list(UpwardItem.objects.filter(rating_id=good.id).values_list("state", flat=True)) == ["resent", "sent"]


def test_a_lost_acknowledgement_or_a_refused_duplicate_never_makes_a_second_record_or_a_dead_one(hall, platform_for):
    row, reference = platform_for("provincial", timeout=1.0)  # every answer comes too late
    ratings = [make_rating(Level.SATISFIED, terminal_id=hall.terminal_id) for _ in range(5)]
    ingest_ratings(hall, *ratings)
    with pytest.raises(upward.TransientError):
        upward.push(row)
    assert len(reference.held) == 5 and UpwardItem.objects.filter(state="pending").count() == 5
    reference.faults = {"refuse_duplicates": 1.0}  # the platform now says 记录已存在 as a refusal
    assert upward.push(row).delivered == 5
    assert UpwardItem.objects.filter(state="sent").count() == 5 and len(reference.held) == 5


def test_a_platform_that_takes_no_default_ratings_is_not_sent_them(hall, platform_for):
    national, national_ref = platform_for("gbt39046", code="NATIONAL")
    provincial, provincial_ref = platform_for("provincial", code="PROV")
    default = rate(Level.BASICALLY_SATISFIED, Channel.SYSTEM_DEFAULT, datetime.datetime(2026, 11, 3, tzinfo=CST))
    assert upward.push(national).batches == 0 and not national_ref.held
    assert upward.push(provincial).delivered == 1
    assert provincial_ref.held[default.rating_id]["isDefault"] == 1


def test_a_default_superseded_by_a_real_rating_is_updated_only_where_it_was_sent(hall, platform_for):
    """A platform that takes no default ratings was queued the default's validity update when a real
    rating superseded it: an update of a record it never had, which it could not even code
    (channel 7), left as a dead letter on every such case."""
    national, national_ref = platform_for("gbt39046", code="NATIONAL")
    provincial, provincial_ref = platform_for("provincial", code="PROV")
    at = datetime.datetime(2026, 11, 3, 10, tzinfo=CST)
    default = direct.rate(window_code="W01", level=Level.BASICALLY_SATISFIED, channel=Channel.SYSTEM_DEFAULT,
                          device="system", at=at, case_no="C-2026-5")
    real = direct.rate(window_code="W01", level=Level.SATISFIED, channel=Channel.QR_CODE, device="phone",
                       at=at + datetime.timedelta(hours=1), case_no="C-2026-5")
    assert Rating.objects.get(pk=default.pk).excluded and real.case_counted
    assert upward.push(national).delivered == 1 and list(national_ref.held) == [real.rating_id]
    assert upward.push(provincial).delivered == 3  # the default, its update, the real rating
    assert provincial_ref.held[default.rating_id]["isValid"] == 0
    assert not UpwardItem.objects.exclude(state="sent").exists()


def test_items_are_queued_in_the_transaction_that_stores_the_rating(hall, platform_for):
    row, _ = platform_for("provincial")
    ratings = [make_rating(Level.SATISFIED, terminal_id=hall.terminal_id) for _ in range(3)]
    from django.db import transaction
    with pytest.raises(RuntimeError), transaction.atomic():
        ingest_ratings(hall, *ratings)
        raise RuntimeError("the request dies before it commits")
    assert not Rating.objects.exists() and not UpwardItem.objects.exists()
    ingest_ratings(hall, *ratings)
    assert sorted(UpwardItem.objects.values_list("rating_id", flat=True)) == sorted(r.id for r in ratings)


def test_profiles_refuse_what_they_cannot_mean():
    from central.ratings.export_profile import ProfileError, parse
    text = exports.shipped_text("provincial")
    with pytest.raises(ProfileError, match="unknown source"):
        parse(text.replace('from = "staff_no"', 'from = "staff_name"'))
    with pytest.raises(ProfileError, match=r"'9' is not a value of level"):
        parse(text.replace('"1" = 1\n\n# pf', '"9" = 1\n\n# pf'))
    with pytest.raises(ProfileError, match="needs a code list"):
        parse(text.replace('codes = "satisfaction"\n', ""))
    with pytest.raises(ProfileError, match="unknown time_zone"):
        parse(text.replace('"Asia/Shanghai"', '"Mars/Olympus"'))


def test_a_day_the_platform_lost_a_record_shows_on_the_upward_page_and_raises_an_alert(hall, platform_for, auditor):
    from central.ratings import alerts, reconciliation
    from central.ratings.models import Alert, UpwardDay
    row, reference = platform_for("provincial")
    day = datetime.datetime(2026, 11, 4, 10, 0, tzinfo=CST)
    made = [rate(level, Channel.QR_CODE, day) for level in (Level.VERY_SATISFIED, Level.SATISFIED, Level.SATISFIED)]
    assert upward.push(row).delivered == 3
    days = {d.day: d for d in reconciliation.run(today=day.date())}
    assert days[day.date()].mismatched is False and days[day.date()].theirs == {"3/5": 1, "3/4": 2}
    alerts.check()
    assert not Alert.objects.filter(rule__kind="upward_mismatch").exists()
    del reference.held[made[1].rating_id]  # the platform loses one it had acknowledged
    reconciliation.run(today=day.date())
    lost = UpwardDay.objects.get(platform=row, day=day.date())
    assert lost.mismatched and "渠道3·等级4 平台 1 / 确认 2" in lost.detail
    alerts.check()
    alert = Alert.objects.get(rule__kind="upward_mismatch", cleared_at__isnull=True)
    assert alert.subject == "PROV" and "11-04" in alert.detail
    page = auditor.get("/upward/").content.decode()
    assert "不符" in page and "渠道3·等级4 平台 1 / 确认 2" in page
    assert reconciliation.requeue(lost) == 3  # the administrator sends the day again
    assert upward.push(row).delivered == 3 and made[1].rating_id in reference.held
    reconciliation.run(today=day.date())
    alerts.check()
    assert not UpwardDay.objects.get(platform=row, day=day.date()).mismatched
    assert Alert.objects.get(pk=alert.pk).cleared_at is not None


def test_a_backlog_older_than_the_rules_minutes_raises_an_alert(hall, platform_for):
    from central.ratings import alerts
    from central.ratings.models import Alert
    row, reference = platform_for("provincial", error=1.0)  # the platform answers 503 to everything
    rate(Level.SATISFIED, Channel.QR_CODE, datetime.datetime(2026, 11, 5, 9, 0, tzinfo=CST))
    with pytest.raises(upward.TransientError):
        upward.push(row)
    alerts.check()
    assert not Alert.objects.filter(rule__kind="upward_backlog").exists()  # queued just now
    UpwardItem.objects.update(created_at=datetime.datetime.now(CST) - datetime.timedelta(hours=3))
    alerts.check()
    assert "待推送 1 条" in Alert.objects.get(rule__kind="upward_backlog").detail


def _paths(node, prefix=()):
    """Every place in a parsed profile: (path to it) for each table key and list item."""
    found = [prefix] if prefix else []
    items = node.items() if isinstance(node, dict) else enumerate(node) if isinstance(node, list) else ()
    for key, child in items:
        found += _paths(child, prefix + (key,))
    return found


def test_an_edited_profile_is_refused_with_a_reason_never_with_a_crash():
    """An administrator edits profiles: whatever a place of one holds, reading it gives a profile or
    a ProfileError, and a profile read encodes, documents and checks without any other exception."""
    import copy
    import tomllib

    from hypothesis import given, settings as hsettings, strategies as st

    from central.ratings.export_profile import ProfileError, from_data
    base = tomllib.loads(exports.shipped_text("provincial"))
    places = _paths(base)
    scalars = st.none() | st.booleans() | st.integers(-10, 10**6) | st.text(max_size=12) | st.floats(allow_nan=True)
    values = st.recursive(scalars, lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=6), inner,
                                                                                               max_size=3), max_leaves=6)
    record = {"rating_id": "r1", "level": 5, "channel": 4, "rated_at": None, "rating_no": 1, "anonymous": True,
              "valid": True, "system_default": False, "applicant_type": "", "case_status": "", "operation": "add",
              "version": 3, "rectified_at": None, "completed_at": None}

    @hsettings(max_examples=300, deadline=None)
    @given(st.lists(st.tuples(st.sampled_from(places), values | st.just("<delete>")), min_size=1, max_size=3))
    def check(changes):
        data = copy.deepcopy(base)
        for path, value in changes:
            parent = data
            try:
                for key in path[:-1]:
                    parent = parent[key]
                if value == "<delete>":
                    del parent[path[-1]]
                else:
                    parent[path[-1]] = value
            except (KeyError, IndexError, TypeError):
                continue  # an earlier change removed or replaced this place
        try:
            profile = from_data(data)
        except ProfileError:
            return
        try:
            profile.encode(record)
        except ProfileError:
            pass
        profile.markdown()
        profile.unmapped({"level": {1, 2, 3, 4, 5}, "channel": {4, 5}})

    check()


def test_a_default_superseded_by_a_real_rating_is_sent_again_as_no_longer_valid(hall, platform_for):
    row, reference = platform_for("provincial")
    at = datetime.datetime.now(CST) - datetime.timedelta(hours=1)
    default = direct.rate(window_code="W01", level=Level.BASICALLY_SATISFIED, channel=Channel.SYSTEM_DEFAULT,
                          device="system", at=at, case_no="C-LATE-1")
    assert upward.push(row).delivered == 1 and reference.held[default.rating_id]["isValid"] == 1
    late = make_rating(Level.SATISFIED, terminal_id=hall.terminal_id, case_no="C-LATE-1")
    assert ingest_ratings(hall, late) == ["accepted"]
    assert list(UpwardItem.objects.filter(rating_id=default.rating_id).values_list("change", flat=True)) == [
        "default", "validity"]
    assert upward.push(row).delivered == 2  # the real rating, and the default's update
    assert reference.held[default.rating_id]["isValid"] == 0 and reference.held[late.id]["isValid"] == 1


def test_a_platforms_hostile_answers_mark_nothing_sent_and_count_nothing(hall, platform_for):
    """What a platform answers is checked before it is believed: a signed answer of the wrong shape,
    acknowledgements with versions that are not integers, an unsigned answer, one that says of a record
    both rejected and accepted, a count for another day or below zero: the items stay pending, and
    the day is not called matched or mismatched on it."""
    import hashlib
    import json
    import threading
    import time
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from central.ratings import reconciliation
    from terminal.core import signing
    row, _ = platform_for("provincial")
    def both(batch):
        record = batch["evaluations"][0]
        return {"results": [{"id": record["evaluateId"], "version": record["dataVersion"], "status": status}
                            for status in ("rejected", "accepted")]}
    answers = iter([({"results": "nope"}, True), ({"results": [{"id": "x", "version": "1", "status": "accepted"}]}, True),
                    ({"results": []}, False), (both, True), ({"day": "1999-01-01", "counts": {"3/4": 1}}, True),
                    ({"day": None, "counts": {"3/4": -1}}, True)])

    class Hostile(BaseHTTPRequestHandler):
        def reply(self):
            asked = self.rfile.read(int(self.headers.get("Content-Length") or 0))
            payload, signed = next(answers)
            payload = payload(json.loads(asked)) if callable(payload) else payload
            if "day" in payload and payload["day"] is None:
                payload["day"] = self.path.rsplit("=", 1)[1]
            body, stamp = json.dumps(payload).encode(), f"{time.time():.3f}"
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.send_header(signing.HEADER_SERVER_TIME, stamp)
            if signed:
                self.send_header(signing.HEADER_ANSWER_SIGNATURE, signing.sign_answer(
                    SECRET, self.headers[signing.HEADER_NONCE], 200, stamp, hashlib.sha256(body).hexdigest()))
            self.end_headers()
            self.wfile.write(body)
        do_POST = do_GET = reply

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Hostile)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    from django.conf import settings
    settings.UPWARD["PROV"]["url"] = f"http://127.0.0.1:{server.server_port}"
    try:
        day = datetime.datetime(2026, 11, 6, 9, 0, tzinfo=CST)
        rate(Level.SATISFIED, Channel.QR_CODE, day)
        for _ in range(4):  # wrong shape, versions not integers, unsigned, contradicting itself
            with pytest.raises(upward.TransientError):
                upward.push(row)
        assert list(UpwardItem.objects.values_list("state", flat=True)) == ["pending"]
        for _ in range(2):  # another day's count, a negative one
            checked = reconciliation.reconcile(row, day.date())
            assert checked.theirs is None and not checked.mismatched and "平台计数未取得" in checked.detail
    finally:
        server.shutdown()
        server.server_close()


def add_by_phone(node, rating_id: str, text: str, reasons=("attitude",)) -> None:
    """What a rater does with the QR code on the terminal's thank-you screen: add on their phone."""
    import time
    from django.test import Client
    from terminal.core import mobile_token
    url = f"/r/{mobile_token.make(node.terminal_id, node.secret, rating_id, int(time.time() + 600)).text}"
    client = Client(enforce_csrf_checks=True)
    assert client.get(url).status_code == 200
    done = client.post(url, {"reasons": list(reasons), "text": text, "csrfmiddlewaretoken": client.cookies["csrftoken"].value})
    assert done.status_code == 200, done.content.decode()[:300]


def test_what_a_rater_adds_by_phone_reaches_the_platform_as_an_update_of_the_same_record(hall, platform_for):
    """扫码补充: the reasons and comment a rater adds on their phone to a rating already reported go
    up as an update of that record, beside the terminal's own; one added before its rating arrived
    is in the rating's first record. Only an addition through the rating's own terminal's QR code
    joins it: another terminal can sign a code for any rating id, and must not put words into it."""
    from central.ratings import auth
    from central.ratings.admin import phone_additions
    from central.ratings.models import Window
    row, reference = platform_for("provincial")
    rating = make_rating(Level.DISSATISFIED, terminal_id=hall.terminal_id, reasons=("slow",), text="等候太久")
    assert ingest_ratings(hall, rating) == ["accepted"]
    assert upward.push(row).delivered == 1
    first = reference.held[rating.id]
    assert (first["evalDetail"], first["evalContent"]) == ("办事效率低/等候时间长", "等候太久")

    add_by_phone(hall, rating.id, "窗口人员态度冷淡")
    assert UpwardItem.objects.filter(change="addition", state="pending").count() == 1
    assert upward.push(row).delivered == 1
    latest = reference.held[rating.id]
    assert len(reference.held) == 1 and latest["operateType"] == "update" and latest["dataVersion"] > first["dataVersion"]
    assert (latest["evalDetail"], latest["evalContent"]) == ("办事效率低/等候时间长,服务态度差", "等候太久\n窗口人员态度冷淡")

    other = auth.enroll(auth.issue_code(Window.objects.get(code="W02"))[0])
    add_by_phone(other, rating.id, "另一终端伪造的意见", reasons=("absent",))
    assert not UpwardItem.objects.filter(state="pending").exists()  # nothing to tell
    assert "伪造" not in phone_additions(Rating.objects.get(rating_id=rating.id))
    assert "伪造" not in str(list(exports.records("provincial", Rating.objects.all())))

    early = make_rating(Level.VERY_DISSATISFIED, terminal_id=hall.terminal_id, reasons=("slow",))
    add_by_phone(hall, early.id, "先扫码后上传")  # the terminal was offline: the phone got there first
    assert not UpwardItem.objects.filter(state="pending").exists()
    assert ingest_ratings(hall, early) == ["accepted"]
    assert upward.push(row).delivered == 1
    assert (reference.held[early.id]["operateType"], reference.held[early.id]["evalContent"]) == ("add", "先扫码后上传")


@pytest.mark.parametrize("url, why", [("http://10.1.2.3/api", "plain http to another machine"),
                                      ("https://prov.example/api?key=s3cret", "no user, password, query or fragment"),
                                      ("https://user:s3cret@prov.example/api", "no user, password, query or fragment"),
                                      ("ftp://prov.example/api", "must be https://host")])
def test_a_platforms_address_is_held_to_the_rules_of_every_address_we_call(settings, url, why):
    """https://, plain http to this machine only, and no secret in it (it would end up in a proxy's
    log): the terminal's own rule (``check_server_url``), refused before anything is sent."""
    platform = UpwardPlatform.objects.create(code="PROV", name="省平台", profile=exports.shipped_text("provincial"))
    settings.UPWARD = {"PROV": {"url": url, "key_id": "key", "secret": "s" * 43}}
    with pytest.raises(upward.NotConfigured, match=why) as refused:
        upward.client_for(platform, upward.profile_of(platform))
    assert "s3cret" not in str(refused.value)


def test_an_update_sent_behind_its_records_failed_batch_waits_for_it_never_dead(hall, platform_for):
    """The next batch goes while the one before is answered (the pipeline): a platform down for the
    first refused the second's update as one "of a record never added", and the update was a dead
    letter, the day a mismatch, though the record arrived whole on the next try. A refusal in a
    batch sent behind a failed one waits to be sent again in order."""
    from django.contrib.auth.models import User
    row, reference = platform_for("provincial")
    UpwardPlatform.objects.filter(pk=row.pk).update(batch_size=1)
    row.refresh_from_db()
    bad = make_rating(Level.VERY_DISSATISFIED, terminal_id=hall.terminal_id, reasons=("slow",))
    ingest_ratings(hall, bad)
    order = WorkOrder.objects.get(rating__rating_id=bad.id)
    workorders.advance(order, "contacted", "已电话联系")
    workorders.advance(order, "rectified", "已增开窗口")
    workorders.advance(order, "closed")
    assert list(UpwardItem.objects.order_by("pk").values_list("change", flat=True)) == ["rating", "rectification"]
    down = iter([True])
    reference.fault = lambda name: name == "error" and next(down, False)  # 503 to the first batch alone
    with pytest.raises(upward.TransientError):
        upward.push(row)
    assert upward.push(row).dead == 0
    assert list(UpwardItem.objects.order_by("pk").values_list("state", flat=True)) == ["sent", "sent"]
    assert reference.held[bad.id]["rectifyContent"] == "已增开窗口"


def test_the_platforms_count_is_asked_of_the_platforms_own_address_alone(hall, platform_for):
    """The count's path is joined to the platform's address as written: one not starting with "/"
    (``@other-host/v1/counts``) sent the signed request to another machine, past the address rules,
    in plain http too. It is refused when saved, and never called."""
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    from django.core.exceptions import ValidationError

    from central.ratings import reconciliation
    row, _ = platform_for("provincial")
    asked = []

    class Elsewhere(BaseHTTPRequestHandler):
        def do_GET(self):
            asked.append(self.path)
            self.send_response(404)
            self.end_headers()

        def log_message(self, *args):
            pass
    server = ThreadingHTTPServer(("127.0.0.1", 0), Elsewhere)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        row.counts_path = f"@127.0.0.1:{server.server_port}/v1/counts"
        with pytest.raises(ValidationError, match="counts_path"):
            row.full_clean()
        row.save()
        checked = reconciliation.reconcile(row, datetime.date(2026, 11, 4))
        assert checked.theirs is None and "平台计数未取得" in checked.detail and not asked
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.django_db(transaction=True)
def test_two_changes_to_one_rating_commit_in_the_order_of_their_versions(hall):
    """A rectification and a phone addition of one rating queued by two requests at once: the one
    given the higher version (item id) commits after the other, so it is never sent, encoded without
    the other's change, before it; else the platform refused the earlier version, sent last, as
    older, and its change was never reported. (SQLite serialises writers; PostgreSQL needs the lock.)"""
    import threading
    import time

    from django.db import connection, transaction
    UpwardPlatform.objects.create(code="PROV", name="省平台", profile=exports.shipped_text("provincial"))
    rating = make_rating(Level.DISSATISFIED, terminal_id=hall.terminal_id, reasons=("slow",))
    assert ingest_ratings(hall, rating) == ["accepted"]
    queued, committed = threading.Event(), {}

    def first():  # queues its change, then takes its time to commit
        try:
            with transaction.atomic():
                upward.queue_ids([rating.id], "rectification")
                queued.set()
                time.sleep(1.0)
            committed["rectification"] = time.monotonic()
        finally:
            connection.close()

    def second():
        from django.db import OperationalError
        queued.wait(10)
        try:
            for _ in range(200):  # the test database on SQLite is shared memory: a writer waits by asking again
                try:
                    with transaction.atomic():
                        upward.queue_ids([rating.id], "addition")
                    break
                except OperationalError as exc:
                    assert connection.vendor == "sqlite" and "locked" in str(exc), exc
                    time.sleep(0.05)
            committed["addition"] = time.monotonic()
        finally:
            connection.close()
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    items = list(UpwardItem.objects.filter(rating_id=rating.id, change__in=["rectification", "addition"])
                 .order_by("pk").values_list("change", flat=True))
    assert items == ["rectification", "addition"]
    assert committed["rectification"] < committed["addition"], "the later version committed first"


def test_a_case_reported_or_completed_after_its_rating_went_up_updates_that_record(hall, platform_for):
    """A record carries its case's facts (事项编码, 申请人类型, 办件状态): a rating that went up before
    its business system reported the case, or while the case was still 已受理, reaches the platform
    again as an update of the same record once the report changes those facts; a report that
    changes none of them sends nothing."""
    from central.ratings import cases
    from central.ratings.models import BusinessSystem
    row, reference = platform_for("provincial")
    system = BusinessSystem.objects.create(system_id="S-LATE", name="业务系统", secret="s" * 43)
    now = datetime.datetime.now(CST)
    rated = make_rating(Level.SATISFIED, terminal_id=hall.terminal_id, case_no="C-LATE-1",
                        now=now - datetime.timedelta(minutes=10))
    assert ingest_ratings(hall, rated) == ["accepted"]
    assert upward.push(row).delivered == 1
    first = reference.held[rated.id]
    assert (first["taskCode"], first["userProp"], first["proStatus"]) == ("", "", "")
    case = {"case_no": "C-LATE-1", "item_code": "11440100MB2C000010-001", "item_name": "不动产登记", "window": "W01",
            "staff_no": "SZ0101", "applicant_type": "company", "status": "accepted",
            "accepted_at": (now - datetime.timedelta(hours=1)).isoformat()}
    cases.report(system, case)  # reported after its rating went up
    assert upward.push(row).delivered == 1
    told = reference.held[rated.id]
    assert (told["operateType"], told["taskCode"], told["userProp"], told["proStatus"]) == (
        "update", "11440100MB2C000010-001", 2, 1)
    cases.report(system, {**case, "status": "completed", "completed_at": (now - datetime.timedelta(minutes=20)).isoformat()})
    assert upward.push(row).delivered == 1
    done = reference.held[rated.id]
    assert done["proStatus"] == 2 and done["dataVersion"] > told["dataVersion"]
    assert cases.report(system, {**case, "status": "completed",
                                 "completed_at": (now - datetime.timedelta(minutes=20)).isoformat()}).outcome == "unchanged"
    assert upward.push(row).delivered == 0
    assert len(reference.held) == 1 and [s for _, _, s in reference.log] == ["accepted"] * 3


def test_a_dead_letter_for_a_value_without_a_code_never_stops_the_push_after_a_restart(hall, platform_for):
    """A value first met while the pusher runs (a call-back's channel 8) stops its own item, a dead
    letter with the reason; the pusher's next start checks the codes of what it is about to send,
    not of that dead letter again: the ratings behind it still go, and the dead one waits for its
    code and a resend."""
    row, reference = platform_for("provincial")
    day = datetime.datetime(2026, 11, 2, 10, 0, tzinfo=CST)
    called = rate(Level.SATISFIED, Channel.TELEPHONE, day)  # a call-back: 8, no code in the provincial profile
    upward.push(row, check_codes=False)  # the running pusher had checked its codes before it came
    dead = UpwardItem.objects.get(rating_id=called.rating_id)
    assert dead.state == "dead" and "channel 8" in dead.last_error
    later = rate(Level.SATISFIED, Channel.QR_CODE, day + datetime.timedelta(hours=1))
    assert upward.push(row).delivered == 1  # started again (a deploy, a reboot): the codes checked afresh
    assert list(reference.held) == [later.rating_id]
    assert UpwardItem.objects.get(rating_id=called.rating_id).state == "dead"


@pytest.mark.parametrize("length", ["-1", "abc", "+5", "1e3"])
def test_the_reference_platform_answers_a_malformed_content_length_at_once(length):
    """The reference platform reads a body by its Content-Length: one below zero read to the end of
    the connection (a keep-alive client's request held its thread until the client hung up) and
    one that is not a number crashed the handler, no answer at all. Both are 400, at once."""
    import socket
    reference = Platform(exports.shipped()["provincial"], "key-X", SECRET).start()
    try:
        with socket.create_connection(("127.0.0.1", reference.server.server_port), timeout=2) as conn:
            head = f"POST /api/v1/evaluations HTTP/1.1\r\nHost: x\r\nContent-Length: {length}\r\n\r\n{{}}"
            conn.sendall(head.encode())
            assert conn.recv(4096).startswith(b"HTTP/1.1 400 ")
    finally:
        reference.close()


def test_a_reconciliation_stamped_by_a_clock_running_ahead_does_not_stop_the_daily_run(hall):
    """A server clock set years ahead, then put right, left the last check in the future: ``due``
    compared it with "24 hours ago" and the daily reconciliation never ran again until that date."""
    from central.ratings import reconciliation
    row = UpwardPlatform.objects.create(code="PROV", name="平台", profile=exports.shipped_text("provincial"))
    now = datetime.datetime(2026, 11, 6, 9, 0, tzinfo=CST)
    ahead = now + datetime.timedelta(days=3650)
    reconciliation.reconcile(row, ahead.date(), now=ahead)  # the tick ran while the clock was ten years on
    assert reconciliation.due(now)
    reconciliation.reconcile(row, now.date(), now=now)  # the clock put right: the daily run happens
    assert not reconciliation.due(now + datetime.timedelta(hours=1))
    assert reconciliation.due(now + datetime.timedelta(hours=25))
