import dataclasses
from datetime import datetime, timedelta, timezone

import pytest
from hypothesis import given, settings, strategies as st

from terminal.core import chain
from terminal.core.channels import Channel, InputDevice
from terminal.core.levels import Level
from terminal.core.rating import FIELDS, InvalidRating, Rating

CST = timezone(timedelta(hours=8))


def make(**overrides) -> Rating:
    fields = dict(level=Level.SATISFIED, device=InputDevice.TOUCHSCREEN,
                  now=datetime(2026, 11, 22, 10, 30, tzinfo=CST), mono_ms=1234, boot_id="b" * 32,
                  clock_synced=True, terminal_id="T-1", window="W01", app_version="0.1.0")
    fields.update(overrides)
    return Rating.create(**fields)


def test_create_fills_channel_from_device_and_makes_unique_ids():
    a, b = make(), make(device=InputDevice.BUTTON_BOX)
    assert a.channel is Channel.HALL_TABLET and b.channel is Channel.HALL_TERMINAL
    assert a.id != b.id and len(a.id) == 32
    assert a.rated_at == "2026-11-22T10:30:00.000+08:00"


def test_wire_round_trip_keeps_every_field_and_the_digest():
    r = make(case_no="A" * 50, item_code="4400", reasons=("服务态度差",), text="等了很久",
             scores={"服务效率": 2}, level=Level.DISSATISFIED, staff_no="SZ0101")
    wire = r.to_wire()
    # unchained, no queue ticket: the first wire version, its digest unchanged
    assert set(wire) == set(FIELDS) - {"chain", "ticket_no"}
    again = Rating.from_wire(wire)
    assert again == r and again.digest() == r.digest()
    chained = dataclasses.replace(r, chain=chain.Link("ab" * 16, 7, "cd" * 32))
    wire = chained.to_wire()
    assert set(wire) == set(FIELDS) - {"ticket_no"}
    assert wire["chain"] == {"v": 1, "epoch": "ab" * 16, "seq": 7, "prev": "cd" * 32}
    ticketed = dataclasses.replace(chained, ticket_no="A012")
    assert set(ticketed.to_wire()) == set(FIELDS) and Rating.from_wire(ticketed.to_wire()) == ticketed
    assert ticketed.digest() != chained.digest()  # the ticket is part of what the rating says
    assert Rating.from_wire(wire) == chained and Rating.from_wire(wire).digest() == chained.digest() != r.digest()


@pytest.mark.parametrize("bad, why", [
    ({"v": 2, "epoch": "ab" * 16, "seq": 1, "prev": "0" * 64}, "version"),
    ({"v": 1, "epoch": "AB" * 16, "seq": 1, "prev": "0" * 64}, "epoch"),
    ({"v": 1, "epoch": "ab" * 16, "seq": 0, "prev": "0" * 64}, "seq"),
    ({"v": 1, "epoch": "ab" * 16, "seq": True, "prev": "0" * 64}, "seq"),
    ({"v": 1, "epoch": "ab" * 16, "seq": 2, "prev": "0" * 64}, "64 zeros"),
    ({"v": 1, "epoch": "ab" * 16, "seq": 1, "prev": "1" * 64}, "64 zeros"),
    ({"v": 1, "epoch": "ab" * 16, "seq": 3, "prev": "cd" * 32, "x": 1}, "exactly"),
    ("1:ab", "object"),
])
def test_a_malformed_chain_is_named(bad, why):
    with pytest.raises(InvalidRating) as caught:
        Rating.from_wire({**make().to_wire(), "chain": bad})
    assert why in caught.value.problems["chain"]


def test_missing_runs_name_the_gaps():
    assert chain.missing([1, 2, 5, 6, 9], after=0, upto=10) == [(3, 4), (7, 8), (10, 10)]
    assert chain.missing([4, 5], after=3, upto=5) == []
    assert chain.describe([(3, 4), (10, 10)]) == "3–4, 10"


def test_digest_changes_with_content():
    r = make()
    other = Rating.from_wire({**r.to_wire(), "level": 1})
    assert other.digest() != r.digest()


def test_every_problem_is_named():
    wire = make().to_wire()
    wire.update(level=7, channel="x", rated_at="yesterday", mono_ms=-1, extra=1)
    del wire["window"]
    with pytest.raises(InvalidRating) as caught:
        Rating.from_wire(wire)
    assert set(caught.value.problems) == {"level", "channel", "rated_at", "mono_ms", "window", "unknown fields"}
    assert "outside 1..5" in caught.value.problems["level"]


@pytest.mark.parametrize("field, value, why", [
    ("case_no", "9" * 51, "at most 50"),
    ("rated_at", "2026-11-22T10:30:00", "UTC offset"),
    ("id", "short", "8-64"),
    ("clock_synced", 1, "true or false"),
    ("level", True, "integer"),
    ("text", "a\x00b", "control characters"),
    ("reasons", "服务态度差", "list"),
])
def test_bad_fields_are_refused_with_a_reason(field, value, why):
    with pytest.raises(InvalidRating) as caught:
        Rating.from_wire({**make().to_wire(), field: value})
    assert why in caught.value.problems[field]


def test_a_bad_rating_without_reason_is_kept_and_flagged():
    assert make(level=Level.VERY_DISSATISFIED).reasons_missing
    assert not make(level=Level.VERY_DISSATISFIED, reasons=("其他",)).reasons_missing
    assert not make(level=Level.BASICALLY_SATISFIED).reasons_missing


def test_naive_time_is_refused():
    with pytest.raises(ValueError):
        make(now=datetime(2026, 1, 1))


json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=8)


@given(st.dictionaries(st.sampled_from(sorted(FIELDS) + ["junk"]), json_values, max_size=25) | json_values)
def test_from_wire_never_raises_anything_but_invalid_rating(data):
    try:
        Rating.from_wire(data)
    except InvalidRating:
        pass


record_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2 ** 53), 2 ** 53) | st.text(),  # text: no lone surrogates
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4), max_leaves=20)


@settings(max_examples=1000)
@given(st.dictionaries(st.text(), record_values, max_size=25))
def test_the_canonical_form_is_what_json_dumps_makes(wire):
    """orjson makes the canonical text (fast); it must be byte for byte the standard library's, which
    terminals of the previous version used for the digests already stored and chained."""
    import json
    from terminal.core.rating import canonical
    text, digest = canonical(wire)
    standard = json.dumps(wire, ensure_ascii=False, sort_keys=True, separators=(",", ":"))
    assert text == standard
    import hashlib
    assert digest == hashlib.sha256(standard.encode()).hexdigest()
