"""The real Kivy kiosk on a private Xvfb display: every screen, real touches, what gets recorded."""

import json
import time
import sqlite3
from pathlib import Path

import pytest
from PIL import Image

from terminal.core.levels import Level
from terminal.kiosk.app import LEVEL_COLOURS
from terminal.kiosk.screens import BACKGROUND

import kiosk
from kiosk import SCREENSHOTS

BADGE_LI = "0004521873"  # 李明华, SZ0101, window W01 in the demo roster
BADGE_WANG = "0004521874"  # 王晓燕, SZ0102


def settings(config: Path, **changes) -> None:
    """Change the window's content settings in the test's copy of the demo content."""
    content = config.parent / "demo-content" / "content.json"
    data = json.loads(content.read_text(encoding="utf-8"))
    data["settings"].update(changes)
    content.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")


def records(tmp_path, sql: str) -> list:
    with sqlite3.connect(tmp_path / "data" / "terminal.db") as db:
        return db.execute(sql).fetchall()


def assert_readable(glyphs: dict, *expected: str) -> None:
    assert glyphs["tofu"] == [], f"characters drawn as boxes: {glyphs['tofu']}"
    assert glyphs["distinct_renderings"] == glyphs["cjk_chars"]
    assert glyphs["clipped"] == [], f"text cut off: {glyphs['clipped']}"
    texts = " ".join(glyphs["texts"])
    for text in expected:
        assert text in texts, text


def test_rating_screen_renders_chinese_staff_card_and_five_buttons(display, terminal_config, tmp_path):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot, centres = SCREENSHOTS / "rating-zh.png", tmp_path / "centres.json"
    outcome = kiosk.run(terminal_config(staff_no="SZ0101"), [
        {"do": "wait_screen", "screen": "attract"},
        {"do": "invite", "case_no": "C-1"},
        {"do": "wait_screen", "screen": "rating"},
        {"do": "glyph_check"},
        {"do": "centres", "path": str(centres)},
        {"do": "screenshot", "path": str(shot)},
    ], display, tmp_path)

    glyphs = outcome["glyphs"]
    assert glyphs["cjk_chars"] >= 40
    assert_readable(glyphs, "李明华", "SZ0101", "示范市市场监督管理局", "1号窗口", "请您对我的服务做出评价",
                    "非常满意", "满意", "基本满意", "不满意", "非常不满意")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 800)
    assert len(image.getcolors(maxcolors=1 << 20)) > 200  # not blank: text, photo, buttons
    for code, (x, y) in json.loads(centres.read_text()).items():
        # each button is drawn in its level's colour (sampled just inside its top edge)
        r, g, b = image.getpixel((x, y - 150))
        expected = [round(c * 255) for c in LEVEL_COLOURS[Level(int(code))][:3]]
        assert max(abs(r - expected[0]), abs(g - expected[1]), abs(b - expected[2])) < 8, (code, (r, g, b))


