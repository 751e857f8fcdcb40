"""The codec's test cases, written to run under both MicroPython and CPython.

    micropython tests/box/codec_cases.py      (from the repository root)
    pytest tests/test_boxproto.py             (runs every case_* here under CPython, and this
                                               file under the real micropython binary)
"""

import sys

if "firmware" not in sys.path:
    sys.path.append("firmware")

import boxproto as P  # noqa: E402


def lcg(seed):
    """A tiny deterministic random source that both runtimes agree on."""
    state = seed
    while True:
        state = (state * 1103515245 + 12345) & 0x7FFFFFFF
        yield state


def case_every_message_round_trips():
    samples = [(P.HELLO, (0xDEADBEEF, "1.0.0", "e6614103e7452d2f")), (P.PRESS, (7, 1, 5, 0)),
               (P.STUCK, (7, 65535, 3, 65535)), (P.HEARTBEAT, (7, 123456, 2)), (P.ACK, (0, 0)),
               (P.LED, (P.LED_THANKS,)), (P.MAINT, ()), (P.ASK, ())]
    for kind, fields in samples:
        frame = P.encode(kind, *fields)
        assert frame[-1] == 0 and 0 not in frame[:-1], kind
        assert P.Decoder().feed(frame) == [(kind, fields)], kind


def case_crc_is_ccitt_false():
    assert P.crc16(b"123456789") == 0x29B1


def case_cobs_round_trips_zero_runs_and_long_blocks():
    for data in (b"", b"\x00", b"\x00\x00", b"\x11\x00\x22", bytes(range(1, 255)), bytes(range(256)) * 2,
                 b"\x01" * 254, b"\x01" * 255, b"\x01" * 508):
        encoded = P.cobs_encode(data)
        assert 0 not in encoded
        assert P.cobs_decode(encoded) == data, len(data)


def case_chunks_of_any_size_give_the_same_messages():
    stream = P.encode(P.PRESS, 9, 1, 4, 0) + P.encode(P.HEARTBEAT, 9, 500, 0) + P.encode(P.PRESS, 9, 2, 1, 150)
    for size in (1, 2, 3, 7, 64):
        d, got = P.Decoder(), []
        for i in range(0, len(stream), size):
            got += d.feed(stream[i:i + size])
        assert got == [(P.PRESS, (9, 1, 4, 0)), (P.HEARTBEAT, (9, 500, 0)), (P.PRESS, (9, 2, 1, 150))], size


def case_garbage_before_between_and_inside_is_dropped_and_the_stream_resyncs():
    d = P.Decoder()
    good = P.encode(P.PRESS, 1, 10, 2, 7)
    assert d.feed(b"\xff\xfe garbage \x13") == []
    assert d.feed(b"\x00" + good) == [(P.PRESS, (1, 10, 2, 7))]
    broken = bytearray(good)
    broken[3] ^= 0x40  # one flipped bit: the CRC says no
    assert d.feed(bytes(broken)) == [] and d.dropped >= 1
    assert d.feed(b"\x05" * 500 + b"\x00" + good) == [(P.PRESS, (1, 10, 2, 7))]  # over-long noise


def case_valid_crc_but_wrong_shape_is_not_a_press():
    for raw in (bytes([P.PRESS, 0, 0, 0, 1, 0, 1, 9]),  # key 9 is no key
                bytes([P.PRESS, 0, 0, 0, 1, 0, 1]),  # a byte short
                bytes([0x7F, 1, 2, 3])):  # unknown type
        frame = P.cobs_encode(raw + bytes([P.crc16(raw) >> 8, P.crc16(raw) & 0xFF])) + b"\x00"
        assert P.Decoder().feed(frame) == []


def case_a_press_says_its_age_saturating_and_older_firmware_s_ageless_press_is_read_without_one():
    assert P.Decoder().feed(P.encode(P.PRESS, 7, 3, 2, 10 ** 6)) == [(P.PRESS, (7, 3, 2, P.MAX_AGE_MS))]
    raw = bytes([P.PRESS, 0, 0, 0, 7, 0, 3, 2])  # boot 7, seq 3, key 2, as firmware 0.2.0 sent it
    frame = P.cobs_encode(raw + bytes([P.crc16(raw) >> 8, P.crc16(raw) & 0xFF])) + b"\x00"
    assert P.Decoder().feed(frame) == [(P.PRESS, (7, 3, 2, None))]


def hello_frame(version, board):
    """A HELLO frame as a box might send it, whatever its text: what ``encode`` refuses to make."""
    raw = bytes([P.HELLO]) + bytes([0, 0, 0, 7, len(version)]) + version + board
    return P.cobs_encode(raw + bytes([P.crc16(raw) >> 8, P.crc16(raw) & 0xFF])) + b"\x00"


def case_hello_text_is_printable_ascii_within_its_bound_or_the_frame_is_dropped():
    # a control character would reach the host's journal as it is, and its heartbeat, which the
    # central server refuses whole (the terminal then shows offline)
    assert P.Decoder().feed(hello_frame(b"1.2.0", b"RP2040")) == [(P.HELLO, (7, "1.2.0", "RP2040"))]
    for version, board in ((b"1.2.0", b"RP2040\x1b[2J"), (b"1.2.0\n", b"RP2040"), (b"1.2.0", b"RP\x7f"),
                           (b"1.2.0", "板".encode()), (b"1.2.0", b"\xff"), (b"1" * 33, b"RP2040"),
                           (b"1.2.0", b"R" * 33)):
        d = P.Decoder()
        assert d.feed(hello_frame(version, board)) == [] and d.dropped == 1, (version, board)
    for version, board in (("1.2.0", "RP2040\x1b[2J"), ("1.2.0", "板"), ("1" * 33, "RP2040")):
        try:
            P.encode(P.HELLO, 7, version, board)
        except ValueError:
            continue
        raise AssertionError("encode made a HELLO the host drops: %r %r" % (version, board))


def case_random_noise_never_becomes_a_message():
    rnd = lcg(42)
    d = P.Decoder()
    for _ in range(300):
        chunk = bytes(next(rnd) & 0xFF for _ in range(next(rnd) % 40))
        for kind, fields in d.feed(chunk):
            raise AssertionError("noise made a message: %r %r" % (kind, fields))


def run_all():
    names = [n for n in sorted(globals()) if n.startswith("case_")]
    for name in names:
        globals()[name]()
    print("OK", len(names), "cases on", sys.implementation.name)


if __name__ == "__main__":
    run_all()
