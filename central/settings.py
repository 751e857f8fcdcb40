"""Django settings, read from the environment so one build serves the demo and production.

RATING_CENTRAL_DATA   folder for the SQLite database, uploads and the generated secret key
                      (default: var/central under the current directory)
RATING_CENTRAL_DEBUG  "1" for Django's debug pages (never in production)
RATING_CENTRAL_HOSTS  comma-separated host names the server answers to (default: loopback)
RATING_CENTRAL_DATABASE_URL
                      one URL for the database (dj-database-url): postgres://user:pass@host/name
                      at scale; default: the SQLite file central.db in the data folder
RATING_CENTRAL_SECRET_KEY_FILE       the key that signs sessions (default: secret_key in the data
                      folder, made on first start); several app servers share one file
RATING_CENTRAL_MEDIA  folder for uploaded files, staff photos (default: media in the data folder);
                      several app servers share one mount, or use an object store (below)
RATING_CENTRAL_S3_BUCKET, RATING_CENTRAL_S3_ENDPOINT
                      uploaded files in an S3-compatible store through django-storages instead
                      (pip install 'rating-terminal[s3]'; credentials as boto3 finds them: the
                      AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY environment or ~/.aws/credentials)
RATING_CENTRAL_ALERT_WEBHOOK         optional URL that early-warning alerts are POSTed to
RATING_CENTRAL_ALERT_WEBHOOK_SECRET  optional key; each POST then carries X-Signature (HMAC-SHA256)

A server that answers only to loopback (the demo, the tests) speaks plain HTTP. Any other host name
means it is deployed behind an HTTPS reverse proxy on the same machine (docs/operators.md),
and then cookies are Secure, HSTS is sent, plain HTTP is redirected, the scheme comes from the
proxy's ``X-Forwarded-Proto`` and the client's address from its ``X-Real-IP`` (login throttling
counts by it): ``rating-central check --deploy`` is clean. Everything the server writes in its
data folder (the database with every terminal's secret, uploads, the key) is its user's alone.
"""

import ipaddress
import os
import secrets
from pathlib import Path

import dj_database_url

DATA_DIR = Path(os.environ.get("RATING_CENTRAL_DATA", "var/central")).resolve()
DATA_DIR.mkdir(parents=True, exist_ok=True, mode=0o700)


def _private(path: Path, mode: int) -> None:
    """Make a file or folder of ours readable by its owner only (the unit's UMask=0077 covers the rest)."""
    try:
        if path.exists() and path.stat().st_uid == os.getuid():
            path.chmod(mode)
    except OSError:
        pass


_private(DATA_DIR, 0o700)


def _secret_key() -> str:
    """A key made on first start and kept beside the data, readable by its owner only."""
    path = Path(os.environ.get("RATING_CENTRAL_SECRET_KEY_FILE") or DATA_DIR / "secret_key")
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_urlsafe(50))
    return path.read_text().strip()


SECRET_KEY = _secret_key()
# Where raters' phones reach this server (the printed window plaques' QR codes point there); default:
# the address the admin who prints a plaque is using
PUBLIC_URL = os.environ.get("RATING_CENTRAL_PUBLIC_URL", "").rstrip("/")
# SMS (channel 6), as Django's e-mail: file (the default: <data>/sms-outbox, for the demo and tests),
# console, or http (the documented gateway, as the business system SMS_GATEWAY_SYSTEM) or a dotted path
SMS_BACKEND = {"file": "central.ratings.sms.FileBackend", "console": "central.ratings.sms.ConsoleBackend",
               "http": "central.ratings.sms.HttpGatewayBackend"}.get(
    os.environ.get("RATING_CENTRAL_SMS_BACKEND", "file"), os.environ.get("RATING_CENTRAL_SMS_BACKEND", ""))
SMS_GATEWAY_URL = os.environ.get("RATING_CENTRAL_SMS_GATEWAY_URL", "")
#: who may read /metrics (Prometheus): addresses or networks, comma-separated; default this machine only
METRICS_FROM = [ipaddress.ip_network(n.strip(), strict=False)
                for n in os.environ.get("RATING_CENTRAL_METRICS_FROM", "127.0.0.1,::1").split(",") if n.strip()]
