"""Push the upward outbox to each enabled platform (``upward``): a long-running process beside the
server (``make run`` and the systemd unit start it), or once with ``--once``. One pusher per platform
at a time across every node; a platform that fails waits with backoff (its Retry-After honoured),
the others go on."""

import logging
import time

from django.core.management.base import BaseCommand
from django.db import close_old_connections

from central.ratings import upward
from central.ratings.models import UpwardPlatform
from central.ratings.tick_lock import only_one
from sync.backoff import Backoff
from sync.outbox import TransientError

log = logging.getLogger("rating-central.upward")
SLICE_S = 30.0  # a long backlog is sent in slices: a platform added meanwhile is not kept waiting


class Command(BaseCommand):
    help = "Push ratings, defaults, re-check outcomes, rectifications and phone additions to each enabled upward platform."

    def add_arguments(self, parser):
        parser.add_argument("--once", action="store_true", help="drain each platform once, then exit (1 if any failed)")
        parser.add_argument("--platform", default="", help="only this platform's code")
        parser.add_argument("--interval", type=float, default=5.0, help="seconds between rounds when idle")
        parser.add_argument("--max-backoff", type=float, default=600.0, help="longest wait after failures, seconds")

    def handle(self, *args, once, platform, interval, max_backoff, **options):
        backoffs: dict[str, Backoff] = {}
        next_try: dict[str, float] = {}
        covered: dict[str, str] = {}  # platform -> the profile text whose codes were found to cover what we hold
        while True:
            close_old_connections()
            failed = False
            platforms = UpwardPlatform.objects.filter(enabled=True)
            if platform:
                platforms = platforms.filter(code=platform)
            for target in platforms:
                if time.monotonic() < next_try.get(target.code, 0.0) and not once:
                    continue
                backoff = backoffs.setdefault(target.code, Backoff(cap=max_backoff))
                with only_one(f"upward-{target.code}") as mine:
                    if not mine:
                        continue
                    try:
                        started = time.monotonic()
                        result = upward.push(target, until=None if once else started + SLICE_S,
                                             check_codes=covered.get(target.code) != target.profile)
                        covered[target.code] = target.profile
                        backoff.reset()
                        next_try[target.code] = 0.0 if result.more else time.monotonic() + interval
                        if result.batches:
                            self.stdout.write(f"{target.code}: {result.delivered} acknowledged, {result.dead} dead, "
                                              f"{result.batches} batches in {time.monotonic() - started:.3f} s")
                    except upward.NotConfigured as exc:
                        failed = True
                        log.error("upward push to %s not started: %s", target.code, exc)
                        next_try[target.code] = time.monotonic() + 60.0
                    except TransientError as exc:
                        failed = True
                        delay = backoff.next_delay(exc.retry_after)
                        log.warning("upward push to %s: %s; again in %.0f s", target.code, exc, delay)
                        next_try[target.code] = time.monotonic() + delay
            if once:
                if failed:
                    raise SystemExit(1)
                return
            time.sleep(interval)
