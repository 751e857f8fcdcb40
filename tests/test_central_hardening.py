"""The central server's edges hold: what a stranger, a careless client or a fuzzer sends gets a
documented 4xx, never a 500 (which a terminal would retry for ever); logins are throttled and
passwords checked; a deployed server sends only secure cookies; its data is private; a
department manager sees only their own department's alerts and colleagues."""

import gzip
import hashlib
import io
import json
import os
import stat
import subprocess
import time
from datetime import timedelta

import orjson
import pytest
import requests
from django.core.management import call_command
from django.core.management.base import CommandError
from django.test import Client
from django.utils import timezone
from hypothesis import HealthCheck, given, settings, strategies as st

from central.ratings import auth
from central.ratings.models import Alert, AlertRule, BusinessSystem, SeenNonce
from terminal.core import signing
from terminal.core.levels import Level

from conftest import BIN, make_event, make_rating, start_central

pytestmark = pytest.mark.central


def signed_post(client: Client, node, path: str, body: bytes, **extra):
    headers = signing.signed_headers(node.terminal_id, node.secret, "POST", path, body, time.time())
    return client.post(path, body, content_type="application/json",
                       **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}, **extra)


def signed_get(client: Client, node, path: str, **extra):
    headers = signing.signed_headers(node.terminal_id, node.secret, "GET", path, b"", time.time())
    return client.get(path, **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}, **extra)


# -- what a stranger can send --------------------------------------------------------------------

@pytest.mark.django_db
def test_enroll_takes_a_small_plain_body_only(hall):
    client = Client()
    amplified = gzip.compress(json.dumps({"code": "A" * 10, "pad": " " * (32 << 20)}).encode())
    assert len(amplified) < 64 * 1024  # 32 KiB that would inflate to 32 MiB
    reply = client.post("/api/v1/enroll", amplified, content_type="application/json", HTTP_CONTENT_ENCODING="gzip")
    assert reply.status_code == 415 and reply.json()["error"] == "unsupported_encoding"
    big = json.dumps({"code": "ABCD-EFGH-JKLM", "pad": "x" * 2000}).encode()
    assert client.post("/api/v1/enroll", big, content_type="application/json").status_code == 413
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"code": "\\ud800\\ud800\\ud800\\ud800"}',
                 b'{"code": ' + b"9" * 5000 + b"}", b'{"code": NaN}', b"\xff\xfe"):
        reply = client.post("/api/v1/enroll", body[:1024] if len(body) > 1024 else body, content_type="application/json")
        assert 400 <= reply.status_code < 500, (body[:40], reply.status_code)


@pytest.mark.django_db
def test_the_answer_carrying_a_terminals_secret_may_not_be_cached(hall):
    from central.ratings import auth
    code, _ = auth.issue_code(hall.window)
    reply = Client().post("/api/v1/enroll", json.dumps({"code": code}), content_type="application/json")
    assert reply.status_code == 201 and reply.json()["secret"] and reply["Cache-Control"] == "no-store"


@pytest.mark.django_db
def test_signatures_and_timestamps_of_any_shape_are_401(hall):
    client = Client()
    body = b'{"ratings": []}'
    good = signing.signed_headers(hall.terminal_id, hall.secret, "POST", "/api/v1/ratings", body, time.time())
    for change in ({signing.HEADER_SIGNATURE: "é" * 64}, {signing.HEADER_SIGNATURE: "zz"},
                   {signing.HEADER_TIMESTAMP: "9" * 401}, {signing.HEADER_TIMESTAMP: "-1"},
                   {signing.HEADER_TIMESTAMP: "1e9"}, {signing.HEADER_NONCE: "ü" * 20},
                   {signing.HEADER_TERMINAL: "T" * 500}):
        headers = {**good, **change}
        reply = client.post("/api/v1/ratings", body, content_type="application/json",
                            **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})
        assert reply.status_code == 401, (change, reply.status_code)


@pytest.mark.django_db
def test_an_unknown_terminal_and_a_bad_signature_look_the_same(hall):
    client = Client()
    body = b'{"ratings": []}'
    forged = signing.signed_headers(hall.terminal_id, "not-the-secret", "POST", "/api/v1/ratings", body, time.time())
    nobody = signing.signed_headers("T-NOBODY", "not-the-secret", "POST", "/api/v1/ratings", body, time.time())
    answers = []
    for headers in (forged, nobody):
        reply = client.post("/api/v1/ratings", body, content_type="application/json",
                            **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})
        answers.append((reply.status_code, reply.json()["error"], reply.json()["detail"]))
    assert answers[0] == answers[1] == (401, "bad_signature", answers[0][2])


@pytest.mark.django_db
def test_each_batch_body_that_once_gave_500_is_a_4xx(hall):
    client = Client()
    for body in (b"[" * 100_000 + b"]" * 100_000, b'{"ratings": [' + b"9" * 5000 + b"]}",
                 b'{"ratings": [NaN]}', b'{"ratings": [], "clock": {"boot_id": "\\ud800", "mono_ms": 1}}'):
        assert 400 <= signed_post(client, hall, "/api/v1/ratings", body).status_code < 500 or \
            signed_post(client, hall, "/api/v1/ratings", body).status_code == 200


