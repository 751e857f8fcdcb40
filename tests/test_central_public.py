"""/public/ publishes no one: comments appear only once a hall administrator approved them (审核),
within the page's 90 days, in the order the server received them, with every digit run of six or
more (however separated, in Chinese numerals too) and every e-mail address masked."""

import json
import re
from datetime import datetime, timedelta

import pytest
from django.utils import timezone

from central.ratings import masking
from central.ratings.models import CommentReviewEntry, Rating
from terminal.core.levels import Level

from conftest import CST, ingest_ratings, make_rating

pytestmark = [pytest.mark.central, pytest.mark.django_db]

VARIANTS = [
    "电话 138.1234.5678", "138/1234/5678", "138－1234－5678", "138–1234–5678", "138—1234—5678",
    "138，1234，5678", "138、1234、5678", "1\u200b3\u200b8\u200b1\u200b2\u200b3\u200b4\u200b5",
    "１３８１２３４５６７８", "一三八一二三四五六七八", "幺三八幺二三四五六七八", "壹叁捌壹贰叁肆伍陆柒捌",
    "身份证 440106 1990 0101 123X", "卡号 6222 0200 1234 5678", "13812345678",
]
EMAILS = ["zhang.san@163.com", "zhang＠163.com", "zhang @ 163 . com", "zhang(at)163(dot)com", "张三艾特qq点com"]


def longest_digit_run(text: str) -> int:
    """Digits in the longest run of digits and separators: what the page must never show six of."""
    text = masking.normalise(text)
    runs = re.findall(f"[{masking.DIGITS}](?:[{masking.SEPARATORS}]*[{masking.DIGITS}])*", text)
    return max((sum(c in masking.DIGITS for c in r) for r in runs), default=0)


@pytest.mark.parametrize("text", VARIANTS)
def test_every_way_of_writing_a_number_is_masked(text):
    shown = masking.anonymise(f"评价：{text}，谢谢")
    assert longest_digit_run(shown) < 6 and "评价" in shown and "谢谢" in shown


@pytest.mark.parametrize("mark", ["*", "＊", "。", "；", ";", "+", "'", "#", "~~", "→", "☎", "  ·  "])
def test_a_number_split_by_any_punctuation_or_symbol_is_masked(mark):
    """Not only the separators a list foresaw: 138*1234*5678 and 138。1234。5678 once reached the
    public page whole, three runs of fewer than six digits each."""
    shown = masking.normalise(masking.anonymise(f"评价：138{mark}1234{mark}5678，谢谢"))
    assert not re.search("[0-9]", shown) and "评价" in shown and "谢谢" in shown


@pytest.mark.parametrize("digits", ["0123456789", "٠١٢٣٤٥٦٧٨٩", "۰۱۲۳۴۵۶۷۸۹", "०१२३४५६७८९", "০১২৩৪৫৬৭৮৯", "๐๑๒๓๔๕๖๗๘๙",
                                    "០១២៣៤៥៦៧៨៩", "೦೧೨೩೪೫೬೭೮೯"])
def test_a_number_in_the_digits_of_any_script_is_masked(digits):
    """A phone number in Arabic-Indic, Devanagari or Thai digits (which NFKC leaves as they are)
    once reached the public page whole: every decimal digit is a digit."""
    number = "".join(digits[int(d)] for d in "13812345678")
    shown = masking.anonymise(f"评价：{number}，谢谢")
    assert not re.search(r"\d", shown) and "评价" in shown and "谢谢" in shown


@pytest.mark.parametrize("text", EMAILS)
def test_every_way_of_writing_an_email_is_masked(text):
    shown = masking.anonymise(f"联系我 {text} 谢谢")
    assert "163" not in shown and "qq" not in shown and "@" not in shown and "谢谢" in shown


def test_ordinary_words_and_short_numbers_stay():
    text = "等了20分钟，2号窗口一次性告知不到位，跑了三次"
    assert masking.anonymise(text) == text


