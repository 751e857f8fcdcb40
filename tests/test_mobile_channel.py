"""扫码评价 end to end, with real parts only: the kiosk (Kivy under Xvfb, 1024×600) draws the QR code
for the rating on screen; zbar reads it from the screenshot, as a phone's camera would; the sync
daemon delivers the rating; headless Chromium in mobile emulation (360×740, WeChat's user agent,
no CJK fonts on this machine) opens the page, ticks a reason and types a Chinese comment; the
comment joins the rating, and the code cannot be used again."""

import base64
import shutil
import subprocess
import time
from pathlib import Path

import pytest
from PIL import Image

from terminal.core import mobile_token

import kiosk
from conftest import BIN, ROOT
from kiosk import SCREENSHOTS
from test_kiosk import records, settings

pytestmark = [pytest.mark.central, pytest.mark.slow]
WECHAT = ("Mozilla/5.0 (Linux; Android 13; V2203A) AppleWebKit/537.36 (KHTML, like Gecko) Version/4.0 "
          "Chrome/116.0.0.0 Mobile Safari/537.36 XWEB/1160065 MMWEBSDK/20231202 MicroMessenger/8.0.47.2560")


@pytest.fixture
def phone():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    chromium, driver_path = shutil.which("chromium"), shutil.which("chromedriver")
    assert chromium and driver_path, "Chromium and its driver come from scripts/install-system-deps.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--lang=zh-CN", "--hide-scrollbars"):
        options.add_argument(flag)
    options.add_experimental_option("mobileEmulation", {
        "deviceMetrics": {"width": 360, "height": 740, "pixelRatio": 2.0, "touch": True}, "userAgent": WECHAT})
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


