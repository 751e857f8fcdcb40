"""The central server's upload API over real HTTP: per-item answers, replays, bad input."""

import gzip
import json

import pytest
import requests

from terminal.core.levels import Level

from conftest import make_rating

pytestmark = pytest.mark.central


def post(central, creds, body: bytes, **headers):
    return central.client(creds).request("POST", "/api/v1/ratings", body,
                                         {"Content-Type": "application/json", **headers})


def post_batch(central, creds, items):
    return post(central, creds, json.dumps({"ratings": items}).encode())


def rating(creds, level=Level.SATISFIED, **fields):
    return make_rating(level, terminal_id=creds.terminal_id, **fields).to_wire()


def test_health_reports_database_and_server_time(central):
    reply = requests.get(f"{central.url}/api/v1/health", timeout=5)
    body = reply.json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["server_time"]
    assert float(reply.headers["X-Server-Time"]) > 1.7e9


def test_good_items_are_stored_bad_ones_rejected_each_with_a_reason(central, enrolled):
    good = [rating(enrolled, Level(lv)) for lv in (5, 4, 1)]
    unknown_level = {**rating(enrolled), "level": 9}
    missing_id = rating(enrolled)
    del missing_id["id"]
    wrong_types = {**rating(enrolled), "mono_ms": "soon", "clock_synced": "yes"}
    before = central.count()
    reply = post_batch(central, enrolled, [good[0], unknown_level, good[1], missing_id, wrong_types, good[2], "x"])
    assert reply.status_code == 200
    body = reply.json()
    statuses = [r["status"] for r in body["results"]]
    assert statuses == ["accepted", "rejected", "accepted", "rejected", "rejected", "accepted", "rejected"]
    reasons = {r["index"]: r["reason"] for r in body["results"] if r["status"] == "rejected"}
    assert "level" in reasons[1] and "outside 1..5" in reasons[1]
    assert "id: is required" in reasons[3]
    assert "mono_ms" in reasons[4] and "clock_synced" in reasons[4]
    assert "JSON object" in reasons[6]
    assert (body["accepted"], body["rejected"]) == (3, 4)
    assert central.count() == before + 3
    stored = central.query("SELECT level FROM ratings_rating WHERE rating_id IN (?, ?, ?) ORDER BY level",
                           [g["id"] for g in good])
    assert stored == [(1,), (4,), (5,)]
    assert central.query("SELECT count(*) FROM ratings_rejecteditem WHERE reason LIKE 'invalid:%' "
                         "AND payload LIKE ?", [f"%{unknown_level['id']}%"]) == [(1,)]


def test_replayed_batch_reports_duplicates_and_stores_nothing_new(central, enrolled):
    items = [rating(enrolled) for _ in range(5)]
    assert post_batch(central, enrolled, items).json()["accepted"] == 5
    before = central.count()
    again = post_batch(central, enrolled, items).json()
    assert [r["status"] for r in again["results"]] == ["duplicate"] * 5
    assert central.count() == before


def test_same_id_with_other_content_is_rejected_and_kept(central, enrolled):
    original = rating(enrolled, Level.SATISFIED)
    post_batch(central, enrolled, [original])
    forged = {**original, "level": 1}
    reply = post_batch(central, enrolled, [forged]).json()["results"][0]
    assert reply["status"] == "rejected" and reply["reason"].startswith("id_conflict")
    assert central.query("SELECT level FROM ratings_rating WHERE rating_id = ?", [original["id"]]) == [(4,)]
    assert central.query("SELECT count(*) FROM ratings_rejecteditem WHERE rating_id = ?", [original["id"]]) == [(1,)]


def test_same_id_twice_in_one_batch(central, enrolled):
    r = rating(enrolled)
    results = post_batch(central, enrolled, [r, r, {**r, "level": 2}]).json()["results"]
    assert [x["status"] for x in results] == ["accepted", "duplicate", "rejected"]


def test_a_terminal_cannot_upload_another_terminals_ratings(central, enrolled):
    other = central.enroll()
    results = post_batch(central, enrolled, [rating(other)]).json()["results"]
    assert results[0]["status"] == "rejected" and results[0]["reason"].startswith("terminal_mismatch")


def test_gzip_body_is_inflated(central, enrolled):
    body = gzip.compress(json.dumps({"ratings": [rating(enrolled) for _ in range(3)]}).encode())
    assert post(central, enrolled, body, **{"Content-Encoding": "gzip"}).json()["accepted"] == 3


def test_non_json_and_wrong_shapes_get_clear_4xx(central, enrolled):
    before = central.count()
    cases = [
        (post(central, enrolled, b"<html>not json</html>"), 400, "bad_json"),
        (post(central, enrolled, b"\xff\xfe"), 400, "bad_json"),
        (post(central, enrolled, b'[{"id": 1}]'), 400, "bad_body"),
        (post(central, enrolled, b'{"ratings": {}}'), 400, "bad_batch"),
        (post(central, enrolled, b"\x1f\x8bjunk", **{"Content-Encoding": "gzip"}), 400, "bad_gzip"),
        (post(central, enrolled, b"junk", **{"Content-Encoding": "gzip"}), 400, "bad_json"),  # the body says what it is
        (post_batch(central, enrolled, [{}] * 1001), 413, "batch_too_large"),
    ]
    for reply, status, code in cases:
        assert reply.status_code == status, reply.text
        assert reply.json()["error"] == code and reply.json()["detail"] and reply.json()["server_time"]
    assert central.count() == before


def test_gzip_bomb_is_refused(central, enrolled):
    bomb = gzip.compress(b'{"ratings": [' + b" " * (40 * 1024 * 1024) + b"]}")
    reply = post(central, enrolled, bomb, **{"Content-Encoding": "gzip"})
    assert reply.status_code == 413 and reply.json()["error"] == "body_too_large"


