"""WSGI entry point for gunicorn (``rating-central serve``)."""

import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "central.settings")
application = get_wsgi_application()