def read_qr(path: Path) -> str:
    """What a phone reads from the screen: zbar (Debian's zbar-tools) on the screenshot."""
    zbarimg = shutil.which("zbarimg")
    assert zbarimg, "zbarimg comes from scripts/install-system-deps.sh (zbar-tools)"
    done = subprocess.run([zbarimg, "--quiet", "--raw", "-Sdisable", "-Sqrcode.enable", str(path)],
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, f"no QR code found in {path}: {done.stderr}"
    return done.stdout.strip()


def page_shot(driver, name: str) -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    path.write_bytes(base64.b64decode(driver.execute_cdp_cmd("Page.captureScreenshot", {"format": "png"})["data"]))
    with Image.open(path) as image:
        assert image.size == (720, 1480)  # 360×740 CSS pixels at a pixel ratio of 2
        assert len(image.convert("RGB").getcolors(1 << 20) or range(51)) > 50, f"{name} looks blank"
    return path


def test_a_rater_scans_the_kiosk_code_and_adds_a_chinese_comment_on_their_phone(
        display, terminal_config, tmp_path, central, phone):
    from selenium.webdriver.common.by import By
    creds = central.enroll("W01")
    central.backdate(creds.terminal_id, 30)
    creds.save(tmp_path / "data")
    config = terminal_config(server=central.url, staff_no="SZ0101", mobile_url=central.url, width=1024, height=600)
    settings(config, thanks_seconds=60)  # a thank-you with a code stays up while the rater scans it
    reasons_shot, thanks_shot = SCREENSHOTS / "reasons-qr-1024x600.png", SCREENSHOTS / "thanks-qr-1024x600.png"
    kiosk.run(config, [
        {"do": "wait_screen", "screen": "attract"},
        {"do": "invite", "case_no": "C-QR-0001"},
        {"do": "wait_screen", "screen": "rating"},
        {"do": "touch", "target": "level_2"},
        {"do": "wait_screen", "screen": "reasons"},
        {"do": "wait_text", "text": "用手机填写意见"},
        {"do": "screenshot", "path": str(reasons_shot)},
        {"do": "touch", "target": "reason_slow"},
        {"do": "touch", "target": "submit"},
        {"do": "wait_screen", "screen": "thanks"},
        {"do": "wait_text", "text": "扫码补充意见"},
        {"do": "screenshot", "path": str(thanks_shot)},
    ], display, tmp_path, timeout=120)
    (rating_id,) = records(tmp_path, "SELECT id FROM ratings")[0]
    for shot in (reasons_shot, thanks_shot):
        assert Image.open(shot).size == (1024, 600)
    url = read_qr(thanks_shot)
    assert url == read_qr(reasons_shot)  # both screens name the same rating: the one being made
    assert url.startswith(f"{central.url}/r/")
    token = mobile_token.parse(url.rsplit("/", 1)[1])
    assert (token.terminal_id, token.rating_id) == (creds.terminal_id, rating_id)
    assert "C-QR-0001" not in url and "SZ0101" not in url  # no case, no staff, nothing personal in it

    drained = subprocess.run([str(BIN / "rating-sync"), "--config", str(config), "run", "--once"],
                             capture_output=True, text=True, timeout=60)
    assert drained.returncode == 0, drained.stderr
    phone.get(url)
    assert phone.execute_script("return window.innerWidth") == 360
    assert phone.execute_async_script("""const done = arguments[arguments.length - 1];
        document.fonts.ready.then(() => done([...document.fonts].some(f => f.family === 'Page' && f.status === 'loaded')));""")
    fetched = phone.execute_script("return performance.getEntriesByType('resource').map(e => e.name)")
    assert [name for name in fetched if not name.startswith("data:")] == [], fetched  # one document, nothing else
    phone.find_element(By.CSS_SELECTOR, "input[value=attitude]").click()
    phone.find_element(By.NAME, "text").send_keys("窗口人员态度冷淡，等了很久。")
    page_shot(phone, "mobile-page-zh-360x740")
    phone.find_element(By.ID, "submit").click()
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
    heading = WebDriverWait(phone, 15).until(expected_conditions.presence_of_element_located((By.ID, "heading")))
    assert "感谢您的意见" in heading.text
    page_shot(phone, "mobile-thanks-zh-360x740")

    added = central.query("SELECT rating_id, reasons, text, channel FROM ratings_ratingaddition")
    assert [(r[0], r[2], r[3]) for r in added] == [(rating_id, "窗口人员态度冷淡，等了很久。", 3)]
    assert "attitude" in str(added[0][1])
    stored = central.query("SELECT count(*), max(text) FROM ratings_rating WHERE rating_id = ?", [rating_id])
    assert stored == [(1, "")]  # one rating, as the terminal made it: the comment joined it
    phone.get(url)
    assert "已提交过" in phone.find_element(By.ID, "heading").text  # the code is spent


def test_a_printed_window_plaque_is_read_by_a_phone_and_rates_that_window(central, phone, tmp_path):
    """The hall administrator prints W02's plaque from the admin (an A6 SVG), Chromium renders it to
    PNG as it would print, zbar reads its code, and a phone rates W02 through it with its case's
    number and the last four digits of the mobile number the case was reported with."""
    import re

    from test_central_cases import a_case, add_system, post_case
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
    password = central.add_user("plaque-admin", "hall_admin")
    admin = central.login("plaque-admin", password)
    listing = admin.get(f"{central.url}/admin/ratings/window/", timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', listing.text).group(1)
    (pk,), = central.query("SELECT id FROM ratings_window WHERE code = ?", ["W02"])
    svg = admin.post(f"{central.url}/admin/ratings/window/", timeout=30, headers={"Referer": listing.url},
                     data={"csrfmiddlewaretoken": token, "action": "print_plaque", "_selected_action": [pk]})
    assert svg.status_code == 200 and svg.headers["Content-Type"].startswith("image/svg+xml"), svg.text[:300]
    plaque = tmp_path / "plaque-W02.svg"
    plaque.write_bytes(svg.content)
    phone.get(plaque.as_uri())
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    printed = SCREENSHOTS / "plaque-W02-a6.png"
    size = phone.execute_script("const r = document.documentElement.getBoundingClientRect(); return [r.width, r.height]")
    shot = phone.execute_cdp_cmd("Page.captureScreenshot", {"format": "png", "captureBeyondViewport": True, "clip": {
        "x": 0, "y": 0, "width": size[0], "height": size[1], "scale": 3}})
    printed.write_bytes(base64.b64decode(shot["data"]))
    url = read_qr(printed)
    (code,), = central.query("SELECT plaque_code FROM ratings_window WHERE code = ?", ["W02"])
    assert url == f"{central.url}/w/{code}"

    reported, _ = post_case(central.url, add_system(central, "不动产登记系统"), a_case("C-PLAQUE-0002", window="W02"))
    assert reported.status_code == 201, reported.text
    phone.get(url)
    page_shot(phone, "plaque-page-zh-360x740")
    phone.find_element(By.CSS_SELECTOR, "input[name=level][value='2']").click()
    phone.find_element(By.CSS_SELECTOR, "input[value=slow]").click()
    phone.find_element(By.NAME, "case_no").send_keys("C-PLAQUE-0002")
    phone.find_element(By.NAME, "phone_tail").send_keys("5678")
    page_shot(phone, "plaque-page-filled-zh-360x740")
    phone.find_element(By.ID, "submit").click()
    heading = WebDriverWait(phone, 15).until(expected_conditions.presence_of_element_located((By.ID, "heading")))
    assert "感谢您的评价" in heading.text
    rows = central.query("SELECT window_code, channel, device, level, case_no, flags FROM ratings_rating "
                         "WHERE case_no = ?", ["C-PLAQUE-0002"])
    assert [r[:5] for r in rows] == [("W02", 3, "phone", 2, "C-PLAQUE-0002")] and "repeat" not in str(rows[0][5])