@pytest.mark.django_db
def test_records_that_once_gave_500_are_refused_item_by_item_and_kept(hall):
    client = Client()
    tid = hall.terminal_id
    good = make_rating(terminal_id=tid).to_wire()
    poison = [
        {**make_rating(terminal_id=tid).to_wire(), "case_no": "\ud800"},
        {**make_rating(terminal_id=tid).to_wire(), "rated_at": "0001-01-01T00:00:00+14:00"},
        {**make_rating(terminal_id=tid).to_wire(), "rated_at": "9999-12-31T23:59:59-12:00"},
        {**make_rating(terminal_id=tid, clock_synced=False).to_wire(), "mono_ms": 2 ** 62},
        {**make_rating(terminal_id=tid).to_wire(), "\ud800": 1},
        {**make_rating(terminal_id=tid).to_wire(), "id": "\ud800" * 10},
        {**make_rating(terminal_id=tid).to_wire(), "reasons": [[[[[[[]]]]]]]},
    ]
    text = json.dumps({"ratings": [good] + poison, "clock": {"boot_id": "\ud800", "mono_ms": 2 ** 62}})
    reply = signed_post(client, hall, "/api/v1/ratings", text.encode())
    assert reply.status_code == 200, reply.content[:500]
    statuses = [r["status"] for r in reply.json()["results"]]
    assert statuses == ["accepted"] + ["rejected"] * len(poison)
    from central.ratings.models import RejectedItem
    assert RejectedItem.objects.filter(code="invalid").count() == len(poison)
    event = {**make_event("login", terminal_id=tid).to_wire(), "case_no": "\udfff"}
    reply = signed_post(client, hall, "/api/v1/events", json.dumps({"events": [event]}).encode())
    assert reply.status_code == 200 and reply.json()["results"][0]["status"] == "rejected"


@pytest.mark.django_db
@pytest.mark.parametrize("offset", ["+16:00", "+23:59", "-23:59:59"])
def test_a_time_whose_utc_offset_no_zone_has_is_refused_not_a_500(hall, offset):
    """Python takes offsets up to ±24 hours; PostgreSQL's timestamptz only up to ±15:59, so a
    record keeping the time as its terminal said it (+23:59) made the whole batch a 500 there, and
    a case report too. No zone is more than 14 hours from UTC."""
    client = Client()
    tid = hall.terminal_id
    when = f"2026-01-05T09:00:00{offset}"
    rating = {**make_rating(terminal_id=tid).to_wire(), "rated_at": when}
    event = {**make_event("login", terminal_id=tid).to_wire(), "at": when}
    for key, item in (("ratings", rating), ("events", event)):
        reply = signed_post(client, hall, f"/api/v1/{key}", json.dumps({key: [item]}).encode())
        assert reply.status_code == 200, reply.content[:300]
        assert reply.json()["results"][0]["status"] == "rejected", reply.content[:300]
    system = auth.add_system("业务系统")
    body = json.dumps({"case_no": "C-OFFSET", "window": "W01", "status": "accepted", "accepted_at": when}).encode()
    reply, signed = signed_reply(client, system.system_id, system.secret, "POST", "/api/v1/cases", body,
                                 id_header=signing.HEADER_SYSTEM)
    assert (reply.status_code, reply.json()["error"]) == (400, "invalid_case")


@pytest.mark.django_db
@pytest.mark.parametrize("beat", [
    {"version": "\ud800"}, {"boot_id": "\ud800", "mono_ms": 5}, {"queue_depth": -1}, {"oldest_pending_s": -5},
    {"disk_free_bytes": 10 ** 40}, {"mono_ms": 2 ** 62}, {"devices": [{"port": "\ud800"}]}, {"alerts": [{"\u0000": 1}]},
])
def test_heartbeats_that_once_gave_500_are_400(hall, beat):
    reply = signed_post(Client(), hall, "/api/v1/heartbeat", json.dumps(beat).encode())
    assert reply.status_code == 400 and reply.json()["error"] == "bad_heartbeat", reply.content


@pytest.mark.django_db
def test_each_heartbeat_number_is_taken_up_to_what_its_column_holds_and_refused_past_it(hall):
    """A terminal's row keeps queue_depth, oldest_pending_s and dead_letters in integer columns
    (PostgreSQL's hold at most 2**31 - 1): a value past that was once a 500 on PostgreSQL."""
    from central.ratings.api import HEARTBEAT_NUMBERS
    for field in ("queue_depth", "oldest_pending_s", "dead_letters"):
        top = HEARTBEAT_NUMBERS[field][2]
        assert top <= 2 ** 31 - 1, field
        taken = signed_post(Client(), hall, "/api/v1/heartbeat", json.dumps({field: top}).encode())
        assert taken.status_code == 200, (field, taken.content)
        refused = signed_post(Client(), hall, "/api/v1/heartbeat", json.dumps({field: top + 1}).encode())
        assert refused.status_code == 400 and refused.json()["error"] == "bad_heartbeat", (field, refused.content)
    hall.refresh_from_db()
    assert hall.dead_letters == HEARTBEAT_NUMBERS["dead_letters"][2]


@pytest.mark.django_db
def test_a_heartbeat_with_nan_is_400(hall):
    for body in (b'{"clock_offset_s": NaN}', b'{"clock_offset_s": Infinity}', b'{"queue_depth": -Infinity}'):
        assert signed_post(Client(), hall, "/api/v1/heartbeat", body).status_code == 400


