"""The technician PIN: stored only as a slow hash, guessing stopped by lockouts that grow."""

import subprocess

import pytest

from terminal.core.pin import LOCKOUT_S, MAX_TRIES, PinGuard, hash_pin, pin_matches

from conftest import BIN


def test_only_a_salted_hash_is_kept():
    stored = hash_pin("3907", iterations=1000)
    assert "3907" not in stored and stored.startswith("pbkdf2_sha256$1000$")
    assert pin_matches("3907", stored) and not pin_matches("3908", stored)
    assert hash_pin("3907") != hash_pin("3907")  # salted
    assert not pin_matches("3907", "garbage") and not pin_matches("3907", "md5$1$00$00")
    for bad in ("12", "abcd", "1234567890123", ""):
        with pytest.raises(ValueError):
            hash_pin(bad)


def test_wrong_pins_lock_the_menu_and_lockouts_grow():
    guard = PinGuard(hash_pin("3907", iterations=1000))
    for n in range(MAX_TRIES - 1):
        assert guard.check("0000", 100.0, "boot-a").tries_left == MAX_TRIES - 1 - n
    locked = guard.check("0000", 100.0, "boot-a")
    assert not locked.ok and locked.locked_for_s == LOCKOUT_S
    assert not guard.check("3907", 100.0 + LOCKOUT_S - 1, "boot-a").ok  # even the right PIN waits
    assert guard.check("3907", 100.0 + LOCKOUT_S, "boot-a").ok  # then it opens and the count is cleared
    assert (guard.state["failures"], guard.state["lockouts"], guard.state["locked_s"]) == (0, 0, 0.0)
    for _ in range(MAX_TRIES):
        guard.check("1111", 1000.0, "boot-a")
    for _ in range(MAX_TRIES):
        second = guard.check("1111", 1000.0 + LOCKOUT_S, "boot-a")
    assert second.locked_for_s == 2 * LOCKOUT_S


def test_lockout_runs_on_the_monotonic_clock_and_survives_restarts():
    stored = hash_pin("3907", iterations=1000)
    first = PinGuard(stored)
    for _ in range(MAX_TRIES):
        first.check("0000", 50.0, "boot-a")
    again = PinGuard(stored, dict(first.state))  # what the kiosk keeps in its database
    assert again.check("3907", 60.0, "boot-a").locked_for_s == LOCKOUT_S - 10
    # a reboot: the monotonic clock starts again near zero; the time in between counts for nothing
    rebooted = PinGuard(stored, dict(again.state))
    assert rebooted.check("3907", 5.0, "boot-b").locked_for_s == LOCKOUT_S - 10
    assert rebooted.check("3907", 5.0 + LOCKOUT_S - 11, "boot-b").locked_for_s == 1
    assert rebooted.check("3907", 5.0 + LOCKOUT_S - 10, "boot-b").ok


def test_a_wall_clock_jump_ends_no_lockout():
    """The kiosk passes time.monotonic(): setting the date forward a year changes nothing here."""
    import time
    guard = PinGuard(hash_pin("3907", iterations=1000))
    for _ in range(MAX_TRIES):
        guard.check("0000", time.monotonic(), "boot-a")
    assert "locked_until" not in guard.state  # no wall-clock deadline is kept at all
    assert guard.check("3907", time.monotonic(), "boot-a").locked_for_s > LOCKOUT_S - 5


@pytest.mark.parametrize("pin, why", [
    ("0000", "one digit repeated"), ("777777", "one digit repeated"), ("1234", "run"), ("9876", "run"),
    ("7890", "run"), ("123456789012", "run"), ("1212", "repeated"), ("123123", "repeated"), ("2580", "common"),
    ("1314", "common"),
    ("１２３４", "digits 0-9"), ("²²²²", "digits 0-9"), ("١٢٣٤٥", "digits 0-9"), ("12", "4 to 12"), ("abcd", "digits"),
])
def test_weak_and_untypeable_pins_are_refused(pin, why):
    with pytest.raises(ValueError, match=why):
        hash_pin(pin, iterations=1000)


def test_no_pin_set_opens_nothing():
    assert not PinGuard(None).configured and not PinGuard(None).check("", 1.0, "b").ok


def test_set_pin_command_writes_a_private_hash(terminal_config, tmp_path):
    config = terminal_config()
    done = subprocess.run([str(BIN / "rating-terminal"), "--config", str(config), "set-pin"],
                          input="3907\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    path = tmp_path / "data" / "technician-pin"
    assert oct(path.stat().st_mode & 0o777) == "0o600" and pin_matches("3907", path.read_text().strip())
    refused = subprocess.run([str(BIN / "rating-terminal"), "--config", str(config), "set-pin"],
                             input="12\n", capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "4 to 12 digits" in refused.stderr
    weak = subprocess.run([str(BIN / "rating-terminal"), "--config", str(config), "set-pin"],
                          input="1234\n", capture_output=True, text=True, timeout=60)
    assert weak.returncode == 1 and "too easy to guess" in weak.stderr
    assert pin_matches("3907", path.read_text().strip())  # unchanged
