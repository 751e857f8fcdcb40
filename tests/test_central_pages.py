"""The central server's pages in a real headless browser (Debian's Chromium through its WebDriver),
against a real server on loopback: log in, then the dashboard, a work order and the public page,
each saved as a screenshot in var/screenshots/ for people to look at. The machine has no CJK fonts:
the pages must bring their own, and the test checks the browser loaded it."""

import random
import shutil
from pathlib import Path

import pytest
from PIL import Image

from terminal.core.levels import Level

from conftest import ROOT, make_rating

pytestmark = [pytest.mark.central, pytest.mark.slow]
SHOTS = ROOT / "var" / "screenshots"


@pytest.fixture(scope="module")
def browser():
    from selenium import webdriver
    from selenium.webdriver.chrome.service import Service
    chromium = shutil.which("chromium")
    driver_path = shutil.which("chromedriver")
    assert chromium and driver_path, "Chromium and its driver come from scripts/install-system-deps.sh"
    options = webdriver.ChromeOptions()
    options.binary_location = chromium
    for flag in ("--headless=new", "--no-sandbox", "--disable-dev-shm-usage", "--window-size=1400,1100",
                 "--lang=zh-CN", "--hide-scrollbars"):
        options.add_argument(flag)
    driver = webdriver.Chrome(service=Service(driver_path), options=options)
    driver.set_page_load_timeout(30)
    yield driver
    driver.quit()


@pytest.fixture(scope="module")
def filled(central):
    """A month of ratings at the demo windows, some bad with reasons and text."""
    rng = random.Random(7)
    from datetime import datetime, timedelta
    from conftest import CST
    batches = {}
    for window in ("W01", "W02", "W03"):
        creds = central.enroll(window)
        central.backdate(creds.terminal_id, 30)  # in service for a month
        staff_no = {"W01": "SZ0101", "W02": "SZ0201", "W03": "SZ0301"}[window]
        items = []
        for day in range(20):
            for _ in range(rng.randint(3, 9)):
                level = Level(rng.choices([5, 4, 3, 2, 1], [50, 25, 12, 8, 5])[0])
                extra = {"reasons": ("attitude",), "text": "等候时间太长，电话 13812345678"} if level.is_bad else {}
                items.append(make_rating(level, terminal_id=creds.terminal_id, window=window, staff_no=staff_no,
                                         now=datetime.now(CST) - timedelta(days=day, hours=rng.randint(0, 6)),
                                         **extra).to_wire())
        batches[window] = (creds, items)
    import json
    from sync.daemon import versions
    for creds, items in batches.values():
        central.client(creds).heartbeat({"version": "0.1.0", "versions": versions(3), "queue_depth": 0, "devices": [
            {"device": "button_box", "connected": creds.window != "W03", "firmware": "0.2.0", "board": "5e5e0001"}]})
        reply = central.client(creds).request("POST", "/api/v1/ratings", json.dumps({"ratings": items}).encode(),
                                              {"Content-Type": "application/json"})
        assert reply.json()["accepted"] == len(items)
    creds, items = batches["W01"]
    refused = {**items[-1], "id": "R-REFUSED-1", "level": 9, "text": "电话 13812345678，邮箱 wang@example.com"}
    reply = central.client(creds).request("POST", "/api/v1/ratings", json.dumps({"ratings": [refused]}).encode(),
                                          {"Content-Type": "application/json"})
    assert reply.json()["rejected"] == 1
    password = central.add_user("pages-admin", "hall_admin")
    return password


def login(browser, central, password):
    from selenium.webdriver.common.by import By
    browser.get(f"{central.url}/admin/login/?next=/")
    browser.find_element(By.NAME, "username").send_keys("pages-admin")
    browser.find_element(By.NAME, "password").send_keys(password)
    browser.find_element(By.CSS_SELECTOR, "input[type=submit]").click()
    from selenium.webdriver.support import expected_conditions
    from selenium.webdriver.support.ui import WebDriverWait
    WebDriverWait(browser, 15).until(expected_conditions.url_to_be(f"{central.url}/"))


def bundled_font_loaded(browser) -> bool:
    return browser.execute_async_script("""
        const done = arguments[arguments.length - 1];
        document.fonts.ready.then(() => done([...document.fonts].some(
            f => f.family.includes('Noto Sans SC Bundled') && f.status === 'loaded')));""")


def shoot(browser, name: str) -> Path:
    SHOTS.mkdir(parents=True, exist_ok=True)
    path = SHOTS / f"{name}.png"
    height = browser.execute_script("return document.documentElement.scrollHeight")
    browser.set_window_size(1400, min(max(height + 40, 800), 4000))
    browser.save_screenshot(str(path))
    with Image.open(path) as image:
        colours = image.convert("RGB").getcolors(1 << 20)
    assert colours is None or len(colours) > 50, f"{name}: the page looks blank"
    return path


