"""The content a terminal pulls: its window's roster, notices, guides, reason tags and settings.

The manifest has the same format as a terminal's ``content.json`` (see ``terminal/content.py``)
plus a ``files`` list (path, sha256, size) that the terminal fetches from ``/api/v1/files/<sha256>``.
Its ETag is the SHA-256 of its canonical JSON, so an unchanged roster downloads nothing.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePosixPath

from .models import Notice, ReasonTag, ServedStaff, ServiceGuide, Staff, Terminal, TerminalSettings

FORMAT = 1


def settings_for(window) -> dict:
    found = (TerminalSettings.objects.filter(window=window).first()
             or TerminalSettings.objects.filter(hall=window.hall).first()
             or TerminalSettings())
    return found.as_dict()


def manifest(terminal: Terminal) -> tuple[dict, str]:
    """The terminal's content and its ETag."""
    window = terminal.window
    hall = window.hall
    staff, files = [], {}
    for member in Staff.objects.filter(window=window).order_by("staff_no"):
        entry = {"staff_no": member.staff_no, "name": member.name, "window": window.code,
                 "unit": member.unit, "title": member.title, "badge_id": member.badge_id, "photo": ""}
        if member.photo and member.photo_sha256:
            suffix = PurePosixPath(member.photo.name).suffix.lower() or ".bin"
            entry["photo"] = f"files/{member.photo_sha256}{suffix}"
            files[member.photo_sha256] = {"path": entry["photo"], "sha256": member.photo_sha256,
                                          "size": member.photo.size}
        staff.append(entry)
    department = window.department
    guides = ServiceGuide.objects.filter(active=True).filter(
        department__isnull=True) | ServiceGuide.objects.filter(active=True, department=department)
    body = {
        "format": FORMAT,
        "hall": {"code": hall.code, "name": hall.name},
        "departments": [{"code": department.code, "name": department.name}] if department else [],
        "windows": [{"code": window.code, "name": window.name,
                     "department": department.code if department else None, "stars": 0}],
        "staff": staff,
        "notices": [{"title": n.title, "body": n.body} for n in Notice.objects.filter(hall=hall, active=True)],
        "guides": [{"item_code": g.item_code, "title": g.title, "body": g.body} for g in guides.order_by("item_code")],
        "reason_tags": [{"code": t.code, "label": t.label, "label_en": t.label_en}
                        for t in ReasonTag.objects.filter(active=True)],
        "settings": settings_for(window),
        "files": sorted(files.values(), key=lambda f: f["path"]),
    }
    etag = hashlib.sha256(json.dumps(body, ensure_ascii=False, sort_keys=True).encode()).hexdigest()
    body["version"] = etag[:16]
    return body, etag


def note_served(terminal: Terminal, body: dict) -> None:
    """Remember who was on the roster served to this terminal's window: its records may name them."""
    window = terminal.window.code
    ServedStaff.objects.bulk_create([ServedStaff(window_code=window, staff_no=s["staff_no"]) for s in body["staff"]],
                                    ignore_conflicts=True)


def file_for(terminal: Terminal, sha256: str):
    """The stored file with this hash, if it belongs to the terminal's content; else None."""
    member = Staff.objects.filter(window=terminal.window, photo_sha256=sha256).first()
    return member.photo if member and member.photo else None
