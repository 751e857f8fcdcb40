"""``rating-central``: the central server's command line (Django's management commands)."""

import os
import sys

USAGE = """usage: rating-central COMMAND [options]

Reference central server for window rating terminals.

Common commands:
  migrate                 create or upgrade the database
  load_demo [--folder F]  load a content folder into the roster (default: shipped demo)
  add_user NAME --role R  a user with a role: hall_admin, department_manager (--department CODE), auditor
  enroll_code --window W  print a one-time enrollment code for a new terminal at window W (repeat --window,
                          or --windows-from FILE / --all-unenrolled, for many; --format json for scripts)
  revoke TERMINAL_ID      refuse a terminal from its next request on
  add_system NAME         a business or queue system (or the SMS gateway): its id and secret, once
  callback_sample --quarter 2026Q4 --seed S   draw each window's quarterly call-back sample
  add_platform CODE --name N [--profile P]   a platform to report upward to (its URL and key from the environment)
  push_upward [--once]    push ratings, defaults, re-checks and rectifications to each platform (a service)
  tick                    the timer job (every minute): default ratings, chain checks, the daily upward
                          reconciliation, then early warnings
  default_ratings         give the default rating to services left unrated (part of tick)
  check_alerts            raise and clear early-warning alerts, send webhooks (part of tick)
  export_docs             write docs/exports.md from the export profiles
  api_docs                write docs/reference/ (wire API reference, OpenAPI) from the API's schema
  createsuperuser         make an administrator for /admin/
  collectstatic --noinput gather static files for the admin
  serve [--bind H:P]      serve HTTP with gunicorn (default 127.0.0.1:8000)
  help                    list every command (all of Django's management commands work)

Environment: RATING_CENTRAL_DATA (data folder, default var/central), RATING_CENTRAL_DATABASE_URL
(default SQLite in the data folder; postgres://… at scale), RATING_CENTRAL_HOSTS,
RATING_CENTRAL_ALERT_WEBHOOK[_SECRET], RATING_CENTRAL_DEBUG, RATING_CENTRAL_AREA_CODE,
RATING_CENTRAL_UPWARD_<CODE>_URL/_KEY_ID/_SECRET. See docs/operators.md.
"""


def main(argv: list[str] | None = None) -> None:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(USAGE)
        return
    if argv[0] == "enroll-code":  # the spelling people type
        argv = ["enroll_code", *argv[1:]]
    if argv[0] in ("--version", "-V"):
        import terminal
        print(f"rating-central {terminal.__version__}")
        return
    os.environ.setdefault("DJANGO_SETTINGS_MODULE", "central.settings")
    from django.core.management import execute_from_command_line
    execute_from_command_line(["rating-central", *argv])


if __name__ == "__main__":
    main()
