"""What the central server does on a timer: default ratings, then early warnings. Safe to repeat."""

from django.core.management.base import BaseCommand

from central.ratings import alerts, defaults


class Command(BaseCommand):
    help = "Run the scheduled jobs once: default ratings, then early-warning checks (every minute from a timer)."

    def handle(self, *args, **options):
        made = defaults.apply()
        raised, cleared = alerts.check()
        self.stdout.write(f"default ratings: {made.created} made, {made.superseded} superseded; "
                          f"alerts: {raised} raised, {cleared} cleared")
