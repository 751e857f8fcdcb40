"""The rater's phone page (扫码评价, channel 3): a token the terminal made offline opens ``/r/<token>``
once, before it expires, for that terminal's rating only; what the rater adds joins that rating
and is never a second one; floods from one address or on one token are limited."""

import base64
import io
import time
from datetime import timedelta

import pytest
from django.test import Client
from django.utils import timezone

from central.ratings import auth
from central.ratings.models import RatingAddition, Rating, Window
from terminal.core import mobile_token
from terminal.core.levels import Level

from conftest import ingest_ratings, make_rating

pytestmark = [pytest.mark.central, pytest.mark.django_db]


def token_for(node, rating_id: str, seconds: float = 600, secret: str | None = None) -> str:
    return mobile_token.make(node.terminal_id, secret or node.secret, rating_id, int(time.time() + seconds)).text


def test_the_token_round_trips_and_any_change_breaks_it():
    made = mobile_token.make("TABCDEF0123", "s" * 43, "0123456789abcdef0123456789abcdef", 1_800_000_000)
    parsed = mobile_token.parse(made.text)
    assert parsed == made and mobile_token.genuine(parsed, "s" * 43)
    assert len(made.text) < 80 and all(c.isalnum() or c in "._-" for c in made.text)  # no escaping in a URL
    assert not mobile_token.genuine(parsed, "t" * 43)
    for i in range(len(made.text)):  # every single character changed: refused, or no longer genuine
        for c in "aZ0-._":
            changed = made.text[:i] + c + made.text[i + 1:]
            if changed != made.text:
                again = mobile_token.parse(changed)
                assert again is None or not mobile_token.genuine(again, "s" * 43), changed
    for junk in ("", "a.b.c", "x" * 200, "T1.AAAA.1.AAAA", None, 5, "../../etc/passwd"):
        assert mobile_token.parse(junk) is None


def test_a_rater_adds_reasons_and_a_chinese_comment_to_their_rating_once(hall):
    rating = make_rating(Level.DISSATISFIED, terminal_id=hall.terminal_id, reasons=("slow",))
    assert ingest_ratings(hall, rating) == ["accepted"]
    url = f"/r/{token_for(hall, rating.id)}"
    client = Client(enforce_csrf_checks=True)
    page = client.get(url)
    assert page.status_code == 200
    text = page.content.decode()
    assert "补充评价意见" in text and Window.objects.get(code="W01").name in text and 'name="reasons"' in text
    font = text.split('url("data:font/otf;base64,', 1)[1].split('")', 1)[0]
    from fontTools.ttLib import TTFont
    cmap = TTFont(io.BytesIO(base64.b64decode(font))).getBestCmap()
    assert all(ord(c) in cmap for c in "补充评价意见提交") and len(font) < 200_000  # the page's characters, not 15 MB
    csrf = client.cookies["csrftoken"].value
    done = client.post(url, {"reasons": ["attitude", "no-such-tag"], "text": "  窗口人员态度冷淡，希望改进。 ",
                             "csrfmiddlewaretoken": csrf})
    assert done.status_code == 200 and "感谢您的意见" in done.content.decode()
    added = RatingAddition.objects.get()
    assert (added.rating_id, added.terminal_id, added.reasons, added.text, added.channel) == (
        rating.id, hall.pk, ["attitude"], "窗口人员态度冷淡，希望改进。", 3)
    assert Rating.objects.count() == 1 and Rating.objects.get().text == rating.text  # joined, not a second rating
    assert added.address_hash and "127.0.0.1" not in added.address_hash
    assert client.get(url).status_code == 410  # used once
    again = client.post(url, {"text": "再来一次", "csrfmiddlewaretoken": csrf})
    assert again.status_code == 410 and RatingAddition.objects.count() == 1


def test_expired_forged_foreign_and_revoked_tokens_open_nothing(hall):
    rating_id = make_rating(terminal_id=hall.terminal_id).id
    other = auth.enroll(auth.issue_code(Window.objects.get(code="W02"))[0])
    client = Client()
    assert client.get(f"/r/{token_for(hall, rating_id, seconds=-5)}").status_code == 410
    assert client.get(f"/r/{token_for(hall, rating_id, seconds=3 * 3600)}").status_code == 410  # no honest clock
    assert client.get(f"/r/{token_for(hall, rating_id, secret=other.secret)}").status_code == 404
    forged = mobile_token.make(other.terminal_id, hall.secret, rating_id, int(time.time() + 600)).text
    assert client.get(f"/r/{forged}").status_code == 404  # another terminal's name, this one's key
    assert client.get("/r/not-a-token").status_code == 404
    assert client.get(f"/r/{token_for(other, rating_id)}").status_code == 200
    other.revoked_at = timezone.now()
    other.save()
    assert client.get(f"/r/{token_for(other, rating_id)}").status_code == 404
    assert not RatingAddition.objects.exists()