def comment(hall, text: str, **fields) -> Rating:
    rating = make_rating(Level.DISSATISFIED, terminal_id=hall.terminal_id, reasons=("slow",), text=text, **fields)
    assert ingest_ratings(hall, rating) == ["accepted"]
    return Rating.objects.get(rating_id=rating.id)


def review(admin_client, rating: Rating, **change):
    """A hall administrator's step in the review admin: an action, or an edit saved."""
    url = "/admin/ratings/commentforreview/"
    if "action" in change:
        return admin_client.post(url, {"action": change["action"], "_selected_action": [rating.pk]})
    return admin_client.post(f"{url}{rating.pk}/change/", {"comment_public": change["text"],
                                                           "comment_reviews-TOTAL_FORMS": 0,
                                                           "comment_reviews-INITIAL_FORMS": 0})


@pytest.fixture
def hall_admin(hall, client, django_user_model):
    from django.contrib.auth.models import Group
    user = django_user_model.objects.create_user("reviewer", password="a-long-pass-phrase", is_staff=True)
    user.groups.add(Group.objects.get(name="大厅管理员"))
    client.force_login(user)
    return client


def test_only_approved_comments_are_published_masked_and_in_order_received(hall, hall_admin):
    from django.test import Client
    public = Client()
    waiting = comment(hall, "王五在窗口骂人，我住幸福路 8 号")  # a name and an address: no pattern finds them
    assert "王五" not in public.get("/public/").content.decode()  # not reviewed: not shown
    everything = "；".join(VARIANTS + EMAILS)
    numbers = comment(hall, f"办事太慢 {everything}", now=datetime.now(CST) - timedelta(days=30))
    late_clock = comment(hall, "终端时钟快了一年", now=datetime.now(CST) + timedelta(days=1))
    review(hall_admin, numbers, action="approve")
    review(hall_admin, late_clock, action="approve")
    review(hall_admin, waiting, text="工作人员态度不好")  # edited: the name and address taken out
    page = public.get("/public/").content.decode()
    shown = "\n".join(re.findall(r'<td class="l">[^<]*</td><td class="l">[^<]*</td><td class="l">[^<]*</td>'
                                 r'<td class="l">([^<]*)</td>', page.split("最近评价内容", 1)[1]))
    assert "王五" not in shown and "幸福路" not in shown and "工作人员态度不好" in shown
    assert longest_digit_run(shown) < 6 and "@" not in shown and "163" not in shown and "办事太慢" in shown
    order = [shown.index(t) for t in ("终端时钟快了一年", "办事太慢", "工作人员态度不好")]
    assert order == sorted(order)  # newest received first, whatever the terminals' clocks said
    waiting.refresh_from_db()
    assert waiting.text == "王五在窗口骂人，我住幸福路 8 号"  # the rater's words are kept as written
    assert list(CommentReviewEntry.objects.filter(rating=waiting).values_list("action", "text")) == [
        ("edited", "工作人员态度不好")]
    review(hall_admin, numbers, action="reject")
    assert "办事太慢" not in public.get("/public/").content.decode()
    assert list(CommentReviewEntry.objects.filter(rating=numbers).values_list("action", flat=True)) == [
        "approved", "rejected"]


def test_comments_older_than_the_page_are_not_shown(hall, hall_admin):
    old = comment(hall, "三个月前的评价")
    Rating.objects.filter(pk=old.pk).update(received_at=timezone.now() - timedelta(days=91))
    review(hall_admin, old, action="approve")
    from django.test import Client
    assert "三个月前的评价" not in Client().get("/public/").content.decode()