@pytest.mark.django_db
def test_a_number_past_a_floats_range_is_400_not_a_500(hall):
    """``1e400`` is valid JSON that orjson refuses and the standard library read as ``inf``: kept in a
    heartbeat's devices, it failed the JSON column's check, a 500 the terminal would retry for ever."""
    for path, body in (("/api/v1/heartbeat", b'{"devices": [{"kind": "box", "temp": 1e400}]}'),
                       ("/api/v1/heartbeat", b'{"devices": [{"kind": "box", "temp": -1e400}]}'),
                       ("/api/v1/ratings", b'{"ratings": [], "clock": {"boot_id": "b", "mono_ms": 1e400}}')):
        reply = signed_post(Client(), hall, path, body)
        assert reply.status_code == 400 and reply.json()["error"] == "bad_json", (body, reply.content)
    assert signed_post(Client(), hall, "/api/v1/heartbeat", b'{"devices": [{"temp": 1e308}]}').status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("devices", [5, 1.5, True, "button_box", {"device": "button_box"}, [7, None, ["x"]],
                                     [{"device": "button_box", "firmware": ["1.2"]}],
                                     [{"device": "button_box", "firmware": {"v": 1}, "connected": "yes"}]])
def test_a_heartbeat_with_devices_of_any_shape_leaves_the_terminals_page_standing(hall, auditor, devices):
    """A heartbeat's ``devices`` is taken whatever its shape (the API passes over what is no list),
    and the terminals page reads it as stored: one terminal sending a number there made the page a
    500 for the whole hall."""
    assert signed_post(Client(), hall, "/api/v1/heartbeat", json.dumps({"devices": devices}).encode()).status_code == 200
    page = auditor.get("/terminals/")
    assert page.status_code == 200 and hall.terminal_id in page.content.decode()


@pytest.mark.django_db
def test_tick_forgets_the_nonces_of_every_terminal(hall):
    code, _ = auth.issue_code(hall.window)
    quiet = auth.enroll(code)  # calls once, then never again
    assert signed_post(Client(), quiet, "/api/v1/heartbeat", b"{}").status_code == 200
    assert signed_post(Client(), hall, "/api/v1/heartbeat", b"{}").status_code == 200
    SeenNonce.objects.update(seen_at=timezone.now() - timedelta(hours=1))
    call_command("tick", stdout=io.StringIO())
    assert not SeenNonce.objects.exists()


@pytest.mark.django_db
def test_a_nonce_outlives_its_request_on_every_node_within_the_clock_slack(hall, monkeypatch):
    """Several app servers, their clocks up to ``auth.NODE_CLOCK_SLACK_S`` apart. A request stamped at
    the skew's future edge is taken by node A. 590 s later by A's clock, node X, whose clock runs 50 s
    ahead, runs ``tick``; node B, on A's clock, would still take that request: its nonce must remain."""
    started = timezone.now()
    clock = {"now": started}
    monkeypatch.setattr(timezone, "now", lambda: clock["now"])
    path, body = "/api/v1/heartbeat", b"{}"
    headers = signing.signed_headers(hall.terminal_id, hall.secret, "POST", path, body,
                                     started.timestamp() + signing.MAX_SKEW_SECONDS - 1)
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    assert Client().post(path, body, content_type="application/json", **meta).status_code == 200  # node A
    clock["now"] = started + timedelta(seconds=590 + 50)  # node X
    call_command("tick", stdout=io.StringIO())
    clock["now"] = started + timedelta(seconds=590)  # node B: the timestamp is 291 s old, within the skew
    again = Client().post(path, body, content_type="application/json", **meta)
    assert again.status_code == 401 and again.json()["error"] == "replayed_nonce"


# -- what the red team found: nesting, unhashable outcomes, an unsigned header, a NUL in a hash ----

def signed_reply(client: Client, who_id: str, secret: str, method: str, path: str, body: bytes = b"",
                 id_header: str = signing.HEADER_TERMINAL, **extra):
    """The answer and whether it carries a valid answer signature (a terminal believes nothing else)."""
    headers = signing.signed_headers(who_id, secret, method, path, body, time.time(), id_header=id_header)
    meta = {f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()}
    reply = (client.post(path, body, content_type="application/json", **meta, **extra) if method == "POST"
             else client.get(path, **meta, **extra))
    given_signature = reply.get(signing.HEADER_ANSWER_SIGNATURE, "")
    content = b"".join(reply.streaming_content) if reply.streaming else reply.content
    return reply, bool(given_signature) and signing.verify_answer(
        secret, headers[signing.HEADER_NONCE], reply.status_code, reply[signing.HEADER_SERVER_TIME],
        hashlib.sha256(content).hexdigest(), given_signature)


def nested(depth: int) -> str:
    return "[" * depth + "1" + "]" * depth


