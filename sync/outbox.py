"""The outbox discipline: one way of sending records upward, from a terminal to its central server
(``sync.daemon``) and from the central server to each provincial platform (``central.ratings.upward``).

A record leaves ``pending`` only on the receiver's per-item word, in an answer it could verify:
``accepted`` or ``duplicate`` make it delivered, ``rejected`` makes it a dead letter with the
reason. Anything else (no answer, an error status, an answer that is not the interface's) is a
``TransientError``: the whole batch stays pending and waits with backoff. A batch refused as a whole
(``BatchRefused``) is split until the one record the receiver objects to is alone. Ids make every
resend harmless.

``Uploader`` needs two things, each a thin adapter of its side:
- a *store* with ``pending(limit, max_bytes, table, after)`` (records with ``id``, ``payload`` and
  ``seq``, oldest first), ``mark_delivered(ids, table)``, ``mark_dead(id, status, reason, table)``
  and ``note_attempt(ids, error, table)``: the terminal's SQLite ``Store``, or central's
  ``UpwardItem`` table;
- a *client* with ``batch_body(payloads, clock, outbox)`` and ``upload(payloads, clock, outbox,
  body)`` returning ``({id: ItemAck}, bytes sent)`` or raising one of the two failures below: the
  terminal's ``CentralClient``, or a platform's ``PlatformClient``.
"""

from __future__ import annotations

import concurrent.futures
import logging
import time
from dataclasses import dataclass

from terminal.clock import SystemClock

log = logging.getLogger("rating-sync")
MAX_BATCH_BYTES = 1_000_000


