"""The printed QR plaque at a window: a rating from any phone is channel 3 for that window, and its
case's only when the rater shows the case is theirs (the last four digits of its mobile number);
floods from one phone or one address are limited and repeats flagged; a renewed code retires the
old plaques."""

import re

import pytest
from django.test import Client

from central.ratings import plaques
from central.ratings.models import Rating, Window, WorkOrder

pytestmark = [pytest.mark.central, pytest.mark.django_db]


def plaque_url(code: str = "W01") -> str:
    return f"/w/{plaques.code_for(Window.objects.get(code=code))}"


def rate(client: Client, url: str, **form) -> int:
    page = client.get(url)
    assert page.status_code == 200, page.content[:300]
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.content.decode()).group(1)
    return client.post(url, {"csrfmiddlewaretoken": token, **form}).status_code


def report(case_no: str, window: str = "W01", mobile: str = "13812345678", completed_minutes_ago: int = 20, **more):
    """A case as its business system reports it, done ``completed_minutes_ago``."""
    import datetime

    from django.utils import timezone

    from central.ratings import auth, cases
    from central.ratings.models import BusinessSystem
    system = BusinessSystem.objects.first() or auth.add_system("业务系统")
    done = timezone.now() - datetime.timedelta(minutes=completed_minutes_ago)
    cases.report(system, {"case_no": case_no, "window": window, "staff_no": "SZ0101", "item_code": "ITEM-9",
                          "status": "completed", "accepted_at": (done - datetime.timedelta(hours=1)).isoformat(),
                          "completed_at": done.isoformat(), "mobile": mobile, **more})


def test_a_phone_rates_the_window_on_channel_3_and_its_case_with_the_last_four_digits(hall):
    report("C-PLAQUE-1")
    client = Client(enforce_csrf_checks=True)
    page = client.get(plaque_url()).content.decode()
    assert "评价窗口服务" in page and "1号窗口" in page and "非常满意" in page and "办件编号（选填）" in page
    assert "手机号码后四位" in page
    assert rate(client, plaque_url(), level="1", reasons=["slow"], case_no="C-PLAQUE-1", phone_tail="５６７８",
                text="等了一个小时") == 200  # full-width digits, as some phones type them
    stored = Rating.objects.get()
    assert (stored.channel, stored.device, stored.window_code, stored.level, stored.case_no, stored.reasons,
            stored.text, stored.case_counted, stored.flags) == (3, "phone", "W01", 1, "C-PLAQUE-1", ["slow"],
                                                                "等了一个小时", True, [])
    assert WorkOrder.objects.filter(rating=stored).exists()  # a bad rating is followed up, whatever the channel
    assert stored.time_source == "server_received" and "address" in stored.payload  # kept as a keyed hash only
    assert "127.0.0.1" not in str(stored.payload)


def test_a_repeat_from_the_same_phone_is_flagged_and_a_flood_is_refused(hall):
    phone = Client()
    assert rate(phone, plaque_url(), level="5") == 200
    assert rate(phone, plaque_url(), level="5") == 200  # the same phone again within a day
    first, second = Rating.objects.order_by("id")
    assert (first.flags, first.excluded) == ([], False)
    assert (second.flags, second.excluded) == (["repeat_rater"], True)
    assert rate(phone, plaque_url(), level="4") == 200
    assert rate(phone, plaque_url(), level="4") == 429  # a fourth in a day: nothing stored
    assert Rating.objects.count() == 3
    # another phone behind the same address (a hall's Wi-Fi) is a repeat of that address, still taken
    assert rate(Client(), plaque_url(), level="5") == 200
    assert Rating.objects.order_by("id").last().flags == ["repeat_rater"]
    other = Client(REMOTE_ADDR="10.1.2.3")
    assert rate(other, plaque_url("W02"), level="5") == 200
    assert Rating.objects.get(window_code="W02").flags == []  # another window, another address: counted


def test_thirty_an_hour_from_one_address_then_no_more(hall):
    for n in range(30):
        assert rate(Client(), plaque_url(), level="5") == 200, n  # each a fresh phone, one address
    assert rate(Client(), plaque_url(), level="5") == 429
    assert Rating.objects.count() == 30
    assert Rating.objects.filter(excluded=False).count() == 1  # the rest repeats of that address


def test_a_bad_form_stores_nothing_and_a_renewed_code_retires_the_old_plaque(hall):
    client = Client()
    assert rate(client, plaque_url(), level="9") == 400
    assert rate(client, plaque_url(), level="5", text="坏\u0000字") == 400
    assert rate(client, plaque_url(), level="5", case_no="C" * 51) == 400
    assert rate(client, plaque_url(), level="5", case_no="C-1") == 400  # a case number without its four digits
    assert rate(client, plaque_url(), level="5", case_no="C-1", phone_tail="12a4") == 400
    assert not Rating.objects.exists()
    old = plaque_url()
    window = Window.objects.get(code="W01")
    assert plaques.code_for(window) == old.rsplit("/", 1)[1]  # stable until renewed
    plaques.code_for(window, renew=True)
    assert client.get(old).status_code == 404
    assert client.get("/w/nothing-like-a-code").status_code == 404


