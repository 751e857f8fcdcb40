"""The real firmware in the real MicroPython binary, over a pseudo-terminal cable, to the real
host driver: one press is one event, bounces and held keys do not multiply, a faulty link loses
and invents nothing."""

import contextlib
import subprocess
import threading
import time
from collections import Counter

import pytest

from conftest import BIN, wait_for


from firmware import version as firmware_version
from firmware.cable import Cable
from firmware.sim import SimulatedBox
from hardware.buttonbox import ButtonBoxLink


@pytest.fixture
def rig(tmp_path):
    cable = Cable()
    events, lock = [], threading.Lock()

    def on_event(kind, key):
        with lock:
            events.append((kind, key))

    host = ButtonBoxLink(cable.host_end, on_event).start()
    firmware = SimulatedBox(cable.box_end, tmp_path / "flash")
    yield cable, firmware, host, events
    firmware.close()
    host.stop()
    cable.close()



def test_hello_then_one_press_is_one_event(rig):
    cable, firmware, host, events = rig
    assert wait_for(lambda: host.hello is not None)
    assert host.hello[1:] == (firmware_version(), "5e5e0001")
    firmware.key("D4")
    time.sleep(0.1)
    firmware.key("U4")
    assert wait_for(lambda: events == [("press", 4)])
    time.sleep(1.0)  # the box would resend an unacknowledged press after 0.15 s
    assert events == [("press", 4)]


def test_a_bounce_burst_is_one_press(rig):
    cable, firmware, host, events = rig
    wait_for(lambda: host.hello is not None)
    firmware.key("B2")  # contact bounce in the simulated pins: down/up every 2 ms, then down
    time.sleep(0.2)
    firmware.key("U2")
    assert wait_for(lambda: len(events) >= 1)
    time.sleep(0.8)
    assert events == [("press", 2)]


def test_a_release_that_bounces_is_no_press(rig):
    cable, firmware, host, events = rig
    wait_for(lambda: host.hello is not None)
    firmware.key("D3")
    assert wait_for(lambda: events == [("press", 3)])
    firmware.key("R3")  # released, then up/down on every loop, ending up
    firmware.key("D3")  # pressed again once the box has the key up and still
    assert wait_for(lambda: events.count(("press", 3)) == 2)
    time.sleep(0.8)
    assert events == [("press", 3), ("press", 3)]


def test_a_held_button_is_one_press_and_one_stuck_report(rig):
    cable, firmware, host, events = rig
    wait_for(lambda: host.hello is not None)
    firmware.key("D5")
    assert wait_for(lambda: ("stuck", 5) in events, seconds=8)
    time.sleep(1.0)
    assert events == [("press", 5), ("stuck", 5)]
    firmware.key("U5")
    time.sleep(0.1)
    firmware.key("D5")
    time.sleep(0.1)
    firmware.key("U5")
    assert wait_for(lambda: events.count(("press", 5)) == 2)  # released and pressed again: a new press


def test_a_thousand_presses_over_a_link_that_drops_duplicates_and_corrupts(tmp_path):
    cable = Cable(seed=7)
    events = []
    host = ButtonBoxLink(cable.host_end, lambda kind, key: events.append((kind, key))).start()
    firmware = SimulatedBox(cable.box_end, tmp_path / "flash", debounce_ms=4)  # quicker fingers than people have: 1,000 in ~20 s
    try:
        _thousand_presses(cable, firmware, host, events)
    finally:
        firmware.close()
        host.stop()
        cable.close()


