"""Ratings made at the server itself, not by a terminal: a phone through a window plaque or an SMS
link, an SMS reply. One row builder, then the same rules as a terminal's ratings: 一事一评 across
channels (``ingest.settle_cases``), the same fast insert, a work order for a bad one.

Such a rating has no terminal and no hash chain; its time is the server's (``server_received``);
its payload is the record as the server took it (who rated is kept only as keyed hashes).
"""

from __future__ import annotations

import hashlib
import json
import uuid
from datetime import datetime

from django.db import IntegrityError, transaction
from django.utils import timezone

from terminal.core.channels import Channel
from terminal.core.levels import Level

from . import upward, workorders
from .models import Rating, Window


def rate(*, window_code: str, level: Level, channel: Channel, device: str, at: datetime | None = None,
         case_no: str = "", staff_no: str = "", item_code: str = "", reasons: list[str] | None = None,
         text: str = "", facts: dict | None = None, flag: tuple[str, str] | None = None) -> Rating:
    """Store one rating; ``flag`` = (flag, why) keeps it excluded from every score from the start."""
    from .ingest import insert_rows, settle_cases
    at = at or timezone.now()
    payload = {"id": uuid.uuid4().hex, "kind": device, "window": window_code, "level": int(level),
               "channel": int(channel), "case_no": case_no, "reasons": reasons or [], "text": text,
               "at": at.isoformat(), **(facts or {})}
    digest = hashlib.sha256(json.dumps(payload, sort_keys=True, ensure_ascii=False).encode()).hexdigest()
    department = Window.objects.filter(code=window_code).values_list("department_id", flat=True).first()
    row = dict(rating_id=payload["id"], terminal_id="", window_code=window_code, department_id=department,
               staff_no=staff_no, level=int(level),
               channel=int(channel), device=device, case_no=case_no, item_code=item_code, session_id="",
               reasons=reasons or [], text=text, excluded=False, excluded_why="", rated_at=at,
               rated_on=timezone.localdate(at), rated_at_terminal=at, time_source="server_received", digest=digest,
               payload=payload, rating_no=1, ticket_no="", case_counted=None, flags=[], comment_state="", comment_public="",
               comment_reviewed_at=None, chain_epoch="", chain_seq=None, chain_prev="")
    if flag:
        row.update(flags=[flag[0]], excluded=True, excluded_why=flag[1][:200])
    for attempt in (1, 2):
        try:
            with transaction.atomic():
                if not flag:
                    settle_cases([row])
                insert_rows(Rating, [row])
                workorders.open_for([row["rating_id"]])
                upward.queue([(row["rating_id"], device)])
            break
        except IntegrityError:  # the case's place, taken by another request just now: settle again
            row.update(case_counted=None, flags=row["flags"][:1] if flag else [], excluded=bool(flag),
                       excluded_why=row["excluded_why"] if flag else "")
            if attempt == 2:
                raise
    return Rating.objects.get(rating_id=row["rating_id"])
