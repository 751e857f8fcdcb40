"""Every citizen-facing string is translatable, and translated: the English catalog covers each
``tr("…")`` in the kiosk's kv and Python files, and the compiled .mo says what the .po says."""

import re

from babel.messages.pofile import read_po

from terminal import i18n
from terminal.core.levels import Level
from terminal.core.session import INDICATORS
from terminal.kiosk.screens import TECHNICIAN_SCREENS

from conftest import ROOT

PO = ROOT / "terminal" / "locale" / "en" / "LC_MESSAGES" / "terminal.po"
CALLS = re.compile(r"""\btr\(\s*"([^"]+)"\s*[,)]""")


def source_strings() -> set[str]:
    found = set()
    for path in list((ROOT / "terminal" / "kiosk").rglob("*.kv")) + list((ROOT / "terminal" / "kiosk").rglob("*.py")):
        found |= set(CALLS.findall(path.read_text(encoding="utf-8")))
    return found | set(INDICATORS) | {"{name} 已登录", "{name} 已退出"}  # templates passed to tr by name


def test_every_citizen_facing_string_has_an_english_translation():
    strings = source_strings()
    assert len(strings) >= 25 and "感谢您的评价" in strings and "请您对我的服务做出评价" in strings
    untranslated = sorted(s for s in strings if i18n.tr(s, "en") == s)
    assert untranslated == []
    assert all(i18n.tr(s, "zh_CN") == s for s in strings)  # Chinese is the source


def test_no_chinese_left_in_kv_files_outside_tr():
    """A bare Chinese literal in a layout would stay Chinese on the English screens."""
    for path in (ROOT / "terminal" / "kiosk").rglob("*.kv"):
        if path.stem in TECHNICIAN_SCREENS:
            continue  # staff-facing, in Chinese by design
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            code = CALLS.sub("", line.split("#")[0])
            assert not re.search(r"[\u4e00-\u9fff]", code), f"{path.name}:{number}: {line.strip()}"


def test_compiled_catalog_matches_its_source():
    with PO.open("rb") as f:
        catalog = read_po(f)
    for message in catalog:
        if message.id:
            assert i18n.tr(message.id, "en") == message.string, f"run make translations ({message.id})"


def test_level_labels_in_both_languages():
    assert [lv.en for lv in Level] == ["Very satisfied", "Satisfied", "Basically satisfied", "Dissatisfied",
                                       "Very dissatisfied"]