def _thousand_presses(cable, firmware, host, events):
    wait_for(lambda: host.hello is not None)
    cable.drop, cable.duplicate, cable.corrupt = 0.005, 0.005, 0.005  # each per byte, both ways
    presses = 1000
    for n in range(presses):
        key = 1 + n % 5
        firmware.key(f"D{key}")
        time.sleep(0.01)
        firmware.key(f"U{key}")
        time.sleep(0.01)
    assert wait_for(lambda: len(events) >= presses, seconds=60), (len(events), host.state())
    firmware.key("STATS")
    time.sleep(1.5)
    # each once, none invented (a resent press may overtake a later one: order is not promised)
    assert Counter(events) == Counter(("press", 1 + n % 5) for n in range(presses))
    state = host.state()
    assert state["dropped_frames"] > 0 and state["connected"]


def test_unplug_and_replug_a_hundred_times(tmp_path):
    cable = Cable(host_link=str(tmp_path / "rating-box"))  # the stable name the udev rule makes
    events = []
    host = ButtonBoxLink(cable.host_end, lambda kind, key: events.append((kind, key))).start()
    firmware = SimulatedBox(cable.box_end, tmp_path / "flash")
    try:
        assert wait_for(host.connected.is_set)
        threads_before = threading.active_count()
        for n in range(100):
            cable.unplug()
            assert wait_for(lambda: not host.connected.is_set(), 5), n
            cable.plug()
            assert wait_for(host.connected.is_set, 5), n
        assert threading.active_count() == threads_before  # reconnecting leaks no threads
        firmware.key("D3")
        time.sleep(0.1)
        firmware.key("U3")
        assert wait_for(lambda: events == [("press", 3)])
    finally:
        firmware.close()
        host.stop()
        cable.close()


def test_the_box_in_the_kiosk_invites_and_rates(display, terminal_config, tmp_path):
    """请评价 on the box opens a session, a level key rates it: recorded as channel 5 (other hall
    terminal), device button_box, with the box's LEDs following the session."""
    import sqlite3

    import kiosk
    cable = Cable()
    config = terminal_config(staff_no="SZ0101")
    with config.open("a") as f:
        f.write(f'[box]\nport = "{cable.host_end}"\n')
    driver, result = kiosk.start(config, [
        {"do": "wait_screen", "screen": "attract"},
        {"do": "wait_screen", "screen": "thanks", "timeout": 30},  # the rating screen may last one frame
    ], display, tmp_path)
    firmware = SimulatedBox(cable.box_end, tmp_path / "flash")
    try:
        leds = []
        reader = threading.Thread(target=lambda: leds.extend(iter(firmware.proc.stdout.readline, "")), daemon=True)
        reader.start()
        firmware.key("D6")  # 请评价: resent by the box until the kiosk's link is up and answers
        time.sleep(0.1)
        firmware.key("U6")
        assert wait_for(lambda: "LEDS 11111 1 1 0\n" in leds, 30)  # the kiosk opened the session: prompt lit
        firmware.key("D4")  # 满意
        time.sleep(0.1)
        firmware.key("U4")
        kiosk.finish(driver, result, tmp_path, 60)
    finally:
        firmware.close()
        cable.close()
    with sqlite3.connect(tmp_path / "data" / "terminal.db") as db:
        rows = db.execute("SELECT level, json_extract(payload, '$.channel'), json_extract(payload, '$.device') "
                          "FROM ratings").fetchall()
        kinds = [k for (k,) in db.execute("SELECT kind FROM events ORDER BY seq")]
    assert rows == [(4, 5, "button_box")]
    assert kinds == ["login", "invited"]


