"""SMS (channel 6) against the reference gateway over HTTP (scripts/sms_gateway.py): one invitation
per unrated case, never in quiet hours, exactly one SMS through failures and lost answers, dead
letters after every retry; replies of 1-5 rate the case, anything else is asked about once; every
SMS kept. And the whole of a case across channels, from the business system to no default rating."""

import datetime
import json
import re
import sys
import time

import pytest
from django.test import Client
from django.utils import timezone

from central.ratings import auth, cases, defaults, sms
from central.ratings.models import BusinessSystem, Case, Rating, RatingAddition, SmsMessage, WorkOrder
from terminal.core import mobile_token, signing
from terminal.core.levels import Level

from conftest import CST, ROOT, ingest_ratings, make_rating

sys.path.insert(0, str(ROOT / "scripts"))
from sms_gateway import Gateway  # noqa: E402

pytestmark = [pytest.mark.central, pytest.mark.django_db]
MOBILE = "13912345678"


def at(day: int, hour: int, minute: int = 0) -> datetime.datetime:
    """A local time on a day after today (the hall's zone, Asia/Shanghai)."""
    base = timezone.localtime().date() + datetime.timedelta(days=day)
    return datetime.datetime.combine(base, datetime.time(hour, minute), tzinfo=CST)


@pytest.fixture
def gateway(settings, hall):
    system = auth.add_system("短信网关")
    found = Gateway(system.system_id, system.secret)
    settings.SMS_BACKEND = "central.ratings.sms.HttpGatewayBackend"
    settings.SMS_GATEWAY_URL, settings.SMS_GATEWAY_SYSTEM = found.url, system.system_id
    settings.PUBLIC_URL = "https://pj.example.gov.cn"
    yield found
    found.close()


def done_case(number: str, completed: datetime.datetime, mobile: str = MOBILE) -> Case:
    reporter = BusinessSystem.objects.get_or_create(system_id="S-BIZ", defaults={"name": "业务系统", "secret": "b" * 43})[0]
    return cases.report(reporter, {
        "case_no": number, "window": "W01", "staff_no": "SZ0101", "item_name": "不动产登记", "mobile": mobile,
        "status": "completed", "accepted_at": (completed - datetime.timedelta(hours=1)).isoformat(),
        "completed_at": completed.isoformat()}).case


def test_one_sms_per_case_never_at_night_and_through_every_failure(gateway):
    completed = timezone.now() - datetime.timedelta(hours=3)
    done_case("C-SMS-1", completed)
    done_case("C-SMS-FRESH", timezone.now() - datetime.timedelta(minutes=30))  # not two hours yet
    assert sms.invite(timezone.now()) == 1 and sms.invite(timezone.now()) == 0  # queued once
    assert sms.send_due(at(1, 22, 30)) == (0, 0) and sms.send_due(at(2, 7, 59)) == (0, 0)  # 21:00-08:00: wait
    assert gateway.requests == 0
    gateway.fail_next = ["unavailable", "lost", "unsigned"]
    now, results = at(2, 8, 0), []
    while not SmsMessage.objects.filter(state="sent").exists() and len(results) < 10:
        results.append(sms.send_due(now))
        now += datetime.timedelta(minutes=30)
    message = SmsMessage.objects.get(kind="invitation")
    assert (message.state, message.attempts) == ("sent", 4)
    assert len(gateway.delivered) == 1  # a lost answer and an unsigned one, resent under the same id: one SMS
    (delivered,) = gateway.delivered.values()
    assert delivered["to"] == MOBILE and MOBILE not in message.text and message.mobile_masked == "139****5678"
    assert "回复数字" in delivered["text"] and re.search(r"https://pj\.example\.gov\.cn/s/[\w-]{16}", delivered["text"])
    assert SmsMessage.objects.filter(case__case_no="C-SMS-1", kind="invitation").count() == 1
    sms.invite(at(2, 12))  # a day later the fresh case is due too; C-SMS-1 never gets a second
    assert SmsMessage.objects.filter(case__case_no="C-SMS-1", kind="invitation").count() == 1


