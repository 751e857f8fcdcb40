"""The technician PIN: how it is stored and how guessing is stopped. Pure: no I/O, time passed in.

A PIN is kept only as ``pbkdf2_sha256$<iterations>$<salt hex>$<hash hex>``. After ``MAX_TRIES``
wrong PINs in a row the menu locks for ``LOCKOUT_S`` seconds, doubling with each further lockout
(up to a day); a right PIN clears the count. The guard's state is a small dict the caller keeps
durably, so a restart does not reset a lockout.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass

ITERATIONS = 200_000
MAX_TRIES = 5
LOCKOUT_S = 300.0
MAX_LOCKOUT_S = 86_400.0


def hash_pin(pin: str, salt: bytes | None = None, iterations: int = ITERATIONS) -> str:
    if not (pin.isdigit() and 4 <= len(pin) <= 12):
        raise ValueError("a technician PIN is 4 to 12 digits")
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
        self.state = {"failures": 0, "lockouts": 0, "locked_until": 0.0, **(state or {})}

    @property
    def configured(self) -> bool:
        return bool(self.stored_hash)

    def check(self, pin: str, now: float) -> Verdict:
        """One attempt at ``now`` (Unix seconds). While locked, nothing is even compared."""
        left = self.state["locked_until"] - now
        if left > 0:
            return Verdict(False, locked_for_s=left, tries_left=0)
        if self.stored_hash and pin_matches(pin, self.stored_hash):
            self.state.update(failures=0, lockouts=0, locked_until=0.0)
            return Verdict(True)
        self.state["failures"] += 1
        if self.state["failures"] >= MAX_TRIES:
            span = min(MAX_LOCKOUT_S, LOCKOUT_S * 2 ** self.state["lockouts"])
            self.state.update(failures=0, lockouts=self.state["lockouts"] + 1, locked_until=now + span)
            return Verdict(False, locked_for_s=span, tries_left=0)
        return Verdict(False, tries_left=MAX_TRIES - self.state["failures"])
