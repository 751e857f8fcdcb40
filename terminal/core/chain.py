"""The hash chain: every record a terminal makes has its place in one gapless sequence.

Ratings and events share one sequence per terminal. Each record carries, in its wire form, a
``chain`` object (version 1)::

    {"v": 1, "epoch": "<32 hex>", "seq": <1, 2, 3 …>, "prev": "<64 hex>"}

``seq`` is the record's place, ``prev`` the digest (``wire_digest``) of the record at ``seq - 1``
(64 zeros for the first), and ``epoch`` names the chain: a terminal starts a new one when its
database had to be replaced, and then says why in a ``chain_restart`` event of the new chain, or
when it was enrolled again as another terminal id (the new identity's first chain, counted from 1). The
record's own digest covers its ``chain`` object, so no record can be taken out, put back in
another place or changed without the next one, or the central server's count, showing it.

A record without ``chain`` comes from a terminal of the previous wire version: accepted, and
shown as unchained.
"""

from __future__ import annotations

import re
import secrets
from dataclasses import dataclass
from typing import Iterable

from .checks import shown

VERSION = 1
GENESIS = "0" * 64
_EPOCH = re.compile(r"^[0-9a-f]{32}$")
_DIGEST = re.compile(r"^[0-9a-f]{64}$")
MAX_SEQ = 2**53  # exact in every JSON reader
_KEYS = {"v", "epoch", "seq", "prev"}


@dataclass(frozen=True)
class Link:
    """A record's place in the terminal's hash chain: the chain's epoch, the record's number in it,
    and the digest of the record before it."""
    epoch: str
    seq: int
    prev: str

    def to_wire(self) -> dict:
        return {"v": VERSION, "epoch": self.epoch, "seq": self.seq, "prev": self.prev}

    def after(self, digest: str) -> "Link":
        """The place of the record that follows this one, whose digest is ``digest``."""
        return Link(self.epoch, self.seq + 1, digest)

    @classmethod
    def from_wire(cls, v: object) -> "Link":
        """Check an untrusted ``chain`` object (ValueError/TypeError say why)."""
        if type(v) is not dict:
            raise TypeError("must be an object {v, epoch, seq, prev}")
        if len(v) != 4 or v.keys() != _KEYS:
            raise ValueError("must have exactly v, epoch, seq and prev")
        if v["v"] != VERSION or isinstance(v["v"], bool):
            raise ValueError(f"version {shown(v['v'])} is not {VERSION}")
        epoch, seq, prev = v["epoch"], v["seq"], v["prev"]
        if not (isinstance(epoch, str) and _EPOCH.match(epoch)):
            raise ValueError("epoch must be 32 lowercase hex characters")
        if isinstance(seq, bool) or not isinstance(seq, int) or not 1 <= seq <= MAX_SEQ:
            raise ValueError("seq must be an integer from 1")
        if not (isinstance(prev, str) and _DIGEST.match(prev)):
            raise ValueError("prev must be 64 lowercase hex characters")
        if (seq == 1) != (prev == GENESIS):
            raise ValueError("prev is 64 zeros for seq 1, and only for it")
        link = object.__new__(cls)  # checked: no need for the frozen dataclass's slow __init__
        link.__dict__.update(epoch=epoch, seq=seq, prev=prev)
        return link


def reported_head(v: object) -> tuple[str, int] | None:
    """(epoch, seq) of a chain head a heartbeat reports (``Store.chain_head``), checked as a record's
    place is, or None: a head names a chain the central server then expects records of, so an
    epoch no chain can have would only add a chain of nothing to it at every heartbeat."""
    if type(v) is not dict:
        return None
    epoch, seq = v.get("epoch"), v.get("seq")
    if not (isinstance(epoch, str) and _EPOCH.match(epoch)) or type(seq) is not int or not 1 <= seq <= MAX_SEQ:
        return None
    return epoch, seq


def new_epoch() -> str:
    return secrets.token_hex(16)


def start(epoch: str) -> Link:
    """The place of a chain's first record."""
    return Link(epoch, 1, GENESIS)


def missing(present: Iterable[int], after: int, upto: int, limit: int = 50) -> list[tuple[int, int]]:
    """The runs ``(first, last)`` of sequence numbers in ``after+1 .. upto`` absent from ``present``
    (sorted or not), at most ``limit`` runs: what an alert names."""
    runs: list[tuple[int, int]] = []
    expected = after + 1
    for seq in sorted(set(s for s in present if after < s <= upto)):
        if seq > expected:
            runs.append((expected, seq - 1))
            if len(runs) >= limit:
                return runs
        expected = seq + 1
    if expected <= upto and len(runs) < limit:
        runs.append((expected, upto))
    return runs


def describe(runs: list[tuple[int, int]]) -> str:
    """``[(4, 4), (9, 12)]`` -> ``"4, 9–12"``."""
    return ", ".join(str(a) if a == b else f"{a}–{b}" for a, b in runs)