def test_dashboard_work_order_and_public_page_in_chromium(browser, central, filled):
    from selenium.webdriver.common.by import By
    login(browser, central, filled)
    assert "评价总览" in browser.find_element(By.TAG_NAME, "h1").text
    assert bundled_font_loaded(browser)
    ranking = browser.find_elements(By.CSS_SELECTOR, "table tbody tr")
    assert any("1号窗口" in row.text for row in ranking)
    assert browser.find_elements(By.CSS_SELECTOR, "svg polyline")  # the daily score chart
    shoot(browser, "central-dashboard")

    browser.get(f"{central.url}/admin/ratings/workorder/?overdue=no")
    first = browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr th a")
    browser.get(first.get_attribute("href"))
    assert "差评工单" in browser.title or "工单" in browser.page_source
    summary = browser.find_element(By.CSS_SELECTOR, ".field-rating_summary").text
    assert ("不满意" in summary) and "等候时间太长" in summary
    assert bundled_font_loaded(browser)
    shoot(browser, "central-work-order")

    browser.get(f"{central.url}/admin/ratings/rejecteditem/")  # a record the server refused, for a technician
    browser.get(browser.find_element(By.CSS_SELECTOR, "#result_list tbody tr th a").get_attribute("href"))
    kept = browser.find_element(By.CSS_SELECTOR, ".field-payload_shown").text
    assert "R-REFUSED-1" in kept and "电话" in kept and "13812345678" not in kept and "wang@example" not in kept
    shoot(browser, "central-refused-record")

    browser.get(f"{central.url}/terminals/")
    rows = browser.find_elements(By.CSS_SELECTOR, "table tbody tr")
    assert len(rows) >= 3 and any("0.2.0" in r.text and "在线" in r.text for r in rows)
    assert any("未连接" in r.text for r in rows)  # W03's box is unplugged
    shoot(browser, "central-terminals")

    # 审核: the comments reach the public page once a hall administrator approves them
    browser.get(f"{central.url}/admin/ratings/commentforreview/?comment_state__exact=")
    assert "等候时间太长" in browser.find_element(By.ID, "result_list").text
    shoot(browser, "central-comment-review")
    browser.find_element(By.ID, "action-toggle").click()
    from selenium.webdriver.support.ui import Select
    Select(browser.find_element(By.NAME, "action")).select_by_value("approve")
    browser.find_element(By.NAME, "index").click()
    from selenium.webdriver.support.ui import WebDriverWait
    # the click posts the action and the admin answers with a redirect: wait (bounded) for its page
    messages = WebDriverWait(browser, 15).until(lambda b: b.find_elements(By.CSS_SELECTOR, ".messagelist"))
    assert "已通过" in messages[0].text

    browser.delete_all_cookies()  # the public page is for everyone
    browser.get(f"{central.url}/public/")
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "政务服务评价公示" in page and "★" in page and "13812345678" not in page and "等候时间太长" in page
    assert bundled_font_loaded(browser)
    shoot(browser, "central-public")
    browser.find_element(By.LINK_TEXT, "English").click()  # the citizen's own switch
    from selenium.webdriver.support import expected_conditions
    WebDriverWait(browser, 15).until(expected_conditions.url_contains("lang=en"))  # its page, not the last
    page = browser.find_element(By.TAG_NAME, "body").text
    assert "Ratings of this hall's services" in page and "Very satisfied" in page and "等候时间太长" in page
    shoot(browser, "central-public-en")


def test_upward_page_in_chromium(browser, tmp_path):
    """The upward page as a hall administrator sees it: a platform's outbox, and a day on which
    the reference platform lost a record it had acknowledged, found by the reconciliation."""
    from selenium.webdriver.common.by import By

    from central.ratings import exports
    from conftest import start_central
    from reference_platform import Platform
    secret = "pages-platform-secret-0123456789"
    platform = Platform(exports.shipped()["provincial"], "pages-hall", secret).start()
    server = start_central(tmp_path / "central", workers=1, extra_env={
        "RATING_CENTRAL_UPWARD_PROV_URL": platform.url, "RATING_CENTRAL_UPWARD_PROV_KEY_ID": "pages-hall",
        "RATING_CENTRAL_UPWARD_PROV_SECRET": secret})
    try:
        assert server.manage("add_platform", "PROV", "--name", "省好差评系统").returncode == 0
        creds = server.enroll("W01")
        server.backdate(creds.terminal_id, 3)
        from datetime import datetime, timedelta
        from conftest import CST
        import json
        # all on one day, yesterday's noon in the hall: a run just after midnight split them over two
        noon = datetime.combine(datetime.now(CST).date() - timedelta(days=1), datetime.min.time(), CST) + timedelta(hours=12)
        items = [make_rating(Level(5 - i % 5), terminal_id=creds.terminal_id, reasons=("slow",) if i % 5 > 2 else (),
                             now=noon - timedelta(minutes=i)).to_wire() for i in range(12)]
        reply = server.client(creds).request("POST", "/api/v1/ratings", json.dumps({"ratings": items}).encode(),
                                             {"Content-Type": "application/json"})
        assert reply.json()["accepted"] == 12
        done = server.manage("push_upward", "--once")
        assert done.returncode == 0, done.stderr
        assert len(platform.held) == 12
        del platform.held[items[3]["id"]]  # the platform loses one it acknowledged
        assert server.manage("tick").returncode == 0  # the daily reconciliation, then the alerts
        password = server.add_user("pages-admin", "hall_admin")
        login(browser, server, password)
        browser.get(f"{server.url}/upward/")
        page = browser.find_element(By.TAG_NAME, "body").text
        assert "省好差评系统（PROV）" in page and "渠道4·等级2 平台 1 / 确认 2" in page, page
        day = noon.date().isoformat()
        assert any(day in row.text and "不符" in row.text for row in browser.find_elements(By.CSS_SELECTOR, "tr"))
        assert bundled_font_loaded(browser)
        shoot(browser, "central-upward")
        browser.get(f"{server.url}/alerts/")
        assert "上报平台对账不符" in browser.find_element(By.TAG_NAME, "body").text
    finally:
        server.stop()
        platform.close()
