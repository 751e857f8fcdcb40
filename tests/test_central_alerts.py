"""Early warning: each rule raises one alert per subject while its condition holds and clears it
after; changes reach a webhook on loopback, signed, and a failed delivery is retried."""

import datetime
import hashlib
import hmac
import json
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer

import pytest
from django.utils import timezone

from central.ratings import alerts
from central.ratings.models import Alert, AlertRule, Rating, Terminal
from terminal.core.levels import Level

from conftest import ingest_events, ingest_ratings, make_event, make_rating

pytestmark = [pytest.mark.central, pytest.mark.django_db]


def only(kind: str, **numbers) -> AlertRule:
    AlertRule.objects.update(enabled=False)
    return AlertRule.objects.create(name=kind, kind=kind, **numbers)


def open_alerts(rule):
    return list(Alert.objects.filter(rule=rule, cleared_at__isnull=True).values_list("subject", flat=True))


def test_a_new_server_has_starting_rules():
    assert set(AlertRule.objects.values_list("kind", flat=True)) == {
        "bad_burst", "offline", "box_disconnected", "backlog", "misuse_burst", "overdue",
        "chain_gap", "chain_fork", "chain_restart", "upward_mismatch", "upward_backlog"}


def test_bad_ratings_at_one_window_fire_once_and_clear(hall):
    rule = only("bad_burst", threshold=3, hours=2)
    now = timezone.now()
    bad = [make_rating(Level.DISSATISFIED, terminal_id=hall.terminal_id, reasons=("slow",)) for _ in range(3)]
    ingest_ratings(hall, *bad[:2])
    assert alerts.check(now) == (0, 0)
    ingest_ratings(hall, bad[2])
    assert alerts.check(now) == (1, 0) and open_alerts(rule) == ["W01"]
    assert alerts.check(now) == (0, 0)  # still holding: no second alert
    assert "差评 3 条" in Alert.objects.get(rule=rule).detail
    assert alerts.check(now + datetime.timedelta(hours=3)) == (0, 1)  # the window has passed
    assert open_alerts(rule) == [] and Alert.objects.filter(rule=rule).count() == 1


def test_excluded_ratings_do_not_count_towards_a_burst(hall):
    rule = only("bad_burst", threshold=2, hours=2)
    ingest_ratings(hall, *[make_rating(Level.DISSATISFIED, terminal_id=hall.terminal_id, reasons=("x",))
                           for _ in range(2)])
    Rating.objects.filter(level=2).update(excluded=True)
    alerts.check()
    assert open_alerts(rule) == []


def test_offline_and_box_disconnected_terminals(hall):
    offline = only("offline", minutes=30)
    box = AlertRule.objects.create(name="box", kind="box_disconnected", minutes=10)
    now = timezone.now()
    Terminal.objects.filter(pk=hall.pk).update(last_seen=now - datetime.timedelta(minutes=5),
                                               device_down_since=now - datetime.timedelta(minutes=11))
    alerts.check(now)
    assert open_alerts(offline) == [] and open_alerts(box) == [hall.terminal_id]
    Terminal.objects.filter(pk=hall.pk).update(last_seen=now - datetime.timedelta(minutes=31))
    alerts.check(now)
    # An offline terminal's last word about its box is stale: one alert, for being offline.
    assert open_alerts(offline) == [hall.terminal_id] and open_alerts(box) == []
    Terminal.objects.filter(pk=hall.pk).update(last_seen=now, device_down_since=None)
    alerts.check(now)
    assert open_alerts(offline) == open_alerts(box) == []


def test_backlog_misuse_and_overdue(hall):
    backlog = only("backlog", threshold=100)
    misuse = AlertRule.objects.create(name="misuse", kind="misuse_burst", threshold=3, hours=1)
    overdue = AlertRule.objects.create(name="overdue", kind="overdue", threshold=1)
    Terminal.objects.filter(pk=hall.pk).update(queue_depth=150)
    ingest_events(hall, *[make_event("misuse", terminal_id=hall.terminal_id, why="repeat", level=5)
                          for _ in range(3)])
    ingest_ratings(hall, make_rating(Level.DISSATISFIED, terminal_id=hall.terminal_id, reasons=("x",)))
    alerts.check()
    assert open_alerts(backlog) == [hall.terminal_id] and open_alerts(misuse) == ["W01"]
    assert open_alerts(overdue) == []  # due tomorrow at the earliest
    alerts.check(timezone.now() + datetime.timedelta(days=30))
    assert open_alerts(overdue) == ["全大厅"] and open_alerts(misuse) == []