UPWARD_TIMEOUT = float(os.environ.get("RATING_CENTRAL_UPWARD_TIMEOUT", "30"))  # seconds each read may wait (a call: 4 ×)
AREA_CODE = os.environ.get("RATING_CENTRAL_AREA_CODE", "")  # 行政区划 (GB/T 2260) of the hall, for upward records
#: each upward platform's endpoint and credentials (the platform's row in the admin names its code):
#: RATING_CENTRAL_UPWARD_<CODE>_URL, _KEY_ID, _SECRET and optionally _CA_FILE (a private CA's PEM bundle)
UPWARD = {name[len("RATING_CENTRAL_UPWARD_"):-len("_URL")]: {
    "url": value, "key_id": os.environ.get(name[:-4] + "_KEY_ID", ""), "secret": os.environ.get(name[:-4] + "_SECRET", ""),
    "ca_file": os.environ.get(name[:-4] + "_CA_FILE", "")}
    for name, value in os.environ.items() if name.startswith("RATING_CENTRAL_UPWARD_") and name.endswith("_URL")}
SMS_GATEWAY_SYSTEM = os.environ.get("RATING_CENTRAL_SMS_GATEWAY_SYSTEM", "")
DEBUG = os.environ.get("RATING_CENTRAL_DEBUG") == "1"
ALLOWED_HOSTS = [h.strip() for h in os.environ.get("RATING_CENTRAL_HOSTS", "127.0.0.1,localhost,[::1]").split(",")
                 if h.strip()]
LOOPBACK_ONLY = all(h in ("127.0.0.1", "localhost", "[::1]", "::1") for h in ALLOWED_HOSTS)

if not (DEBUG or LOOPBACK_ONLY):  # deployed: behind the HTTPS proxy
    SECURE_PROXY_SSL_HEADER = ("HTTP_X_FORWARDED_PROTO", "https")
    SECURE_SSL_REDIRECT = True
    SECURE_REDIRECT_EXEMPT = [r"^api/v1/health$"]  # what a monitor on this machine polls over loopback
    SESSION_COOKIE_SECURE = CSRF_COOKIE_SECURE = True
    SECURE_HSTS_SECONDS = 365 * 24 * 3600
    SECURE_HSTS_INCLUDE_SUBDOMAINS = True
    # Browser preload lists bind a whole domain for good: the domain's owner decides that, not this app.
    SILENCED_SYSTEM_CHECKS = ["security.W021"]
CSRF_FAILURE_VIEW = "central.ratings.errors.csrf_failure"  # a form left open too long: Chinese first, as every error page
CSRF_TRUSTED_ORIGINS = [f"https://{h}" for h in ALLOWED_HOSTS if not LOOPBACK_ONLY and not h.startswith(".")]


def client_ip(request) -> str:
    """Who is calling, for login throttling: the proxy's X-Real-IP when deployed behind it."""
    if not (DEBUG or LOOPBACK_ONLY) and request.META.get("HTTP_X_REAL_IP"):
        return request.META["HTTP_X_REAL_IP"]
    return request.META.get("REMOTE_ADDR", "")

INSTALLED_APPS = [
    "django.contrib.admin",
    "django.contrib.auth",
    "django.contrib.contenttypes",
    "django.contrib.sessions",
    "django.contrib.messages",
    "django.contrib.staticfiles",
    "axes",
    "central.ratings",
]

MIDDLEWARE = [
    "django.middleware.security.SecurityMiddleware",
    "whitenoise.middleware.WhiteNoiseMiddleware",
    "central.ratings.refuse_nul.RefuseNul",  # NUL in a query parameter: 400 (PostgreSQL refuses it in text)
    "django.contrib.sessions.middleware.SessionMiddleware",
    "django.middleware.common.CommonMiddleware",
    "django.middleware.csrf.CsrfViewMiddleware",
    "django.contrib.auth.middleware.AuthenticationMiddleware",
    "django.contrib.messages.middleware.MessageMiddleware",
    "django.middleware.clickjacking.XFrameOptionsMiddleware",
    "axes.middleware.AxesMiddleware",
]

