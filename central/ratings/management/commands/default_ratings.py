"""Give the system default rating to services left unrated (run it from a timer; safe to repeat)."""

from django.core.management.base import BaseCommand

from central.ratings import defaults
from central.ratings.models import Policy


class Command(BaseCommand):
    help = ("Rate services invited and left unrated for Policy.default_after_days natural days with the "
            "default level and channel (基本满意, 7). Idempotent: run it as often as you like.")

    def handle(self, *args, **options):
        outcome = defaults.apply()
        policy = Policy.current()
        self.stdout.write(f"default ratings: {outcome.created} made, {outcome.superseded} superseded by a late "
                          f"real rating (after {policy.default_after_days} days, level {policy.default_level}, "
                          f"channel {policy.default_channel})")
