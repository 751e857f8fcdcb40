"""Issue a one-time enrollment code for a window (``rating-central enroll_code --window W01``)."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from central.ratings.auth import DEFAULT_CODE_HOURS, issue_code
from central.ratings.models import Window


class Command(BaseCommand):
    help = "Print a one-time enrollment code for a window; a technician types it into the new terminal."

    def add_arguments(self, parser):
        parser.add_argument("--window", required=True, help="window code, e.g. W01")
        parser.add_argument("--hours", type=float, default=DEFAULT_CODE_HOURS,
                            help=f"hours until the code expires (default {DEFAULT_CODE_HOURS})")

    def handle(self, *args, window, hours, **options):
        found = Window.objects.filter(code=window).first()
        if found is None:
            raise CommandError(f"no window {window!r}; known: {', '.join(Window.objects.values_list('code', flat=True))}")
        code, record = issue_code(found, hours)
        self.stdout.write(code)
        self.stderr.write(f"enrollment code for {found}, valid until {timezone.localtime(record.expires_at):%Y-%m-%d %H:%M %Z}, once")