# Logins are throttled (django-axes): 5 wrong passwords lock that user name, and, separately,
# that address, for 15 minutes; a right one clears the count.
AUTHENTICATION_BACKENDS = ["axes.backends.AxesStandaloneBackend", "django.contrib.auth.backends.ModelBackend"]
AXES_FAILURE_LIMIT = 5
AXES_COOLOFF_TIME = 0.25  # hours
AXES_LOCKOUT_PARAMETERS = ["username", "ip_address"]
AXES_RESET_ON_SUCCESS = True
AXES_CLIENT_IP_CALLABLE = "central.settings.client_ip"
AXES_LOCKOUT_CALLABLE = "central.ratings.errors.locked_out"  # Chinese first: axes' own page is English only
AXES_VERBOSE = False

AUTH_PASSWORD_VALIDATORS = [
    {"NAME": "django.contrib.auth.password_validation.UserAttributeSimilarityValidator"},
    {"NAME": "django.contrib.auth.password_validation.MinimumLengthValidator", "OPTIONS": {"min_length": 10}},
    {"NAME": "django.contrib.auth.password_validation.CommonPasswordValidator"},
    {"NAME": "django.contrib.auth.password_validation.NumericPasswordValidator"},
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
    conn_max_age=60, conn_health_checks=False)}  # a check is a query before every request; a broken
#                                                connection fails one request and is replaced
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    # Kept open across requests too (each server thread its own): opening a SQLite connection and
    # closing it again (WAL: the last close checkpoints) cost a heartbeat more than its own work.
    # WAL lets the dashboard read while uploads write; IMMEDIATE avoids upgrade deadlocks. The file
    # is read through a memory map (up to 256 MiB, shared by every connection through the OS's
    # cache): each connection's own 2 MiB page cache held too little of the ratings' indexes once
    # the table grew, and a terminal's 100,000-rating drain slowed by a third as it went.
    DATABASES["default"]["OPTIONS"] = {
        "timeout": 20,
        "transaction_mode": "IMMEDIATE",
        "init_command": "PRAGMA journal_mode=WAL; PRAGMA synchronous=FULL; PRAGMA mmap_size=268435456;",
    }
DEFAULT_AUTO_FIELD = "django.db.models.BigAutoField"
if DATABASES["default"]["ENGINE"] == "django.db.backends.sqlite3":
    _db = Path(DATABASES["default"]["NAME"])
    if not _db.exists():  # SQLite gives its -wal and -shm files the database file's own mode
        os.close(os.open(_db, os.O_WRONLY | os.O_CREAT, 0o600))
    _private(_db, 0o600)

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
MEDIA_ROOT = Path(os.environ.get("RATING_CENTRAL_MEDIA") or DATA_DIR / "media").resolve()
# Every file goes through Django's storage API (FileField, storage.open): nothing is read from one
# node's disk by path, so several app servers share uploads through one mount or an object store.
if os.environ.get("RATING_CENTRAL_S3_BUCKET"):
    STORAGES = {"default": {"BACKEND": "storages.backends.s3.S3Storage", "OPTIONS": {
        "bucket_name": os.environ["RATING_CENTRAL_S3_BUCKET"],
        "endpoint_url": os.environ.get("RATING_CENTRAL_S3_ENDPOINT") or None,
        "default_acl": "private", "querystring_auth": True, "file_overwrite": False}},
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"}}
FILE_UPLOAD_PERMISSIONS = 0o600
FILE_UPLOAD_DIRECTORY_PERMISSIONS = 0o700

# A batch of 500 ratings is about 250 KB of JSON; leave room, refuse the absurd.
DATA_UPLOAD_MAX_MEMORY_SIZE = 8 * 1024 * 1024

LOGGING = {
    "version": 1,
    "disable_existing_loggers": False,
    "filters": {"hide_links": {"()": "central.ratings.logs.HideLinks"}},  # "Not Found: /s/<code>"
    "handlers": {"console": {"class": "logging.StreamHandler", "filters": ["hide_links"]}},
    "root": {"handlers": ["console"], "level": "INFO"},
    "loggers": {"django.db.backends": {"level": "WARNING"}, "axes": {"level": "WARNING"}},
}
