"""Prometheus metrics at /metrics: what the hall holds, read back through prometheus-client's own
parser; readable only from the configured addresses; the shipped Grafana dashboard asks only for
metrics the endpoint gives."""

import json
import re
from datetime import timedelta

import pytest
from django.utils import timezone
from prometheus_client.parser import text_string_to_metric_families

from central.ratings import exports, upward
from central.ratings.models import Alert, AlertRule, RejectedItem, Terminal, UpwardPlatform, WorkOrder
from terminal.core.levels import Level

from conftest import ROOT, ingest_ratings, make_rating

pytestmark = [pytest.mark.central, pytest.mark.django_db]


def scrape(client, address="127.0.0.1") -> dict:
    reply = client.get("/metrics", REMOTE_ADDR=address)
    assert reply.status_code == 200 and reply["Content-Type"].startswith("text/plain")
    samples = {}
    for family in text_string_to_metric_families(reply.content.decode()):
        for sample in family.samples:
            samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def test_metrics_say_what_the_hall_holds(hall, client):
    UpwardPlatform.objects.create(code="PROV", name="省平台", profile=exports.shipped_text("provincial"))
    ratings = [make_rating(Level.SATISFIED, terminal_id=hall.terminal_id) for _ in range(4)]
    ratings.append(make_rating(Level.VERY_DISSATISFIED, terminal_id=hall.terminal_id, reasons=("slow",)))
    assert ingest_ratings(hall, *ratings) == ["accepted"] * 5
    forged = make_rating(Level.SATISFIED, terminal_id="T-SOMEONE-ELSE")
    assert ingest_ratings(hall, forged) == ["rejected"]
    Terminal.objects.filter(pk=hall.pk).update(last_seen=timezone.now(), queue_depth=7, oldest_pending_s=90)
    Terminal.objects.create(terminal_id="T-GONE", window=hall.window, secret="x",
                            last_seen=timezone.now() - timedelta(hours=3))
    WorkOrder.objects.update(contact_due=timezone.localdate() - timedelta(days=2))  # overdue
    Alert.objects.create(rule=AlertRule.objects.get(kind="offline"), subject="T-GONE", detail="离线")
    UpwardItem = upward.UpwardItem
    UpwardItem.objects.filter(rating_id=ratings[0].id).update(created_at=timezone.now() - timedelta(minutes=30))

    got = scrape(client)
    assert got[("rating_terminals", (("state", "online"),))] == 1
    assert got[("rating_terminals", (("state", "offline"),))] == 1
    hall_code = hall.window.hall.code
    assert got[("rating_terminal_queue", (("hall", hall_code),))] == 7
    assert got[("rating_oldest_unsent_seconds", (("hall", hall_code),))] == 90
    assert got[("rating_ratings_stored_total", (("channel", "4"),))] == 5
    assert got[("rating_rejected_items_total", (("code", "terminal_mismatch"),))] == RejectedItem.objects.count() == 1
    assert got[("rating_work_orders", (("state", "open"),))] == 1
    assert got[("rating_work_orders_overdue", ())] == 1
    assert got[("rating_alerts_open", (("kind", "offline"),))] == 1
    assert got[("rating_upward_items", (("platform", "PROV"), ("state", "pending")))] == 5
    assert 1790 < got[("rating_upward_oldest_pending_seconds", (("platform", "PROV"),))] < 1900


def test_metrics_are_refused_to_addresses_not_configured(hall, client, settings):
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 403
    import ipaddress
    settings.METRICS_FROM = [ipaddress.ip_network("192.0.2.0/24")]
    assert client.get("/metrics", REMOTE_ADDR="192.0.2.7").status_code == 200
    assert client.get("/metrics", REMOTE_ADDR="127.0.0.1").status_code == 403
    assert client.get("/metrics", REMOTE_ADDR="not-an-address").status_code == 403


def test_the_grafana_dashboard_asks_only_for_metrics_the_endpoint_gives(hall, client):
    UpwardPlatform.objects.create(code="PROV", name="省平台", profile=exports.shipped_text("provincial"))
    ingest_ratings(hall, make_rating(Level.SATISFIED, terminal_id=hall.terminal_id),
                   make_rating(Level.SATISFIED, terminal_id="T-SOMEONE-ELSE"))  # one refused
    text = client.get("/metrics", REMOTE_ADDR="127.0.0.1").content.decode()
    families = list(text_string_to_metric_families(text))
    given = {f.name for f in families} | {f"{f.name}_total" for f in families if f.type == "counter"}
    dashboard = json.loads((ROOT / "central" / "deploy" / "grafana-dashboard.json").read_text(encoding="utf-8"))
    asked = {name for panel in dashboard["panels"] for target in panel["targets"]
             for name in re.findall(r"\brating_[a-z_]+", target["expr"])}
    assert asked and asked <= given, asked - given
