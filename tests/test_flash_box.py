"""The box's firmware as a technician meets it: the simulated board (the real main.py in the
MicroPython unix port, power cycled on every reset) with its REPL on one pseudo-terminal and its
data port on another; maintenance mode, the console fallback, and ``rating-terminal flash-box``
copying, verifying and restarting it through the real mpremote."""

import hashlib
import subprocess

import pytest

from conftest import BIN, wait_for


import firmware
from firmware import boxproto as P
from firmware.cable import Cable
from firmware.sim import SimulatedBox, flash_with
from hardware.buttonbox import ButtonBoxLink
from hardware.flashbox import FlashError, ask_hello, wait_for_repl


@pytest.fixture
def board(tmp_path):
    """A box running firmware 0.0.1 (today's files with an older VERSION), REPL and data cables."""
    flash = flash_with(tmp_path / "flash", "0.0.1")
    console, data = Cable(), Cable()
    boxes = []

    def start(**kwargs):
        box = SimulatedBox(kwargs.pop("data_port", data.box_end), flash, console=console.box_end, **kwargs)
        boxes.append(box)
        return box

    yield start, console, data, flash
    for box in boxes:
        box.close()
    console.close()
    data.close()


def test_flash_box_puts_the_firmware_on_verifies_it_and_sees_it_running(board):
    start, console, data, flash = board
    box = start()
    assert ask_hello(data.host_end, 10)[1] == "0.0.1"  # running the old firmware
    done = subprocess.run([str(BIN / "rating-terminal"), "flash-box", "--repl", console.host_end,
                           "--data", data.host_end, "--timeout", "20"], capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "MAINT sent" in done.stdout and "verified (sha256)" in done.stdout
    assert f"running: firmware {firmware.version()} on board 5e5e0001" in done.stdout
    for name in firmware.FILES:
        assert hashlib.sha256((flash / name).read_bytes()).digest() == \
            hashlib.sha256((firmware.HERE / name).read_bytes()).digest(), name
    assert box.boots == 3  # the old firmware, maintenance mode, the new firmware
    assert not (flash / "maint").exists()  # the maintenance request is used once


def test_flash_box_says_what_to_do_when_the_box_does_not_answer(tmp_path):
    silent = Cable()
    try:
        done = subprocess.run([str(BIN / "rating-terminal"), "flash-box", "--repl", silent.host_end,
                               "--data", str(tmp_path / "no-such-port"), "--timeout", "2"],
                              capture_output=True, text=True, timeout=60)
    finally:
        silent.close()
    assert done.returncode == 1
    assert "no REPL" in done.stderr and "hold keys 1 and 5" in done.stderr


def test_a_file_that_does_not_land_where_it_should_fails_the_sha256_check(board):
    start, console, data, flash = board
    start()
    ask_hello(data.host_end, 10)
    (flash / "box.py").unlink()
    (flash / "box.py").mkdir()  # mpremote copies into the directory; box.py is not there
    from hardware.flashbox import flash as flash_box
    with pytest.raises(FlashError, match="box.py on the board does not match"):
        flash_box(console.host_end, data.host_end, timeout=20, say=lambda line: None)


def test_maint_restarts_the_box_with_its_repl_free_and_no_data_port(board):
    start, console, data, flash = board
    box = start()
    ask_hello(data.host_end, 10)
    with __import__("serial").serial_for_url(data.host_end) as link:
        link.write(P.encode(P.MAINT))
    wait_for_repl(console.host_end, 20)  # the running firmware never answers on its REPL
    assert box.boots == 2
    with pytest.raises(FlashError):
        ask_hello(data.host_end, 2)  # in maintenance the box says nothing on its data port


def test_keys_1_and_5_held_at_power_up_start_maintenance_mode(board):
    start, console, data, flash = board
    start(held="1,5")
    wait_for_repl(console.host_end, 20)
    with pytest.raises(FlashError):
        ask_hello(data.host_end, 2)


def test_one_key_held_at_power_up_is_not_maintenance(board):
    """A key stuck at power-up must not silence the box: only both together mean maintenance."""
    start, console, data, flash = board
    start(held="5")
    assert ask_hello(data.host_end, 10)[1] == "0.0.1"


def test_a_key_held_at_power_up_is_no_press_but_a_stuck_key(board):
    """Every reset or replug of a box with a stuck key (or something resting on one) sent a press
    on its first scan: a rating from noise. A key down from power-up is reported stuck, once."""
    start, console, data, flash = board
    events = []
    host = ButtonBoxLink(data.host_end, lambda kind, key: events.append((kind, key))).start()
    try:
        start(held="3")
        assert wait_for(lambda: ("stuck", 3) in events, 20), (events, host.state())
        assert events == [("stuck", 3)]  # a press at power-up would have come first
    finally:
        host.stop()


def test_without_runtime_usb_the_box_talks_on_its_console(board):
    start, console, data, flash = board
    start(data_port=None)  # no usb.device.cdc on this board
    events = []
    host = ButtonBoxLink(console.host_end, lambda kind, key: events.append((kind, key))).start()
    try:
        assert wait_for(lambda: host.hello is not None, 10) and host.hello[1] == "0.0.1"  # answered the host's ASK
        assert host.state()["connected"]
    finally:
        host.stop()


def test_a_damaged_boxconfig_is_ignored_and_the_box_still_runs(board):
    start, console, data, flash = board
    (flash / "boxconfig.json").write_text("{ not json")
    start()
    assert ask_hello(data.host_end, 10)[1] == "0.0.1"
