"""``rating-sync``: run the sync daemon, drain once, pull content, or show the state."""

from __future__ import annotations

import sys
import threading

from terminal import systemd
from terminal.commands import Command, main as run_table

from . import content
from .client import TransientError
from .daemon import SyncDaemon, run_forever


def cmd_run(config, args) -> int:
    if not args.once:
        stop = threading.Event()
        systemd.stop_on_signals(stop)
        run_forever(config, stop)
        return 0
    daemon = SyncDaemon(config)
    try:
        result = daemon.upload()
    except TransientError as exc:
        print(f"rating-sync: could not deliver ({exc}); {daemon.store.counts()['pending']} ratings stay pending",
              file=sys.stderr)
        return 1
    finally:
        daemon.close()
    print(f"delivered {result.delivered}, dead-lettered {result.dead}, "
          f"{result.batches} batches, {result.bytes_sent} bytes, {result.events} events")
    return 0


def run_arguments(parser) -> None:
    parser.add_argument("--once", action="store_true",
                        help="drain and exit: status 0 when the queue is empty, 1 if the server could not be reached")


def cmd_pull_content(config, args) -> int:
    daemon = SyncDaemon(config)
    try:
        error = daemon.pull_content()
    finally:
        daemon.close()
    if error:
        print(f"rating-sync: content not updated, current content kept: {error}", file=sys.stderr)
        return 1
    print(f"content version {content.current_etag(config.content_dir)}")
    return 0


def cmd_status(config, args) -> int:
    daemon = SyncDaemon(config)
    counts, state = daemon.store.counts(), daemon.store.state()
    rows = [
        ("terminal", config.terminal.id), ("server", config.sync.server),
        ("enrolled", "yes" if daemon.client.credentials else "NO: run rating-terminal provision"),
        ("pending", counts["pending"]), ("oldest pending", daemon.store.oldest_pending() or "-"),
        ("delivered", counts["delivered"]), ("dead letters", counts["dead"]),
        ("last success", state.get("last_success") or "-"), ("last error", state.get("last_error") or "-"),
        ("clock offset", f"{state.get('clock_offset_s', 0.0):+.3f} s (server minus terminal)"),
        ("content", state.get("content_version") or "-"),
        ("last content error", state.get("last_content_error") or "-"),
    ]
    for name, value in rows:
        print(f"{name:<20}{value}")
    for alert in daemon.store.alerts(5):
        print(f"ALERT {alert['at']} {alert['kind']}: {alert['detail']}")
    daemon.close()
    return 0


COMMANDS = {
    "run": Command(cmd_run, "upload pending ratings; with --once drain the queue and exit", run_arguments),
    "pull-content": Command(cmd_pull_content, "fetch the window's content now if it changed"),
    "status": Command(cmd_status, "show queue, dead letters, last success and error, clock offset, alerts"),
}


def main(argv: list[str] | None = None) -> int:
    return run_table("rating-sync", "Upload the terminal's ratings to the central server, send heartbeats "
                     "and keep the window's content fresh.", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
