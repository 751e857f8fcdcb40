"""Turn a press into a durable rating: the step every input device (touch, box, GPIO) ends in."""

from __future__ import annotations

import terminal
from terminal.clock import SystemClock
from terminal.config import Config
from terminal.core.channels import InputDevice
from terminal.core.levels import Level
from terminal.core.rating import Rating
from terminal.store import Store


class Recorder:
    def __init__(self, config: Config, store: Store, clock: SystemClock | None = None):
        self.config, self.store = config, store
        self.clock = clock or SystemClock()

    def record(self, level: Level, device: InputDevice, *, staff_no: str | None,
               dept_code: str | None = None, **fields) -> Rating:
        """Build the rating and commit it; when this returns, the thank-you may be shown."""
        rating = Rating.create(
            level=level, device=device, now=self.clock.now(), mono_ms=self.clock.monotonic_ms(),
            boot_id=self.clock.boot_id(), clock_synced=self.clock.synced(),
            terminal_id=self.config.terminal.id, window=self.config.terminal.window,
            staff_no=staff_no, dept_code=dept_code, app_version=terminal.__version__, **fields)
        self.store.record(rating)
        return rating