def test_headless_terminal_invite_then_a_press_on_the_box(terminal_config, tmp_path):
    """No screen: the invite API opens the session, the simulated box's key rates it."""
    import os
    import signal
    import sqlite3

    import requests

    from conftest import free_port
    cable = Cable()
    port = free_port()
    config = terminal_config(staff_no="SZ0101", audio_device="null")  # ALSA's sink: aplay plays, no speaker
    with config.open("a") as f:
        f.write(f'[box]\nport = "{cable.host_end}"\n[invite]\nlisten = "127.0.0.1:{port}"\n')
    terminal = subprocess.Popen([str(BIN / "rating-terminal"), "--config", str(config), "run", "--headless"],
                                stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
                                env={**os.environ, "DISPLAY": ""})
    firmware = SimulatedBox(cable.box_end, tmp_path / "flash")
    try:
        token_file = tmp_path / "data" / "invite-token"
        assert wait_for(token_file.exists, 20)
        auth = {"Authorization": "Bearer " + token_file.read_text().strip()}
        assert wait_for(lambda: _state(port, auth) == "idle", 20)
        invited = requests.post(f"http://127.0.0.1:{port}/v1/invite", json={"case_no": "C-BOX"}, headers=auth, timeout=5)
        assert invited.status_code == 201
        time.sleep(0.5)
        firmware.key("D5")
        time.sleep(0.1)
        firmware.key("U5")
        session = invited.json()["session_id"]
        assert wait_for(lambda: requests.get(f"http://127.0.0.1:{port}/v1/sessions/{session}", headers=auth,
                                             timeout=5).json()["rated"], 10)
        assert wait_for(lambda: _devices(tmp_path) and _devices(tmp_path)[0]["connected"], 15)
        box_state = _devices(tmp_path)[0]  # for the sync daemon's heartbeat
        assert box_state["device"] == "button_box" and box_state["firmware"] == firmware_version()
        assert box_state["board"] == "5e5e0001"
    finally:
        terminal.send_signal(signal.SIGTERM)
        output, _ = terminal.communicate(timeout=20)
        firmware.close()
        cable.close()
    assert terminal.returncode == 0 and "headless terminal stopped" in output, output[-2000:]
    assert "kivy" not in output.lower()  # no screen, no Kivy
    assert "voice prompt invite" in output and "voice prompt thanks" in output
    assert "voice prompts are silent" not in output
    with sqlite3.connect(tmp_path / "data" / "terminal.db") as db:
        rows = db.execute("SELECT level, json_extract(payload, '$.channel'), json_extract(payload, '$.device'), "
                          "json_extract(payload, '$.case_no') FROM ratings").fetchall()
    assert rows == [(5, 5, "button_box", "C-BOX")]


def _devices(tmp_path):
    import json
    import sqlite3
    with sqlite3.connect(tmp_path / "data" / "terminal.db") as db:
        row = db.execute("SELECT value FROM sync_state WHERE key = 'devices'").fetchone()
    return json.loads(row[0]) if row else None


def _state(port, auth):
    import requests
    try:
        return requests.get(f"http://127.0.0.1:{port}/v1/state", headers=auth, timeout=2).json()["state"]
    except requests.ConnectionError:
        return None


def test_a_press_queued_while_the_host_was_down_is_not_taken_as_a_new_one(tmp_path):
    """The box keeps an unacknowledged press and sends it again until heard: a host that restarts
    took a press made seconds before as a new press, in walk-up mode a rating by whoever had
    left. A press now carries its age; the host drops one older than MAX_PRESS_AGE_MS (counted
    ``stale_presses``) and takes nothing from before its own link's HELLO (frames left in a buffer
    carry the age they had when they were first sent)."""
    from hardware import buttonbox
    cable = Cable()
    events = []
    first = ButtonBoxLink(cable.host_end, lambda kind, key: events.append((kind, key))).start()
    firmware = SimulatedBox(cable.box_end, tmp_path / "flash")
    second = None
    try:
        assert wait_for(lambda: first.hello is not None)
        first.stop()  # the terminal restarts
        firmware.key("D2")
        time.sleep(0.1)
        firmware.key("U2")  # pressed while nobody listens: the box keeps it, sending it again
        time.sleep(buttonbox.MAX_PRESS_AGE_MS / 1000 + 1.0)
        second = ButtonBoxLink(cable.host_end, lambda kind, key: events.append((kind, key))).start()
        assert wait_for(lambda: second.state()["stale_presses"] == 1), second.state()
        time.sleep(0.5)  # acknowledged: the box stops sending it
        firmware.key("D4")
        time.sleep(0.1)
        firmware.key("U4")
        assert wait_for(lambda: events == [("press", 4)])
        time.sleep(0.5)
        assert events == [("press", 4)] and second.state()["stale_presses"] == 1
    finally:
        firmware.close()
        if second:
            second.stop()
        cable.close()


