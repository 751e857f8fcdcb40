"""A case done at a window invites that window's terminal, through its next heartbeat answer.

When a business system reports a case completed, the window is marked (``Window.invite_waiting``,
read with the terminal on every signed request: a heartbeat asks nothing more when no case waits).
The next heartbeat from that window's terminal is answered with ``"invite": {case_no, item_code,
staff_no, ticket_no}``; the terminal's sync daemon hands it to its own invite API and reports the
outcome in the heartbeat after (``invite_results``). ``invited`` ends it; ``busy`` or ``paused``
(a rating under way, nobody logged in) puts the case back to wait for the next heartbeat; no
outcome at all leaves it offered. A case not invited within ``INVITE_WITHIN`` of its completion is
``missed``: the citizen has left the counter, and the SMS and default ratings take over. The invite
API stays the fast local path for a business system on the hall's LAN.
"""

from __future__ import annotations

from datetime import timedelta

from django.db import transaction
from django.utils import timezone

from .models import Case, Terminal, Window, counted_rating_of

INVITE_WITHIN = timedelta(minutes=10)
OUTCOMES = {"invited", "busy", "paused", "staff_not_here", "invalid", "unavailable"}
MAX_RESULTS = 10


def case_completed(case: Case) -> None:
    """A case reported done just now: let its window's terminal invite the citizen."""
    if case.status != "completed" or case.completed_at is None or case.invite_state:
        return
    if case.completed_at < timezone.now() - INVITE_WITHIN or counted_rating_of(case.case_no).exists():
        return
    Case.objects.filter(pk=case.pk, invite_state="").update(invite_state="waiting")
    Window.objects.filter(pk=case.window_id, invite_waiting=False).update(invite_waiting=True)


def offer_for(terminal: Terminal) -> dict | None:
    """The oldest case waiting at this terminal's window, now offered to it; None when none waits
    (and the window's mark is cleared, so later heartbeats cost nothing)."""
    now = timezone.now()
    window = terminal.window
    with transaction.atomic():
        Case.objects.filter(window_id=window.pk, invite_state__in=("waiting", "offered"),
                            completed_at__lt=now - INVITE_WITHIN).update(invite_state="missed",
                                                                          invite_note="终端未能在办结后 10 分钟内邀评")
        for case in Case.objects.filter(window_id=window.pk, invite_state="waiting").order_by("completed_at")[:20]:
            if counted_rating_of(case.case_no).exists():  # rated on another channel meanwhile
                Case.objects.filter(pk=case.pk).update(invite_state="", invite_note="已有评价，无需邀评")
                continue
            if not Case.objects.filter(pk=case.pk, invite_state="waiting").update(
                    invite_state="offered", invite_note=f"已发给终端 {terminal.terminal_id}"):
                continue  # another node's heartbeat took it
            return {"case_no": case.case_no, "item_code": case.item_code or None, "staff_no": case.staff_no or None,
                    "ticket_no": case.ticket_no or None}
        if not Case.objects.filter(window_id=window.pk, invite_state__in=("waiting", "offered")).exists():
            Window.objects.filter(pk=window.pk).update(invite_waiting=False)
    return None


def note_results(terminal: Terminal, results: object) -> None:
    """What the terminal's invite API said of the cases offered to it (a heartbeat's ``invite_results``)."""
    if not isinstance(results, list):
        return
    for item in results[:MAX_RESULTS]:
        if not (isinstance(item, dict) and isinstance(item.get("case_no"), str)
                and isinstance(item.get("outcome"), str) and item["outcome"] in OUTCOMES):
            continue  # a list or object is no outcome, and is unhashable: ``in OUTCOMES`` would raise
        outcome = item["outcome"]
        found = Case.objects.filter(case_no=item["case_no"][:50], window_id=terminal.window_id, invite_state="offered")
        if outcome == "invited":
            found.update(invite_state="invited", invite_note=f"终端 {terminal.terminal_id} 已邀评")
        elif outcome in ("busy", "paused"):  # ask again on a later heartbeat, while there is time
            found.update(invite_state="waiting", invite_note=f"终端{'忙' if outcome == 'busy' else '暂停服务'}，稍后再邀")
        else:
            found.update(invite_state="missed", invite_note=f"终端拒绝：{outcome}")
