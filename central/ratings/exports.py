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

import orjson
from django.conf import settings
from django.db import connection

from terminal.core.levels import Level

from .export_profile import Profile, parse, record_kind
from .models import Case, Department, Rating, ReasonTag, Window, WorkOrder
from .sql_time import aware

PROFILE_DIR = Path(__file__).resolve().parent / "profiles"
#: ratings read at once by ``records``: what an export holds in memory, however long its range
CHUNK = 2000
LEVEL_NAMES = {int(level): level.zh for level in Level}


@functools.cache
def shipped() -> dict[str, Profile]:
    """The profiles in the repository, by name (their file's stem)."""
    return {path.stem: parse(path.read_text(encoding="utf-8"), path.name) for path in sorted(PROFILE_DIR.glob("*.toml"))}


def shipped_text(name: str) -> str:
    return (PROFILE_DIR / f"{name}.toml").read_text(encoding="utf-8")


#: a rating's columns and what it needs from its case and its closed work order, in one query: the
#: push reads a thousand at a time, so no model objects and no ``IN`` compiled by the ORM
_COLUMNS = ("r.rating_id, r.case_no, r.item_code, r.window_code, r.staff_no, r.level, r.channel, r.rated_at, "
            "r.rating_no, r.reasons, r.text, r.excluded, r.device, {anonymous}, c.item_code, c.item_name, "
            "c.applicant_type, c.status, c.completed_at, w.rectification, w.rectified_at, r.department_id, "
            "r.terminal_id")
_FROM = (f"FROM {Rating._meta.db_table} r LEFT JOIN {Case._meta.db_table} c ON c.case_no = r.case_no AND r.case_no <> '' "
         f"LEFT JOIN {WorkOrder._meta.db_table} w ON w.rating_id = r.id AND w.state = 'closed'")


def select_items(where: str, params: list, leading: str = "", joins: str = "", tail: str = "") -> list[tuple]:
    """Rows of ``leading`` columns (from ``joins``, e.g. the outbox) followed by a rating's data items
    (``item``), for ratings ``r`` matching ``where``; plain SQL, the same on SQLite and PostgreSQL."""
    anonymous = ("(r.payload ->> 'anonymous')" if connection.vendor == "postgresql"
                 else "json_extract(r.payload, '$.anonymous')")
    sql = (f"SELECT {leading}{_COLUMNS.format(anonymous=anonymous)} {_FROM} {joins} WHERE {where} {tail}")
    with connection.cursor() as cursor:
        cursor.execute(sql, params)
        return cursor.fetchall()


class Lookups:
    """What every record of a batch shares: departments' codes, reason tags' labels, the area code,
    and what raters added by phone to the batch's ratings (``join_additions``)."""

    def __init__(self):
        self.departments = dict(Department.objects.values_list("pk", "code"))
        self.window_departments = dict(Window.objects.filter(department__isnull=False).values_list(
            "code", "department__code"))  # for a rating stored while its window had none
        self.tags = dict(ReasonTag.objects.values_list("code", "label"))
        self.area = settings.AREA_CODE
        self.additions: dict = {}

    def join_additions(self, ratings: list[tuple]) -> None:
        """Read what raters added by phone (扫码补充) to these ``select_items`` rows' ratings: a
        record carries them with the terminal's own reasons and text."""
        from .mobile import additions_of
        self.additions = additions_of({row[0]: row[-1] for row in ratings})

    def item(self, row: tuple) -> dict:
        """A ``select_items`` row (without its leading columns) as our data items (``export_profile.SOURCES``)."""
        (rating_id, case_no, item_code, window, staff, level, channel, rated_at, rating_no, reasons, text, excluded,
         device, anonymous, case_item, item_name, applicant, status, completed, rectification, rectified, department,
         _) = row
        reasons = orjson.loads(reasons) if isinstance(reasons, (str, bytes)) else reasons or []
        for added in self.additions.get(rating_id, ()):
            reasons = [*reasons, *(code for code in added.reasons if code not in reasons)]
            text = "\n".join(part for part in (text, added.text) if part)
        return {
            "rating_id": rating_id, "case_no": case_no, "item_code": item_code or case_item or "",
            "item_name": item_name or "", "dept_code": self.departments.get(department, "") if department else self.window_departments.get(window, ""),
            "window_code": window,
            "staff_no": staff, "level": level, "level_name": LEVEL_NAMES.get(level, ""), "channel": channel,
            "rated_at": aware(rated_at), "rating_no": rating_no,
            "reasons": ",".join(self.tags.get(code, code) for code in reasons), "text": text,
            "anonymous": anonymous not in (False, 0, "false"), "valid": not excluded, "system_default": device == "system",
            "applicant_type": applicant or "", "case_status": status or "", "completed_at": aware(completed),
            "rectification": rectification or "", "rectified_at": aware(rectified), "area_code": self.area,
        }


def taken(profile: Profile, device: str) -> bool:
    """Whether the profile takes a rating from this device at all (a system default only where it
    takes defaults)."""
    return record_kind(device) in profile.takes


def records(name: str, ratings) -> Iterator[dict]:
    """The ratings (a queryset) in the profile's fields and codes, oldest first; ProfileError if one
    holds a value the profile has no code for."""
    profile = shipped()[name]
    look = Lookups()
    pks = ratings.order_by("rated_at", "id").values_list("pk", "device")
    for chunk in _chunks(pks.iterator(chunk_size=CHUNK), CHUNK):
        ids = [pk for pk, device in chunk if taken(profile, device)]
        if not ids:
            continue
        rows = select_items(f"r.id IN ({', '.join(['%s'] * len(ids))})", ids, tail="ORDER BY r.rated_at, r.id")
        look.join_additions(rows)
        for row in rows:
            yield profile.encode({**look.item(row), "version": 1, "operation": "add"})


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


def json_parts(name: str, ratings, head: dict) -> Iterator[bytes]:
    """The JSON export as it is written: ``head``, the records, and their ``count`` last (known only
    once they are all out), so a ten-year range is read ``CHUNK`` ratings at a time, as the CSV is,
    never built whole in memory."""
    yield orjson.dumps(head)[:-1] + (b',"records":[' if head else b'"records":[')
    count = 0
    for record in records(name, ratings):
        yield (b"," if count else b"") + orjson.dumps(record)
        count += 1
    yield b'],"count":%d}' % count


def markdown() -> str:
    """docs/exports.md: every shipped profile's fields and code lists."""
    out = ["# Export upward: field mapping", "",
           "Generated from the export profiles in `central/ratings/profiles/` (`rating-central export_docs`);",
           "a test checks it is current. Each profile is pulled as `GET /exports/<profile>.json` or `.csv`",
           "with `?from=YYYY-MM-DD&to=YYYY-MM-DD` (login as hall administrator or auditor; a department",
           "manager gets their department only), and pushed to each platform configured with it",
           "(Integrators, \"Reporting upward\").", ""]
    for profile in shipped().values():
        out += profile.markdown()
    return "\n".join(out)
