"""Error pages a citizen meets (400, 403, 404, 500) are Chinese first with English beneath, in the
bundled font cut to their wording, never Django's English-only ones; a 500's needs no database."""

import base64
import io
import re

import pytest
from django.test import Client, RequestFactory
from django.urls import get_resolver
from fontTools.ttLib import TTFont

from central.ratings import errors, plaques
from central.ratings.models import Window

pytestmark = pytest.mark.central


def bilingual(answer, status: int, heading: str, english: str) -> None:
    page = answer.content.decode()
    assert answer.status_code == status, page[:300]
    assert '<html lang="zh-CN">' in page and heading in page and english in page
    assert page.index(heading) < page.index(english)  # Chinese first
    font = re.search(r'url\("data:font/otf;base64,([^"]+)"\)', page).group(1)
    cmap = TTFont(io.BytesIO(base64.b64decode(font))).getBestCmap()
    assert all(ord(c) in cmap for c in heading + "政务服务好差评")  # renders with no CJK font installed


@pytest.mark.django_db
def test_a_plaque_link_with_a_slash_and_a_form_of_too_many_fields_answer_in_chinese(hall):
    code = plaques.code_for(Window.objects.get(code="W01"))
    client = Client(raise_request_exception=False)
    bilingual(client.get(f"/w/{code}/"), 404, "页面不存在", "Not found")  # a scanner that adds a slash
    many = "&".join(f"reasons=x{i}" for i in range(1100)) + "&level=5"
    bilingual(client.post(f"/w/{code}", many, content_type="application/x-www-form-urlencoded"), 400, "请求有误",
              "Bad request")


@pytest.mark.django_db
def test_a_form_posted_without_its_csrf_cookie_answers_in_chinese(hall):
    code = plaques.code_for(Window.objects.get(code="W01"))
    bilingual(Client(enforce_csrf_checks=True).post(f"/w/{code}", {"level": "5"}), 403, "无法提交", "Forbidden")


def test_the_500_page_is_the_projects_and_needs_no_database():
    """No django_db mark: any query here fails the test, as a 500 may come from the database."""
    resolver = get_resolver()
    assert [resolver.resolve_error_handler(n) for n in (400, 403, 404, 500)] == [
        errors.bad_request, errors.permission_denied, errors.page_not_found, errors.server_error]
    bilingual(errors.server_error(RequestFactory().get("/w/x")), 500, "服务暂时出错", "Server error")