def test_a_service_from_badge_login_to_reasons_to_logout(display, terminal_config, tmp_path):
    """Paused → badge → attract → invitation → a bad rating → reasons by touch → thanks → logout."""
    config = terminal_config()
    settings(config, thanks_seconds=1)
    outcome = kiosk.run(config, [
        {"do": "wait_screen", "screen": "paused"},
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(SCREENSHOTS / "paused-zh.png")},
        {"do": "box_press", "level": 5},  # nobody logged in: flagged, not counted
        {"do": "swipe", "badge": "9999999999"},  # unknown badge: changes nothing
        {"do": "sleep", "seconds": 0.3},
        {"do": "wait_screen", "screen": "paused"},
        {"do": "swipe", "badge": BADGE_LI},
        {"do": "wait_screen", "screen": "attract"},
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(SCREENSHOTS / "attract-zh.png")},
        {"do": "invite", "case_no": "C-2026-0001", "item_code": "11440100MB2C0000104440117001000"},
        {"do": "wait_screen", "screen": "rating"},
        {"do": "touch", "target": "level_1"},
        {"do": "wait_screen", "screen": "reasons"},
        {"do": "glyph_check"},
        {"do": "touch", "target": "reason_slow"},
        {"do": "touch", "target": "reason_attitude"},
        {"do": "screenshot", "path": str(SCREENSHOTS / "reasons-zh.png")},
        {"do": "touch", "target": "submit"},
        {"do": "wait_screen", "screen": "thanks"},
        {"do": "box_press", "level": 5},  # during the thank-you: flagged
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(SCREENSHOTS / "thanks-zh.png")},
        {"do": "wait_screen", "screen": "attract", "timeout": 5},
        {"do": "box_press", "level": 4},  # no invitation: flagged
        {"do": "swipe", "badge": BADGE_LI},  # the same badge again: logout
        {"do": "wait_screen", "screen": "paused"},
    ], display, tmp_path, timeout=120)
    paused, attract, reasons, thanks = (outcome["glyph_checks"][i] for i in range(4))
    assert_readable(paused, "暂停服务")
    assert_readable(attract, "李明华", "办事指南", "企业设立登记", "通知公告", "办事大厅服务时间")
    assert_readable(reasons, "请告诉我们不满意的原因", "服务态度差", "办事效率低/等候时间长", "其他", "提交")
    assert_readable(thanks, "感谢您的评价")

    ratings = records(tmp_path, "SELECT level, staff_no, json_extract(payload, '$.case_no'), "
                                "json_extract(payload, '$.reasons'), json_extract(payload, '$.session_id') FROM ratings")
    assert len(ratings) == 1
    level, staff_no, case_no, reasons, session_id = ratings[0]
    assert (level, staff_no, case_no, json.loads(reasons)) == (1, "SZ0101", "C-2026-0001", ["attitude", "slow"])
    events = records(tmp_path, "SELECT kind, json_extract(payload, '$.why'), json_extract(payload, '$.staff_no'), "
                               "json_extract(payload, '$.session_id') FROM events ORDER BY seq")
    assert events == [("misuse", "paused", None, None), ("login", None, "SZ0101", None),
                      ("invited", None, "SZ0101", session_id), ("misuse", "during_thanks", "SZ0101", None),
                      ("misuse", "no_session", "SZ0101", None), ("logout", None, "SZ0101", None)]
    assert records(tmp_path, "SELECT count(*) FROM held") == [(0,)]


def test_walking_away_from_reasons_and_indicator_ratings(display, terminal_config, tmp_path):
    config = terminal_config(staff_no="SZ0101")
    settings(config, dimensions=["服务效率", "服务水平", "服务态度"], reasons_timeout_s=1)
    outcome = kiosk.run(config, [
        {"do": "invite", "case_no": "C-7"},
        {"do": "wait_screen", "screen": "rating"},
        {"do": "touch", "target": "level_2"},
        {"do": "wait_screen", "screen": "indicators"},
        {"do": "touch", "target": "score_服务效率_3"},
        {"do": "touch", "target": "score_服务态度_2"},
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(SCREENSHOTS / "indicators-zh.png")},
        {"do": "touch", "target": "submit"},  # the rest left unanswered
        {"do": "wait_screen", "screen": "reasons"},
        {"do": "wait_screen", "screen": "attract", "timeout": 5},  # walked away: no thank-you for nobody
    ], display, tmp_path)
    assert_readable(outcome["glyph_checks"][0], "请您对以下方面做出评价", "服务效率", "服务水平", "服务态度", "非常不满意")
    rows = records(tmp_path, "SELECT level, json_extract(payload, '$.scores'), json_extract(payload, '$.reasons') "
                             "FROM ratings")
    assert [(lv, json.loads(s), json.loads(r)) for lv, s, r in rows] == [(2, {"服务效率": 3, "服务态度": 2}, [])]


