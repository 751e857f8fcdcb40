"""Shedding uploads under overload: each worker process takes at most ``UPLOAD_SLOTS`` uploads at
once and answers the next one at once with 503 and a Retry-After spread over a few seconds.

Why: after a hall-wide outage a thousand terminals reconnect with their backlogs within a minute.
Queued in the listen backlog, their batches would wait past the terminals' timeouts, be sent again
and be taken twice over (once each: ids make it harmless, but the work is done twice), while the
heartbeats behind them time out and every terminal shows offline. Refusing early costs the
authentication (one query), not an ingest, keeps a thread free for heartbeats and content checks, and the terminals' own backoff
(never sooner than Retry-After, with jitter) spreads the retries. A refused batch stays pending on
the terminal: nothing accepted is lost. Per process, so it holds on every node of a scale-out."""

from __future__ import annotations

import os
import random
import threading
from contextlib import contextmanager

from django.http import HttpResponse

UPLOAD_SLOTS = max(1, int(os.environ.get("RATING_CENTRAL_UPLOAD_SLOTS", "3")))  # serve: threads - 1
RETRY_AFTER_S = (2, 10)  # the range a refused terminal is told to wait, drawn for each answer

_slots = threading.BoundedSemaphore(UPLOAD_SLOTS)
_random = random.SystemRandom()


@contextmanager
def upload_slot():
    """True, holding one of this process's upload slots until the block ends; False when all are taken."""
    taken = _slots.acquire(blocking=False)
    try:
        yield taken
    finally:
        if taken:
            _slots.release()


def busy() -> HttpResponse:
    """503 with a Retry-After drawn from RETRY_AFTER_S, so the refused do not all come back at once."""
    from .api import error  # the server's time on it, as every answer of the API
    response = error(503, "busy", "the server is taking other uploads; send again after Retry-After seconds "
                     "(the batch stays pending on the terminal)")
    response["Retry-After"] = str(_random.randint(*RETRY_AFTER_S))
    return response