def test_a_gateway_that_never_takes_it_leaves_a_dead_letter_the_admin_can_resend(gateway):
    done_case("C-SMS-DEAD", timezone.now() - datetime.timedelta(hours=3))
    sms.invite(at(1, 10))
    gateway.fail_next = ["unavailable"] * sms.MAX_ATTEMPTS
    now = at(1, 10)
    for _ in range(sms.MAX_ATTEMPTS):
        sms.send_due(now)
        now += datetime.timedelta(hours=1, minutes=5)
    message = SmsMessage.objects.get()
    assert (message.state, message.attempts, "503" in message.last_error) == ("dead", sms.MAX_ATTEMPTS, True)
    assert gateway.delivered == {}
    from django.contrib.auth.models import User
    client = Client()
    client.force_login(User.objects.create_superuser("sms-admin", password="pw-sms-admin-Qx7k"))
    page = client.get("/admin/ratings/smsmessage/")
    assert page.status_code == 200 and "139****5678" in page.content.decode() and MOBILE not in page.content.decode()
    client.post("/admin/ratings/smsmessage/", {"action": "resend", "_selected_action": [message.pk]})
    assert sms.send_due(at(1, 18)) == (1, 0) and len(gateway.delivered) == 1


@pytest.mark.parametrize("where", ["head", "body"])
def test_a_gateway_trickling_its_answer_is_given_up_at_the_deadline(gateway, settings, where):
    """requests' timeout bounds each read, not the send: a gateway (or a proxy before it) sending its
    answer a byte at a time held ``tick``, and with it every default rating and alert, for as long
    as it liked. The send is given up at its deadline, and retried later."""
    from fake_central import serve, trickling
    Trickle = trickling(b"HTTP/1.1 200 OK\r\n" + (b"Content-Length: 100000\r\n\r\n" if where == "body" else b"X-Pad: "))

    server, url = serve(Trickle)
    settings.SMS_GATEWAY_URL = url
    backend = sms.HttpGatewayBackend()
    backend.timeout = 0.5
    started = time.monotonic()
    try:
        with pytest.raises(sms.SmsError):
            backend.send("m-1", MOBILE, "请评价")
        took = time.monotonic() - started
    finally:
        server.shutdown()
    assert took < 4, f"the send waited {took:.1f} s on the trickle (it goes on for 15)"


def inbound(system: BusinessSystem, text: str, reply_id: str, sender: str = "+86 139 1234 5678", **more):
    body = json.dumps({"id": reply_id, "from": sender, "text": text, **more}).encode()
    headers = signing.signed_headers(system.system_id, system.secret, "POST", "/api/v1/sms/inbound", body,
                                     time.time(), id_header=signing.HEADER_SYSTEM)
    return Client().post("/api/v1/sms/inbound", body, content_type="application/json",
                         **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})


def test_a_reply_of_5_rates_the_case_and_a_reply_of_hao_is_asked_about_once(gateway):
    system = BusinessSystem.objects.get(system_id=gateway.system_id)
    done_case("C-SMS-R", timezone.now() - datetime.timedelta(hours=3))
    sms.invite(at(1, 10))
    sms.send_due(at(1, 10))
    unclear = inbound(system, "好", "MO-1")
    assert unclear.status_code == 200 and "说明" in unclear.json()["outcome"]
    assert inbound(system, "很好啊", "MO-2").status_code == 200
    assert SmsMessage.objects.filter(kind="clarification").count() == 1  # asked once, not twice
    assert not Rating.objects.exists()
    rated = inbound(system, " ５ ", "MO-3")  # a full-width 5, as some phones send it
    assert rated.json()["outcome"] == "已形成评价"
    rating = Rating.objects.get()
    assert (rating.case_no, rating.level, rating.channel, rating.device, rating.case_counted, rating.window_code) == (
        "C-SMS-R", 5, 6, "sms", True, "W01")
    assert inbound(system, " ５ ", "MO-3").status_code == 200 and Rating.objects.count() == 1  # the same reply twice
    assert SmsMessage.objects.filter(kind="reply").count() == 3  # every SMS received is kept
    other = auth.add_system("别的系统")
    assert inbound(other, "1", "MO-9").status_code == 403  # only the gateway delivers replies
    assert Rating.objects.count() == 1


