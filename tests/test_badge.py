"""Badge readers: keyboard-wedge keystrokes as evdev delivers them, and a serial reader over a
pseudo-terminal, driving a real window session: unknown, repeated and switching badges."""

import os

from evdev import InputEvent, ecodes

from hardware.badge import SerialBadgeReader, SerialDecoder, WedgeDecoder
from terminal.core.session import State

from conftest import wait_for


def keystrokes(text: str, start: float = 1000.0, gap: float = 0.008, enter: bool = True) -> list:
    """What a wedge reader's input device yields: key down, key up, SYN, per character."""
    events, t = [], start
    for ch in text + ("\n" if enter else ""):
        code = ecodes.KEY_ENTER if ch == "\n" else getattr(ecodes, f"KEY_{ch.upper()}")
        shifted = ch.isalpha() and ch.isupper()
        sec, usec = int(t), int((t % 1) * 1_000_000)
        if shifted:
            events.append(InputEvent(sec, usec, ecodes.EV_KEY, ecodes.KEY_LEFTSHIFT, 1))
        events += [InputEvent(sec, usec, ecodes.EV_MSC, ecodes.MSC_SCAN, 458791),
                   InputEvent(sec, usec, ecodes.EV_KEY, code, 1),
                   InputEvent(sec, usec, ecodes.EV_SYN, ecodes.SYN_REPORT, 0),
                   InputEvent(sec, usec + 2000, ecodes.EV_KEY, code, 0)]
        if shifted:
            events.append(InputEvent(sec, usec + 2000, ecodes.EV_KEY, ecodes.KEY_LEFTSHIFT, 0))
        t += gap
    return events


def decode(events) -> list[str]:
    decoder = WedgeDecoder()
    return [n for n in (decoder.feed(e) for e in events) if n]


def test_wedge_reader_keystrokes_become_a_badge_number():
    assert decode(keystrokes("0004521873")) == ["0004521873"]
    assert decode(keystrokes("0004521873") + keystrokes("0004521874", start=1010)) == ["0004521873", "0004521874"]
    assert decode(keystrokes("AB12cd")) == ["AB12cd"]


def test_wedge_reader_ignores_people_typing_noise_and_nonsense():
    assert decode(keystrokes("0004521873", gap=0.5)) == []  # a person, not a reader
    assert decode(keystrokes("12")) == []  # too short to be a badge
    assert decode(keystrokes("1" * 40)) == []  # too long
    assert decode(keystrokes("", enter=True)) == []  # a lone Enter
    half = keystrokes("00045", enter=False)
    assert decode(half + keystrokes("0004521873", start=1005)) == ["0004521873"]  # the cut-off half is dropped
    repeat = keystrokes("0004521873")
    repeat.insert(2, InputEvent(1000, 1000, ecodes.EV_KEY, ecodes.KEY_0, 2))  # auto-repeat is not a key
    assert decode(repeat) == ["0004521873"]


def test_serial_frames_in_any_chunks_and_garbage_dropped():
    d = SerialDecoder()
    assert d.feed(b"\x02000452") == [] and d.feed(b"1873\x03") == ["0004521873"]
    assert d.feed(b"0004521874\r\n") == ["0004521874"]
    assert d.feed(b"\x02\xff\xfe\x9912\x03") == []  # garbled
    assert d.feed(b"\x02" + b"7" * 200 + b"\x03") == []  # noise with no end
    assert d.feed(b"\x0200045\x020004521873\x03") == ["0004521873"]  # a new start abandons the cut frame



def reader_clock(monkeypatch, clock) -> None:
    """The readers' clock, as the test sets it: how long a card lay on the reader is then the
    test's to say, not the machine's load."""
    from types import SimpleNamespace

    from hardware import badge
    monkeypatch.setattr(badge, "time", SimpleNamespace(monotonic=clock))


