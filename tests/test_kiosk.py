"""The real Kivy kiosk on a private Xvfb display: what it shows and what a touch records."""

import json
import sqlite3

from PIL import Image

from terminal.core.levels import Level
from terminal.kiosk.app import LEVEL_COLOURS

import kiosk
from kiosk import SCREENSHOTS


def test_main_screen_renders_chinese_staff_card_and_five_buttons(display, terminal_config, tmp_path):
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    shot, centres = SCREENSHOTS / "main-zh.png", tmp_path / "centres.json"
    outcome = kiosk.run(terminal_config(), [
        {"do": "wait_screen", "screen": "rating"},
        {"do": "glyph_check"},
        {"do": "centres", "path": str(centres)},
        {"do": "screenshot", "path": str(shot)},
    ], display, tmp_path)

    glyphs = outcome["glyphs"]
    assert glyphs["tofu"] == [], f"characters drawn as boxes: {glyphs['tofu']}"
    assert glyphs["cjk_chars"] >= 40 and glyphs["distinct_renderings"] == glyphs["cjk_chars"]
    texts = " ".join(glyphs["texts"])
    for expected in ("李明华", "SZ0101", "示范市市场监督管理局", "1号窗口", "请您对我的服务做出评价",
                     "非常满意", "满意", "基本满意", "不满意", "非常不满意"):
        assert expected in texts

    image = Image.open(shot).convert("RGB")
    assert image.size == (1280, 800)
    assert len(image.getcolors(maxcolors=1 << 20)) > 200  # not blank: text, photo, buttons
    for code, (x, y) in json.loads(centres.read_text()).items():
        # each button is drawn in its level's colour (sampled just inside its top edge)
        r, g, b = image.getpixel((x, y - 150))
        expected = [round(c * 255) for c in LEVEL_COLOURS[Level(int(code))][:3]]
        assert max(abs(r - expected[0]), abs(g - expected[1]), abs(b - expected[2])) < 8, (code, (r, g, b))


def test_touch_records_the_rating_before_thanks_and_returns(display, terminal_config, tmp_path):
    config = terminal_config(thanks_seconds=1.0)
    outcome = kiosk.run(config, [
        {"do": "wait_screen", "screen": "rating"},
        {"do": "touch", "target": "level_2"},
        {"do": "wait_screen", "screen": "thanks"},
        {"do": "glyph_check"},
        {"do": "screenshot", "path": str(SCREENSHOTS / "thanks-zh.png")},
        {"do": "wait_screen", "screen": "rating", "timeout": 5},
    ], display, tmp_path)
    assert "感谢您的评价" in outcome["glyphs"]["texts"] and outcome["glyphs"]["tofu"] == []
    with sqlite3.connect(tmp_path / "data" / "terminal.db") as db:
        rows = db.execute("SELECT level, window, staff_no, state, json_extract(payload, '$.channel'), "
                          "json_extract(payload, '$.device') FROM ratings").fetchall()
    assert rows == [(2, "W01", "SZ0101", "pending", 4, "touchscreen")]