def test_a_department_manager_cannot_review(hall, client, django_user_model):
    from django.contrib.auth.models import Group
    from central.ratings.models import Department, Operator
    rating = comment(hall, "还可以")
    user = django_user_model.objects.create_user("m", password="a-long-pass-phrase", is_staff=True)
    user.groups.add(Group.objects.get(name="部门负责人"))
    Operator.objects.create(user=user, department=Department.objects.get(code="11440100MB2C000010"))
    client.force_login(user)
    assert review(client, rating, action="approve").status_code in (302, 403)
    rating.refresh_from_db()
    assert rating.comment_state == ""


def test_the_public_page_is_chinese_first_with_english_available(hall, hall_admin):
    """Citizens read it: Simplified Chinese by default, English on ?lang=en; the names and the
    comments stay as written, the levels and reason tags speak the page's language."""
    from django.test import Client
    public = Client()
    approved = comment(hall, "等候时间较长")
    review(hall_admin, approved, action="approve")
    chinese = public.get("/public/").content.decode()
    assert '<html lang="zh-CN">' in chinese and "<title>评价公示 — 政务服务好差评</title>" in chinese
    assert "最近评价内容" in chinese and "不满意" in chinese and 'href="?lang=en"' in chinese
    english = public.get("/public/?lang=en").content.decode()
    assert '<html lang="en">' in english and "<title>Ratings in public — Government service ratings</title>" in english
    assert "Recent comments" in english and ">Dissatisfied<" in english and "等候时间较长" in english
    assert "1号窗口" in english  # a window's name is data, shown as the hall wrote it
    body = re.sub(r"<style>.*?</style>", "", english, flags=re.S)
    ui = re.sub(r"<td[^>]*>[^<]*</td>", "", body)  # the table cells are data: names, comments
    assert not re.search(r"[\u4e00-\u9fff]", re.sub(r'<a [^>]*lang="zh-CN"[^>]*>中文</a>', "", ui)), \
        "Chinese words in the English page's own text"


def test_the_english_public_page_names_a_window_without_a_department_in_english(hall):
    """The page's own words for what no one named: a window outside every department was ranked under
    “未归属部门” on the English page too."""
    from django.test import Client
    from central.ratings import direct
    from central.ratings.models import Window
    from terminal.core.channels import Channel
    window = Window.objects.create(hall=Window.objects.get(code="W01").hall, code="W99", name="Help desk")
    direct.rate(window_code=window.code, level=Level.SATISFIED, channel=Channel.QR_CODE, device="phone")
    english = Client().get("/public/?lang=en").content.decode()
    assert "Help desk (W99)" in english and "No department" in english and "未归属部门" not in english
    assert "未归属部门" in Client().get("/public/").content.decode()


def test_no_admin_page_shows_a_number_or_address_a_rater_wrote(hall, hall_admin):
    """A rater's words are personal data where they hold a phone number or an e-mail address: the
    admin shows them masked as /public/ does, on every page that shows them (the rating, its raw
    record, its work order, the review, the phone addition, an SMS), and keeps them as written."""
    import time
    from django.test import Client
    from central.ratings.models import SmsMessage, WorkOrder
    from terminal.core import mobile_token
    written = "等候时间太长，电话 138-1234-5678，邮箱 wang@example.com"
    rating = comment(hall, written)
    url = f"/r/{mobile_token.make(hall.terminal_id, hall.secret, rating.rating_id, int(time.time() + 600)).text}"
    phone = Client(enforce_csrf_checks=True)
    phone.get(url)
    assert phone.post(url, {"text": "请回电 13900001111", "csrfmiddlewaretoken": phone.cookies["csrftoken"].value}
                      ).status_code == 200
    order = WorkOrder.objects.get(rating=rating)
    review(hall_admin, rating, text=f"已核实 {written}")  # an edit that kept the number
    from central.ratings.models import BusinessSystem, Case
    system = BusinessSystem.objects.create(system_id="S-MASK", name="测试", secret="s" * 43)
    case = Case.objects.create(case_no="C-MASK-1", system=system, department=hall.window.department, window=hall.window,
                               item_code="X", item_name="事项", status="completed", accepted_at=timezone.now())
    sms = SmsMessage.objects.create(case=case, kind="reply", text="5 电话13900001111", mobile_token="x",
                                    mobile_index="y", mobile_masked="139****1111")
    from central.ratings.models import RatingAddition
    pages = [f"/admin/ratings/rating/{rating.pk}/change/", f"/admin/ratings/workorder/{order.pk}/change/",
             "/admin/ratings/commentforreview/", f"/admin/ratings/commentforreview/{rating.pk}/change/",
             "/admin/ratings/ratingaddition/", f"/admin/ratings/ratingaddition/{RatingAddition.objects.get().pk}/change/",
             f"/admin/ratings/smsmessage/{sms.pk}/change/"]
    for page in pages:
        answer = hall_admin.get(page)
        assert answer.status_code == 200, page
        shown = answer.content.decode()
        for clear in ("1234-5678", "wang@example", "0001111"):
            assert clear not in shown, (page, clear)
    assert hall_admin.get(pages[0]).content.decode().count(masking.MASK) >= 11
    rating.refresh_from_db()
    assert rating.text == written and rating.payload["text"] == written  # kept as written


