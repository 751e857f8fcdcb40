"""Draw a quarter's call-back sample (``rating-central callback_sample --quarter 2026Q4 --seed 20261001``)."""

from django.core.management.base import BaseCommand, CommandError

from central.ratings import callbacks


class Command(BaseCommand):
    help = ("Draw each window's quarterly call-back sample (电话回访抽样) from its completed cases with a mobile "
            "number: reproducible from the seed; a case already sampled is never drawn again.")

    def add_arguments(self, parser):
        parser.add_argument("--quarter", required=True, help="e.g. 2026Q4")
        parser.add_argument("--seed", required=True, help="keep it with the sample: the same seed draws the same cases")
        parser.add_argument("--per-window", type=int, default=None, help="default: the rules' number per window")

    def handle(self, *args, quarter, seed, per_window, **options):
        try:
            drawn = callbacks.sample(quarter, seed, per_window)
        except ValueError as exc:
            raise CommandError(str(exc)) from None
        for task in drawn:
            self.stdout.write(f"{task.window_code}\t{task.case.case_no}")
        self.stderr.write(f"{len(drawn)} cases drawn for {quarter} with seed {seed!r}")