def _read_frames(fd, until, seconds=10.0):
    """Bytes from a pseudo-terminal's master until ``until(raw bytes)`` holds (or time is up)."""
    import os
    import select
    data = bytearray()
    deadline = time.monotonic() + seconds
    while not until(bytes(data)) and time.monotonic() < deadline:
        if select.select([fd], [], [], 0.05)[0]:
            data += os.read(fd, 4096)
    return bytes(data)


@contextlib.contextmanager
def _host_on_pty(on_event=lambda kind, key: None):
    """A started ButtonBoxLink on a raw pseudo-terminal: (the box's end, the host), both closed after."""
    import os
    import tty
    master, slave = os.openpty()
    tty.setraw(master)
    tty.setraw(slave)
    host = ButtonBoxLink(os.ttyname(slave), on_event).start()
    try:
        yield master, host
    finally:
        host.stop()
        os.close(master)
        os.close(slave)


def test_a_port_that_never_says_hello_is_sent_nothing_but_ask_and_is_logged(monkeypatch, caplog):
    """The box's REPL port configured by mistake (ttyACM0; the data port is ttyACM1): the host sent
    it its LED frames, and LED_OFF's bytes hold 0x03, Ctrl-C to a MicroPython REPL, which stopped
    the firmware. Until a HELLO the host sends nothing but ASK, and says the port is not a box."""
    import logging
    import os
    from types import SimpleNamespace

    from firmware import boxproto as P
    from hardware import buttonbox
    clock = [1000.0]
    monkeypatch.setattr(buttonbox, "time", SimpleNamespace(monotonic=lambda: clock[0]))
    caplog.set_level(logging.WARNING, logger="rating-terminal.box")
    with _host_on_pty() as (master, host):
        assert _read_frames(master, lambda got: got.endswith(P.encode(P.ASK))) == P.encode(P.ASK)
        for mode in (P.LED_OFF, P.LED_PROMPT, P.LED_THANKS, P.LED_PAUSED, P.LED_ERROR):
            assert host.set_led(mode) is False
        os.write(master, P.encode(P.ASK) + P.encode(P.LED, P.LED_OFF))  # a modem echoes the host's frames
        clock[0] += buttonbox.NO_HELLO_S
        assert wait_for(lambda: "said HELLO" in caplog.text)
        assert _read_frames(master, lambda got: False, seconds=0.3) == b""  # no LED, no answer to the echo
        assert host.state()["connected"] and host.state()["firmware"] is None


def test_a_box_replugged_shows_the_sessions_leds_again(tmp_path):
    """A box comes up dark, and an LED mode asked for while it was away went nowhere: the mode
    the terminal asked for last is sent with each HELLO."""
    from firmware import boxproto as P
    cable = Cable(host_link=str(tmp_path / "rating-box"))
    host = ButtonBoxLink(cable.host_end, lambda kind, key: None).start()
    firmware = SimulatedBox(cable.box_end, tmp_path / "flash")
    again = None
    try:
        assert wait_for(lambda: host.hello is not None)
        cable.unplug()  # pulled out: the box is off, the host's port gone
        firmware.close()
        assert wait_for(lambda: not host.connected.is_set())
        host.set_led(P.LED_PROMPT)  # meanwhile the terminal invites
        again = SimulatedBox(cable.box_end, tmp_path / "flash")
        leds = []
        threading.Thread(target=lambda: leds.extend(iter(again.proc.stdout.readline, "")), daemon=True).start()
        cable.plug()
        assert wait_for(lambda: "LEDS 11111 1 1 0\n" in leds), leds  # every key lit: please rate
    finally:
        for box in (firmware, again):
            if box:
                box.close()
        host.stop()
        cable.close()


