"""Early warning (预警): rules checked on a timer; an alert is raised once while its condition holds
and cleared when it stops, and each change can be POSTed to a webhook.

``check()`` computes, for every enabled rule, the subjects (a window, a terminal, or the whole
hall) whose condition holds now, with a line saying why. An open alert for a subject that no
longer qualifies is cleared; a subject that qualifies and has no open alert gets one. A database
constraint allows one open alert per rule and subject, so two timers running at once cannot raise
the same alert twice. Webhook deliveries that fail are retried on the next check.
"""

from __future__ import annotations

import datetime
import hashlib
import hmac
import json
import logging
import time

from django.conf import settings
from django.db import IntegrityError, transaction
from django.db.models import Count, F, Min
from django.utils import timezone

from terminal.core.checks import kept_json

from . import chains, outbound, workorders
from .models import Alert, AlertRule, Chain, Rating, Terminal, TerminalEvent, UpwardDay, UpwardItem

log = logging.getLogger(__name__)
HALL = "全大厅"


MAX_FLOOD = 1_000_000  # presses one flood event may stand for: more than ten minutes of any box


def flood_presses(payload) -> int:
    """The presses a terminal counted into one ``flood`` misuse event (its ``detail``, JSON text:
    ``{"suppressed": n, ...}``) beyond the event itself: a box flooding presses keeps one event
    per press only up to a burst, and the alert must still see the flood. Whatever else it says
    counts as none."""
    try:
        suppressed = kept_json(payload.get("detail") or "{}").get("suppressed")
    except (ValueError, AttributeError, TypeError):
        return 0
    return min(suppressed, MAX_FLOOD) if type(suppressed) is int and suppressed > 0 else 0


def conditions(rule: AlertRule, now: datetime.datetime) -> dict[str, str]:
    """Subject -> why, for every subject whose condition holds now."""
    since = now - datetime.timedelta(hours=rule.hours)
    stale = now - datetime.timedelta(minutes=rule.minutes)
    live = Terminal.objects.filter(revoked_at__isnull=True)
    if rule.kind == "bad_burst":
        found = (Rating.objects.filter(rated_at__gte=since, excluded=False, level__in=workorders.BAD_LEVELS)
                 .values("window_code").annotate(n=Count("id")).filter(n__gte=rule.threshold))
        return {r["window_code"]: f"{rule.hours} 小时内差评 {r['n']} 条" for r in found}
    if rule.kind == "misuse_burst":
        misuse = TerminalEvent.objects.filter(kind="misuse", at__gte=since)
        presses = dict(misuse.values_list("window_code").annotate(n=Count("id")))
        for window, payload in misuse.filter(why="flood").values_list("window_code", "payload"):
            presses[window] += flood_presses(payload)
        return {window: f"{rule.hours} 小时内疑似误按/刷评 {n} 次" for window, n in presses.items() if n >= rule.threshold}
    if rule.kind == "offline":
        found = live.filter(last_seen__lt=stale) | live.filter(last_seen__isnull=True, enrolled_at__lt=stale)
        return {t.terminal_id: (f"最近联络 {timezone.localtime(t.last_seen):%m-%d %H:%M}" if t.last_seen
                                else "登记后从未联络") + f"，超过 {rule.minutes} 分钟" for t in found}
    if rule.kind == "box_disconnected":
        found = live.filter(device_down_since__lt=stale, last_seen__gte=stale)
        return {t.terminal_id: f"按键盒自 {timezone.localtime(t.device_down_since):%m-%d %H:%M} 断开"
                for t in found}
    if rule.kind == "backlog":
        found = live.filter(queue_depth__gte=rule.threshold)
        return {t.terminal_id: f"待上传 {t.queue_depth} 条" for t in found}
    if rule.kind in ("chain_gap", "chain_fork", "chain_restart"):
        return _chain_conditions(rule.kind, stale)
    if rule.kind == "upward_mismatch":
        days = UpwardDay.objects.filter(mismatched=True, platform__enabled=True).select_related("platform").order_by("day")
        found: dict[str, list[str]] = {}
        for d in days:
            found.setdefault(d.platform.code, []).append(f"{d.day:%m-%d} {d.detail}")
        return {code: "对账不符：" + "；".join(lines[-3:]) for code, lines in found.items()}
    if rule.kind == "upward_backlog":
        oldest = (UpwardItem.objects.filter(state="pending", platform__enabled=True).values("platform__code")
                  .annotate(first=Min("created_at"), n=Count("id")).filter(first__lt=stale))
        return {r["platform__code"]: f"待推送 {r['n']} 条，最早 {timezone.localtime(r['first']):%m-%d %H:%M} 排队，"
                                     f"超过 {rule.minutes} 分钟" for r in oldest}
    if rule.kind == "overdue":
        n = workorders.WorkOrder.objects.filter(workorders.overdue_q(timezone.localdate(now))).count()
        return {HALL: f"逾期工单 {n} 件"} if n >= rule.threshold else {}
    raise ValueError(f"unknown rule kind {rule.kind!r}")