def test_every_screen_in_english(display, terminal_config, tmp_path):
    config = terminal_config()
    config.write_text(config.read_text().replace("[terminal]\n", '[terminal]\nlanguage = "en"\n'))
    settings(config, dimensions=["服务效率", "服务水平", "服务态度"], thanks_seconds=1)
    shots = {name: str(SCREENSHOTS / f"{name}-en.png") for name in
             ("paused", "attract", "rating", "indicators", "reasons", "thanks")}
    outcome = kiosk.run(config, [
        {"do": "wait_screen", "screen": "paused"},
        {"do": "glyph_check"}, {"do": "screenshot", "path": shots["paused"]},
        {"do": "swipe", "badge": BADGE_LI},
        {"do": "wait_screen", "screen": "attract"},
        {"do": "sleep", "seconds": 3.2},  # let the login message fade before the picture
        {"do": "glyph_check"}, {"do": "screenshot", "path": shots["attract"]},
        {"do": "invite", "case_no": "C-EN"},
        {"do": "wait_screen", "screen": "rating"},
        {"do": "glyph_check"}, {"do": "screenshot", "path": shots["rating"]},
        {"do": "touch", "target": "level_2"},
        {"do": "wait_screen", "screen": "indicators"},
        {"do": "touch", "target": "score_服务效率_2"},
        {"do": "touch", "target": "score_服务水平_3"},
        {"do": "glyph_check"}, {"do": "screenshot", "path": shots["indicators"]},
        {"do": "touch", "target": "score_服务态度_1"},
        {"do": "wait_screen", "screen": "reasons"},
        {"do": "touch", "target": "reason_slow"},
        {"do": "glyph_check"}, {"do": "screenshot", "path": shots["reasons"]},
        {"do": "touch", "target": "submit"},
        {"do": "wait_screen", "screen": "thanks"},
        {"do": "glyph_check"}, {"do": "screenshot", "path": shots["thanks"]},
    ], display, tmp_path)
    paused, attract, rating, indicators, reasons, thanks = outcome["glyph_checks"]
    assert_readable(paused, "Service paused", "No staff at this window")
    assert_readable(attract, "Welcome!", "Service guide", "Notice", "Staff no.: SZ0101", "李明华")
    assert_readable(rating, "Please rate my service", "Very satisfied", "Satisfied", "Basically satisfied",
                    "Dissatisfied", "Very dissatisfied")
    assert_readable(indicators, "Please rate each of these", "Efficiency", "Competence", "Attitude")
    assert_readable(reasons, "Please tell us what went wrong", "Submit")
    assert_readable(thanks, "Thank you for your rating", "Your rating: ")
    for shot in shots.values():
        assert len(Image.open(shot).convert("RGB").getcolors(maxcolors=1 << 20)) > 50
    rows = records(tmp_path, "SELECT level, json_extract(payload, '$.reasons') FROM ratings")
    assert rows == [(2, '["slow"]')]


def test_the_citizen_can_switch_language_and_the_next_one_starts_in_chinese(display, terminal_config, tmp_path):
    config = terminal_config(staff_no="SZ0101")
    settings(config, thanks_seconds=1)
    outcome = kiosk.run(config, [
        {"do": "invite"},
        {"do": "wait_screen", "screen": "rating"},
        {"do": "touch", "target": "lang_switch"},
        {"do": "sleep", "seconds": 0.2},
        {"do": "glyph_check"},
        {"do": "touch", "target": "level_5"},
        {"do": "wait_screen", "screen": "thanks"},
        {"do": "glyph_check"},
        {"do": "wait_screen", "screen": "attract", "timeout": 5},
        {"do": "glyph_check"},
    ], display, tmp_path)
    rating, thanks, attract = outcome["glyph_checks"]
    assert_readable(rating, "Please rate my service", "中文")
    assert_readable(thanks, "Thank you for your rating", "Very satisfied")
    assert_readable(attract, "欢迎您", "English")


def taps(target: str, n: int) -> list[dict]:
    return [{"do": "touch", "target": target} for _ in range(n)]