def test_dashboard_needs_login_and_shows_totals_per_window(central):
    at_w03 = central.enroll("W03")
    post_batch(central, at_w03, [rating(at_w03, Level.VERY_SATISFIED, window="W03", staff_no="SZ0301")])
    anonymous = requests.get(f"{central.url}/", timeout=5, allow_redirects=False)
    assert anonymous.status_code == 302 and "/admin/login/" in anonymous.headers["Location"]
    session = central.login("dash-auditor", central.add_user("dash-auditor", "auditor"))
    page = session.get(f"{central.url}/", timeout=5)
    assert page.status_code == 200
    assert "评价总览" in page.text and "3号窗口" in page.text and "非常不满意" in page.text


def test_admin_requires_login(central):
    reply = requests.get(f"{central.url}/admin/", timeout=5, allow_redirects=False)
    assert reply.status_code == 302 and "/admin/login/" in reply.headers["Location"]


def test_heartbeat_keeps_since_when_a_device_is_disconnected(central, enrolled):
    client = central.client(enrolled)
    since = "SELECT device_down_since FROM ratings_terminal WHERE terminal_id = ?"
    box = {"device": "button_box", "connected": True, "firmware": "0.2.0"}
    client.heartbeat({"version": "t", "devices": [box]})
    assert central.query(since, [enrolled.terminal_id]) == [(None,)]
    client.heartbeat({"version": "t", "devices": [{**box, "connected": False}]})
    first = central.query(since, [enrolled.terminal_id])[0][0]
    client.heartbeat({"version": "t", "devices": [{**box, "connected": False}]})
    assert first is not None and central.query(since, [enrolled.terminal_id]) == [(first,)]  # the first report counts
    client.heartbeat({"version": "t", "devices": [box]})
    assert central.query(since, [enrolled.terminal_id]) == [(None,)]


def test_terminals_page_lists_what_each_terminal_runs(central, enrolled):
    from sync.daemon import versions
    central.client(enrolled).heartbeat({"version": "9.8.7", "versions": versions(3), "devices": [
        {"device": "button_box", "connected": True, "firmware": "0.2.0", "board": "5e5e0001"}]})
    session = central.login("ver-auditor", central.add_user("ver-auditor", "auditor"))
    page = session.get(f"{central.url}/terminals/", timeout=5).text
    row = page[page.index(enrolled.terminal_id):]
    row = row[:row.index("</tr>")]
    assert "9.8.7" in row and "0.2.0" in row and "在线" in row and ">3<" in row
    assert "9.8.7 × 1" in page
    assert requests.get(f"{central.url}/terminals/", timeout=5, allow_redirects=False).status_code == 302


def test_a_refused_item_naming_another_terminal_is_kept_under_the_one_that_sent_it(central, enrolled):
    """A terminal uploading records that name another was kept as that other's refusals (its
    ``terminal_id`` was the one the record named, the reason said only "signed by another"): the
    technician saw the victim misbehave and the sender nowhere."""
    victim = central.enroll()
    forged = rating(victim)
    results = post_batch(central, enrolled, [forged]).json()["results"]
    assert results[0]["status"] == "rejected" and enrolled.terminal_id in results[0]["reason"]
    kept = central.query("SELECT terminal_id, code, reason FROM ratings_rejecteditem WHERE rating_id = ?", [forged["id"]])
    assert [(t, c) for t, c, _ in kept] == [(enrolled.terminal_id, "terminal_mismatch")]
    assert victim.terminal_id in kept[0][2] and enrolled.terminal_id in kept[0][2]
    assert central.query("SELECT count(*) FROM ratings_rejecteditem WHERE terminal_id = ?", [victim.terminal_id]) == [(0,)]


def test_a_synced_clock_set_back_after_it_synced_is_not_believed_over_its_boots_timeline(central, enrolled):
    """The terminal's clock synced in this boot (systemd-timesyncd's flag stays up), then was set back a
    year, by hand or by a hostile time server: its ratings still say clock_synced, and were counted a
    year back, in another period, unmarked. Its boot's own timeline (the boot's start, which every
    batch's clock tells the server, plus the rating's mono_ms) now wins when they disagree."""
    from datetime import datetime, timedelta, timezone
    central.backdate(enrolled.terminal_id, 400)  # a year back is inside its service: only the boot tells
    boot, now = "c1" * 16, datetime.now(timezone.utc)
    set_back = rating(enrolled, clock_synced=True, boot_id=boot, mono_ms=3_500_000, now=now - timedelta(days=365))
    honest = rating(enrolled, clock_synced=True, boot_id=boot, mono_ms=3_500_000, now=now - timedelta(seconds=100))
    body = {"ratings": [set_back, honest], "clock": {"boot_id": boot, "mono_ms": 3_600_000}}  # an hour into the boot
    assert post(central, enrolled, json.dumps(body).encode()).json()["accepted"] == 2
    rows = dict((r[0], r[1:]) for r in central.query(
        "SELECT rating_id, rated_at, rated_at_terminal, time_source FROM ratings_rating WHERE rating_id IN (?, ?)",
        [set_back["id"], honest["id"]]))

    def at(value) -> datetime:
        value = value if isinstance(value, datetime) else datetime.fromisoformat(value)
        return value if value.tzinfo else value.replace(tzinfo=timezone.utc)
    rated_at, said, source = rows[set_back["id"]]
    assert source == "server_boot" and abs((at(rated_at) - (now - timedelta(seconds=100))).total_seconds()) < 30
    assert abs((at(said) - (now - timedelta(days=365))).total_seconds()) < 30  # what the terminal said, kept
    assert rows[honest["id"]][2] == "terminal_ntp"
