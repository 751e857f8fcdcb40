"""Content management in the admin: what a hall administrator edits is what terminals pull, and
uploads and codes are checked before they are kept."""

import io
import json

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from central.ratings import content
from central.ratings.models import Department, Staff, Terminal, TerminalSettings, Window

pytestmark = [pytest.mark.central, pytest.mark.django_db]


@pytest.fixture
def admin_client(hall, client):
    from django.contrib.auth.models import Group, User
    user = User.objects.create_user("hall-admin", password="pw-hall-admin", is_staff=True)
    user.groups.add(Group.objects.get(name="大厅管理员"))
    client.force_login(user)
    return client


def image(kind="PNG", size=(300, 400)) -> bytes:
    out = io.BytesIO()
    Image.new("RGB", size, (200, 120, 80)).save(out, kind)
    return out.getvalue()


def staff_form(window: Window, photo=None, **fields) -> dict:
    data = {"staff_no": "SZ0999", "name": "陈新", "unit": "示范市市场监督管理局", "title": "综合窗口",
            "window": str(window.pk), "badge_id": "0009990001", **fields}
    if photo is not None:
        data["photo"] = photo
    return data


def test_new_staff_with_photo_reaches_the_terminal(admin_client, hall):
    window = Window.objects.get(code="W01")
    before, etag = content.manifest(Terminal.objects.get(pk=hall.pk))
    reply = admin_client.post("/admin/ratings/staff/add/",
                              staff_form(window, SimpleUploadedFile("chen.png", image(), "image/png")))
    assert reply.status_code == 302, reply.content.decode()[:3000]
    after, new_etag = content.manifest(Terminal.objects.get(pk=hall.pk))
    assert new_etag != etag
    added = next(s for s in after["staff"] if s["staff_no"] == "SZ0999")
    assert added["name"] == "陈新" and added["photo"].startswith("files/") and added["badge_id"] == "0009990001"
    sha = Staff.objects.get(staff_no="SZ0999").photo_sha256
    assert any(f["sha256"] == sha for f in after["files"])
    assert content.file_for(Terminal.objects.get(pk=hall.pk), sha) is not None


@pytest.mark.parametrize("upload, why", [
    (lambda: SimpleUploadedFile("a.png", b"not an image at all", "image/png"), "无法识别为图片"),
    (lambda: SimpleUploadedFile("a.gif", image("GIF"), "image/gif"), "JPEG、PNG 或 WebP"),
    (lambda: SimpleUploadedFile("a.png", image(size=(4200, 100)), "image/png"), "4000 像素"),
    (lambda: SimpleUploadedFile("a.jpg", b"\xff\xd8" + b"0" * (2 * 1024 * 1024 + 10), "image/jpeg"), "2 MB"),
])
def test_bad_photos_are_refused_with_a_clear_reason(admin_client, upload, why):
    window = Window.objects.get(code="W01")
    reply = admin_client.post("/admin/ratings/staff/add/", staff_form(window, upload()))
    assert reply.status_code == 200 and why in reply.content.decode()
    assert not Staff.objects.filter(staff_no="SZ0999").exists()


def test_a_badge_already_held_by_a_colleague_is_refused(admin_client):
    """A terminal logs in nobody with a badge two roster entries hold: the second is refused here."""
    window = Window.objects.get(code="W01")
    held = Staff.objects.exclude(badge_id="").first().badge_id
    reply = admin_client.post("/admin/ratings/staff/add/", staff_form(window, badge_id=f" {held} "))
    assert reply.status_code == 200 and "一卡一人" in reply.content.decode()
    assert not Staff.objects.filter(staff_no="SZ0999").exists()
    assert admin_client.post("/admin/ratings/staff/add/", staff_form(window, badge_id="")).status_code == 302


def test_department_codes_are_checked(admin_client):
    bad = admin_client.post("/admin/ratings/department/add/", {"code": "11440100MB2C000011", "name": "测试局"})
    assert bad.status_code == 200 and "统一社会信用代码" in bad.content.decode()
    good = admin_client.post("/admin/ratings/department/add/", {"code": "11440100MB2C000049", "name": "测试局"})
    assert good.status_code == 302 and Department.objects.filter(name="测试局").exists()


def test_terminal_settings_are_validated_and_pulled(admin_client, hall):
    window = Window.objects.get(code="W01")
    form = {"window": str(window.pk), "rating_mode": "walk-up", "language": "en", "invite_timeout_s": "15",
            "reasons_timeout_s": "30", "thanks_seconds": "3", "walkup_cooldown_s": "5"}
    refused = admin_client.post("/admin/ratings/terminalsettings/add/", {**form, "dimensions": '{"a": 1}'})
    assert refused.status_code == 200 and "评价指标" in refused.content.decode()
    # what the terminal's rules would refuse is never saved: a name twice (its scores are one key, so
    # the indicator screen never finished), more than eight, a name longer than a score's key
    before = TerminalSettings.objects.count()
    for bad in ('["服务效率", "服务效率"]', json.dumps([f"指标{i}" for i in range(9)]), json.dumps(["服" * 33])):
        refused = admin_client.post("/admin/ratings/terminalsettings/add/", {**form, "dimensions": bad})
        assert refused.status_code == 200 and "互不相同" in refused.content.decode(), bad
    assert TerminalSettings.objects.count() == before
    ok = admin_client.post("/admin/ratings/terminalsettings/add/", {**form, "dimensions": '["服务效率", "服务态度"]'})
    assert ok.status_code == 302
    pulled = content.manifest(Terminal.objects.get(pk=hall.pk))[0]["settings"]
    assert (pulled["rating_mode"], pulled["language"], pulled["dimensions"]) == ("walk-up", "en", ["服务效率", "服务态度"])
