"""Write docs/reference/ (the wire and invite APIs' reference pages and OpenAPI documents)."""

from pathlib import Path

from django.core.management.base import BaseCommand

from central.ratings import api_docs


class Command(BaseCommand):
    help = "Write docs/reference/: the wire API's and the invite API's reference pages and OpenAPI documents."

    def handle(self, *args, **options):
        folder = Path(__file__).resolve().parents[4] / "docs" / "reference"
        folder.mkdir(parents=True, exist_ok=True)
        for name, text in api_docs.documents().items():
            (folder / name).write_text(text, encoding="utf-8")
        self.stdout.write(f"wrote {', '.join(api_docs.documents())} in {folder}")
