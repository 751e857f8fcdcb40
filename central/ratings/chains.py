"""Checking each terminal's hash chain (``terminal/core/chain.py``): what was made and never arrived,
two records in one place, and a chain that began again.

``note`` runs inside ingest's transaction: one UPDATE per batch (per chain) moves the chain's
known head and marks where the check must look again. ``check`` (run by ``tick``) reads the places
back from ratings, events and refused items, and keeps per chain: ``contiguous`` (every place up
to it arrived), the missing runs up to the head (the heartbeat's head counts too: a record deleted
from the end of a terminal's queue is missed as well), forks, breaks, and the ``chain_restart``
event that explains a chain that is not the terminal's first. ``alerts`` raises on what it finds.
"""

from __future__ import annotations

import datetime

from django.db import IntegrityError, transaction
from django.db.models import F
from django.db.models.functions import Coalesce, Greatest, Least
from django.utils import timezone

from terminal.core import chain as chain_format
from terminal.core.checks import kept_json

from .models import Chain, Rating, RejectedItem, Terminal, TerminalEvent

SCAN_LIMIT = 200_000  # places read per chain per check; a longer backlog is read on the next
MAX_LISTED = 200  # forks and breaks remembered per chain


def note(terminal_id: str, rows: list[dict]) -> None:
    """Note the places of records just stored or refused (``chain_epoch``, ``chain_seq`` in each row)."""
    spans: dict[str, list[int]] = {}
    for row in rows:
        epoch, seq = row.get("chain_epoch"), row.get("chain_seq")
        if epoch and seq:
            span = spans.setdefault(epoch, [seq, seq])
            span[0], span[1] = min(span[0], seq), max(span[1], seq)
    for epoch, (low, high) in spans.items():
        _move(terminal_id, epoch, low, high)


def _move(terminal_id: str, epoch: str, low: int | None, high: int) -> None:
    """Raise a chain's head to ``high`` and its recheck point down to ``low`` (None: only the head)."""
    changes = {"head_seq": Greatest(F("head_seq"), high), "version": F("version") + 1}
    if low is not None:
        changes["recheck_from"] = Coalesce(Least(F("recheck_from"), low), low)
    if Chain.objects.filter(terminal_id=terminal_id, epoch=epoch).update(**changes):
        return
    try:
        with transaction.atomic():
            first = not Chain.objects.filter(terminal_id=terminal_id).exists()
            Chain.objects.create(terminal_id=terminal_id, epoch=epoch, head_seq=high, recheck_from=low,
                                 version=1, first_of_terminal=first)
    except IntegrityError:  # another request made it a moment ago
        Chain.objects.filter(terminal_id=terminal_id, epoch=epoch).update(**changes)


def note_heads(since: datetime.datetime) -> int:
    """Take the chain heads that terminals seen since ``since`` reported in their heartbeats."""
    moved = 0
    heads = {}
    for terminal_id, beat in Terminal.objects.filter(last_seen__gte=since).values_list("terminal_id", "heartbeat"):
        head = chain_format.reported_head(beat.get("chain") if isinstance(beat, dict) else None)
        if head is not None:
            heads[(terminal_id, head[0])] = head[1]
    known = {(t, e): h for t, e, h in Chain.objects.filter(terminal_id__in={t for t, _ in heads})
             .values_list("terminal_id", "epoch", "head_seq")}
    for (terminal_id, epoch), seq in heads.items():
        if seq > known.get((terminal_id, epoch), 0):
            _move(terminal_id, epoch, None, seq)
            moved += 1
    return moved


def places(chain: Chain, start: int, limit: int = SCAN_LIMIT) -> list[tuple[int, str, str]]:
    """(seq, digest, prev) of every record of the chain from ``start`` on: stored or refused."""
    found = []
    for model in (Rating, TerminalEvent, RejectedItem):
        found += model.objects.filter(terminal_id=chain.terminal_id, chain_epoch=chain.epoch,
                                      chain_seq__gte=start).order_by("chain_seq").values_list(
            "chain_seq", "digest", "chain_prev")[:limit]
    found.sort()
    return found[:limit]