def test_the_sms_link_rates_the_case_once(gateway):
    done_case("C-SMS-L", timezone.now() - datetime.timedelta(hours=3))
    sms.invite(at(1, 10))
    sms.send_due(at(1, 10))
    link = "/s/" + SmsMessage.objects.get(kind="invitation").link_token
    client = Client()
    page = client.get(link)
    assert page.status_code == 200 and "不动产登记" in page.content.decode() and 'name="case_no"' not in page.content.decode()
    assert client.post(link, {"level": "2", "reasons": ["slow"], "text": "材料退回两次"}).status_code == 200
    rating = Rating.objects.get()
    assert (rating.channel, rating.device, rating.level, rating.reasons, rating.case_counted) == (6, "phone", 2, ["slow"], True)
    assert client.get(link).status_code == 410  # rated: the link is done
    assert client.get("/s/no-such-link-token").status_code == 404


def test_no_page_and_no_console_shows_an_invitations_live_link(gateway, settings, capsys):
    """An SMS link rates its case as the applicant: the admin's page of the message (its
    ``link_token`` excluded) and the console backend (a log) show the text with the link's code masked."""
    done_case("C-SMS-HIDE", timezone.now() - datetime.timedelta(hours=3))
    sms.invite(at(1, 10))
    sms.send_due(at(1, 10))
    message = SmsMessage.objects.get(kind="invitation")
    from django.contrib.auth.models import User
    client = Client()
    client.force_login(User.objects.create_superuser("sms-viewer", password="pw-sms-viewer-Qx7k"))
    page = client.get(f"/admin/ratings/smsmessage/{message.pk}/change/").content.decode()
    assert "回复数字" in page and "/s/" in page
    assert message.link_token not in page
    sms.ConsoleBackend().send("m-1", MOBILE, message.text)
    said = capsys.readouterr().out
    assert "139****5678" in said and "/s/" in said and message.link_token not in said


def test_a_reply_after_the_invitation_expired_is_kept_and_rates_nothing(gateway):
    """An invitation answers for as long as its link does (``default_after_days``): a reply after
    that would take the place of the default rating the case has by then."""
    system = BusinessSystem.objects.get(system_id=gateway.system_id)
    done_case("C-SMS-OLD", timezone.now() - datetime.timedelta(days=30))
    sms.invite(at(1, 10))
    sms.send_due(at(1, 10))
    invitation = SmsMessage.objects.get(kind="invitation")
    SmsMessage.objects.filter(pk=invitation.pk).update(sent_at=timezone.now() - datetime.timedelta(days=29))
    assert defaults.apply(timezone.now()).created == 1
    late = inbound(system, "1", "MO-LATE")
    assert late.status_code == 200 and "过期" in late.json()["outcome"]  # said plainly, in Chinese
    reply = SmsMessage.objects.get(kind="reply")
    assert reply.case.case_no == "C-SMS-OLD" and reply.rating_id == ""  # kept, and no rating made
    assert list(Rating.objects.values_list("device", "case_counted")) == [("system", True)]  # the default counts
    assert Client().get(f"/s/{invitation.link_token}").status_code == 404  # as its link: one rule for both


def test_a_reply_dated_before_its_invitation_is_rated_when_it_came(gateway):
    """The gateway's time of a reply was believed however early: a gateway whose clock was a month
    behind put the rating into last month's figures, already counted and reported, and a reply to an
    invitation long expired could pass as answered in time and take the default rating's place."""
    system = BusinessSystem.objects.get(system_id=gateway.system_id)
    done_case("C-SMS-EARLY", timezone.now() - datetime.timedelta(hours=3))
    sms.invite(at(1, 10))  # in the day's sending hours
    sms.send_due(at(1, 10))
    sent = SmsMessage.objects.get(kind="invitation").sent_at
    month_ago = (timezone.now() - datetime.timedelta(days=31)).isoformat()
    assert inbound(system, "4", "MO-EARLY", received_at=month_ago).json()["outcome"] == "已形成评价"
    rating = Rating.objects.get()
    assert sent <= rating.rated_at <= timezone.now() and rating.rated_on == timezone.localdate()
    done_case("C-SMS-LATER", timezone.now() - datetime.timedelta(hours=3), mobile="13912345679")
    sms.invite(at(1, 10))
    sms.send_due(at(1, 10))
    second = SmsMessage.objects.filter(kind="invitation", case__case_no="C-SMS-LATER")
    second.update(sent_at=timezone.now() - datetime.timedelta(hours=1))
    given = second.get().sent_at + datetime.timedelta(minutes=1)  # after its invitation: the gateway's time is kept
    inbound(system, "5", "MO-LATER", sender="+86 139 1234 5679", received_at=given.isoformat())
    assert Rating.objects.get(case_no="C-SMS-LATER").rated_at == given


