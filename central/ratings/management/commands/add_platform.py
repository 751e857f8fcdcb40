"""Add an upward platform (``rating-central add_platform ZJ --name 浙江省好差评系统 --profile provincial``)."""

from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError

from central.ratings import exports
from central.ratings.models import UpwardPlatform


class Command(BaseCommand):
    help = ("Add a platform to report upward to, speaking a shipped export profile (or a profile file). "
            "Its address and key come from RATING_CENTRAL_UPWARD_<CODE>_URL, _KEY_ID and _SECRET. "
            "Does nothing if the code exists.")

    def add_arguments(self, parser):
        parser.add_argument("code", help="upper-case letters, digits, _ (names its environment variables)")
        parser.add_argument("--name", required=True, help="what the platform is, e.g. 浙江省政务服务好差评系统")
        parser.add_argument("--profile", default="provincial",
                            help=f"a shipped profile ({', '.join(exports.shipped())}) or a TOML file's path")

    def handle(self, *args, code, name, profile, **options):
        if UpwardPlatform.objects.filter(code=code).exists():
            self.stdout.write(f"{code}: already there, left as it is")
            return
        text = exports.shipped_text(profile) if profile in exports.shipped() else _read(profile)
        platform = UpwardPlatform(code=code, name=name, profile=text)
        try:
            platform.full_clean()
        except ValidationError as exc:
            raise CommandError("; ".join(f"{k}: {' '.join(v)}" for k, v in exc.message_dict.items())) from None
        platform.save()
        self.stdout.write(f"{platform}: pushing once RATING_CENTRAL_UPWARD_{code}_URL, _KEY_ID and _SECRET are set "
                          "(rating-central push_upward)")


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8")
    except OSError as exc:
        raise CommandError(f"profile {path}: not a shipped profile, and not a readable file ({exc.strerror})") from None