@pytest.mark.django_db
@pytest.mark.parametrize("endpoint", ["ratings", "events"])
@pytest.mark.parametrize("where", ["item", "level", "channel", "scores"])
def test_an_item_nested_past_the_limit_is_refused_alone_and_the_good_one_beside_it_stored(hall, endpoint, where):
    """orjson parses 1,000 levels; json.dumps and repr of such an item raised RecursionError (an
    unsigned 500 the terminal retried for ever, the good records of the batch with it). Now that
    item alone is refused, kept as a refused item, and the good one beside it is stored."""
    record = (make_rating(terminal_id=hall.terminal_id) if endpoint == "ratings"
              else make_event("login", terminal_id=hall.terminal_id)).to_wire()
    hostile = nested(1000) if where == "item" else json.dumps({**record, "id": "f" * 32, where: "X"}).replace(
        '"X"', nested(1000))
    body = f'{{"{endpoint}": [{json.dumps(record)}, {hostile}]}}'.encode()
    reply, signed = signed_reply(Client(), hall.terminal_id, hall.secret, "POST", f"/api/v1/{endpoint}", body)
    assert (reply.status_code, signed) == (200, True), reply.content[:300]
    good, bad = reply.json()["results"]
    assert good["status"] == "accepted" and bad["status"] == "rejected"
    assert "nested more than 16 deep" in bad["reason"]
    from central.ratings.models import RejectedItem
    assert RejectedItem.objects.filter(code="invalid").count() == 1


@pytest.mark.django_db
def test_a_batch_whose_envelope_is_nested_past_the_limit_is_a_signed_400(hall):
    record = make_rating(terminal_id=hall.terminal_id).to_wire()
    body = f'{{"ratings": [{json.dumps(record)}], "clock": {nested(1000)}}}'.encode()
    reply, signed = signed_reply(Client(), hall.terminal_id, hall.secret, "POST", "/api/v1/ratings", body)
    assert (reply.status_code, reply.json()["error"], signed) == (400, "bad_json", True), reply.content[:300]


@pytest.mark.django_db
def test_nesting_up_to_the_limit_is_taken_one_past_it_is_not(hall):
    """The limit is one number (``checks.MAX_DEPTH``), counted in containers from the record itself:
    a rating ({...}) whose reasons are a list 15 deep is 16 deep and judged on its fields (refused:
    reasons are text), 16 deep is refused for its nesting before any field is read."""
    from terminal.core.checks import MAX_DEPTH
    record = make_rating(terminal_id=hall.terminal_id).to_wire()
    for depth, said in ((MAX_DEPTH - 1, "reasons"), (MAX_DEPTH, f"nested more than {MAX_DEPTH} deep")):
        body = f'{{"ratings": [{json.dumps({**record, "reasons": "X"}).replace(chr(34) + "X" + chr(34), nested(depth))}]}}'
        reply = signed_post(Client(), hall, "/api/v1/ratings", body.encode())
        assert reply.status_code == 200, (depth, reply.content[:300])
        (result,) = reply.json()["results"]
        assert result["status"] == "rejected" and said in result["reason"] and (
            depth == MAX_DEPTH or "nested" not in result["reason"]), (depth, result)


@pytest.mark.django_db
@pytest.mark.parametrize("field", ["status", "applicant_type"])
def test_a_case_report_nested_deeply_is_a_signed_400(hall, field):
    system = BusinessSystem.objects.create(system_id="S-DEEP", name="排队系统", secret="d" * 43)
    case = {"case_no": "C-DEEP", "window": "W01", "status": "accepted",
            "accepted_at": "2026-01-05T09:00:00+08:00", field: "X"}
    body = json.dumps(case).replace('"X"', nested(1000)).encode()
    reply, signed = signed_reply(Client(), system.system_id, system.secret, "POST", "/api/v1/cases", body,
                                 id_header=signing.HEADER_SYSTEM)
    assert (reply.status_code, reply.json()["error"], signed) == (400, "bad_json", True), reply.content[:300]


def test_error_messages_show_an_untrusted_value_bounded_never_whole():
    """A checker's message named the value with repr(): RecursionError for one nested 1,000 deep
    (escaping check_fields, which catches ValueError and TypeError), megabytes for a long one."""
    from terminal.core.chain import Link
    from terminal.core.checks import InvalidRecord, check_fields, enum, integer, one_of
    from terminal.core.levels import Level as Levels
    deep = orjson.loads(nested(1020))  # orjson parses it; repr() and json.dumps of it do not
    for check in (one_of(("a", "b")), enum(Levels), integer(0, 9), Levels.parse, Levels.from_gbt):
        for value in (deep, "x" * 1_000_000, 10 ** 4000):
            with pytest.raises(InvalidRecord) as refused:
                check_fields({"f": value}, {"f": (True, check)}, "record")
            assert len(str(refused.value)) < 200
    with pytest.raises(ValueError) as refused:
        Link.from_wire({"v": deep, "epoch": "0" * 32, "seq": 1, "prev": "0" * 64})
    assert len(str(refused.value)) < 200


def test_a_refused_item_json_cannot_write_is_kept_as_a_note_not_a_crash():
    from central.ratings.ingest import _as_text
    deep = orjson.loads(nested(1020))
    note = json.loads(_as_text([deep]))
    assert "RecursionError" in note and "a list" in note


@pytest.mark.django_db
def test_a_heartbeat_nested_deeply_is_a_signed_400(hall):
    """Its size was measured with json.dumps before its depth was checked: a 500 at 950 levels."""
    body = ('{"version": "1", "errors": ' + nested(960) + '}').encode()
    reply, signed = signed_reply(Client(), hall.terminal_id, hall.secret, "POST", "/api/v1/heartbeat", body)
    assert (reply.status_code, reply.json()["error"], signed) == (400, "bad_json", True), reply.content[:300]


