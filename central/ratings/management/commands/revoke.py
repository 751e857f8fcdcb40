"""Revoke a terminal: from its next request on, it is refused (403 ``revoked``)."""

from django.core.management.base import BaseCommand, CommandError
from django.utils import timezone

from central.ratings.models import Terminal


class Command(BaseCommand):
    help = "Revoke a terminal's credentials (a lost or replaced tablet)."

    def add_arguments(self, parser):
        parser.add_argument("terminal_id")

    def handle(self, *args, terminal_id, **options):
        updated = Terminal.objects.filter(terminal_id=terminal_id, revoked_at__isnull=True).update(revoked_at=timezone.now())
        if not updated:
            raise CommandError(f"no active terminal {terminal_id!r}")
        self.stdout.write(f"revoked {terminal_id}")