def test_the_plaque_prints_as_an_a6_svg_with_its_code_and_chinese_text(hall):
    from django.contrib.auth.models import User
    admin = User.objects.create_superuser("plaque-admin", password="pw-plaque-admin-Qx7k")
    client = Client()
    client.force_login(admin)
    window = Window.objects.get(code="W01")
    reply = client.post("/admin/ratings/window/", {"action": "print_plaque", "_selected_action": [window.pk]})
    assert reply.status_code == 200 and reply["Content-Type"].startswith("image/svg+xml")
    svg = reply.content.decode()
    window.refresh_from_db()
    assert 'width="105mm" height="148mm"' in svg and "扫码评价本窗口服务" in svg and "1号窗口" in svg
    assert "data:font/otf;base64," in svg  # its own font: prints the same on any machine
    assert window.plaque_code and len(svg) < 150_000


def test_whatever_a_phone_posts_the_answer_is_never_a_500(hall):
    """Fuzzed forms to both phone pages (the plaque's and the rating token's): a documented 4xx or
    a stored rating or comment, never a server error."""
    import time

    from urllib.parse import urlencode

    from hypothesis import HealthCheck, given, settings, strategies as st

    from central.ratings.models import RatingAddition
    from conftest import make_rating
    from terminal.core import mobile_token
    texts = st.text(st.characters(codec=None), max_size=60) | st.text(max_size=600)
    plaque = plaque_url()

    @settings(max_examples=120, deadline=None, suppress_health_check=list(HealthCheck))
    @given(level=texts | st.sampled_from(["1", "5", "0", "6", "-1", "5.0"]), case_no=texts, text=texts,
           reasons=st.lists(texts, max_size=25), which=st.booleans(), address=st.integers(1, 250))
    def post(level, case_no, text, reasons, which, address):
        client = Client(REMOTE_ADDR=f"10.9.0.{address}")
        if which:
            url = plaque
        else:
            rating_id = make_rating(terminal_id=hall.terminal_id).id
            url = f"/r/{mobile_token.make(hall.terminal_id, hall.secret, rating_id, int(time.time()) + 600).text}"
        # encoded by hand, as a hostile client may: lone surrogates become bytes that are not UTF-8
        body = urlencode({"level": level, "case_no": case_no, "text": text, "reasons": reasons}, doseq=True,
                         encoding="utf-8", errors="surrogatepass")
        reply = client.post(url, body, content_type="application/x-www-form-urlencoded")
        assert reply.status_code in (200, 400, 429), (reply.status_code, reply.content[:300])
    post()
    assert Rating.objects.filter(device="phone").exists() or RatingAddition.objects.exists()


def test_a_form_sent_back_keeps_the_pages_own_font_whatever_was_typed(hall):
    """A bad form comes back with what the rater typed, in the phone's own fonts: the inlined font
    stays the one cut to the page's wording, so no post, however long its comment, makes the server
    cut a new subset of the 15 MB font (about a second of CPU and half a megabyte each)."""
    import random

    from central.ratings import page_font
    client = Client(REMOTE_ADDR="10.6.6.6")
    font = client.get(plaque_url()).context["font"]
    cut = page_font._subset.cache_info().currsize
    for _ in range(3):
        typed = "".join(chr(random.randint(0x4E00, 0x9FA5)) for _ in range(500))
        answer = client.post(plaque_url(), {"text": typed, "case_no": typed[:40]})  # no level: sent back
        assert answer.status_code == 400 and typed in answer.content.decode()
        assert answer.context["font"] == font
    assert page_font._subset.cache_info().currsize == cut
    assert '"Page"' not in answer.content.decode().split("textarea, input[type=text] {", 1)[1].split("}", 1)[0]


def test_every_post_counts_against_its_address_before_it_is_read(hall):
    client = Client(REMOTE_ADDR="10.6.6.7")
    for n in range(plaques.POSTS_PER_ADDRESS):
        assert client.post(plaque_url(), {"text": f"没有等级 {n}"}).status_code == 400, n
    refused = client.post(plaque_url(), {"text": "没有等级"})
    assert refused.status_code == 429 and "评价过于频繁" in refused.content.decode()
    assert Client(REMOTE_ADDR="10.6.6.8").post(plaque_url(), {"text": "没有等级"}).status_code == 400  # another address
    assert not Rating.objects.exists()


def test_a_plaque_rating_of_a_reported_case_is_credited_to_its_staff_member(hall):
    """The case's counted rating carries the case's staff member and item, as an SMS link's does:
    per-staff statistics would otherwise lose it."""
    from central.ratings import stats
    report("C-STAFF")
    assert Client(REMOTE_ADDR="10.4.4.4").post(plaque_url(), {"level": "1", "case_no": "C-STAFF",
                                                             "phone_tail": "5678"}).status_code == 200
    counted = Rating.objects.get(case_no="C-STAFF")
    assert (counted.staff_no, counted.item_code, counted.case_counted) == ("SZ0101", "ITEM-9", True)
    start, end = stats.last_days(2)
    assert {r.key: r.total for r in stats.table(stats.Query(start, end, "staff"))}.get("SZ0101") == 1


