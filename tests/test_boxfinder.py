"""Finding the box by what it is: the udev rule's stable names and the pyudev finder, checked
against the properties real devices have (tests/box/udev_samples.py)."""

import sys
import threading
from types import SimpleNamespace

import pytest

from conftest import ROOT

sys.path.insert(0, str(ROOT / "tests" / "box"))
import udev_rules  # noqa: E402
import udev_samples as S  # noqa: E402

from hardware.boxfinder import BoxFinder, find_ports, role  # noqa: E402

RULES = udev_rules.parse((ROOT / "hardware" / "udev" / "70-rating-box.rules").read_text())


@pytest.mark.parametrize("props, name", [
    (S.BOX_DATA, "rating-box"), (S.BOX_REPL, "rating-box-repl"), (S.BOX_IN_MAINTENANCE, "rating-box-repl"),
    (S.OTHER_PICO_DATA, None), (S.SERIAL_ADAPTER, None)])
def test_the_udev_rule_names_the_box_ports_and_nothing_else(props, name):
    assigned = udev_rules.apply(RULES, props)
    assert assigned.get("SYMLINK", [None]) == [name]
    if name:
        assert assigned["GROUP"] == ["dialout"] and assigned["MODE"] == ["0660"]


def test_the_rule_checker_refuses_what_it_cannot_check():
    with pytest.raises(ValueError, match="not understood"):
        udev_rules.parse('SUBSYSTEM=="tty", ATTRS{idVendor}=="2e8a", SYMLINK+="x"')


@pytest.mark.parametrize("props, serial, expected", [
    (S.BOX_DATA, None, "data"), (S.BOX_REPL, None, "repl"), (S.BOX_IN_MAINTENANCE, None, "repl"),
    (S.OTHER_PICO_DATA, None, None), (S.SERIAL_ADAPTER, None, None),
    (S.BOX_DATA, "E6614C311B7E6F35", "data"), (S.BOX_DATA, "e66038b7136a2b2f", None)])
def test_role_of_a_device(props, serial, expected):
    assert role(props, serial) == expected


def device(props, action="add"):
    """What pyudev hands over: the parts of pyudev.Device the finder reads."""
    return SimpleNamespace(subsystem=props["SUBSYSTEM"], properties=props, device_node=props["DEVNAME"],
                           sys_path="/sys" + props["DEVPATH"], action=action)


def test_the_finder_follows_plug_unplug_and_a_device_seen_twice():
    changes = []
    finder = BoxFinder("data", on_change=changes.append)
    finder.seen("add", device(S.BOX_DATA))  # from the monitor, while enumerating
    finder.seen("add", device(S.BOX_DATA))  # and again from the enumeration
    finder.seen("add", device(S.BOX_REPL))
    finder.seen("add", device(S.SERIAL_ADAPTER))
    assert finder.port() == "/dev/ttyACM1" and changes == ["/dev/ttyACM1"]
    finder.seen("remove", device(S.BOX_DATA, "remove"))
    assert finder.port() is None and changes == ["/dev/ttyACM1", None]
    moved = {**S.BOX_DATA, "DEVNAME": "/dev/ttyACM3"}  # plugged into another socket
    finder.seen("add", device(moved))
    assert finder.port() == "/dev/ttyACM3"


def test_the_finder_runs_on_this_machines_real_udev_and_stops_cleanly():
    """No box here: the real enumeration and netlink monitor find none, and stop leaves no thread."""
    before = threading.active_count()
    finder = BoxFinder("data").start()
    try:
        assert finder.port() is None
        assert finder.nodes == {}
    finally:
        finder.stop()
    assert threading.active_count() == before


def test_one_look_for_flash_box_finds_no_box_on_this_machine():
    assert find_ports() == {}  # the real tty devices here are none of them a box
