"""The bundled Chinese font draws the characters people's names are written in, not only the basic
block of CJK Unified Ideographs (U+4E00–U+9FFF): on a terminal or phone with no CJK font installed,
a character the font lacks is an empty box in the staff member's name."""

import base64
import io
import unicodedata

from fontTools.pens.boundsPen import BoundsPen
from fontTools.ttLib import TTFont

from central.ratings import page_font
from terminal.kiosk import FONT

# Characters of the 通用规范汉字表 (State Council, 2013; the 8,105 characters for general use,
# names and places included) outside U+4E00–U+9FFF, each with its code point as the table's
# code-point transcriptions give it. All from its 三级字表 (the level for names, places and terms).
GENERAL_STANDARD_OUTSIDE_BASIC = [
    (0x4DAE, "䶮"),   # Extension A: 刘䶮, founder of the Southern Han
    (0x3447, "㑇"),   # Extension A
    (0x3E06, "㸆"),   # Extension A
    (0x4723, "䜣"),   # Extension A
    (0x20676, "𠙶"),  # Extension B
    (0x23C98, "𣲘"),  # Extension B
    (0x28695, "𨚕"),  # Extension B
    (0x29F7E, "𩽾"),  # Extension B (𩽾𩾌, the anglerfish)
    (0x2A7DD, "𪟝"),  # Extension C
    (0x2AA36, "𪨶"),  # Extension C
    (0x2B5AF, "𫖯"),  # Extension C: 赵孟𫖯, the Yuan calligrapher
    (0x2B7F9, "𫟹"),  # Extension D
    (0x2B80A, "𫠊"),  # Extension D
    (0x2C1D5, "𬇕"),  # Extension E
    (0x2C317, "𬌗"),  # Extension E (咬𬌗, the bite, in dentistry)
    (0x2C8F3, "𬣳"),  # Extension E
    (0x2CB5A, "𬭚"),  # Extension E
]
# CJK Compatibility Ideographs come in through legacy input and old records: written by code point,
# as an editor's normalisation (NFC) would turn most of them into their unified counterparts.
COMPATIBILITY = [0xF900, 0xF9F1, 0xFA0E, 0xFA11, 0xFA6D, 0x2F804]


def test_the_sourced_characters_are_real_ideographs_outside_the_basic_block():
    for code, char in GENERAL_STANDARD_OUTSIDE_BASIC:
        assert ord(char) == code and not 0x4E00 <= code <= 0x9FFF
        assert unicodedata.name(char) == f"CJK UNIFIED IDEOGRAPH-{code:X}"
    for code in COMPATIBILITY:
        assert unicodedata.name(chr(code)) == f"CJK COMPATIBILITY IDEOGRAPH-{code:X}"


def drawn(font: TTFont, chars: list[str]) -> list[str]:
    """The characters ``font`` maps to a glyph with an outline (not to nothing or to an empty glyph)."""
    cmap, glyphs = font.getBestCmap(), font.getGlyphSet()
    found = []
    for char in chars:
        if ord(char) in cmap:
            pen = BoundsPen(glyphs)
            glyphs[cmap[ord(char)]].draw(pen)
            if pen.bounds is not None:
                found.append(char)
    return found


def test_the_bundled_font_covers_extension_a_and_the_general_standard_characters_beyond_it():
    cmap = TTFont(str(FONT), lazy=True).getBestCmap()
    wanted = [char for _, char in GENERAL_STANDARD_OUTSIDE_BASIC] + [chr(c) for c in COMPATIBILITY]
    assert [c for c in wanted if ord(c) not in cmap] == []
    # all of Extension A as Unicode 3.0 made it (U+3400–U+4DB5: Noto Sans CJK 2.004 has every one)
    assert [hex(c) for c in range(0x3400, 0x4DB6) if c not in cmap] == []
    assert all(c in cmap for c in range(0x4E00, 0x9FF0))  # the basic block still whole


def test_a_pages_font_keeps_the_rare_characters_of_a_name():
    name = "刘䶮"
    rare = [char for _, char in GENERAL_STANDARD_OUTSIDE_BASIC] + [chr(c) for c in COMPATIBILITY]
    url = page_font.font_for("窗口工作人员：" + name + "".join(rare))
    font = TTFont(io.BytesIO(base64.b64decode(url.split(",", 1)[1])))
    assert drawn(font, [*name, *rare]) == [*name, *rare]