def test_technician_menu_behind_the_pin_with_lockout(display, terminal_config, tmp_path):
    config = terminal_config()
    wrong = [step for digit in "1111" for step in taps(f"key_{digit}", 1)] + taps("ok", 1)
    outcome = kiosk.run(config, [
        {"do": "set_pin", "pin": "3907"},
        {"do": "wait_screen", "screen": "paused"},
        *taps("tech_corner", 4),
        {"do": "sleep", "seconds": 0.3},
        {"do": "wait_screen", "screen": "paused"},  # four taps are not enough
        *taps("tech_corner", 1),
        {"do": "wait_screen", "screen": "pin"},
        *[s for _ in range(4) for s in wrong],
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(SCREENSHOTS / "pin-zh.png")},
        *taps("key_3", 1), *taps("key_9", 1), *taps("key_0", 1), *taps("key_7", 1), *taps("ok", 1),
        {"do": "wait_screen", "screen": "technician"},
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(SCREENSHOTS / "technician-zh.png")},
        *taps("touch_test", 1),
        {"do": "wait_screen", "screen": "touchtest"},
        *taps("pad", 3),
        {"do": "box_press", "level": 5},  # counted by the test, not a rating, not misuse
        {"do": "sleep", "seconds": 0.2},
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(SCREENSHOTS / "touchtest-zh.png")},
        *taps("back", 1),
        {"do": "wait_screen", "screen": "technician"},
        *taps("close", 1),
        {"do": "wait_screen", "screen": "paused"},
        *taps("tech_corner", 5),
        {"do": "wait_screen", "screen": "pin"},
        *wrong,
        {"do": "glyph_check"},
        *[s for _ in range(4) for s in wrong],
        {"do": "glyph_check"},
        *taps("key_3", 1), *taps("key_9", 1), *taps("key_0", 1), *taps("key_7", 1), *taps("ok", 1),
        {"do": "sleep", "seconds": 0.3},
        {"do": "glyph_check"},
        {"do": "wait_screen", "screen": "pin"},  # locked: even the right PIN waits
    ], display, tmp_path, timeout=120)
    four_wrong, menu, touch_test, one_wrong, locked, still_locked = outcome["glyph_checks"]
    assert_readable(four_wrong, "密码错误，还可尝试 1 次")
    assert_readable(menu, "维护菜单", "终端编号：T-DEMO-01", "待上传：评价 0 条", "当前工作人员：无（暂停服务）",
                    "触摸与按键测试", "重启评价程序")
    assert_readable(touch_test, "触摸 3 次", "button_box 5×1")
    assert_readable(one_wrong, "还可尝试 4 次")
    assert_readable(locked, "已锁定")
    assert_readable(still_locked, "已锁定")
    assert records(tmp_path, "SELECT count(*) FROM ratings") == [(0,)]
    assert records(tmp_path, "SELECT count(*) FROM events") == [(0,)]  # the test press was no misuse
    guard = records(tmp_path, "SELECT value FROM sync_state WHERE key = 'pin_guard'")
    assert json.loads(guard[0][0])["locked_s"] > 0  # kept across restarts, as time left on the monotonic clock


@pytest.mark.parametrize("audio", ["dummy", "none"])
def test_voice_prompts_play_or_stay_silent_but_never_crash(display, terminal_config, tmp_path, audio):
    """With SDL's dummy audio driver the prompts really play (into nothing); with no audio device
    at all the kiosk stays silent, says why, and rates on."""
    config = terminal_config(staff_no="SZ0101")
    settings(config, thanks_seconds=1)
    env = {"SDL_AUDIODRIVER": "dummy"} if audio == "dummy" else {"SDL_AUDIODRIVER": "no-such-driver"}
    outcome = kiosk.run(config, [
        {"do": "invite"},
        {"do": "wait_screen", "screen": "rating"},
        {"do": "touch", "target": "level_5"},
        {"do": "wait_screen", "screen": "thanks"},
        {"do": "wait_screen", "screen": "attract", "timeout": 5},
    ], display, tmp_path, env=env)
    assert outcome["voice"]["said"] == ["invite", "thanks"]
    if audio == "dummy":
        assert outcome["voice"]["silent_because"] is None
    else:
        assert outcome["voice"]["silent_because"]
    assert records(tmp_path, "SELECT level FROM ratings") == [(5,)]


