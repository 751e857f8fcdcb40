"""The content a terminal pulls: its window's roster, notices, guides, reason tags and settings.

The manifest has the same format as a terminal's ``content.json`` (see ``terminal/content.py``)
plus a ``files`` list (path, sha256, size) that the terminal fetches from ``/api/v1/files/<sha256>``.
Its ETag is the SHA-256 of its canonical JSON, so an unchanged roster downloads nothing.

Every heartbeat is answered with the ETag, so it must cost next to nothing: ``etag_for`` keeps each
window's ETag on the window's row with the generations it was made for — ``Hall.content_generation``
and ``ContentGeneration`` (the province's), numbers that every save or delete of content moves
through signals, for its hall or, when what changed is shared by all halls, for the province
(``changed()`` by hand after a bulk update, which sends no signal). Every server process and node
reads the same row: a manifest is built once per change and window.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import PurePosixPath

from django.db import models

from .models import (ContentGeneration, Department, Hall, Notice, ReasonTag, ServedStaff, ServiceGuide, Staff,
                     Terminal, TerminalSettings, Window)

FORMAT = 1
CONTENT_MODELS = (Hall, Department, Window, Staff, Notice, ServiceGuide, ReasonTag, TerminalSettings)


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


def generation() -> int:
    """The province-wide part of the key: departments, guides and reason tags are shared by halls."""
    return ContentGeneration.objects.filter(pk=1).values_list("number", flat=True).first() or 0


def changed(sender=None, instance=None, **_) -> None:
    """Something a terminal pulls changed (a signal receiver, or called by bulk loads): move the
    number of the hall it belongs to, or the province-wide one for what all halls share."""
    hall_id = _hall_of(instance)
    if hall_id is not None:
        halls = {hall_id, getattr(instance, "_hall_before", None)} - {None}  # a member moved: both halls
        Hall.objects.filter(pk__in=halls).update(content_generation=models.F("content_generation") + 1)
    elif not ContentGeneration.objects.filter(pk=1).update(number=models.F("number") + 1):
        ContentGeneration.objects.get_or_create(pk=1)


def remember_hall(sender=None, instance=None, **_) -> None:
    """Before a staff member is saved: the hall they were at (a pre_save receiver)."""
    if instance.pk:
        instance._hall_before = (Staff.objects.filter(pk=instance.pk).values_list("window__hall_id", flat=True)
                                 .first())


def _hall_of(instance) -> int | None:
    if isinstance(instance, Hall):
        return None  # its name is in every manifest of its own: province-wide is simplest and rare
    if isinstance(instance, (Notice, Window)):
        return instance.hall_id
    if isinstance(instance, Staff):
        return Window.objects.filter(pk=instance.window_id).values_list("hall_id", flat=True).first() \
            or getattr(instance, "_hall_before", None)
    if isinstance(instance, TerminalSettings):
        return instance.hall_id or Window.objects.filter(pk=instance.window_id).values_list("hall_id", flat=True).first()
    return None


def etag_for(terminal: Terminal) -> str:
    """The terminal's current content ETag, without building its manifest while nothing changed: the
    window keeps the ETag it last had and the generations it was made for (its hall's and the
    province's), and the terminal's row comes with its window and hall, so a heartbeat reads one
    number more. After a change, the first request of the window builds the manifest once for all."""
    window = terminal.window
    province = getattr(terminal, "province_generation", None)  # auth reads it with the terminal
    key = f"{window.hall.content_generation}:{generation() if province is None else province or 0}"
    if window.content_etag and window.content_etag_for == key:
        return window.content_etag
    etag = manifest(terminal)[1]
    Window.objects.filter(pk=window.pk).update(content_etag=etag, content_etag_for=key)
    window.content_etag, window.content_etag_for = etag, key
    return etag


def note_served(terminal: Terminal, body: dict) -> None:
    """Remember who was on the roster served to this terminal's window: its records may name them."""
    window = terminal.window.code
    ServedStaff.objects.bulk_create([ServedStaff(window_code=window, staff_no=s["staff_no"]) for s in body["staff"]],
                                    ignore_conflicts=True)


def file_for(terminal: Terminal, sha256: str):
    """The stored file with this hash, if it belongs to the terminal's content; else None."""
    member = Staff.objects.filter(window=terminal.window, photo_sha256=sha256).first()
    return member.photo if member and member.photo else None
