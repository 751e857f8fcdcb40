"""The technician PIN: stored only as a slow hash, guessing stopped by lockouts that grow."""

import subprocess

import pytest

from terminal.core.pin import LOCKOUT_S, MAX_TRIES, PinGuard, hash_pin, pin_matches

from conftest import BIN


def test_only_a_salted_hash_is_kept():
    stored = hash_pin("2468", iterations=1000)
    assert "2468" not in stored and stored.startswith("pbkdf2_sha256$1000$")
    assert pin_matches("2468", stored) and not pin_matches("2469", stored)
    assert hash_pin("2468") != hash_pin("2468")  # salted
    assert not pin_matches("2468", "garbage") and not pin_matches("2468", "md5$1$00$00")
    for bad in ("12", "abcd", "1234567890123", ""):
        with pytest.raises(ValueError):
            hash_pin(bad)


def test_wrong_pins_lock_the_menu_and_lockouts_grow():
    guard = PinGuard(hash_pin("2468", iterations=1000))
    for n in range(MAX_TRIES - 1):
        assert guard.check("0000", 100.0).tries_left == MAX_TRIES - 1 - n
    locked = guard.check("0000", 100.0)
    assert not locked.ok and locked.locked_for_s == LOCKOUT_S
    assert not guard.check("2468", 100.0 + LOCKOUT_S - 1).ok  # even the right PIN waits
    assert guard.check("2468", 100.0 + LOCKOUT_S).ok  # then it opens and the count is cleared
    assert guard.state == {"failures": 0, "lockouts": 0, "locked_until": 0.0}
    for _ in range(MAX_TRIES):
        guard.check("1111", 1000.0)
    for _ in range(MAX_TRIES):
        second = guard.check("1111", 1000.0 + LOCKOUT_S)
    assert second.locked_for_s == 2 * LOCKOUT_S


def test_lockout_survives_a_restart_through_its_state():
    stored = hash_pin("2468", iterations=1000)
    first = PinGuard(stored)
    for _ in range(MAX_TRIES):
        first.check("0000", 50.0)
    again = PinGuard(stored, dict(first.state))  # what the kiosk keeps in its database
    assert again.check("2468", 60.0).locked_for_s > 0


def test_no_pin_set_opens_nothing():
    assert not PinGuard(None).configured and not PinGuard(None).check("", 1.0).ok


def test_set_pin_command_writes_a_private_hash(terminal_config, tmp_path):
    config = terminal_config()
    done = subprocess.run([str(BIN / "rating-terminal"), "--config", str(config), "set-pin"],
                          input="2468\n", capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    path = tmp_path / "data" / "technician-pin"
    assert oct(path.stat().st_mode & 0o777) == "0o600" and pin_matches("2468", path.read_text().strip())
    refused = subprocess.run([str(BIN / "rating-terminal"), "--config", str(config), "set-pin"],
                             input="12\n", capture_output=True, text=True, timeout=60)
    assert refused.returncode == 1 and "4 to 12 digits" in refused.stderr
    assert pin_matches("2468", path.read_text().strip())  # unchanged
