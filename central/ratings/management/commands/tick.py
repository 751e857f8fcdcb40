"""What the central server does on a timer: default ratings, chain checks, then early warnings. Safe to repeat."""

from django.core.management.base import BaseCommand

from central.ratings import alerts, auth, chains, defaults


class Command(BaseCommand):
    help = "Run the scheduled jobs once: default ratings, the terminals' record chains, then early-warning checks (every minute from a timer)."

    def handle(self, *args, **options):
        made = defaults.apply()
        checked = chains.check()
        raised, cleared = alerts.check()
        forgotten = auth.forget_old_nonces()
        self.stdout.write(f"default ratings: {made.created} made, {made.superseded} superseded; "
                          f"chains: {checked} checked; alerts: {raised} raised, {cleared} cleared; "
                          f"nonces: {forgotten} forgotten")