def test_kiosk_hygiene_watchdog_from_the_ui_loop_and_no_way_out(display, terminal_config, tmp_path):
    import socket
    import threading
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(tmp_path / "notify.sock"))
    notify.settimeout(0.5)
    messages, listening = [], True

    def listen():  # as systemd does: read each notification as it comes
        while listening:
            try:
                messages.append((time.monotonic(), notify.recv(256).decode()))
            except TimeoutError:
                pass

    listener = threading.Thread(target=listen)
    listener.start()
    config = terminal_config(staff_no="SZ0101")
    outcome = kiosk.run(config, [
        {"do": "wait_screen", "screen": "attract"},
        {"do": "sleep", "seconds": 1.5},
        {"do": "freeze", "seconds": 2.0},  # a hung UI: no pings for two seconds
        {"do": "sleep", "seconds": 1.0},
        {"do": "keys", "names": ["escape", "f1"]},
        {"do": "close"},
        {"do": "sleep", "seconds": 0.3},
        {"do": "wait_screen", "screen": "attract"},  # still running, still the kiosk
    ], display, tmp_path, env={"NOTIFY_SOCKET": str(tmp_path / "notify.sock"), "WATCHDOG_USEC": "600000"})
    listening = False
    listener.join()
    notify.close()
    assert outcome["close_refused"] is True
    kinds = [m for _, m in messages]
    assert "READY=1" in kinds and kinds.count("WATCHDOG=1") >= 10  # every 0.2 s (a third of 0.6 s)
    pings = [t for t, m in messages if m == "WATCHDOG=1"]
    gaps = sorted(b - a for a, b in zip(pings, pings[1:]))
    assert gaps[-1] >= 1.9  # the frozen UI sent nothing for two seconds: systemd would restart it
    assert gaps[len(gaps) // 2] < 0.5  # otherwise the pings keep coming


def test_one_input_provider_and_screen_settings(terminal_config):
    from kivy.config import Config as KivyConfig
    from terminal import config as config_module
    from terminal.kiosk import prepare_kivy
    config = config_module.load(terminal_config(touch_input="mtdev:/dev/input/event3", rotation=90))
    prepare_kivy(config)
    assert dict(KivyConfig.items("input")) == {"touchscreen": "mtdev,/dev/input/event3"}
    assert KivyConfig.get("graphics", "rotation") == "90" and KivyConfig.get("graphics", "allow_screensaver") == "0"
    assert KivyConfig.get("kivy", "exit_on_escape") == "0"
    prepare_kivy(config_module.load(terminal_config()))
    assert dict(KivyConfig.items("input")) == {"mouse": "mouse,disable_multitouch"}


def test_new_content_shows_without_a_restart_and_a_broken_photo_falls_back(display, terminal_config, tmp_path):
    config = terminal_config(staff_no="SZ0101")
    content = tmp_path / "demo-content" / "content.json"
    data = json.loads(content.read_text(encoding="utf-8"))
    data["staff"][0].update(name="张晓明", photo="photos/missing.png")
    data["notices"][0]["title"] = "元旦放假通知"
    outcome = kiosk.run(config, [
        {"do": "wait_screen", "screen": "attract"},
        {"do": "wait_text", "text": "李明华"},
        {"do": "write_file", "path": str(content), "text": json.dumps(data, ensure_ascii=False)},
        {"do": "wait_text", "text": "张晓明", "timeout": 15},
        {"do": "wait_text", "text": "元旦放假通知"},
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(SCREENSHOTS / "attract-new-content-zh.png")},
    ], display, tmp_path)
    assert_readable(outcome["glyph_checks"][0], "张晓明", "元旦放假通知")
    shot = Image.open(SCREENSHOTS / "attract-new-content-zh.png").convert("RGB")
    from terminal.content import PLACEHOLDER_PHOTO
    expected = Image.open(PLACEHOLDER_PHOTO).convert("RGB").getpixel((5, 5))  # its background colour
    shown = shot.getpixel((60, 160))  # where the photo was
    assert max(abs(a - b) for a, b in zip(shown, expected)) < 12, (shown, expected)


