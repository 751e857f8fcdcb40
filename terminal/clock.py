"""What a rating needs to know about time on a board with no real-time clock.

The wall clock may be years off until NTP syncs, so each rating also carries the monotonic time
and the boot id; the central server can then place ratings of one boot on its own timeline.
"""

from __future__ import annotations

import time
import uuid
from datetime import datetime
from functools import cache
from pathlib import Path

BOOT_ID_FILE = Path("/proc/sys/kernel/random/boot_id")
# systemd-timesyncd touches this file once the clock has been synchronised in this boot.
TIMESYNC_FLAG = Path("/run/systemd/timesync/synchronized")
_FALLBACK_BOOT_ID = uuid.uuid4().hex


class SystemClock:
    def now(self) -> datetime:
        """Local wall time with its UTC offset."""
        return datetime.now().astimezone()

    def monotonic_ms(self) -> int:
        return time.clock_gettime_ns(time.CLOCK_BOOTTIME) // 1_000_000

    @staticmethod
    @cache
    def boot_id() -> str:
        """Read once: it changes only with a reboot, which also restarts this process."""
        try:
            return BOOT_ID_FILE.read_text().strip().replace("-", "")
        except OSError:
            return _FALLBACK_BOOT_ID  # not Linux: unique per process, still groups its ratings

    def synced(self) -> bool:
        return TIMESYNC_FLAG.exists()
