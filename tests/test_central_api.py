"""The central server's upload API over real HTTP: per-item answers, replays, bad input."""

import gzip
import json

import requests

from terminal.core.levels import Level

from conftest import make_rating


def post(central, body: bytes, **headers):
    return requests.post(f"{central.url}/api/v1/ratings", data=body, timeout=10,
                         headers={"Content-Type": "application/json", **headers})


def post_batch(central, items):
    return post(central, json.dumps({"ratings": items}).encode())


def test_health_reports_database_and_server_time(central):
    body = requests.get(f"{central.url}/api/v1/health", timeout=5).json()
    assert body["status"] == "ok" and body["database"] == "ok" and body["server_time"]


def test_good_items_are_stored_bad_ones_rejected_each_with_a_reason(central):
    good = [make_rating(Level(lv)).to_wire() for lv in (5, 4, 1)]
    unknown_level = {**make_rating().to_wire(), "level": 9}
    missing_id = make_rating().to_wire()
    del missing_id["id"]
    wrong_types = {**make_rating().to_wire(), "mono_ms": "soon", "clock_synced": "yes"}
    before = central.count()
    reply = post_batch(central, [good[0], unknown_level, good[1], missing_id, wrong_types, good[2], "x"])
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


def test_replayed_batch_reports_duplicates_and_stores_nothing_new(central):
    items = [make_rating().to_wire() for _ in range(5)]
    first = post_batch(central, items).json()
    assert first["accepted"] == 5
    before = central.count()
    again = post_batch(central, items).json()
    assert [r["status"] for r in again["results"]] == ["duplicate"] * 5
    assert central.count() == before


def test_same_id_with_other_content_is_rejected_and_kept(central):
    original = make_rating(Level.SATISFIED).to_wire()
    post_batch(central, [original])
    forged = {**original, "level": 1}
    reply = post_batch(central, [forged]).json()["results"][0]
    assert reply["status"] == "rejected" and reply["reason"].startswith("id_conflict")
    assert central.query("SELECT level FROM ratings_rating WHERE rating_id = ?", [original["id"]]) == [(4,)]
    assert central.query("SELECT count(*) FROM ratings_rejecteditem WHERE rating_id = ?", [original["id"]]) == [(1,)]


def test_same_id_twice_in_one_batch(central):
    r = make_rating().to_wire()
    results = post_batch(central, [r, r, {**r, "level": 2}]).json()["results"]
    assert [x["status"] for x in results] == ["accepted", "duplicate", "rejected"]


def test_gzip_body_is_inflated(central):
    items = [make_rating().to_wire() for _ in range(3)]
    body = gzip.compress(json.dumps({"ratings": items}).encode())
    assert post(central, body, **{"Content-Encoding": "gzip"}).json()["accepted"] == 3


def test_non_json_and_wrong_shapes_get_clear_4xx(central):
    before = central.count()
    cases = [
        (post(central, b"<html>not json</html>"), 400, "bad_json"),
        (post(central, b"\xff\xfe"), 400, "bad_json"),
        (post(central, b'[{"id": 1}]'), 400, "bad_batch"),
        (post(central, b'{"ratings": {}}'), 400, "bad_batch"),
        (post(central, b"junk", **{"Content-Encoding": "gzip"}), 400, "bad_gzip"),
        (post(central, b"{}", **{"Content-Encoding": "br"}), 415, "unsupported_encoding"),
        (post_batch(central, [{}] * 1001), 413, "batch_too_large"),
    ]
    for reply, status, code in cases:
        assert reply.status_code == status, reply.text
        assert reply.json()["error"] == code and reply.json()["detail"] and reply.json()["server_time"]
    assert central.count() == before


def test_gzip_bomb_is_refused(central):
    bomb = gzip.compress(b'{"ratings": [' + b" " * (40 * 1024 * 1024) + b"]}")
    reply = post(central, bomb, **{"Content-Encoding": "gzip"})
    assert reply.status_code == 413 and reply.json()["error"] == "body_too_large"


def test_dashboard_shows_totals_per_window(central):
    post_batch(central, [make_rating(Level.VERY_SATISFIED, window="W-DASH").to_wire()])
    page = requests.get(f"{central.url}/", timeout=5)
    assert page.status_code == 200
    assert "评价统计" in page.text and "W-DASH" in page.text and "非常不满意" in page.text


def test_admin_requires_login(central):
    reply = requests.get(f"{central.url}/admin/", timeout=5, allow_redirects=False)
    assert reply.status_code == 302 and "/admin/login/" in reply.headers["Location"]