def _chain_conditions(kind: str, stale: datetime.datetime) -> dict[str, str]:
    """Per terminal: records made and not arrived for X minutes, two records in one place, or a
    chain that began again unexplained (or explained as a lost database). A hall administrator
    who has looked into a chain marks it reviewed in the admin; only a newer problem raises again."""
    found: dict[str, list[str]] = {}
    unreviewed = Chain.objects.filter(reviewed_at__isnull=True) | Chain.objects.filter(problem_at__gt=F("reviewed_at"))
    if kind == "chain_gap":
        for c in Chain.objects.filter(gap_since__lt=stale):
            queued = Terminal.objects.filter(terminal_id=c.terminal_id).values_list("queue_depth", flat=True).first()
            found.setdefault(c.terminal_id, []).append(
                f"链 {c.epoch[:8]} 缺少第 {c.missing} 号记录（已产生、未送达）" + (f"，终端尚有 {queued} 条待上传" if queued else ""))
    elif kind == "chain_fork":
        for c in unreviewed.exclude(forks=[], breaks=[]):
            found.setdefault(c.terminal_id, []).append(f"链 {c.epoch[:8]}：{chains.state(c)[1]}")
    else:
        restarted = unreviewed.filter(first_of_terminal=False)
        for c in restarted.filter(restart_why="", first_seen__lt=stale) | restarted.filter(restart_why="database_missing"):
            found.setdefault(c.terminal_id, []).append(f"链 {c.epoch[:8]} 重新开始：{chains.restart_label(c)}")
    return {t: "；".join(lines) for t, lines in found.items()}


def check(now: datetime.datetime | None = None) -> tuple[int, int]:
    """Raise and clear alerts; returns (raised, cleared). Then deliver pending webhooks."""
    now = now or timezone.now()
    raised = cleared = 0
    for rule in AlertRule.objects.filter(enabled=True):
        holding = conditions(rule, now)
        for alert in Alert.objects.filter(rule=rule, cleared_at__isnull=True):
            if alert.subject not in holding:
                alert.cleared_at = now
                alert.save(update_fields=["cleared_at"])
                cleared += 1
            else:
                why = holding.pop(alert.subject)[:300]  # still holding: already raised, once
                if why != alert.detail:  # but say what holds now (more missing records, say)
                    alert.detail = why
                    alert.save(update_fields=["detail"])
        for subject, why in holding.items():
            try:
                with transaction.atomic():
                    Alert.objects.create(rule=rule, subject=subject[:100], detail=why[:300])
                raised += 1
            except IntegrityError:
                pass  # another checker raised it a moment ago
    # A disabled rule's open alerts end too: nobody watches them any more.
    cleared += Alert.objects.filter(rule__enabled=False, cleared_at__isnull=True).update(cleared_at=now)
    deliver_webhooks()
    return raised, cleared


def payload(alert: Alert, event: str) -> dict:
    """What the webhook gets; ``id`` is the same on every delivery of one change (a tick killed after
    the webhook took it and before we noted it sends it again), so the receiver keeps each once."""
    return {"id": f"alert-{alert.pk}-{event}", "event": event, "rule": alert.rule.name, "kind": alert.rule.kind, "subject": alert.subject,
            "detail": alert.detail, "raised_at": timezone.localtime(alert.raised_at).isoformat(),
            "cleared_at": timezone.localtime(alert.cleared_at).isoformat() if alert.cleared_at else None}


def sign(body: bytes, secret: str) -> str:
    return "sha256=" + hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def deliver_webhooks(url: str | None = None, secret: str | None = None, timeout: float = 5) -> int:
    """POST each change not yet delivered (``outbound.post``: https:// or loopback, no secret in
    the address, the whole call within its deadline); a failure is logged and retried next time.
    No delivery starts once one call's deadline has passed since the first: a storm of alerts to a
    slow webhook holds ``tick`` for two deadlines at most, and the rest go next time."""
    url = settings.ALERT_WEBHOOK if url is None else url
    secret = settings.ALERT_WEBHOOK_SECRET if secret is None else secret
    if not url:
        return 0
    sent, stop = 0, time.monotonic() + timeout * outbound.DEADLINE_TIMEOUTS
    pending = (Alert.objects.exclude(webhook_sent="cleared").exclude(webhook_sent="raised", cleared_at__isnull=True)
               .select_related("rule").order_by("raised_at"))
    for alert in pending:
        events = ["cleared"] if alert.webhook_sent == "raised" else ["raised"] + (["cleared"] if alert.cleared_at else [])
        for event in events:
            if time.monotonic() >= stop:
                return sent
            body = json.dumps(payload(alert, event), ensure_ascii=False).encode()
            headers = {"Content-Type": "application/json; charset=utf-8"}
            if secret:
                headers["X-Signature"] = sign(body, secret)
            try:
                answer = outbound.post(url, body, headers, timeout, "RATING_CENTRAL_ALERT_WEBHOOK", max_bytes=0)
                if not 200 <= answer.status < 300:
                    raise outbound.OutboundError(f"HTTP {answer.status}")
            except outbound.OutboundError as exc:
                log.warning("alert webhook: %s for alert %s not delivered (%s); will retry", event, alert.pk, exc)
                return sent
            alert.webhook_sent = event
            alert.save(update_fields=["webhook_sent"])
            sent += 1
    return sent
