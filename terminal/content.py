"""Reading the content folder that the sync daemon maintains (and that ``assets/demo`` ships).

A content folder holds ``content.json`` and the files it names (staff photos, relative paths).
Format 1::

    {"format": 1, "version": "...",
     "hall": {"code", "name"},
     "departments": [{"code", "name"}],
     "windows": [{"code", "name", "department", "stars"}],
     "staff": [{"staff_no", "name", "window", "unit", "title", "photo", "badge_id"}],
     "notices": [{"title", "body"}],
     "guides": [{"item_code", "title", "body"}],
     "reason_tags": [{"code", "label", "label_en"}],      # label_en optional (English screens)
     "settings": {"rating_mode", "dimensions", "language", "invite_timeout_s",
                  "reasons_timeout_s", "thanks_seconds", "walkup_cooldown_s"},
     "files": [{"path", "sha256", "size"}]}     # what sync fetched; paths are relative

Photos are named by their content hash (``files/<sha256>.png``) when the folder comes from the
central server; the shipped demo uses plain paths.

Reading never trusts the folder: a missing or malformed file raises ContentError (and only
that), and a photo that is missing or outside the folder falls back to the placeholder image.
Fields a newer central server added to an entry are ignored. Sync swaps in no version this
reader refuses (``sync.content``).
"""

from __future__ import annotations

import dataclasses
import functools
import json
import logging
from dataclasses import dataclass
from pathlib import Path

from terminal import images
from terminal.config import ASSETS
from terminal.core.checks import text
from terminal.core.rating import MAX_CODE

log = logging.getLogger("rating-terminal")
_CODE = text(MAX_CODE)  # a staff number, department or reason tag, as every rating carries it
PLACEHOLDER_PHOTO = ASSETS / "images" / "placeholder.png"
DEMO_CONTENT = ASSETS / "demo"
FORMAT = 1


class ContentError(ValueError):
    pass


@dataclass(frozen=True)
class StaffMember:
    """A person on the hall's roster, as the staff card shows them."""
    staff_no: str
    name: str
    window: str
    unit: str = ""
    title: str = ""
    photo: str = ""
    badge_id: str = ""

    @classmethod
    def from_entry(cls, entry: dict) -> "StaffMember":
        """A roster entry's known fields, as text. Fields this terminal does not know are ignored:
        a newer central server may add some, and an older terminal must still show its roster.
        An entry without a field every member has (staff_no, name, window) is refused."""
        if not isinstance(entry, dict):
            raise ContentError("a staff entry is not an object")
        fields = dataclasses.fields(cls)
        missing = [f.name for f in fields if f.default is dataclasses.MISSING and f.name not in entry]
        if missing:
            raise ContentError(f"a staff entry has no {', '.join(missing)}")
        return cls(**{f.name: str(entry[f.name]) for f in fields if f.name in entry})