def test_a_name_with_a_rare_character_is_drawn_not_boxed(display, terminal_config, tmp_path):
    """Names are written in all of the 通用规范汉字表, which reaches beyond the basic block of
    ideographs: 䶮 (U+4DAE, Extension A, as in 刘䶮) and 𫖯 (U+2B5AF, Extension C, as in 赵孟𫖯)
    were empty boxes on a terminal with no CJK font installed."""
    config = terminal_config(staff_no="SZ0101")
    content = tmp_path / "demo-content" / "content.json"
    data = json.loads(content.read_text(encoding="utf-8"))
    data["staff"][0]["name"] = "刘䶮"
    data["notices"][0]["title"] = "赵孟𫖯书法作品展"
    content.write_text(json.dumps(data, ensure_ascii=False), encoding="utf-8")
    outcome = kiosk.run(config, [
        {"do": "wait_screen", "screen": "attract"},
        {"do": "wait_text", "text": "赵孟𫖯书法作品展"},
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(SCREENSHOTS / "attract-rare-name-zh.png")},
        {"do": "invite", "case_no": "C-RARE"},
        {"do": "wait_screen", "screen": "rating"},
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(SCREENSHOTS / "rating-rare-name-zh.png")},
    ], display, tmp_path)
    attract, rating = outcome["glyph_checks"]
    assert_readable(attract, "刘䶮", "赵孟𫖯书法作品展")
    assert_readable(rating, "刘䶮")
    assert {"\u4dae", "\U0002b5af"} <= set(attract["checked"]) and "\u4dae" in rating["checked"]


def test_reason_tags_that_arrive_mid_session_are_offered_from_the_next_one(display, terminal_config, tmp_path):
    """Content with a new reason tag came while a rater was rating: the reasons screen offered the
    new tag, which the session (ruled by the content it began with) refused, so the choice was lost;
    and the window kept those old rules after the session. Now a session offers what it takes, and
    the next one offers and takes the new tag."""
    config = terminal_config(staff_no="SZ0101")
    settings(config, thanks_seconds=1)
    content = tmp_path / "demo-content" / "content.json"
    data = json.loads(content.read_text(encoding="utf-8"))
    data["reason_tags"][0]["label"] = "服务态度不好"  # a tag the session takes, relabelled: the refill is seen
    data["reason_tags"].append({"code": "queue", "label": "排队时间长", "label_en": "Long queue"})
    outcome = kiosk.run(config, [
        {"do": "wait_screen", "screen": "attract"},
        {"do": "invite", "case_no": "C-OLD-RULES"},
        {"do": "wait_screen", "screen": "rating"},
        {"do": "touch", "target": "level_1"},
        {"do": "wait_screen", "screen": "reasons"},
        {"do": "write_file", "path": str(content), "text": json.dumps(data, ensure_ascii=False)},
        {"do": "wait_text", "text": "服务态度不好", "timeout": 15},
        {"do": "glyph_check"},
        {"do": "touch", "target": "reason_attitude"},
        {"do": "touch", "target": "submit"},
        {"do": "wait_screen", "screen": "attract", "timeout": 5},
        {"do": "invite", "case_no": "C-NEW-RULES"},
        {"do": "wait_screen", "screen": "rating"},
        {"do": "touch", "target": "level_2"},
        {"do": "wait_screen", "screen": "reasons"},
        {"do": "wait_text", "text": "排队时间长"},
        {"do": "touch", "target": "reason_queue"},
        {"do": "touch", "target": "submit"},
        {"do": "wait_screen", "screen": "thanks"},
    ], display, tmp_path, timeout=120)
    assert "排队时间长" not in " ".join(outcome["glyph_checks"][0]["texts"])
    reasons = records(tmp_path, "SELECT json_extract(payload, '$.case_no'), json_extract(payload, '$.reasons') "
                                "FROM ratings ORDER BY rowid")
    assert [(case, json.loads(tags)) for case, tags in reasons] == [("C-OLD-RULES", ["attitude"]),
                                                                   ("C-NEW-RULES", ["queue"])]


