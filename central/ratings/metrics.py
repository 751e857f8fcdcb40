"""Prometheus metrics at ``/metrics``, for the monitoring a hall's operator already runs.

Every figure is read from the database when scraped (a collector, not counters kept in a worker):
any node answers the same, however many gunicorn workers and nodes there are. Only addresses in
``RATING_CENTRAL_METRICS_FROM`` (default: this machine) may read it; the rest get 403.

A Grafana dashboard over these is in ``central/deploy/grafana-dashboard.json``.
"""

from __future__ import annotations

import ipaddress
from datetime import timedelta

from django.conf import settings
from django.db.models import Count, Max, Min, Sum
from django.http import HttpResponse, HttpResponseForbidden
from django.utils import timezone
from django.utils.module_loading import import_string
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily

from . import workorders
from .models import Alert, AlertRule, Rating, RejectedItem, Terminal, UpwardItem, WorkOrder

OFFLINE_AFTER = timedelta(minutes=10)  # when no offline rule says otherwise


class HallCollector:
    """What a hall's operator watches: terminals, their queues, what arrives, what is refused, the
    work orders, the alerts and what waits to go upward."""

    def collect(self):
        now = timezone.now()
        rule = AlertRule.objects.filter(kind="offline", enabled=True).values_list("minutes", flat=True).first()
        stale = now - (timedelta(minutes=rule) if rule else OFFLINE_AFTER)
        live = Terminal.objects.filter(revoked_at__isnull=True)
        online = live.filter(last_seen__gte=stale).count()
        terminals = GaugeMetricFamily("rating_terminals", "Enrolled terminals by state (offline: no heartbeat "
                                      "within the offline rule's minutes)", labels=["state"])
        terminals.add_metric(["online"], online)
        terminals.add_metric(["offline"], live.count() - online)
        terminals.add_metric(["revoked"], Terminal.objects.filter(revoked_at__isnull=False).count())
        yield terminals

        oldest = GaugeMetricFamily("rating_oldest_unsent_seconds", "Age of the oldest rating a terminal of the "
                                   "hall has not delivered yet, as its last heartbeat said", labels=["hall"])
        queued = GaugeMetricFamily("rating_terminal_queue", "Ratings waiting on the hall's terminals, as their "
                                   "last heartbeats said", labels=["hall"])
        per_hall = (live.order_by().values_list("window__hall__code")
                    .annotate(age=Max("oldest_pending_s"), depth=Sum("queue_depth")))
        for hall, age, depth in per_hall:
            oldest.add_metric([hall or ""], age or 0)
            queued.add_metric([hall or ""], depth or 0)
        yield oldest
        yield queued

        received = CounterMetricFamily("rating_ratings_stored", "Ratings stored, every channel (rate() of it is "
                                       "the ingest rate)", labels=["channel"])
        for channel, n in Rating.objects.order_by().values_list("channel").annotate(n=Count("pk")):
            received.add_metric([str(channel)], n)
        yield received
        rejected = CounterMetricFamily("rating_rejected_items", "Items refused at ingest, kept for inspection",
                                       labels=["code"])
        for code, n in RejectedItem.objects.order_by().values_list("code").annotate(n=Count("pk")):
            rejected.add_metric([code or "other"], n)
        yield rejected

        orders = GaugeMetricFamily("rating_work_orders", "Work orders by state", labels=["state"])
        for state, n in WorkOrder.objects.order_by().values_list("state").annotate(n=Count("pk")):
            orders.add_metric([state], n)
        yield orders
        yield GaugeMetricFamily("rating_work_orders_overdue", "Work orders past the deadline of their step",
                                value=WorkOrder.objects.filter(workorders.overdue_q(timezone.localdate(now))).count())

        alerts = GaugeMetricFamily("rating_alerts_open", "Early-warning alerts raised and not cleared", labels=["kind"])
        for kind, n in (Alert.objects.filter(cleared_at__isnull=True).order_by().values_list("rule__kind")
                        .annotate(n=Count("pk"))):
            alerts.add_metric([kind], n)
        yield alerts

        upward = GaugeMetricFamily("rating_upward_items", "Items in each platform's upward outbox, by state",
                                   labels=["platform", "state"])
        for code, state, n in (UpwardItem.objects.order_by().values_list("platform__code", "state")
                               .annotate(n=Count("pk"))):
            upward.add_metric([code, state], n)
        yield upward
        backlog = GaugeMetricFamily("rating_upward_oldest_pending_seconds", "Age of each platform's oldest item "
                                    "waiting to be acknowledged", labels=["platform"])
        for code, first in (UpwardItem.objects.filter(state="pending").order_by().values_list("platform__code")
                            .annotate(first=Min("created_at"))):
            backlog.add_metric([code], max(0.0, (now - first).total_seconds()))
        yield backlog


def allowed(address: str) -> bool:
    try:
        ip = ipaddress.ip_address(address)
    except ValueError:
        return False
    return any(ip in network for network in settings.METRICS_FROM)


def view(request):
    """``GET /metrics``: the text exposition format, to the configured addresses only."""
    address = import_string(settings.AXES_CLIENT_IP_CALLABLE)(request)
    if not allowed(address):
        return HttpResponseForbidden("metrics are readable from the addresses in RATING_CENTRAL_METRICS_FROM only\n",
                                     content_type="text/plain; charset=utf-8")
    registry = CollectorRegistry(auto_describe=False)
    registry.register(HallCollector())
    return HttpResponse(generate_latest(registry), content_type=CONTENT_TYPE_LATEST)
