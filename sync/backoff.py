"""Exponential backoff with full jitter (AWS Architecture Blog, "Exponential Backoff And Jitter").

Pure and seeded from outside, so the schedule can be tested. ``Retry-After`` from the server is a
floor: we never come back sooner than the server asked.
"""

from __future__ import annotations

import random

MAX_DOUBLINGS = 64  # 2**64 seconds is past any cap; 2**1024 would not be a float at all


class Backoff:
    def __init__(self, base: float = 1.0, cap: float = 300.0, rng: random.Random | None = None):
        self.base, self.cap = base, cap
        self.failures = 0
        self.rng = rng or random.Random()

    def next_delay(self, retry_after: float | None = None) -> float:
        """Seconds to wait after one more failure."""
        # the doubling stops long before a float overflows: a weekend offline is thousands of failures
        ceiling = min(self.cap, self.base * 2.0 ** min(self.failures, MAX_DOUBLINGS))
        self.failures += 1
        delay = self.rng.uniform(0, ceiling)
        if retry_after is not None:
            delay = max(delay, min(retry_after, self.cap))
        return delay

    def reset(self) -> None:
        self.failures = 0