@pytest.mark.django_db
@pytest.mark.parametrize("outcome", [[], {}, ["invited"]])
def test_an_invite_result_whose_outcome_is_no_string_is_passed_over(hall, outcome):
    body = json.dumps({"version": "1", "invite_results": [{"case_no": "C1", "outcome": outcome}]}).encode()
    reply, signed = signed_reply(Client(), hall.terminal_id, hall.secret, "POST", "/api/v1/heartbeat", body)
    assert (reply.status_code, signed) == (200, True), reply.content[:300]


@pytest.mark.django_db
@pytest.mark.parametrize("header", [None, "gzip", "br", "identity"])
@pytest.mark.parametrize("compressed", [True, False])
def test_the_signed_body_not_its_unsigned_content_encoding_says_whether_it_is_gzip(hall, header, compressed):
    """The signature covers the body, not Content-Encoding: a proxy that strips or swaps that header
    made the server refuse a correctly signed batch (400 bad_json, 415), and the terminal then
    split it down and dead-lettered every rating. The gzip magic bytes decide; no JSON starts so."""
    record = make_rating(terminal_id=hall.terminal_id).to_wire()
    body = json.dumps({"ratings": [record]}).encode()
    body = gzip.compress(body) if compressed else body
    extra = {"HTTP_CONTENT_ENCODING": header} if header else {}
    reply, signed = signed_reply(Client(), hall.terminal_id, hall.secret, "POST", "/api/v1/ratings", body, **extra)
    assert (reply.status_code, signed) == (200, True), reply.content[:300]
    assert reply.json()["results"][0]["status"] == "accepted"


@pytest.mark.django_db
def test_a_file_hash_is_64_hex_digits_before_any_query(hall, monkeypatch):
    """On PostgreSQL a NUL in the hash (``%00``) reached the query: psycopg's DataError, a 500.
    Anything but 64 hex digits is a 404 without a query; an uppercase hash names the same file."""
    from central.ratings import content
    asked = []
    real = content.file_for
    monkeypatch.setattr(content, "file_for", lambda node, sha256: asked.append(sha256) or real(node, sha256))
    for name in ("a" * 63 + "%00", "%00" * 64, "g" * 64, "a" * 63 + "%C4%B0", "A" * 64):
        reply, signed = signed_reply(Client(), hall.terminal_id, hall.secret, "GET", f"/api/v1/files/{name}")
        assert (reply.status_code, signed) == (404, True), (name, reply.status_code)
    assert asked == ["a" * 64]  # only the well-formed one, lowered, was looked up


# -- the fuzzer: every endpoint, validly signed ---------------------------------------------------

json_values = st.recursive(
    st.none() | st.booleans() | st.integers(min_value=-(2 ** 70), max_value=2 ** 70)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(st.characters(codec=None), max_size=30),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3), max_leaves=10)


@st.composite
def mutated_record(draw, base: dict) -> dict:
    record = dict(base)
    for field in draw(st.lists(st.sampled_from(sorted(base) + ["extra"]), max_size=3)):
        if draw(st.booleans()):
            record[field] = draw(json_values)
        else:
            record.pop(field, None)
    return record


@settings(max_examples=250, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                  HealthCheck.too_slow])
@given(data=st.data())
@pytest.mark.django_db
def test_fuzzed_signed_requests_never_answer_500(hall, data):
    client = Client(raise_request_exception=False)
    tid = hall.terminal_id
    endpoint = data.draw(st.sampled_from(["ratings", "events", "heartbeat", "content", "files", "enroll", "cases"]))
    if endpoint in ("ratings", "events"):
        base = (make_rating(Level.DISSATISFIED, terminal_id=tid, reasons=("slow",)) if endpoint == "ratings"
                else make_event("login", terminal_id=tid)).to_wire()
        items = data.draw(st.lists(mutated_record(base), min_size=1, max_size=4))
        body = json.dumps({endpoint: items, "clock": data.draw(json_values)}).encode("utf-8", "surrogatepass")
        if data.draw(st.booleans()):
            body = gzip.compress(body)
            reply = signed_post(client, hall, f"/api/v1/{endpoint}", body, HTTP_CONTENT_ENCODING="gzip")
        else:
            reply = signed_post(client, hall, f"/api/v1/{endpoint}", body)
        if reply.status_code == 200:
            assert len(reply.json()["results"]) == len(items)
    elif endpoint == "heartbeat":
        beat = data.draw(st.dictionaries(st.sampled_from(["version", "queue_depth", "devices", "chain", "boot_id",
                                                          "mono_ms", "clock_offset_s", "alerts", "errors"]),
                                         json_values, max_size=5))
        reply = signed_post(client, hall, "/api/v1/heartbeat", json.dumps(beat).encode("utf-8", "surrogatepass"))
    elif endpoint == "content":
        reply = signed_get(client, hall, "/api/v1/content",
                           HTTP_IF_NONE_MATCH=data.draw(st.text(st.characters(max_codepoint=255), max_size=80)))
    elif endpoint == "files":
        name = data.draw(st.text(st.sampled_from("0123456789abcdefABCDEF./%"), max_size=70))
        reply = signed_get(client, hall, f"/api/v1/files/{name}" if name and "/" not in name else "/api/v1/files/x")
    elif endpoint == "cases":  # a business system's report, validly signed with its own key
        system, _ = BusinessSystem.objects.get_or_create(system_id="S-FUZZ", defaults={"name": "模糊测试",
                                                                                      "secret": "f" * 43})
        base = {"case_no": "C-FUZZ", "window": "W01", "status": "completed", "staff_no": "SZ0101",
                "mobile": "13812345678", "accepted_at": "2026-01-05T09:00:00+08:00",
                "completed_at": "2026-01-05T09:30:00+08:00", "item_name": "不动产登记", "applicant_type": "person"}
        body = json.dumps(data.draw(mutated_record(base))).encode("utf-8", "surrogatepass")
        headers = signing.signed_headers(system.system_id, system.secret, "POST", "/api/v1/cases", body, time.time(),
                                         id_header=signing.HEADER_SYSTEM)
        reply = client.post("/api/v1/cases", body, content_type="application/json",
                            **{f"HTTP_{k.upper().replace('-', '_')}": v for k, v in headers.items()})
    else:
        reply = client.post("/api/v1/enroll", json.dumps(data.draw(json_values)).encode("utf-8", "surrogatepass"),
                            content_type="application/json")
    assert reply.status_code < 500, (endpoint, reply.status_code, reply.content[:300])


