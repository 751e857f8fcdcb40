"""What the central server does on a timer: default ratings, provisional work-order deadlines
settled once their year's calendar is known, chain checks, the daily upward
reconciliation, then early warnings. Safe to repeat, and one at a time across every node
(``tick_lock``)."""

from django.core.management.base import BaseCommand

from central.ratings import alerts, auth, callbacks, chains, defaults, reconciliation, sms, throttle, workorders
from central.ratings.tick_lock import only_one_tick


class Command(BaseCommand):
    help = "Run the scheduled jobs once: default ratings, the terminals' record chains, then early-warning checks (every minute from a timer)."

    def handle(self, *args, **options):
        with only_one_tick() as mine:
            if not mine:
                self.stdout.write("another tick is running (on this or another node); this one does nothing")
                return
            self.run_jobs()

    def run_jobs(self):
        made = defaults.apply()
        settled = workorders.settle_provisional()
        checked = chains.check()
        reconciled = len(reconciliation.run()) if reconciliation.due() else 0
        raised, cleared = alerts.check()
        forgotten = auth.forget_old_nonces()
        counts = throttle.forget_old()
        invited = sms.invite()
        sent, dead = sms.send_due()
        calls = callbacks.open_for_bad_ratings()
        self.stdout.write(f"default ratings: {made.created} made, {made.superseded} superseded; "
                          f"chains: {checked} checked; alerts: {raised} raised, {cleared} cleared; "
                          f"nonces: {forgotten} forgotten; rate-limit counts: {counts} forgotten; "
                          f"sms: {invited} invitations queued, {sent} sent, {dead} dead letters; "
                          f"call-backs: {calls} opened; upward days reconciled: {reconciled}; "
                          f"provisional deadlines settled: {settled}")
