"""Issue one-time enrollment codes (``rating-central enroll-code --window W01``).

One window, as a technician types it::

    rating-central enroll-code --window W01

Many at once, for a fleet install (hardware/ansible): every ``--window`` (and every line of
``--windows-from``) is one code, in the order given, so a window named twice gets two codes;
``--all-unenrolled`` adds every window that has no active terminal. ``--format json`` prints one
JSON document, ``{"codes": [{"window", "code", "expires_at"}, ...]}``, for a machine to read.

All or nothing: an unknown window refuses the whole request before any code is issued, and the
codes are made in one transaction. Codes go to standard output only, never to a log or stderr.
"""

import json

from django.core.management.base import BaseCommand, CommandError
from django.db import transaction
from django.utils import timezone

from central.ratings.auth import DEFAULT_CODE_HOURS, issue_code
from central.ratings.models import Terminal, Window

MAX_CODE_HOURS = 24 * 31  # a month: a technician's round of a city's halls; negative only to test expiry


def read_windows_file(path: str) -> list[str]:
    """Window codes from a file (``-`` = standard input): one a line; blank lines and ``#`` comments skipped."""
    import sys
    try:
        text = sys.stdin.read() if path == "-" else open(path, encoding="utf-8").read()
    except OSError as exc:
        raise CommandError(f"--windows-from {path}: {exc.strerror or exc}") from None
    return [line.split("#", 1)[0].strip() for line in text.splitlines() if line.split("#", 1)[0].strip()]


class Command(BaseCommand):
    help = ("Print one-time enrollment codes: one for each window named (--window, --windows-from) and for "
            "every window with no active terminal (--all-unenrolled). A technician types a code into the new "
            "terminal, or the fleet playbook passes it on. All or nothing: an unknown window issues no code.")

    def add_arguments(self, parser):
        parser.add_argument("--window", action="append", default=[], metavar="W",
                            help="window code, e.g. W01; repeat for more (each one is one code, in order)")
        parser.add_argument("--windows-from", metavar="FILE",
                            help="a file of window codes, one a line (# comments allowed; - = stdin)")
        parser.add_argument("--all-unenrolled", action="store_true",
                            help="every window that has no active (unrevoked) terminal")
        parser.add_argument("--hours", type=float, default=DEFAULT_CODE_HOURS,
                            help=f"hours until the codes expire (default {DEFAULT_CODE_HOURS})")
        parser.add_argument("--format", choices=["text", "json"], default="text",
                            help="text: one code a line (the window's on stderr); json: one document for scripts")

    def handle(self, *args, window, windows_from, all_unenrolled, hours, format, **options):
        if not -MAX_CODE_HOURS <= hours <= MAX_CODE_HOURS:  # nan and inf too: a clear refusal, not a traceback
            raise CommandError(f"--hours must be a number of hours up to {MAX_CODE_HOURS} (a code is a key to a "
                               f"window: it should not outlive the visit it is for), got {hours}")
        wanted = list(window) + (read_windows_file(windows_from) if windows_from else [])
        if all_unenrolled:
            active = Terminal.objects.filter(revoked_at__isnull=True).values("window")
            idle = Window.objects.exclude(pk__in=active)
            wanted += [code for code in idle.values_list("code", flat=True) if code not in wanted]
        if not wanted:
            raise CommandError("name at least one window: --window W01, --windows-from FILE or --all-unenrolled")
        known = {w.code: w for w in Window.objects.filter(code__in=set(wanted))}
        unknown = sorted(set(wanted) - set(known))
        if unknown:
            raise CommandError(f"no window {', '.join(map(repr, unknown))}; no code issued. Known: "
                               f"{', '.join(Window.objects.values_list('code', flat=True))}")
        with transaction.atomic():
            issued = [(known[code], *issue_code(known[code], hours)) for code in wanted]
        if format == "json":
            self.stdout.write(json.dumps({"codes": [
                {"window": w.code, "code": code, "expires_at": record.expires_at.isoformat()}
                for w, code, record in issued]}, ensure_ascii=False))
            self.stderr.write(f"{len(issued)} enrollment code(s), valid for {hours:g} h, each once")
            return
        for w, code, record in issued:
            self.stdout.write(code)
            self.stderr.write(f"enrollment code for {w}, valid until "
                              f"{timezone.localtime(record.expires_at):%Y-%m-%d %H:%M %Z}, once")