# -- people at the admin ----------------------------------------------------------------------------

@pytest.mark.django_db
def test_weak_passwords_are_refused(hall):
    for weak in ("1", "password123", "12345678901", "admin-user1"):
        with pytest.raises(CommandError, match="password refused"):
            call_command("add_user", "admin-user1", "--role", "auditor", "--password-stdin",
                         stdin=io.StringIO(weak + "\n"), stderr=io.StringIO())
    call_command("add_user", "admin-user1", "--role", "auditor", "--password-stdin",
                 stdin=io.StringIO("stone-river-7-lantern\n"), stderr=io.StringIO())


@pytest.mark.django_db
def test_a_locked_out_login_says_why_in_chinese_first_with_english(hall):
    """django-axes answered a locked login with its own English line only (it has no Chinese), on
    the admin's Chinese login page."""
    client = Client()
    answers = [client.post("/admin/login/?next=/", {"username": "nobody", "password": "wrong-password-xyz"})
               for _ in range(5)]
    assert [a.status_code for a in answers] == [200] * 4 + [429]
    page = answers[-1].content.decode()
    assert "登录尝试过多" in page and "15 分钟" in page and "Too many login attempts" in page
    assert page.index("登录尝试过多") < page.index("Too many login attempts")
    assert "nobody" not in page  # the name tried is not echoed


@pytest.mark.django_db
def test_wrong_old_passwords_on_the_password_change_page_lock_the_account_as_logins_do(hall, django_user_model):
    """The admin's password change checked the old password itself, past django-axes: whoever sat at
    a session left open could try passwords there without limit, then set their own."""
    user = django_user_model.objects.create_user("clerk", password="stone-river-7-lantern", is_staff=True)
    client = Client()
    client.force_login(user)

    def change(old: str, new: str = "quiet-harbour-42-violet"):
        return client.post("/admin/password_change/", {"old_password": old, "new_password1": new, "new_password2": new})
    assert Client().get("/admin/password_change/").status_code == 302  # a login first
    assert client.get("/admin/password_change/").status_code == 200
    done = change("stone-river-7-lantern")  # the right one changes it, as before
    assert done.status_code == 302 and done["Location"] == "/admin/password_change/done/"
    assert [change(f"guess-{n}-wrong").status_code for n in range(5)] == [200] * 4 + [429]
    assert change("quiet-harbour-42-violet", "amber-field-9-willow").status_code == 429  # locked: not tried
    user.refresh_from_db()
    assert user.check_password("quiet-harbour-42-violet")
    assert Client().post("/admin/login/", {"username": "clerk", "password": "quiet-harbour-42-violet"}).status_code == 429


@pytest.mark.django_db
def test_a_manager_sees_only_their_departments_alerts_and_colleagues(hall):
    from django.contrib.auth.models import User
    from central.ratings.models import WorkOrder
    from central.ratings.ingest import ingest
    from central.ratings.models import Window
    code, _ = auth.issue_code(Window.objects.get(code="W02"))
    w02 = auth.enroll(code)
    ingest([make_rating(Level.VERY_DISSATISFIED, terminal_id=hall.terminal_id, reasons=("slow",)).to_wire()], hall)
    rule = AlertRule.objects.get(kind="offline")
    Alert.objects.create(rule=rule, subject="W01", detail="第一部门的")
    Alert.objects.create(rule=rule, subject=w02.terminal_id, detail="第二部门的终端")
    Alert.objects.create(rule=rule, subject="全大厅", detail="全大厅的")
    for name, role, dept in (("m1", "department_manager", "11440100MB2C000010"),
                             ("m2", "department_manager", "11440100MB2C000023"), ("boss", "hall_admin", None)):
        call_command("add_user", name, "--role", role, *(["--department", dept] if dept else []), "--password-stdin",
                     stdin=io.StringIO("stone-river-7-lantern\n"), stderr=io.StringIO())
    manager = Client()
    manager.force_login(User.objects.get(username="m1"))
    for page in ("/alerts/", "/", "/admin/ratings/alert/"):
        text = manager.get(page).content.decode()
        assert "第一部门的" in text and "第二部门的终端" not in text and "全大厅的" not in text, page
    order = WorkOrder.objects.get()
    form = manager.get(f"/admin/ratings/workorder/{order.pk}/change/").content.decode()
    assert ">m1<" in form and ">m2<" not in form and ">boss<" not in form  # the assignee choices
    boss = Client()
    boss.force_login(User.objects.get(username="boss"))
    assert "第二部门的终端" in boss.get("/alerts/").content.decode()