class TransientError(RuntimeError):
    """Try the same request again later; ``retry_after`` is the receiver's wish, if it said one."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.retry_after, self.status, self.code = retry_after, status, code


class BatchRefused(RuntimeError):
    """The receiver refused a batch as a whole (too large, or a body it cannot read): sending
    it again unchanged would never work, so the uploader splits it to find what it objects to."""

    def __init__(self, message: str, status: int, code: str):
        super().__init__(message)
        self.status, self.code = status, code


@dataclass(frozen=True)
class Outbox:
    """One kind of record the terminal sends: its table in the terminal database, its endpoint,
    and the key of the batch in the request body."""

    table: str
    path: str
    key: str


RATINGS = Outbox("ratings", "/api/v1/ratings", "ratings")
EVENTS = Outbox("events", "/api/v1/events", "events")


@dataclass(frozen=True)
class ItemAck:
    id: str
    status: str
    reason: str = ""


@dataclass
class DrainResult:
    delivered: int = 0
    dead: int = 0
    batches: int = 0
    bytes_sent: int = 0
    events: int = 0  # terminal events delivered (logins, session events, misuse), beside the ratings
    more: bool = False  # stopped at its deadline with ratings still pending


class Uploader:
    """Sends an outbox oldest first (``store`` and ``client``: see the module's docstring). A batch
    the receiver refuses as a whole is split in halves until the one record it objects to is alone,
    and that one becomes a dead letter: one bad row never blocks the queue behind it. After each
    good batch the size grows back.

    While the receiver takes one batch in, the next is read and encoded, and goes the moment the
    answer comes (``pipeline`` 2): the sender's work and the receiver's overlap instead of waiting
    on each other, and one batch at a time is on the wire, in order. After any failure the queue is
    read again from its oldest pending record; ids make a resend harmless."""

    def __init__(self, store, client, batch_size: int = 1000,
                 clock: SystemClock | None = None, outbox: Outbox = RATINGS, pipeline: int = 2):
        self.store, self.client, self.outbox = store, client, outbox
        self.batch_size = self.limit = batch_size
        self.clock = clock or SystemClock()
        self.pipeline = pipeline

    def send_one_batch(self, result: DrainResult) -> int:
        """Send the oldest pending batch; return how many ratings it held (0: queue empty)."""
        batch = self.store.pending(self.limit, MAX_BATCH_BYTES, self.outbox.table)
        if not batch:
            return 0
        self._settle(batch, self._outcome(*self._made(batch)), result)
        return len(batch)

    def _made(self, batch: list) -> tuple[dict[str, str], dict, bytes]:
        """The batch as it goes on the wire, made ahead of its turn to be sent: its payloads by id,
        the clock it carries and its compressed body."""
        payloads = {p.id: p.payload for p in batch}
        clock = {"boot_id": self.clock.boot_id(), "mono_ms": self.clock.monotonic_ms()}
        return payloads, clock, self.client.batch_body(payloads, clock, self.outbox)

    def _outcome(self, payloads: dict[str, str], clock: dict, body: bytes):
        """The HTTP part alone (it may run on another thread): acknowledgements and bytes sent, or the
        failure as a value."""
        try:
            return self.client.upload(payloads, clock, self.outbox, body)
        except (BatchRefused, TransientError) as exc:
            return exc

    def _settle(self, batch: list, outcome, result: DrainResult) -> None:
        """Record what the receiver said of one batch (on this thread: the store's). Raises
        TransientError after noting it, when the batch must be sent again later."""
        table = self.outbox.table
        ids = [p.id for p in batch]
        if isinstance(outcome, BatchRefused):
            if len(batch) == 1:
                self.store.mark_dead(ids[0], outcome.status, str(outcome), table)
                log.error("%s %s refused by the receiver, kept as a dead letter: %s", table, ids[0], outcome)
                result.dead += 1
            else:
                self.limit = max(1, len(batch) // 2)
                log.warning("%s; trying batches of %d", outcome, self.limit)
            return
        if isinstance(outcome, TransientError):
            self.store.note_attempt(ids, str(outcome), table)
            raise outcome
        acks, sent_bytes = outcome
        delivered = [i for i, a in acks.items() if a.status in ("accepted", "duplicate")]
        self.store.mark_delivered(delivered, table)
        for ack in acks.values():
            if ack.status == "rejected":
                self.store.mark_dead(ack.id, 200, ack.reason or "rejected without reason", table)
                log.error("%s %s rejected by the receiver, kept as a dead letter: %s", table, ack.id, ack.reason)
        unanswered = [i for i in ids if i not in acks]
        if unanswered:
            self.store.note_attempt(unanswered, "no acknowledgement in the receiver's answer", table)
            raise TransientError(f"{len(unanswered)} of {len(ids)} records got no acknowledgement")
        result.delivered += len(delivered)
        result.dead += len(acks) - len(delivered)
        result.batches += 1
        self.limit = min(self.batch_size, self.limit * 2)
        result.bytes_sent += sent_bytes

    def drain(self, until: float | None = None) -> DrainResult:
        """Send batches until the queue is empty, or no new batch after ``until`` (monotonic): a
        week's backlog must not hold up the heartbeat. TransientError propagates to the caller."""
        result = DrainResult()

        def due() -> bool:
            result.more = until is not None and time.monotonic() >= until
            return result.more
        if self.pipeline < 2:
            while not due() and self.send_one_batch(result):
                pass
            return result
        with concurrent.futures.ThreadPoolExecutor(1, thread_name_prefix="upload") as pool:
            waiting = None  # (batch, future): the batch on its way
            after = 0
            while True:
                batch = [] if due() else self.store.pending(self.limit, MAX_BATCH_BYTES, self.outbox.table, after)
                # compressed here, while the batch before is on its way: the upload thread only sends
                sent = pool.submit(self._outcome, *self._made(batch)) if batch else None
                if waiting is not None:
                    limit = self.limit
                    try:
                        self._settle(waiting[0], waiting[1].result(), result)
                    except TransientError:
                        if sent is not None:  # the one behind it may have got through: keep what it says
                            self._settle_quietly(batch, sent.result(), result)
                        raise
                    if self.limit < limit:  # refused as a whole: read again from the oldest, smaller
                        if sent is not None:
                            self._settle_quietly(batch, sent.result(), result)
                        waiting, after = None, 0
                        continue
                if batch is None or not batch:
                    return result
                waiting, after = (batch, sent), batch[-1].seq

    def _settle_quietly(self, batch: list, outcome, result: DrainResult) -> None:
        """Keep what a batch sent alongside a failed one achieved; its own failure just waits for a resend.
        So do its refusals: the receiver may have refused a record for what the failed batch did not
        bring (an update of a record whose first version was in it), and a resend in order is harmless."""
        limit = self.limit
        try:
            if isinstance(outcome, tuple):
                acks, sent_bytes = outcome
                outcome = ({i: a for i, a in acks.items() if a.status != "rejected"}, sent_bytes)
            if not isinstance(outcome, BatchRefused):
                self._settle(batch, outcome, result)
        except TransientError:
            pass
        self.limit = limit  # the failed one decides the next batch's size
