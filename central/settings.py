"""Django settings, read from the environment so one build serves the demo and production.

RATING_CENTRAL_DATA   folder for the SQLite database, uploads and the generated secret key
                      (default: var/central under the current directory)
RATING_CENTRAL_DEBUG  "1" for Django's debug pages (never in production)
RATING_CENTRAL_HOSTS  comma-separated host names the server answers to (default: loopback)
RATING_CENTRAL_DATABASE_URL
                      one URL for the database (dj-database-url): postgres://user:pass@host/name
                      at scale; default: the SQLite file central.db in the data folder
RATING_CENTRAL_ALERT_WEBHOOK         optional URL that early-warning alerts are POSTed to
RATING_CENTRAL_ALERT_WEBHOOK_SECRET  optional key; each POST then carries X-Signature (HMAC-SHA256)
"""

import os
import secrets
from pathlib import Path

import dj_database_url

DATA_DIR = Path(os.environ.get("RATING_CENTRAL_DATA", "var/central")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True)


def _secret_key() -> str:
    """A key made on first start and kept beside the data, readable by its owner only."""
    path = DATA_DIR / "secret_key"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
DEBUG = os.environ.get("RATING_CENTRAL_DEBUG") == "1"
ALLOWED_HOSTS = os.environ.get("RATING_CENTRAL_HOSTS", "127.0.0.1,localhost,[::1]").split(",")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "central.ratings",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
]

ROOT_URLCONF = "central.urls"
WSGI_APPLICATION = "central.wsgi.application"

TEMPLATES = [{
    "BACKEND": "django.template.backends.django.DjangoTemplates",
    "DIRS": [Path(__file__).resolve().parent / "templates"],  # admin/base_site.html: the bundled font
    "APP_DIRS": True,
    "OPTIONS": {"context_processors": [
        "django.template.context_processors.request",
        "django.contrib.auth.context_processors.auth",
        "django.contrib.messages.context_processors.messages",
    ]},
}]

DATABASES = {"default": dj_database_url.config(
    env="RATING_CENTRAL_DATABASE_URL", default=f"sqlite:///{DATA_DIR / 'central.db'}",
    conn_max_age=60, conn_health_checks=True)}
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    DATABASES["default"]["CONN_MAX_AGE"] = 0
    # WAL lets the dashboard read while uploads write; IMMEDIATE avoids upgrade deadlocks.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"

ALERT_WEBHOOK = os.environ.get("RATING_CENTRAL_ALERT_WEBHOOK", "")
ALERT_WEBHOOK_SECRET = os.environ.get("RATING_CENTRAL_ALERT_WEBHOOK_SECRET", "")

LOGIN_URL = "/admin/login/"
LOGIN_REDIRECT_URL = "/"

LANGUAGE_CODE = "zh-hans"
TIME_ZONE = "Asia/Shanghai"
USE_I18N = True
USE_TZ = True

STATIC_URL = "static/"
STATIC_ROOT = DATA_DIR / "static"
STATIC_ROOT.mkdir(exist_ok=True)  # WhiteNoise looks here first
# The pages' Chinese font is the kiosk's bundled one, so they render on machines without CJK fonts.
STATICFILES_DIRS = [("fonts", Path(__file__).resolve().parent.parent / "assets" / "fonts")]
WHITENOISE_USE_FINDERS = True  # serve static files without a collectstatic step (the demo, the tests)
MEDIA_URL = "media/"
MEDIA_ROOT = DATA_DIR / "media"

# A batch of 500 ratings is about 250 KB of JSON; leave room, refuse the absurd.
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "handlers": {"console": {"class": "logging.StreamHandler"}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {"django.db.backends": {"level": "WARNING"}},
}