@dataclass(frozen=True)
class Content:
    """The hall's content as the central server published it: roster, windows, guides, notices,
    reason tags and the windows' settings."""
    folder: Path
    version: str
    hall: dict
    departments: dict[str, str]  # code -> name
    windows: dict[str, dict]  # code -> window
    staff: dict[str, StaffMember]  # staff_no -> member
    notices: list[dict]
    guides: list[dict]
    reason_tags: list[dict]
    settings: dict

    @classmethod
    def load(cls, folder: str | Path) -> "Content":
        folder = Path(folder)
        path = folder / "content.json"
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise ContentError(f"no content yet: {path} does not exist") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ContentError(f"{path} is unreadable: {exc}") from None
        if not isinstance(raw, dict) or raw.get("format") != FORMAT:
            raise ContentError(f"{path}: expected an object with \"format\": {FORMAT}")
        try:
            staff = {}
            for number, entry in enumerate(raw.get("staff", [])):
                try:
                    member = StaffMember.from_entry(entry)
                except ContentError as exc:
                    raise ContentError(f"{path}: staff.{number}: {exc}") from None
                staff[member.staff_no] = member
            _check_parts(raw)
            return cls(
                folder=folder, version=str(raw.get("version", "")), hall=dict(raw.get("hall", {})),
                departments={d["code"]: d["name"] for d in raw.get("departments", [])},
                windows={w["code"]: dict(w) for w in raw.get("windows", [])},
                staff=staff, notices=list(raw.get("notices", [])), guides=list(raw.get("guides", [])),
                reason_tags=list(raw.get("reason_tags", [])), settings=dict(raw.get("settings", {})),
            )
        except ContentError:
            raise
        except (TypeError, KeyError, AttributeError, ValueError) as exc:
            raise ContentError(f"{path}: malformed entry ({exc!r})") from None

    def staff_of_window(self, window: str) -> list[StaffMember]:
        return [s for s in self.staff.values() if s.window == window]

    def photo_path(self, member: StaffMember | None) -> Path:
        """The member's photo inside the folder, or the placeholder if it is missing, escapes the
        folder or is not an image the admin could have uploaded (``terminal.images``: a bomb never loads)."""
        if member and member.photo:
            candidate = (self.folder / member.photo).resolve()
            if candidate.is_relative_to(self.folder.resolve()) and candidate.is_file():
                stat = candidate.stat()
                why = _image_problem(str(candidate), stat.st_mtime_ns, stat.st_size)
                if why is None:
                    return candidate
                log.error("photo of %s not shown: %s", member.staff_no, why)
        return PLACEHOLDER_PHOTO


def _check_parts(raw: dict) -> None:
    """Refuse here what would go wrong later, where nothing can refuse it: a department, staff
    number or reason tag that no record can hold (each rating made under it failed to be
    recorded while the session said rated), and a part the kiosk draws (the hall's and windows'
    names, stars, notices, guides) of a kind it cannot draw (it stopped the kiosk)."""
    def need(ok: bool, where: str, what: str) -> None:
        if not ok:
            raise ContentError(f"{where} must be {what}")

    def code(value, where: str) -> None:
        try:
            _CODE(value)
        except (TypeError, ValueError) as exc:
            raise ContentError(f"{where} {exc}") from None
    for number, member in enumerate(raw.get("staff", [])):
        code(str(member["staff_no"]), f"staff.{number}.staff_no")
    for number, window in enumerate(raw.get("windows", [])):
        if window.get("department") is not None:
            code(window["department"], f"windows.{number}.department")
        need(isinstance(window.get("name", ""), str), f"windows.{number}.name", "text")
        stars = window.get("stars")
        need(stars is None or type(stars) is int, f"windows.{number}.stars", "a whole number")
    for number, tag in enumerate(raw.get("reason_tags", [])):
        need(isinstance(tag, dict), f"reason_tags.{number}", "an object")
        code(tag.get("code"), f"reason_tags.{number}.code")
    need(isinstance(raw.get("hall", {}).get("name", ""), str), "hall.name", "text")
    for part in ("notices", "guides"):
        need(all(isinstance(item, dict) for item in raw.get(part, [])), part, "a list of objects")


@functools.lru_cache(maxsize=256)
def _image_problem(path: str, mtime_ns: int, size: int) -> str | None:
    """``images.problem``, once per file version: the kiosk asks at every state change."""
    return images.problem(path)


def load_or_none(folder: str | Path) -> Content | None:
    """The content, or None (the reason logged) while there is none yet or it is unreadable:
    a terminal keeps taking ratings without it."""
    try:
        return Content.load(folder)
    except ContentError as exc:
        log.error("%s", exc)
        return None


def content_stamp(folder: str | Path) -> tuple | None:
    """What changes when sync swaps content in: where content.json really is, and its mtime."""
    path = Path(folder) / "content.json"
    try:
        return (str(path.resolve()), path.stat().st_mtime_ns)
    except OSError:
        return None