def test_a_flood_counted_into_one_event_raises_the_misuse_alert_by_its_presses(hall):
    """A box flooding presses keeps one misuse event per press only up to a burst, and counts the
    rest into one ``flood`` event: the alert counts the presses it stands for, not one. A detail
    that says anything else counts as none."""
    import json as json_module
    misuse = only("misuse_burst", threshold=30, hours=1)
    told_otherwise = [make_event("misuse", terminal_id=hall.terminal_id, why="flood", level=5,
                                 detail=json_module.dumps({"suppressed": bad})) for bad in ("40", -5, True, [40], 2.5)]
    assert ingest_events(hall, *[make_event("misuse", terminal_id=hall.terminal_id, why="no_session", level=5)
                                 for _ in range(3)], *told_otherwise) == ["accepted"] * 8
    alerts.check()
    assert open_alerts(misuse) == []  # 8 presses
    flood = json_module.dumps({"suppressed": 40, "why": {"no_session": 40}})
    assert ingest_events(hall, make_event("misuse", terminal_id=hall.terminal_id, why="flood", level=5,
                                          detail=flood)) == ["accepted"]
    alerts.check()
    assert open_alerts(misuse) == ["W01"]
    assert "49 次" in Alert.objects.get(rule=misuse).detail


class Hook(BaseHTTPRequestHandler):
    received: list = []
    fail = False

    def do_POST(self):
        body = self.rfile.read(int(self.headers["Content-Length"]))
        Hook.received.append((body, self.headers.get("X-Signature")))
        self.send_response(503 if Hook.fail else 204)
        self.end_headers()

    def log_message(self, *args):
        pass


@pytest.fixture
def webhook():
    server = HTTPServer(("127.0.0.1", 0), Hook)
    Hook.received, Hook.fail = [], False
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}/hook"
    server.shutdown()
    server.server_close()


def test_webhook_gets_each_change_once_signed_and_retries_failures(hall, webhook, settings):
    settings.ALERT_WEBHOOK, settings.ALERT_WEBHOOK_SECRET = webhook, "s3cret"
    only("backlog", threshold=10)
    Terminal.objects.filter(pk=hall.pk).update(queue_depth=50)
    Hook.fail = True
    alerts.check()
    assert len(Hook.received) == 1 and Alert.objects.get().webhook_sent == ""  # refused: kept for retry
    Hook.fail = False
    alerts.check()
    body, signature = Hook.received[-1]
    sent = json.loads(body)
    assert (sent["event"], sent["subject"], sent["kind"]) == ("raised", hall.terminal_id, "backlog")
    assert signature == "sha256=" + hmac.new(b"s3cret", body, hashlib.sha256).hexdigest()
    alerts.check()
    assert len(Hook.received) == 2  # nothing new
    Terminal.objects.filter(pk=hall.pk).update(queue_depth=0)
    alerts.check()
    assert json.loads(Hook.received[-1][0])["event"] == "cleared" and len(Hook.received) == 3
    alerts.check()
    assert len(Hook.received) == 3


def test_a_webhook_trickling_its_answer_is_given_up_at_the_deadline_and_retried(hall, settings):
    """urlopen's timeout bounds each read: a webhook (or a proxy before it) answering a byte at a
    time held ``tick``, and every default rating and alert after it, as long as it liked (here 15 s)."""
    import time
    from fake_central import serve, trickling
    server, url = serve(trickling(b"HTTP/1.1 204 No Content\r\nX-Padding: "))
    only("backlog", threshold=10)
    Terminal.objects.filter(pk=hall.pk).update(queue_depth=50)
    settings.ALERT_WEBHOOK = ""
    alerts.check()  # raised, not delivered yet
    assert Alert.objects.get().webhook_sent == ""
    started = time.monotonic()
    try:
        sent = alerts.deliver_webhooks(f"{url}/hook", "s3cret", timeout=0.5)
    finally:
        server.shutdown()
    took = time.monotonic() - started
    assert sent == 0 and took < 4, (sent, took)
    assert Alert.objects.get().webhook_sent == ""  # not delivered: tried again next time