def test_a_flood_from_one_address_or_on_one_token_is_limited(hall):
    client = Client()
    url = f"/r/{token_for(hall, make_rating(terminal_id=hall.terminal_id).id)}"
    for _ in range(5):  # a form with nothing in it, five times: each try counts
        assert client.post(url, {"text": ""}).status_code == 400
    assert client.post(url, {"text": "第六次"}).status_code == 429
    assert not RatingAddition.objects.exists()
    statuses = [client.get("/r/not-a-token").status_code for _ in range(60)]
    assert set(statuses[:54]) == {404} and statuses[-1] == 429  # 60 views in 10 minutes, forged or not
    assert Client(REMOTE_ADDR="10.0.0.9").get(url).status_code == 200  # another address is not held up


def test_the_page_in_english(hall):
    page = Client().get(f"/r/{token_for(hall, make_rating(terminal_id=hall.terminal_id).id)}?lang=en")
    text = page.content.decode()
    assert page.status_code == 200 and "Add to your rating" in text and 'lang="en"' in text and "中文" in text


def test_what_a_rater_adds_by_phone_is_shown_with_the_rating_and_its_work_order(hall):
    """Reasons and a comment added by phone to a bad rating reach the people who read it: the
    rating's page and its work order's (they sat only in a list of their own)."""
    from django.contrib.auth.models import User
    bad = make_rating(Level.VERY_DISSATISFIED, terminal_id=hall.terminal_id)  # the reasons screen timed out
    assert ingest_ratings(hall, bad) == ["accepted"]
    comment = "窗口让我补交了三次材料<script>"
    assert Client().post(f"/r/{token_for(hall, bad.id)}", {"text": comment, "reasons": ["slow"]}).status_code == 200
    rating = Rating.objects.get(rating_id=bad.id)
    assert rating.reasons == [] and rating.text == ""  # the rating stays as the terminal sent it
    root = Client()
    root.force_login(User.objects.create_superuser("phone-root", password="pw-phone-root-Qx7k"))
    for page in (f"/admin/ratings/workorder/{rating.work_order.pk}/change/", f"/admin/ratings/rating/{rating.pk}/change/"):
        text = root.get(page).content.decode()
        assert "窗口让我补交了三次材料&lt;script&gt;" in text and "<script>" not in text.split("窗口让我补交")[1][:20], page


def test_a_comment_sent_back_keeps_the_pages_own_font(hall):
    """The page's font is cut to its own wording, never to the comment sent back with an error."""
    import random

    from central.ratings import page_font
    url = f"/r/{token_for(hall, make_rating(terminal_id=hall.terminal_id).id)}"
    client = Client(REMOTE_ADDR="10.6.6.9")
    font = client.get(url).context["font"]
    cut = page_font._subset.cache_info().currsize
    typed = "".join(chr(random.randint(0x4E00, 0x9FA5)) for _ in range(400)) + "\u0000"
    answer = client.post(url, {"text": typed})
    assert answer.status_code == 400 and answer.context["font"] == font
    assert page_font._subset.cache_info().currsize == cut


def test_every_refusal_on_a_phone_page_offers_english(hall, settings):
    """An expired or used QR code, a retired plaque, a dead SMS link, a flood: each answer is Chinese
    first with a link to the same answer in English (the forms had one; these answers had none, so a
    rater who reads no Chinese could not learn why they were turned away)."""
    import re

    rating_id = make_rating(terminal_id=hall.terminal_id).id
    used = token_for(hall, rating_id)
    Client().post(f"/r/{used}", {"text": "好"})
    refusals = {f"/r/{token_for(hall, rating_id, seconds=-5)}": ("二维码已过期", "This QR code has expired"),
                f"/r/{used}": ("已提交过", "Already sent"),
                "/r/not-a-token": ("二维码无效", "This QR code is not valid"),
                "/w/NoSuchPlaque_000": ("二维码无效", "This QR code is not valid"),
                "/s/NoSuchLinkTok_n0": ("评价链接已失效", "This rating link is no longer valid")}
    for url, (zh, en) in refusals.items():
        page = Client().get(url).content.decode()
        assert zh in page and 'lang="zh-CN"' in page, url
        link = re.search(r'<a href="(\?lang=en)" id="language">English</a>', page)
        assert link, url
        english = Client().get(url + link.group(1)).content.decode()
        assert en in english and 'lang="en"' in english and '<a href="?lang=zh" id="language">中文</a>' in english
    thanks = Client().post(f"/r/{token_for(hall, make_rating(terminal_id=hall.terminal_id).id)}", {"text": "好"})
    assert "感谢" in thanks.content.decode() and 'id="language"' not in thanks.content.decode()
