"""Write docs/exports.md from the export field tables (a test checks the file is current)."""

from pathlib import Path

from django.core.management.base import BaseCommand

from central.ratings import exports


class Command(BaseCommand):
    help = "Write the export field mapping to docs/exports.md (or print it with --stdout)."

    def add_arguments(self, parser):
        parser.add_argument("--stdout", action="store_true")

    def handle(self, *args, stdout, **options):
        text = exports.markdown()
        if stdout:
            self.stdout.write(text)
        else:
            path = Path(__file__).resolve().parents[4] / "docs" / "exports.md"
            path.write_text(text, encoding="utf-8")
            self.stdout.write(f"wrote {path}")