def test_a_webhook_address_with_a_secret_in_it_is_refused(hall, webhook, settings, caplog):
    """Secrets never go in URLs (they end up in proxies' logs): the webhook's address is held to
    the rules of every address we call (``check_server_url``), and nothing is sent to it."""
    only("backlog", threshold=10)
    Terminal.objects.filter(pk=hall.pk).update(queue_depth=50)
    settings.ALERT_WEBHOOK = ""
    alerts.check()
    assert alerts.deliver_webhooks(webhook + "?token=s3cret", "", timeout=0.5) == 0
    assert Hook.received == [] and Alert.objects.get().webhook_sent == ""
    assert "s3cret" not in caplog.text and "no user, password, query or fragment" in caplog.text


class SlowHook(BaseHTTPRequestHandler):
    """Takes each alert, but only after a while: a webhook behind a slow proxy."""
    received: list = []

    def do_POST(self):
        import time
        SlowHook.received.append(self.rfile.read(int(self.headers["Content-Length"])))
        time.sleep(0.1)
        self.send_response(204)
        self.end_headers()

    def log_message(self, *args):
        pass


def test_a_slow_webhook_with_many_alerts_holds_the_tick_no_longer_than_one_deadline(hall):
    """Each delivery ended within its deadline, but a storm of alerts (a hall's power cut: every
    terminal offline) to a webhook answering in just under it held ``tick`` for alerts × deadline.
    A check starts no delivery once one deadline has passed; the rest go next time, each once."""
    from http.server import ThreadingHTTPServer
    rule = only("offline", minutes=5)
    for n in range(24):
        Alert.objects.create(rule=rule, subject=f"T{n:02}", detail="离线")
    server = ThreadingHTTPServer(("127.0.0.1", 0), SlowHook)
    SlowHook.received = []
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_port}/hook"
    try:
        # a deadline of 0.6 s per delivery, each taking 0.1 s or more: all 24 cannot start within it,
        # however loaded the machine (no wall-clock bound asserted: that is the benchmarks' work)
        sent = alerts.deliver_webhooks(url, "s3cret", timeout=0.15)
        assert 0 < sent < 24, sent
        while Alert.objects.filter(webhook_sent="").exists():
            assert alerts.deliver_webhooks(url, "s3cret", timeout=0.15) > 0
    finally:
        server.shutdown()
        server.server_close()
    subjects = sorted(json.loads(body)["subject"] for body in SlowHook.received)
    assert subjects == [f"T{n:02}" for n in range(24)]  # each once


def test_a_change_delivered_again_after_a_tick_killed_midway_carries_the_same_id(hall, webhook, settings):
    """The webhook took the change and the tick was killed before noting it: the next tick sends it
    again, and nothing in the body told the receiver it already had it (the signature covers the
    body alone, so a replay looked new too). Each change carries one id on every delivery."""
    settings.ALERT_WEBHOOK, settings.ALERT_WEBHOOK_SECRET = webhook, "s3cret"
    only("backlog", threshold=10)
    Terminal.objects.filter(pk=hall.pk).update(queue_depth=50)
    alerts.check()
    Alert.objects.update(webhook_sent="")  # as a tick killed between the webhook's 204 and our note of it
    alerts.check()
    Terminal.objects.filter(pk=hall.pk).update(queue_depth=0)
    alerts.check()
    ids = [json.loads(body)["id"] for body, _ in Hook.received]
    alert = Alert.objects.get()
    assert ids == [f"alert-{alert.pk}-raised"] * 2 + [f"alert-{alert.pk}-cleared"]
