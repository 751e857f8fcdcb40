"""The technician PIN: how it is stored and how guessing is stopped. Pure: no I/O, time passed in.

A PIN is 4 to 12 ASCII digits (what the pad can type: no full-width ``１２３４``, no ``²²²²``), and not
a weak one: one digit repeated, a run up or down (``1234``, ``9876``, ``7890``), a shorter PIN
repeated (``1212``, ``123123``) or one of the most common PINs. It is kept only as
``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``.

After ``MAX_TRIES`` wrong PINs in a row the menu locks for ``LOCKOUT_S`` seconds, doubling with
each further lockout (up to a day); a right PIN clears the count. The lockout runs on the
monotonic clock, never the wall clock (a clock set forward ends nothing): the guard keeps how
long is left as of a reading of that clock (boot id and seconds), and a restart on another boot
resumes what was left, since the time the machine was off counts for nothing. The state is a
small dict the caller keeps durably.
"""

from __future__ import annotations

import hashlib
import hmac
import re
import secrets
from dataclasses import dataclass

ITERATIONS = 200_000
MAX_TRIES = 5
LOCKOUT_S = 300.0
MAX_LOCKOUT_S = 86_400.0


_DIGITS = re.compile(r"^[0-9]{4,12}$")
COMMON = {"1234", "1111", "0000", "1212", "7777", "1004", "2000", "4444", "2222", "6969", "9999", "3333", "5555",
          "6666", "1122", "1313", "8888", "4321", "2001", "1010", "2580", "0852", "1230", "5683", "0007", "1357",
          "2468", "5201", "5211", "1314", "520520", "521521", "131452", "147258", "159753", "112233", "121212",
          "123321", "654321", "666888", "888888", "168168", "518518", "147852", "741852", "963852", "258369"}


def weakness(pin: str) -> str | None:
    """Why this PIN is too easy to guess, or None."""
    if len(set(pin)) == 1:
        return "one digit repeated"
    steps = {(int(b) - int(a)) % 10 for a, b in zip(pin, pin[1:])}
    if steps in ({1}, {9}):
        return "a run of digits up or down"
    if any(len(pin) % n == 0 and pin == pin[:n] * (len(pin) // n) for n in range(1, len(pin) // 2 + 1)):
        return "a shorter PIN repeated"
    if pin in COMMON:
        return "one of the most common PINs"
    return None


def hash_pin(pin: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    if not _DIGITS.match(pin):
        raise ValueError("a technician PIN is 4 to 12 digits 0-9 (what the keypad can type)")
    weak = weakness(pin)
    if weak:
        raise ValueError(f"that PIN is too easy to guess ({weak}); choose another")
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.pbkdf2_hmac("sha256", pin.encode(), salt, iterations)
    return f"pbkdf2_sha256${iterations}${salt.hex()}${digest.hex()}"


def pin_matches(pin: str, stored: str) -> bool:
    try:
        scheme, iterations, salt, digest = stored.split("$")
        if scheme != "pbkdf2_sha256":
            return False
        candidate = hashlib.pbkdf2_hmac("sha256", pin.encode(), bytes.fromhex(salt), int(iterations))
    except ValueError:
        return False
    return hmac.compare_digest(candidate.hex(), digest)


@dataclass(frozen=True)
class Verdict:
    ok: bool
    locked_for_s: float = 0.0  # > 0: locked, try again after this many seconds
    tries_left: int = MAX_TRIES


class PinGuard:
    def __init__(self, stored_hash: str | None, state: dict | None = None):
        self.stored_hash = stored_hash
        self.state = {"failures": 0, "lockouts": 0, "locked_s": 0.0, "boot": "", "at": 0.0}
        self.state.update({k: v for k, v in (state or {}).items() if k in self.state})

    @property
    def configured(self) -> bool:
        return bool(self.stored_hash)

    def left(self, mono_s: float, boot_id: str) -> float:
        """Seconds of lockout left at this reading of the monotonic clock (and re-anchors to it)."""
        state = self.state
        if state["locked_s"] <= 0:
            return 0.0
        elapsed = max(0.0, mono_s - state["at"]) if state["boot"] == boot_id else 0.0  # off: nothing counts
        state.update(locked_s=max(0.0, state["locked_s"] - elapsed), boot=boot_id, at=mono_s)
        return state["locked_s"]

    def check(self, pin: str, mono_s: float, boot_id: str = "") -> Verdict:
        """One attempt at ``mono_s`` (monotonic seconds) on boot ``boot_id``. While locked, nothing is even compared."""
        left = self.left(mono_s, boot_id)
        if left > 0:
            return Verdict(False, locked_for_s=left, tries_left=0)
        if self.stored_hash and pin_matches(pin, self.stored_hash):
            self.state.update(failures=0, lockouts=0, locked_s=0.0)
            return Verdict(True)
        self.state["failures"] += 1
        if self.state["failures"] >= MAX_TRIES:
            span = min(MAX_LOCKOUT_S, LOCKOUT_S * 2 ** self.state["lockouts"])
            self.state.update(failures=0, lockouts=self.state["lockouts"] + 1, locked_s=span, boot=boot_id, at=mono_s)
            return Verdict(False, locked_for_s=span, tries_left=0)
        return Verdict(False, tries_left=MAX_TRIES - self.state["failures"])