@pytest.mark.django_db
def test_the_admin_answers_an_unknown_filter_with_400(hall, admin_user):
    client = Client()
    client.force_login(admin_user)
    assert client.get("/admin/ratings/rating/?payload__contains=x").status_code == 400
    assert client.get("/admin/ratings/rating/?level__exact=5").status_code == 200


@pytest.mark.django_db
@pytest.mark.parametrize("query", [
    "window/?hall=99999999999999999999999", "workorder/?department__in=1,99999999999999999999999",
    "rating/?level__in=5,99999999999999999999999", "alert/?rule__gt=-99999999999999999999999",
    "rating/?rated_at__year=9999", "rating/?rated_at__year=99999999999999999999999",
    "rating/?rated_at__year=2026&rated_at__month=99999999999999999999", "workorder/?opened_on__year=1",
    "rating/?rated_at__gte=0001-01-01", "case/?accepted_at__lt=9999-12-31",
])
def test_a_filter_value_past_what_the_database_or_the_calendar_holds_is_400(hall, admin_user, query):
    """Each was a 500 once the list was drawn: SQLite cannot bind an integer past 64 bits, the date
    links add a year to 9999, and 0001-01-01 in the hall's time zone has no UTC time."""
    client = Client()
    client.force_login(admin_user)
    assert client.get(f"/admin/ratings/{query}").status_code == 400


@pytest.mark.django_db
def test_filter_values_the_admins_own_links_make_are_taken(hall, admin_user):
    client = Client()
    client.force_login(admin_user)
    for query in ("rating/?level__exact=5", "rating/?level__in=4,5", "rating/?rated_at__year=2026&rated_at__month=12",
                  "workorder/?opened_on__year=9998&opened_on__month=12&opened_on__day=31", "window/?hall__exact=1",
                  "case/?status__exact=completed", "alert/?cleared_at__isnull=True"):
        assert client.get(f"/admin/ratings/{query}").status_code == 200, query


# -- a real server, deployed and on loopback --------------------------------------------------------

HOST = "pj.example.gov.cn"


@pytest.fixture(scope="module")
def deployed(tmp_path_factory):
    """A server deployed as the README says: a real host name, behind the HTTPS proxy (whose headers
    the tests send as nginx would: X-Forwarded-Proto and X-Real-IP)."""
    old = os.environ.get("RATING_CENTRAL_HOSTS")
    os.environ["RATING_CENTRAL_HOSTS"] = f"{HOST},127.0.0.1"
    try:
        server = start_central(tmp_path_factory.mktemp("deployed"), workers=1)
    finally:
        os.environ.pop("RATING_CENTRAL_HOSTS") if old is None else os.environ.update(RATING_CENTRAL_HOSTS=old)
    yield server
    server.stop()


def proxied(address: str) -> dict:
    return {"Host": HOST, "X-Forwarded-Proto": "https", "X-Real-IP": address}


def login(server, username: str, password: str, address: str) -> int:
    """A browser logging in through the proxy from ``address``: the status of the form's answer."""
    import re
    page = requests.get(f"{server.url}/admin/login/", headers=proxied(address), timeout=10)
    token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
    reply = requests.post(f"{server.url}/admin/login/?next=/", allow_redirects=False, timeout=10,
                          data={"csrfmiddlewaretoken": token, "username": username, "password": password},
                          headers={**proxied(address), "Referer": f"https://{HOST}/admin/login/",
                                   "Cookie": f"csrftoken={page.cookies['csrftoken']}"})
    return reply.status_code


def test_logins_are_throttled_by_user_and_by_address(deployed):
    password = deployed.add_user("throttled", "auditor")
    answers = [login(deployed, "throttled", "wrong-password-xyz", f"10.0.0.{10 + n}") for n in range(5)]
    assert answers == [200] * 4 + [429]  # the form again four times, then locked
    assert login(deployed, "throttled", password, "10.0.1.1") == 429  # that user: locked, from anywhere
    other = deployed.add_user("bystander", "auditor")
    for n in range(5):
        login(deployed, f"guess{n}", "wrong-password-xyz", "10.0.2.2")
    assert login(deployed, "bystander", other, "10.0.2.2") == 429  # that address: locked, for anyone
    assert login(deployed, "bystander", other, "10.0.2.3") == 302  # elsewhere the right password works


