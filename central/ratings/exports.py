"""Our records as data items, and the shipped export profiles that turn them into a platform's
fields and codes (``export_profile``; the profiles are ``profiles/*.toml``). The pull exports
(``/exports/<profile>.json|csv``), the upward push (``upward``) and docs/exports.md all go through
here, so what is documented is what is sent.

Pull exports carry every stored rating in the range that the profile takes, including those excluded
by a re-check (复核), with a field saying whether it counts: upward reporting must see the record,
not a filtered view.
"""

from __future__ import annotations

import csv
import functools
import io
from pathlib import Path
from typing import Iterable, Iterator

from django.conf import settings

from terminal.core.levels import Level

from .export_profile import Profile, parse
from .models import Case, Rating, ReasonTag, Window, WorkOrder

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"


@functools.cache
def shipped() -> dict[str, Profile]:
    """The profiles in the repository, by name (their file's stem)."""
    return {path.stem: parse(path.read_text(encoding="utf-8"), path.name) for path in sorted(PROFILE_DIR.glob("*.toml"))}


def shipped_text(name: str) -> str:
    return (PROFILE_DIR / f"{name}.toml").read_text(encoding="utf-8")


def data_items(ratings: list[Rating]) -> dict[str, dict]:
    """rating_id -> our data items (``export_profile.SOURCES``) for each rating, looked up in a few
    queries for the whole list: its window's department, its case as the business system reported
    it, its work order's rectification once closed, the reason tags' labels."""
    windows = {w.code: w for w in Window.objects.select_related("department")}
    tags = dict(ReasonTag.objects.values_list("code", "label"))
    case_nos = {r.case_no for r in ratings if r.case_no}
    cases = {c.case_no: c for c in Case.objects.filter(case_no__in=case_nos)} if case_nos else {}
    closed = {o.rating_id: o for o in WorkOrder.objects.filter(rating_id__in=[r.pk for r in ratings], state="closed")}
    out = {}
    for r in ratings:
        window, case, order = windows.get(r.window_code), cases.get(r.case_no), closed.get(r.pk)
        out[r.rating_id] = {
            "rating_id": r.rating_id, "case_no": r.case_no, "item_code": r.item_code or (case.item_code if case else ""),
            "item_name": case.item_name if case else "",
            "dept_code": window.department.code if window and window.department else "",
            "window_code": r.window_code, "staff_no": r.staff_no, "level": r.level, "level_name": Level(r.level).zh,
            "channel": r.channel, "rated_at": r.rated_at, "rating_no": r.rating_no,
            "reasons": ",".join(tags.get(code, code) for code in r.reasons), "text": r.text,
            "anonymous": (r.payload or {}).get("anonymous") is not False, "valid": not r.excluded,
            "system_default": r.device == "system",
            "applicant_type": case.applicant_type if case else "", "case_status": case.status if case else "",
            "completed_at": case.completed_at if case else None,
            "rectification": order.rectification if order else "", "rectified_at": order.rectified_at if order else None,
            "area_code": settings.AREA_CODE,
        }
    return out


def taken(profile: Profile, rating: Rating) -> bool:
    """Whether the profile takes this rating at all (a system default only where it takes defaults)."""
    return ("default" if rating.device == "system" else "rating") in profile.takes


def records(name: str, ratings) -> Iterator[dict]:
    """The ratings (a queryset) in the profile's fields and codes, oldest first; ProfileError if one
    holds a value the profile has no code for."""
    profile = shipped()[name]
    for chunk in _chunks(ratings.order_by("rated_at", "id").iterator(chunk_size=2000), 2000):
        chunk = [r for r in chunk if taken(profile, r)]
        items = data_items(chunk)
        for r in chunk:
            yield profile.encode({**items[r.rating_id], "version": 1, "operation": "add"})


def _chunks(iterable: Iterable, size: int) -> Iterator[list]:
    chunk = []
    for item in iterable:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def spreadsheet_safe(value):
    """A CSV cell a spreadsheet will not run: text starting with = + - @ (or a tab or return) gets a
    leading apostrophe. A rater's free text is untrusted input that auditors open in Excel."""
    if isinstance(value, str) and value[:1] in ("=", "+", "-", "@", "\t", "\r"):
        return "'" + value
    return value


def csv_lines(name: str, ratings) -> Iterator[str]:
    """CSV with a header row, UTF-8 with a byte-order mark so spreadsheet programs read the Chinese."""
    buffer = io.StringIO()
    writer = csv.writer(buffer)
    writer.writerow([f.name for f in shipped()[name].fields])
    yield "\ufeff" + buffer.getvalue()
    for record in records(name, ratings):
        buffer.seek(0)
        buffer.truncate()
        writer.writerow([spreadsheet_safe(v) for v in record.values()])
        yield buffer.getvalue()


def markdown() -> str:
    """docs/exports.md: every shipped profile's fields and code lists."""
    out = ["# Export upward: field mapping", "",
           "Generated from the export profiles in `central/ratings/profiles/` (`rating-central export_docs`);",
           "a test checks it is current. Each profile is pulled as `GET /exports/<profile>.json` or `.csv`",
           "with `?from=YYYY-MM-DD&to=YYYY-MM-DD` (login as hall administrator or auditor; a department",
           "manager gets their department only), and pushed to each platform configured with it",
           "(README, \"Reporting upward\").", ""]
    for profile in shipped().values():
        out += profile.markdown()
    return "\n".join(out)
