"""Add a business or queue system that reports cases (``rating-central add_system "不动产登记系统"``)."""

import json

from django.core.management.base import BaseCommand, CommandError

from central.ratings.auth import add_system


class Command(BaseCommand):
    help = ("Add a business or queue system that reports cases (POST /api/v1/cases). Prints its id and "
            "secret once, as JSON; give them to the system's integrator over a private channel.")

    def add_arguments(self, parser):
        parser.add_argument("name", help="what the system is, e.g. 不动产登记系统")

    def handle(self, *args, name, **options):
        if not name.strip() or len(name) > 100:
            raise CommandError("the name is 1-100 characters")
        system = add_system(name.strip())
        self.stdout.write(json.dumps({"system_id": system.system_id, "secret": system.secret}, ensure_ascii=False))
        self.stderr.write(f"{system}: the secret is shown this once; requests sign with it as X-System-Id "
                          f"{system.system_id} (docs/integrators.md, POST /api/v1/cases)")