@pytest.mark.parametrize("size", ["800x1280", "1024x600"])
def test_portrait_and_seven_inch_screens(display, terminal_config, tmp_path, size):
    """A 10-inch screen mounted portrait and a 7-inch one: everything readable, nothing cut off."""
    width, height = size.split("x")
    config = terminal_config(staff_no="SZ0101", width=int(width), height=int(height))
    settings(config, thanks_seconds=1)
    outcome = kiosk.run(config, [
        {"do": "wait_screen", "screen": "attract"},
        {"do": "sleep", "seconds": 3.2},
        {"do": "glyph_check"}, {"do": "screenshot", "path": str(SCREENSHOTS / f"attract-{size}-zh.png")},
        {"do": "invite"},
        {"do": "wait_screen", "screen": "rating"},
        {"do": "glyph_check"}, {"do": "screenshot", "path": str(SCREENSHOTS / f"rating-{size}-zh.png")},
        {"do": "touch", "target": "level_1"},
        {"do": "wait_screen", "screen": "reasons"},
        {"do": "touch", "target": "text"},  # the on-screen keyboard docks for the text
        {"do": "sleep", "seconds": 0.5},
        {"do": "glyph_check"}, {"do": "screenshot", "path": str(SCREENSHOTS / f"reasons-{size}-zh.png")},
    ], display, tmp_path)
    attract, rating, reasons = outcome["glyph_checks"]
    assert_readable(attract, "李明华", "办事指南")
    assert_readable(rating, "请您对我的服务做出评价", "非常满意", "非常不满意")
    assert_readable(reasons, "请告诉我们不满意的原因", "提交")
    assert Image.open(SCREENSHOTS / f"rating-{size}-zh.png").size == (int(width), int(height))


def test_a_called_ticket_shows_and_the_rating_carries_it(display, terminal_config, tmp_path):
    """排队叫号: the queue system calls A012 to this window; the kiosk shows 请 A012 号到 1号窗口 办理 over the
    attract screen (and says it), and the rating of the service that follows carries the ticket."""
    shot = SCREENSHOTS / "ticket-called-1024x600.png"
    outcome = kiosk.run(terminal_config(staff_no="SZ0101", width=1024, height=600), [
        {"do": "wait_screen", "screen": "attract"},
        {"do": "call", "ticket_no": "A012"},
        {"do": "wait_text", "text": "请 A012 号到 1号窗口 办理"},
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(shot)},
        {"do": "invite", "case_no": "C-TICKET-1"},
        {"do": "wait_screen", "screen": "rating"},
        {"do": "touch", "target": "level_5"},
        {"do": "wait_screen", "screen": "thanks"},
    ], display, tmp_path)
    assert_readable(outcome["glyph_checks"][0], "请 A012 号到 1号窗口 办理", "李明华")
    image = Image.open(shot).convert("RGB")
    assert image.size == (1024, 600)
    r, g, b = image.getpixel((512, int(600 * 0.8)))  # the banner's blue, over the lower middle
    assert b > 120 and r < 80, (r, g, b)
    assert records(tmp_path, "SELECT json_extract(payload, '$.ticket_no'), json_extract(payload, '$.case_no') "
                             "FROM ratings") == [("A012", "C-TICKET-1")]
    assert records(tmp_path, "SELECT json_extract(payload, '$.ticket_no') FROM events "
                             "WHERE json_extract(payload, '$.kind') = 'ticket_called'") == [("A012",)]


