"""The upload loop: oldest pending ratings first, one batch at a time, until the queue is empty.

A rating leaves ``pending`` only on the server's per-item word: ``accepted`` or ``duplicate`` make
it delivered, ``rejected`` makes it a dead letter with the reason. Anything else (no answer, an
error status, a body that is not the API's) leaves the whole batch pending and waits with backoff.
Time offline never makes us give up on a rating.
"""

from __future__ import annotations

import logging
import threading
from dataclasses import dataclass

from terminal.config import Config
from terminal.store import Store

from .backoff import Backoff
from .client import BatchTooLarge, CentralClient, TransientError

log = logging.getLogger("rating-sync")
MAX_BATCH_BYTES = 1_000_000


@dataclass
class DrainResult:
    delivered: int = 0
    dead: int = 0
    batches: int = 0
    bytes_sent: int = 0


class Uploader:
    def __init__(self, store: Store, client: CentralClient, batch_size: int = 500):
        self.store, self.client = store, client
        self.batch_size = batch_size

    def send_one_batch(self, result: DrainResult) -> int:
        """Send the oldest pending batch; return how many ratings it held (0: queue empty)."""
        batch = self.store.pending(self.batch_size, MAX_BATCH_BYTES)
        if not batch:
            return 0
        ids = [r["id"] for r in batch]
        try:
            acks, sent_bytes = self.client.upload(batch)
        except BatchTooLarge:
            self.batch_size = max(1, len(batch) // 2)
            log.warning("server found the batch too large; batch size now %d", self.batch_size)
            return len(batch)
        except TransientError as exc:
            self.store.note_attempt(ids, str(exc))
            raise
        delivered = [i for i, a in acks.items() if a.status in ("accepted", "duplicate")]
        self.store.mark_delivered(delivered)
        for ack in acks.values():
            if ack.status == "rejected":
                self.store.mark_dead(ack.id, 200, ack.reason or "rejected without reason")
                log.error("rating %s rejected by the server, kept as a dead letter: %s", ack.id, ack.reason)
        unanswered = [i for i in ids if i not in acks]
        if unanswered:
            self.store.note_attempt(unanswered, "no acknowledgement in the server's answer")
            raise TransientError(f"{len(unanswered)} of {len(ids)} ratings got no acknowledgement")
        result.delivered += len(delivered)
        result.dead += len(acks) - len(delivered)
        result.batches += 1
        result.bytes_sent += sent_bytes
        return len(batch)

    def drain(self) -> DrainResult:
        """Send batches until the queue is empty; TransientError propagates to the caller."""
        result = DrainResult()
        while self.send_one_batch(result):
            pass
        return result


def run_forever(config: Config, stop: threading.Event) -> None:
    """The daemon: drain, then poll; on failure back off (Retry-After respected); stop on ``stop``."""
    store = Store(config.db_path)
    client = CentralClient(config.sync.server, timeout=config.sync.timeout)
    uploader = Uploader(store, client, config.sync.batch_size)
    backoff = Backoff(cap=config.sync.backoff_max)
    log.info("rating-sync started: database %s, server %s", config.db_path, config.sync.server)
    try:
        while not stop.is_set():
            try:
                result = uploader.drain()
            except TransientError as exc:
                delay = backoff.next_delay(exc.retry_after)
                log.warning("upload failed (%s); %d pending; retrying in %.1f s",
                            exc, store.counts()["pending"], delay)
                stop.wait(delay)
                continue
            backoff.reset()
            if result.delivered or result.dead:
                log.info("delivered %d, dead-lettered %d in %d batches",
                         result.delivered, result.dead, result.batches)
            stop.wait(config.sync.interval)
    finally:
        client.close()
        store.close()
        log.info("rating-sync stopped")