def check(now: datetime.datetime | None = None, since: datetime.datetime | None = None) -> int:
    """Bring every chain that changed up to date; return how many were checked."""
    now = now or timezone.now()
    note_heads(since or now - datetime.timedelta(minutes=10))
    checked = 0
    for chain in Chain.objects.exclude(version=F("checked_version")):
        _check_one(chain, now)
        checked += 1
    return checked


def _check_one(chain: Chain, now: datetime.datetime) -> None:
    version = chain.version
    start = max(1, min(chain.recheck_from or chain.contiguous + 1, chain.contiguous + 1) - 1)
    found = places(chain, start)
    digests: dict[int, set[str]] = {}
    prevs: dict[int, set[str]] = {}
    for seq, digest, prev in found:
        digests.setdefault(seq, set()).add(digest)
        prevs.setdefault(seq, set()).add(prev)
    forks = set(chain.forks) | {s for s, d in digests.items() if len(d) > 1}
    breaks = set(chain.breaks) | {s for s in prevs if s - 1 in digests and not prevs[s] <= digests[s - 1]}
    contiguous = chain.contiguous
    while contiguous + 1 in digests:
        contiguous += 1
    head = max([chain.head_seq, contiguous, *digests])
    runs = chain_format.missing(digests, contiguous, head)
    changes = dict(contiguous=contiguous, head_seq=head, missing=chain_format.describe(runs),
                   gap_since=(chain.gap_since or now) if runs else None,
                   forks=sorted(forks)[:MAX_LISTED], breaks=sorted(breaks)[:MAX_LISTED],
                   recheck_from=None, checked_version=version)
    if len(forks) > len(chain.forks) or len(breaks) > len(chain.breaks):
        changes["problem_at"] = now
    if not chain.first_of_terminal and not chain.restart_why:
        restart = (TerminalEvent.objects.filter(terminal_id=chain.terminal_id, chain_epoch=chain.epoch,
                                                kind="chain_restart").order_by("chain_seq").first())
        if restart is not None:
            changes["restart_why"] = restart.why
            changes["restart_detail"] = str((restart.payload or {}).get("detail") or "")[:2000]
    # saved only if no batch moved the chain meanwhile; else the next check reads it again
    Chain.objects.filter(pk=chain.pk, version=version).update(**changes)


def state(chain: Chain | None) -> tuple[str, str]:
    """(word, detail) for the terminals page: 未链 / 完整 / 缺号 / 分叉 / 重新开始."""
    if chain is None:
        return "未链", "旧版终端：记录不带序号链"
    problems = []
    if chain.forks:
        problems.append(f"第 {chain_format.describe(_runs(chain.forks))} 号有两份不同内容")
    if chain.breaks:
        problems.append(f"第 {chain_format.describe(_runs(chain.breaks))} 号与前一条对不上")
    if chain.missing:
        problems.append(f"缺少第 {chain.missing} 号")
    if not chain.first_of_terminal:
        problems.append(f"链重新开始：{restart_label(chain)}")
    word = ("分叉" if chain.forks or chain.breaks else "缺号" if chain.missing
            else "重新开始" if not chain.first_of_terminal else "完整")
    return word, "；".join(problems) or f"第 1–{chain.contiguous} 号齐全"


RESTART_LABELS = {"database_corrupt": "数据库损坏后重建（已抢救可读记录）",
                  "database_missing": "数据库丢失后重建"}


def restart_label(chain: Chain) -> str:
    if not chain.restart_why:
        return "终端未说明原因"
    label = RESTART_LABELS.get(chain.restart_why, chain.restart_why)
    try:
        detail = kept_json(chain.restart_detail or "{}")
        salvaged = detail.get("salvaged") or {}
        if salvaged:
            label += f"，抢救评价 {salvaged.get('ratings', 0)} 条、事件 {salvaged.get('events', 0)} 条"
    except (ValueError, AttributeError):
        pass
    return label


def _runs(seqs: list[int]) -> list[tuple[int, int]]:
    runs: list[tuple[int, int]] = []
    for s in sorted(seqs):
        if runs and s == runs[-1][1] + 1:
            runs[-1] = (runs[-1][0], s)
        else:
            runs.append((s, s))
    return runs