def test_serial_reader_on_a_pty_logs_in_out_and_switches(window, monkeypatch):
    import itertools
    from hardware import badge
    reader_clock(monkeypatch, itertools.count(0.0, 10 * badge.REREAD_S).__next__)  # each read a card shown anew
    master, slave = os.openpty()
    seen = []
    reader = SerialBadgeReader(os.ttyname(slave), lambda n: seen.append(window.swipe(n))).start()
    assert reader.opened.wait(5)  # opening a port flushes what was sent before
    try:
        os.write(master, b"\x029999999999\x03")  # unknown badge: a message, nothing changes
        assert wait_for(lambda: len(seen) == 1, 5) and not seen[0].known and window.state is State.PAUSED
        os.write(master, b"\x02\x00\xff12\x03")  # garbled: not even a swipe
        os.write(master, b"\x020004521873\x03")
        assert wait_for(lambda: len(seen) == 2, 5) and window.staff.name == "李明华"
        os.write(master, b"\x020004521874\x03")  # another staff member: switch
        assert wait_for(lambda: len(seen) == 3, 5) and window.staff.name == "王晓燕"
        os.write(master, b"0004521874\r\n")  # the same badge again: logout
        assert wait_for(lambda: len(seen) == 4, 5) and window.state is State.PAUSED
    finally:
        reader.stop()
        reader.thread.join(5)
        os.close(master)
        os.close(slave)
    kinds = [k for (k,) in window.store.db.execute("SELECT kind FROM events ORDER BY seq")]
    assert kinds == ["login", "logout", "login", "logout"]


def test_a_card_left_on_the_reader_logs_in_once(window, monkeypatch):
    """Readers read a card again and again while it lies on them (serial ones stream its number,
    wedges type it anew): each read was a swipe, and the same badge again logs out, so a card
    held a moment too long logged its owner in and out and in. The same number read again soon
    after its last read is that card still there; lifted and shown again, it logs out."""
    from hardware import badge
    clock = [100.0]
    reader_clock(monkeypatch, lambda: clock[0])
    master, slave = os.openpty()
    seen = []
    reader = SerialBadgeReader(os.ttyname(slave), lambda n: seen.append(window.swipe(n))).start()
    assert reader.opened.wait(5)

    def read_at(when: float) -> None:  # the card read at ``when``, and the reader done with it
        clock[0] = when
        os.write(master, b"\x020004521873\x03")
        assert wait_for(lambda: reader.card.last[1] == when, 5)
    try:
        for n in range(6):  # the card on the reader for 0.5 s, read every 0.1 s
            read_at(100.0 + n / 10)
        assert len(seen) == 1 and window.staff.name == "李明华"
        read_at(100.5 + badge.REREAD_S)  # lifted, and shown again: logout
        assert wait_for(lambda: len(seen) == 2, 5) and window.state is State.PAUSED
    finally:
        reader.stop()
        reader.thread.join(5)
        os.close(master)
        os.close(slave)


def test_one_card_read_by_both_of_a_windows_readers_is_one_swipe(window, monkeypatch, tmp_path):
    """A reader with both a keyboard and a serial interface (or two side by side) reads one card
    on both: each reader kept its own memory of the card last read, so the second read was a
    second swipe and logged its owner out. The readers of a window share one (start_readers)."""
    from hardware import badge
    clock = [100.0]
    reader_clock(monkeypatch, lambda: clock[0])
    ports = [os.openpty() for _ in range(2)]
    seen = []
    readers = badge.start_readers(str(tmp_path / "event-unplugged"), os.ttyname(ports[0][1]), 9600,
                                  lambda n: seen.append(window.swipe(n)))
    wedge, card = readers.pop(0), readers[0].card
    assert wedge.card is card  # start_readers gives the window's readers one memory
    readers.append(SerialBadgeReader(os.ttyname(ports[1][1]), lambda n: seen.append(window.swipe(n)),
                                     card=card).start())
    try:
        assert all(reader.opened.wait(5) for reader in readers)
        os.write(ports[0][0], b"\x020004521873\x03")
        assert wait_for(lambda: len(seen) == 1, 5) and window.staff.name == "李明华"
        clock[0] = 100.2
        os.write(ports[1][0], b"\x020004521873\x03")  # the same card, through the other interface
        assert wait_for(lambda: card.last[1] == 100.2, 5)
        assert len(seen) == 1 and window.staff.name == "李明华"  # still logged in
    finally:
        for reader in readers + [wedge]:
            reader.stop()
            reader.thread.join(5)
        for master, slave in ports:
            os.close(master)
            os.close(slave)
