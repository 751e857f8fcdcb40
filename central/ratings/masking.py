"""What a comment may show in public: nothing that identifies its writer. Pure: text in, text out.

A comment is first normalised as a reader would see it: NFKC (full-width ``１３８``, ``＠`` and
``－`` become ``138``, ``@`` and ``-``; every script's decimal digits, Arabic-Indic ``١٣٨`` or
Devanagari ``१३८``, become ASCII ones), and invisible characters removed (zero-width spaces and
joiners, soft hyphens, direction marks: category Cf). Then:

- any run of six or more digits is masked, whatever separates them (any space, punctuation or
  symbol: dots, dashes, commas, 、，·, but also * 。 ； + → ☎…; only a letter ends a run), with
  Chinese numerals counted as digits (一三八…, 〇, 幺, 两, 壹贰叁…): phone, ID, bank and case
  numbers, however they were written;
- e-mail addresses in any form are masked: ``a@b.cn``, ``a @ b . cn``, ``a(at)b(dot)cn``, ``a艾特b点cn``.

Names and addresses cannot be found by a pattern: that is why a comment reaches the public page
only once a hall administrator has approved it (``Rating.comment_state``).
"""

from __future__ import annotations

import re
import unicodedata

DIGITS = "0123456789零〇一二三四五六七八九十幺两壹贰叁肆伍陆柒捌玖拾"
SEPARATORS = r"\W_"  # anything but a letter or digit: a list of separators missed * and 。
MASK = "＊"
_RUN = re.compile(f"[{DIGITS}Xx](?:[{SEPARATORS}]*[{DIGITS}Xx])+")
_AT = r"(?:@|\(at\)|\[at\]|\{at\}|\bat\b|艾特|圈a)"
_DOT = r"(?:\.|\(dot\)|\[dot\]|\{dot\}|\bdot\b|点)"
_EMAIL = re.compile(rf"[\w.+\-]+\s*{_AT}\s*[\w\-]+(?:\s*{_DOT}\s*[\w\-]+)+", re.IGNORECASE)


def normalise(text: str) -> str:
    """NFKC, with invisible characters (format characters: zero-width, soft hyphen, bidi) removed."""
    return "".join(piece for piece, _ in _pieces(text))


def anonymise(text: str) -> str:
    """The comment as the public page may show it: the writer's own characters (a full-width comma
    stays one), invisible ones dropped, and what the patterns find in the normalised form masked."""
    pieces = list(_pieces(text))
    seen = "".join(piece for piece, _ in pieces)
    owner = [i for i, (piece, _) in enumerate(pieces) for _ in piece]  # normalised index -> piece
    masked = set()
    for match in _EMAIL.finditer(seen):
        masked.update(owner[match.start():match.end()])
    for match in _RUN.finditer(seen):
        if sum(1 for c in match.group() if c in DIGITS) >= 6:
            masked.update(owner[match.start():match.end()])
    return "".join(MASK if i in masked else original for i, (_, original) in enumerate(pieces))


def _pieces(text: str):
    """(normalised, original) for each visible character of ``text``."""
    for c in text:
        if unicodedata.category(c) != "Cf":
            yield _ascii_digits(unicodedata.normalize("NFKC", c)), c


def _ascii_digits(text: str) -> str:
    """Every decimal digit as its ASCII one: NFKC leaves Arabic-Indic ٣, Devanagari ३ or Thai ๓ as
    they are, and a number written in them was shown whole."""
    return "".join(str(unicodedata.decimal(c)) if c > "\x7f" and unicodedata.decimal(c, None) is not None else c
                   for c in text)
