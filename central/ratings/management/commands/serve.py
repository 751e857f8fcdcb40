"""Run the server with gunicorn, the production WSGI server, on the given address."""

import os
import sys

from django.core.management.base import BaseCommand


class Command(BaseCommand):
    help = "Serve HTTP with gunicorn (static files through WhiteNoise). Run migrate first."

    def add_arguments(self, parser):
        parser.add_argument("--bind", default="127.0.0.1:8000", help="HOST:PORT (default 127.0.0.1:8000)")
        parser.add_argument("--workers", type=int, default=2, help="worker processes (default 2)")
        parser.add_argument("--threads", type=int, default=4, help="threads per worker (default 4)")

    def handle(self, *args, bind, workers, threads, **options):
        argv = [sys.executable, "-m", "gunicorn", "central.wsgi:application", "--bind", bind,
                "--workers", str(workers), "--threads", str(threads), "--graceful-timeout", "10",
                "--access-logfile", "-", "--access-logformat", '%(h)s "%(r)s" %(s)s %(b)s %(M)sms',
                "--logger-class", "central.ratings.logs.AccessLog"]  # link codes masked
        os.environ.setdefault("DJANGO_SETTINGS_MODULE", "central.settings")
        # uploads take at most all threads but one: a heartbeat or a page always finds a thread
        os.environ.setdefault("RATING_CENTRAL_UPLOAD_SLOTS", str(max(1, threads - 1)))
        os.execv(sys.executable, argv)