def test_an_expired_sms_link_speaks_of_the_link_not_a_qr_code(gateway):
    zh = Client().get("/s/NoSuchLinkTok_n0")  # the shape of a link (16 of A-Z a-z 0-9 _ -), never sent
    en = Client().get("/s/NoSuchLinkTok_n0?lang=en")
    assert zh.status_code == en.status_code == 404
    assert "评价链接已失效" in zh.content.decode() and "二维码" not in zh.content.decode()
    assert "rating link" in en.content.decode() and "QR code" not in en.content.decode()


def test_a_case_across_every_channel_counts_once_and_gets_no_default(gateway, hall):
    """A business system reports the case; the window's terminal is offline, so two hours on the SMS
    invitation goes out; the terminal's rating then arrives and counts; the rater adds a Chinese
    comment through the QR code; their SMS reply of 5 comes last: kept, flagged, not counted. Seven
    days later there is no default rating."""
    system = BusinessSystem.objects.get(system_id=gateway.system_id)
    completed = timezone.now() - datetime.timedelta(hours=3)
    done_case("C-ALL", completed)
    sms.invite(timezone.now())
    sms.send_due(at(1, 10))
    tablet = make_rating(Level.DISSATISFIED, terminal_id=hall.terminal_id, case_no="C-ALL", reasons=("slow",),
                         now=completed + datetime.timedelta(minutes=2))
    assert ingest_ratings(hall, tablet) == ["accepted"]
    token = mobile_token.make(hall.terminal_id, hall.secret, tablet.id, int(time.time()) + 600).text
    assert Client().post(f"/r/{token}", {"text": "希望增加窗口", "reasons": ["attitude"]}).status_code == 200
    late = inbound(system, "5", "MO-ALL")
    assert late.json()["outcome"] == "该办件已有评价，本条保留但不计入"
    got = {r.channel: (r.case_counted, r.excluded, r.flags) for r in Rating.objects.filter(case_no="C-ALL")}
    assert got == {4: (True, False, []), 6: (None, True, ["duplicate_case"])}
    assert RatingAddition.objects.get().rating_id == tablet.id
    assert SmsMessage.objects.filter(case__case_no="C-ALL").count() == 2  # the invitation and the reply, kept
    assert defaults.apply(timezone.now() + datetime.timedelta(days=8)).created == 0


def test_without_a_public_address_the_invitation_asks_for_a_reply_only(gateway, settings):
    settings.PUBLIC_URL = ""  # a server only the hall's LAN reaches: no link a phone could not open
    done_case("C-SMS-NOLINK", timezone.now() - datetime.timedelta(hours=3))
    sms.invite(timezone.now())
    text = SmsMessage.objects.get().text
    assert "回复数字" in text and "/s/" not in text and "http" not in text


def test_a_gateways_refusal_naming_the_number_shows_it_masked(gateway):
    """Gateways name the number they refused (“号码 139… 无效”): its words went to the message's
    last error as they came, shown in the clear on the SMS list and page, and kept in the clear in
    the database, where every number is otherwise encrypted (``personal_data``)."""
    from django.contrib.auth.models import User
    done_case("C-SMS-BADNO", timezone.now() - datetime.timedelta(hours=3))
    sms.invite(at(1, 10))

    class Refusing(sms.BaseBackend):
        def send(self, message_id, to, text):
            raise sms.SmsError(f'gateway answered HTTP 400: {{"error": "号码 {to} 无效"}}')
    sms.send_due(at(1, 10), Refusing())
    message = SmsMessage.objects.get()
    assert "号码" in message.last_error and MOBILE not in message.last_error  # the database keeps no number in clear
    client = Client()
    client.force_login(User.objects.create_superuser("sms-admin", password="pw-sms-admin-Qx7k"))
    for page in ("/admin/ratings/smsmessage/", f"/admin/ratings/smsmessage/{message.pk}/change/"):
        shown = client.get(page).content.decode()
        assert "号码" in shown and MOBILE not in shown, page