def test_a_refused_record_shows_the_raters_words_masked(hall, hall_admin):
    """A record the server refused is kept as it came, for a technician to read: its page masks what
    a rater wrote the way every other admin page does: the record's text (whatever its type), and
    all of an excerpt that was cut or is no JSON object, its escaped Chinese numerals included."""
    from central.ratings import ingest
    from central.ratings.models import RejectedItem
    good = make_rating(Level.DISSATISFIED, terminal_id=hall.terminal_id, text="电话 138-1234-5678").to_wire()
    numerals = "一三八一二三四五六七八"
    items = [{**good, "level": 9},  # refused, its text a string
             {**good, "rating_id": "R-NESTED", "level": 9, "text": ["wang@example.com", {"x": numerals}]},
             {**good, "rating_id": "R-LONG", "level": 9, "text": numerals + "x" * ingest.MAX_KEPT_CHARS},
             ["138-1234-5678", numerals]]
    assert [r.status for r in ingest.ingest(items, hall)] == ["rejected"] * 4
    refused = RejectedItem.objects.order_by("pk")
    assert refused.count() == 4
    assert any(len(item.payload) == ingest.MAX_KEPT_CHARS for item in refused)  # one was cut
    for item in refused:
        page = hall_admin.get(f"/admin/ratings/rejecteditem/{item.pk}/change/")
        assert page.status_code == 200
        shown = page.content.decode()
        assert masking.MASK in shown, item.pk
        for clear in ("1234-5678", "wang@example", numerals, r"\u4e00\u4e09\u516b"):
            assert clear not in shown, (item.pk, clear)
    assert "R-NESTED" in hall_admin.get(f"/admin/ratings/rejecteditem/{refused[1].pk}/change/").content.decode()
    assert "138-1234-5678" in refused[0].payload  # kept as it came


def test_a_refused_record_nested_nine_hundred_deep_has_a_page(hall, hall_admin):
    """A record nested past 16 is refused and kept as JSON text, which ``json.dumps`` still wrote at
    900 deep; reading it back for its page raised RecursionError, a 500 (a terminal could hide its
    refusals from the technician): such an excerpt is shown masked, as one that is no JSON object."""
    from central.ratings import ingest
    from central.ratings.models import RejectedItem
    deep = {**make_rating(terminal_id=hall.terminal_id).to_wire(), "x": json.loads("[" * 900 + "]" * 900)}
    assert [r.status for r in ingest.ingest([deep], hall)] == ["rejected"]
    item = RejectedItem.objects.get(rating_id=deep["id"])
    assert item.payload.startswith("{")  # kept as JSON, not as a note
    page = hall_admin.get(f"/admin/ratings/rejecteditem/{item.pk}/change/")
    assert page.status_code == 200 and masking.MASK in page.content.decode()