def test_a_press_of_another_boot_than_the_hello_is_no_press(tmp_path):
    """A box's queue dies with its boot: a press of an earlier boot arriving after this boot's
    HELLO is an old frame replayed (its seq long forgotten), and was taken as a new press. It gets
    an ASK, no ACK, and no event; the HELLO'd boot's presses count as before."""
    import os

    from firmware import boxproto as P
    events = []
    with _host_on_pty(lambda kind, key: events.append((kind, key))) as (master, host):
        _read_frames(master, lambda got: got.endswith(P.encode(P.ASK)))
        os.write(master, P.encode(P.HELLO, 2, firmware_version(), "5e5e0001"))
        assert wait_for(lambda: host.hello is not None)
        os.write(master, P.encode(P.PRESS, 1, 9, 1, 0))  # boot 1's press 9, as it was first sent
        assert _read_frames(master, lambda got: got.endswith(P.encode(P.ASK))) == P.encode(P.ASK)
        os.write(master, P.encode(P.PRESS, 2, 1, 5, 0))
        assert _read_frames(master, lambda got: got.endswith(P.encode(P.ACK, 2, 1))) == P.encode(P.ACK, 2, 1)
        # the link writes the ACK, then hands on the press: wait for it (boot 1's would come first)
        assert wait_for(lambda: events == [("press", 5)]), events


@pytest.mark.parametrize("config", ['[2, 3, 4, 5, 6]', '{"debounce_ms": "30"}', '{"buttons": [2, 3, 4]}',
                                    '{"watchdog_ms": 10000}', '{"staff_key": [7]}'])
def test_a_boxconfig_that_is_json_but_not_settings_is_ignored(tmp_path, config):
    """JSON the box cannot run on stopped the firmware at power-up (a list, a watchdog the RP2040
    refuses), or at the first press ("30" for a number), or took keys away (three buttons): the
    window had no box. Such a file is ignored, as a damaged one is, and the box runs as built."""
    cable = Cable()
    events = []
    host = ButtonBoxLink(cable.host_end, lambda kind, key: events.append((kind, key))).start()
    (tmp_path / "flash").mkdir()
    (tmp_path / "flash" / "boxconfig.json").write_text(config)
    firmware = None
    try:
        firmware = SimulatedBox(cable.box_end, tmp_path / "flash")
        assert wait_for(lambda: host.hello is not None)
        firmware.key("D5")
        firmware.key("U5")
        assert wait_for(lambda: events == [("press", 5)]), events
    finally:
        if firmware:
            firmware.close()
        host.stop()
        cable.close()


def test_a_hello_storm_is_one_line_in_the_journal_and_one_led_frame(caplog):
    """Each HELLO was logged (and, since the LED mode goes with each HELLO, answered): a box or a
    device repeating it floods the journal, whose rate limit then drops the lines that matter.
    The same boot's HELLO again is nothing new: not logged, not answered."""
    import logging
    import os

    from firmware import boxproto as P
    caplog.set_level(logging.INFO, logger="rating-terminal.box")
    with _host_on_pty() as (master, host):
        _read_frames(master, lambda got: got.endswith(P.encode(P.ASK)))
        host.set_led(P.LED_PROMPT)
        hello = P.encode(P.HELLO, 3, firmware_version(), "5e5e0001")
        os.write(master, hello * 500 + P.encode(P.PRESS, 3, 1, 4, 0))  # its ACK: the storm is behind
        ack = P.encode(P.ACK, 3, 1)
        assert _read_frames(master, lambda got: got.endswith(ack)) == P.encode(P.LED, P.LED_PROMPT) + ack
        assert caplog.text.count("firmware " + firmware_version()) == 1