def test_deployed_settings_pass_check_deploy(tmp_path):
    env = {**os.environ, "RATING_CENTRAL_DATA": str(tmp_path / "deployed"), "RATING_CENTRAL_HOSTS": HOST}
    env.pop("RATING_CENTRAL_DATABASE_URL", None)
    done = subprocess.run([str(BIN / "rating-central"), "check", "--deploy", "--fail-level", "WARNING"],
                          env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and "no issues" in done.stdout + done.stderr, done.stdout + done.stderr


def test_a_deployed_server_redirects_http_sends_hsts_and_only_secure_cookies(deployed):
    plain = requests.get(f"{deployed.url}/admin/login/", headers={"Host": HOST}, allow_redirects=False, timeout=10)
    assert plain.status_code == 301 and plain.headers["Location"].startswith(f"https://{HOST}/")
    page = requests.get(f"{deployed.url}/admin/login/", headers=proxied("10.9.9.9"), allow_redirects=False, timeout=10)
    assert page.status_code == 200
    assert "max-age=31536000" in page.headers["Strict-Transport-Security"]
    assert "Secure" in page.headers["Set-Cookie"] and "csrftoken" in page.headers["Set-Cookie"]


def test_the_data_folder_and_database_are_private(deployed):
    folder = deployed.data_dir
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in folder.iterdir() if p.is_file()}
    assert stat.S_IMODE(folder.stat().st_mode) == 0o700
    assert modes["central.db"] == modes["secret_key"] == 0o600
    assert all(mode == 0o600 for name, mode in modes.items() if name.startswith("central.db")), modes  # -wal, -shm


def test_a_queue_holding_records_central_can_never_take_still_delivers_the_rest(central, tmp_path):
    """Written by an older, buggier terminal (or a damaged disk): each is refused for good and
    becomes a dead letter on the terminal; everything behind it is delivered, a record nested past
    the limit too."""
    from sync.outbox import Uploader
    from terminal.store import Store
    creds = central.enroll()
    store = Store(tmp_path / "terminal.db")
    good = [store.record(make_rating(terminal_id=creds.terminal_id)) for _ in range(3)]
    poisons = []
    for text in ('"case_no": "\\ud800"', '"rated_at": "0001-01-01T00:00:00+14:00"', '"mono_ms": 4611686018427387904',
                 '"level": ' + "9" * 5000, '"reasons": ' + "[" * 500 + "]" * 500, '"scores": ' + nested(1000)):
        wire = make_rating(terminal_id=creds.terminal_id, clock_synced=False).to_wire()
        key = text.split(":")[0].strip('"')
        payload = json.dumps({k: v for k, v in wire.items() if k != key})[:-1] + ", " + text + "}"
        store.db.execute("INSERT INTO ratings (id, level, window, staff_no, rated_at, payload, digest, recorded_at) "
                         "VALUES (?, 3, 'W01', 'SZ0101', ?, ?, 'x', '2026-12-01T00:00:00+00:00')",
                         [wire["id"], wire["rated_at"], payload])
        poisons.append(wire["id"])
    good += [store.record(make_rating(terminal_id=creds.terminal_id)) for _ in range(3)]
    result = Uploader(store, central.client(creds), batch_size=1000).drain()
    assert (result.delivered, result.dead) == (6, 6)
    assert {row[0] for row in store.db.execute("SELECT id FROM dead_letters")} == set(poisons)
    assert central.count("terminal_id = ?", [creds.terminal_id]) == 6


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/w/%00%00%00%00%00%00%00%00", "/w/abcdefgh%00", "/w/abcdefghijklmno%00",
                                  "/s/%00%00%00%00%00%00%00%00", "/s/abcdefgh%00ij", "/w/%ED%A0%80%ED%A0%80abcdef",
                                  "/s/%F0%9F%98%80%F0%9F%98%80%F0%9F%98%80%F0%9F%98%80", "/w/" + "x" * 5000])
def test_a_citizen_link_of_any_other_shape_is_a_404_before_any_query(hall, path, django_assert_num_queries):
    """Plaque codes and SMS link tokens have one shape (``link_tokens``): anything else never reaches
    the database, where a NUL byte made PostgreSQL refuse the query (a 500)."""
    with django_assert_num_queries(0):
        assert Client(raise_request_exception=False).get(path).status_code == 404


@pytest.mark.django_db
def test_plaque_codes_and_sms_link_tokens_are_what_the_links_accept(hall):
    import re
    from central.ratings import link_tokens, plaques, sms
    from central.ratings.models import Case, SmsMessage, Window
    code = plaques.code_for(Window.objects.get(code="W01"), renew=True)
    assert re.fullmatch(link_tokens.PATTERN, code)
    system = auth.add_system("业务系统")
    from central.ratings import cases
    done = timezone.now() - timedelta(hours=30)
    cases.report(system, {"case_no": "C-LINK", "window": "W01", "mobile": "13800001111", "status": "completed",
                          "accepted_at": (done - timedelta(hours=1)).isoformat(), "completed_at": done.isoformat()})
    assert Case.objects.filter(case_no="C-LINK").exists()
    assert sms.invite() == 1
    assert re.fullmatch(link_tokens.PATTERN, SmsMessage.objects.get(kind="invitation").link_token)


@pytest.mark.django_db
@pytest.mark.parametrize("path", ["/admin/ratings/rating/?window_code=%00", "/admin/ratings/terminalevent/?window_code=%00",
                                  "/admin/ratings/callbacktask/?quarter=%00", "/admin/ratings/rejecteditem/?code=%00",
                                  "/admin/ratings/smsmessage/?kind=%00", "/admin/ratings/case/?q=%00",
                                  "/admin/ratings/rating/?%00=1", "/stats/?by=%00"])
def test_nul_in_any_query_parameter_is_a_400_for_every_page(hall, admin_user, path):
    """PostgreSQL refuses NUL in text: an admin list filter or search holding one was a 500 there."""
    client = Client(raise_request_exception=False)
    client.force_login(admin_user)
    assert client.get(path).status_code == 400
