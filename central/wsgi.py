"""WSGI entry point for gunicorn (``rating-central serve``): each worker loads it once."""

import gc
import os

from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "central.settings")
application = get_wsgi_application()


def freeze_what_is_loaded() -> None:
    """Django, its apps, our views and the URL table live as long as the worker: one collection,
    then ``gc.freeze`` sets them aside, so the cyclic collector never walks them again. A full
    collection comes every few thousand records a drain makes, and walking them then was ~8 % of
    ingest's time (bench/central_scale.py, which loads the server the same way)."""
    import central.urls  # noqa: F401 (the views, loaded now rather than on the first request)
    gc.collect()
    gc.freeze()


freeze_what_is_loaded()