def run_probe(probe: str, config: Path, display: str, tmp_path) -> dict:
    """Run a probe script (``kiosk.start`` on the test display, as the kiosk starts) in its own
    process; what it printed last, as JSON."""
    import os
    import subprocess
    import sys

    from conftest import ROOT
    done = subprocess.run([sys.executable, "-c", probe, str(config)], cwd=ROOT, timeout=120, capture_output=True,
                          text=True, env={**os.environ, "DISPLAY": display, "KIVY_HOME": str(tmp_path / "kivy")})
    assert done.returncode == 0, done.stderr[-3000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


START_PROBE = """
import gc, json, sys
from terminal import config, kiosk
app = kiosk.start(config.load(sys.argv[1]))
from kivy.clock import Clock
from kivy.core.window import Window
seen = {}
def first(*_):
    Window.unbind(on_flip=first)
    seen["collecting_at_first_frame"] = gc.isenabled()
    Clock.schedule_once(later, 0.5)
def later(_dt):
    seen.update(collecting_later=gc.isenabled(), frozen=gc.get_freeze_count(), thresholds=gc.get_threshold())
    app.stop()
Window.bind(on_flip=first)
app.run()
print(json.dumps(seen))
"""


def test_the_kiosk_starts_without_collecting_then_collects_with_starts_objects_frozen(display, terminal_config,
                                                                                       tmp_path):
    """Start (kiosk.start, as ``run`` and the benchmark use it) runs without cyclic garbage collection
    up to the first frame, then collects once, freezes what start made and collects again from then
    on: a kiosk left without collection would grow for months; one that kept start's objects in the
    collected generations would walk them in the middle of presses."""
    seen = run_probe(START_PROBE, terminal_config(), display, tmp_path)
    assert seen["collecting_at_first_frame"] is False
    assert seen["collecting_later"] is True and seen["thresholds"][0] > 0
    assert seen["frozen"] > 20_000, seen  # Kivy's and our modules, the widgets: set aside for good


FIRST_FRAME_PROBE = """
import json, sys
from terminal import config, kiosk
app = kiosk.start(config.load(sys.argv[1]))
from kivy.core.window import Window
from kivy.uix.label import Label
laid_out = {}
plain_update = Label.texture_update
def texture_update(self, *args):  # the name Kivy's texture trigger calls
    if self.text:
        laid_out.setdefault(id(self), []).append(self.text_size[0])
    return plain_update(self, *args)
Label.texture_update = texture_update
def first(*_):
    Window.unbind(on_flip=first)
    shown = {id(w): w for w in app.root.walk() if isinstance(w, Label) and w.text}
    fills = [type(w).__name__ for w in app.root.walk() for group in (w.canvas.before, w.canvas)
             if not any(type(i).__name__ == "StencilPush" for i in group.children)  # a clip's mask, not colour
             for i in group.children
             if type(i).__name__ in ("Rectangle", "RoundedRectangle") and tuple(i.size) == tuple(Window.size)]
    print(json.dumps({"shown": {w.text[:20]: w.text_size[0] for w in shown.values()},
                      "laid_out": {shown[k].text[:20]: v for k, v in laid_out.items() if k in shown},
                      "clearcolor": list(Window.clearcolor), "window_fills": fills}))
    app.stop()
Window.bind(on_flip=first)
app.run()
"""


def test_the_first_frame_lays_each_text_out_once_and_fills_the_window_once(display, terminal_config, tmp_path):
    """Wrapped text is laid out where the layout put it, not first at Kivy's 100 px default and at
    the 0 px of a layout's first pass: Chinese, with no spaces to break at, is measured a character
    at a time at each width, and those layouts were most of the text drawing of the first frame.
    The screens' background is the window's clear colour, not a rectangle filling every pixel again
    at every frame."""
    seen = run_probe(FIRST_FRAME_PROBE, terminal_config(staff_no="SZ0101"), display, tmp_path)
    wrapped = {text: width for text, width in seen["shown"].items() if width is not None}
    assert len(wrapped) >= 10 and any(text.startswith("所需材料") for text in wrapped), seen["shown"]  # the guides
    for text, width in wrapped.items():
        assert seen["laid_out"].get(text) == [width], (text, seen["laid_out"].get(text), width)
    assert seen["clearcolor"] == list(BACKGROUND) and seen["window_fills"] == []


def test_every_screen_is_found_with_its_layout_and_nothing_else_is_imported():
    """Screens are imported when first built (``screen_class``): each name the kiosk shows has its
    class and its kv file; a name that is not a screen is refused before anything is imported."""
    import sys

    from kivy.uix.screenmanager import Screen

    from terminal.kiosk.app import SCREENS
    from terminal.kiosk.screens import SCREEN_CLASS_NAMES, screen_class
    for name in SCREEN_CLASS_NAMES:
        assert issubclass(screen_class(name), Screen) and (SCREENS / f"{name}.kv").is_file(), name
    before = set(sys.modules)
    for name in ("..app", "app", "__init__", "provision"):
        with pytest.raises(KeyError):
            screen_class(name)
    assert set(sys.modules) == before
