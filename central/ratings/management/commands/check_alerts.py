"""Raise and clear early-warning alerts and deliver their webhooks (run it from a timer)."""

from django.core.management.base import BaseCommand

from central.ratings import alerts


class Command(BaseCommand):
    help = "Check every enabled early-warning rule once: raise new alerts, clear ended ones, send webhooks."

    def handle(self, *args, **options):
        raised, cleared = alerts.check()
        self.stdout.write(f"alerts: {raised} raised, {cleared} cleared")