def test_a_case_is_rated_at_a_plaque_only_by_who_shows_it_is_theirs(hall):
    """Anyone can read a plaque, and a case number is on the receipt and said aloud at the counter:
    typed alone it took the case's counted place (一事一评), so anyone at the window, staff
    included, could rate other people's cases and leave their own raters a duplicate. Now a case
    not shown to be the rater's stores nothing, with one answer for every reason."""
    report("C-MINE")
    report("C-ELSEWHERE", window="W02")
    report("C-OLD", completed_minutes_ago=8 * 24 * 60)  # past default_after_days (7)
    report("C-GONE", status="cancelled")
    tries = [("C-MINE", "0000"),  # someone else's case, the digits guessed
             ("C-NEVER-REPORTED", "5678"), ("C-ELSEWHERE", "5678"), ("C-OLD", "5678"), ("C-GONE", "5678")]
    answers = set()
    for n, (case_no, tail) in enumerate(tries):
        reply = Client(REMOTE_ADDR=f"10.5.5.{n}").post(plaque_url(), {"level": "5", "case_no": case_no, "phone_tail": tail})
        assert reply.status_code == 400, case_no
        answers.add(re.search(r'id="problem">([^<]+)<', reply.content.decode()).group(1))
    assert answers == {plaques.WORDS["zh"]["unverified"]}  # tells nobody which cases exist
    assert not Rating.objects.exists()
    assert Client(REMOTE_ADDR="10.5.6.1").post(plaque_url(), {"level": "5", "case_no": "C-MINE",
                                                             "phone_tail": "5678"}).status_code == 200
    assert Rating.objects.get().case_counted is True


def test_the_last_four_digits_of_a_case_cannot_be_guessed(hall):
    """Ten thousand possible digits: each case may be tried CASE_TRIES times at a plaque, from any
    phones and addresses, after which even the right digits are refused."""
    report("C-GUESS")
    for n in range(plaques.CASE_TRIES):
        assert Client(REMOTE_ADDR=f"10.7.7.{n}").post(plaque_url(), {"level": "5", "case_no": "C-GUESS",
                                                                     "phone_tail": f"{n:04d}"}).status_code == 400
    assert Client(REMOTE_ADDR="10.7.8.1").post(plaque_url(), {"level": "5", "case_no": "C-GUESS",
                                                             "phone_tail": "5678"}).status_code == 429
    assert not Rating.objects.exists()


def test_the_tries_at_a_case_are_counted_over_its_whole_life_not_per_hour(hall):
    """An hour's limit let a case be tried again every hour, and the timer forgot every count a day
    old: 840 of the ten thousand last four digits in the week a case may be rated, one chance in
    twelve of rating someone else's case. Tried every hour for a week, the timer running each hour,
    a case takes CASE_TRIES tries in all (twice that if the week straddles the count's period)."""
    import datetime

    from django.utils import timezone

    from central.ratings import throttle
    window = Window.objects.get(code="W01")
    start, allowed = timezone.now(), 0
    for hour in range(7 * 24):
        now = start + datetime.timedelta(hours=hour)
        throttle.forget_old(now)  # the tick
        allowed += plaques.case_may_be_tried(window, "C-WEEK", now)
    assert plaques.CASE_TRIES <= allowed <= 2 * plaques.CASE_TRIES


def test_a_count_is_forgotten_only_once_its_period_is_over(hall):
    import datetime

    from django.utils import timezone

    from central.ratings import throttle
    from central.ratings.models import Throttle
    now = timezone.now()
    assert throttle.allow("short", 1, 600, now) and throttle.allow("long", 1, 30 * 24 * 3600, now)
    assert throttle.forget_old(now + datetime.timedelta(days=2)) == 1  # the ten minutes' count only
    assert list(Throttle.objects.values_list("key", flat=True)) == ["long"]
    assert not throttle.allow("long", 1, 30 * 24 * 3600, now + datetime.timedelta(days=2))


@pytest.mark.django_db(transaction=True)
def test_posts_sent_at_once_from_one_address_count_once(hall):
    """Two plaque ratings from one address at once, each from a "new" phone (no cookie sent): the
    second looks for a repeat while the first is being stored. It waits, and is kept, flagged and
    not counted. Before, both looked before either was stored and both counted: a burst of bad
    ratings from one address, each with a work order."""
    from conftest import race
    from terminal.core.levels import Level
    window = Window.objects.get(code="W01")
    race(lambda: plaques.rate(window, Level.VERY_DISSATISFIED, ["slow"], "", None, "d-one", "same-address"),
         lambda: plaques.rate(window, Level.VERY_DISSATISFIED, ["slow"], "", None, "d-two", "same-address"))
    assert sorted(Rating.objects.values_list("excluded", "flags")) == [(False, []), (True, [plaques.REPEAT_RATER])]
    assert WorkOrder.objects.count() == 1