def test_an_invitation_is_not_sent_once_its_case_is_rated_or_cancelled_and_a_cancelled_case_is_not_rated(gateway):
    """Invitations queued in the evening go in the morning. A case rated at the window's plaque in
    between, or cancelled by its business system, is no longer one nothing else rated: its SMS was
    still sent (and its reply then kept as a duplicate); and a cancelled case's link and reply still
    rated it, where a plaque refuses it."""
    from central.ratings import direct
    from terminal.core.channels import Channel
    evening = at(1, 22)
    done = timezone.now() - datetime.timedelta(hours=3)
    done_case("C-SMS-RATED", done, mobile="13900000001")
    done_case("C-SMS-GONE", done, mobile="13900000002")
    assert sms.invite(evening) == 2 and sms.send_due(evening) == (0, 0)  # quiet hours: they wait
    direct.rate(window_code="W01", level=Level.SATISFIED, channel=Channel.QR_CODE, device="phone",
                case_no="C-SMS-RATED")
    reporter = BusinessSystem.objects.get(system_id="S-BIZ")
    gone = Case.objects.get(case_no="C-SMS-GONE")
    cases.report(reporter, {"case_no": gone.case_no, "window": "W01", "status": "cancelled",
                            "accepted_at": gone.accepted_at.isoformat(), "completed_at": gone.completed_at.isoformat()})
    assert sms.send_due(at(2, 8)) == (0, 0) and gateway.requests == 0  # neither goes out
    assert dict(SmsMessage.objects.values_list("case__case_no", "state")) == {
        "C-SMS-RATED": "withdrawn", "C-SMS-GONE": "withdrawn"}  # kept, with why
    assert "已有评价" in SmsMessage.objects.get(case__case_no="C-SMS-RATED").note

    done_case("C-SMS-LATE", done, mobile="13900000003")
    sms.invite(at(2, 9))
    assert sms.send_due(at(2, 9)) == (1, 0)
    late = Case.objects.get(case_no="C-SMS-LATE")
    cases.report(reporter, {"case_no": late.case_no, "window": "W01", "status": "cancelled",
                            "accepted_at": late.accepted_at.isoformat(), "completed_at": late.completed_at.isoformat()})
    link = "/s/" + SmsMessage.objects.get(case=late, kind="invitation").link_token
    assert Client().get(link).status_code == 404 and Client().post(link, {"level": "1"}).status_code == 404
    answer = inbound(BusinessSystem.objects.get(system_id=gateway.system_id), "1", "MO-GONE", sender="13900000003")
    assert answer.status_code == 200 and "撤销" in answer.json()["outcome"]
    assert not Rating.objects.filter(case_no="C-SMS-LATE").exists()


def test_a_reply_dated_before_its_invitation_rates_nothing_in_a_closed_period(gateway):
    """The gateway says when a reply was received. A reply dated before any invitation to its number
    (2020, say) rated the case in 2020, a period closed and reported long ago: the gateway's clock is
    wrong, so it is rated when it reached us. A reply dated a moment before its invitation (the
    gateway's clock a little behind ours) is that invitation's, rated no earlier than it went out."""
    system = BusinessSystem.objects.get(system_id=gateway.system_id)
    done_case("C-SMS-WHEN", timezone.now() - datetime.timedelta(hours=3))
    sms.invite(timezone.now())
    sms.send_due(at(1, 10))
    sent = SmsMessage.objects.get(kind="invitation").sent_at

    def reply(reply_id: str, when: datetime.datetime):
        body = json.dumps({"id": reply_id, "from": MOBILE, "text": "1", "received_at": when.isoformat()}).encode()
        headers = signing.signed_headers(system.system_id, system.secret, "POST", "/api/v1/sms/inbound", body,
                                         time.time(), id_header=signing.HEADER_SYSTEM)
        return Client().post("/api/v1/sms/inbound", body, content_type="application/json",
                             **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})
    before = timezone.now()
    old = reply("MO-2020", datetime.datetime(2020, 1, 1, 10, tzinfo=CST))
    assert old.status_code == 200 and old.json()["outcome"] == "已形成评价"
    assert before <= Rating.objects.get().rated_at <= timezone.now()  # when it came, not in 2020
    WorkOrder.objects.all().delete()  # the case unrated again, for the second reply
    Rating.objects.all().delete()
    skewed = reply("MO-SKEW", sent - datetime.timedelta(seconds=20))
    assert skewed.json()["outcome"] == "已形成评价"
    assert Rating.objects.get().rated_at == sent
