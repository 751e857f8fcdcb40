"""``rating-sync``: run the upload daemon, or show the queue."""

from __future__ import annotations

import signal
import sys
import threading

from terminal.commands import Command, main as run_table
from terminal.store import Store

from .client import CentralClient, TransientError
from .daemon import Uploader, run_forever


def cmd_run(config, args) -> int:
    if not args.once:
        stop = threading.Event()
        for sig in (signal.SIGTERM, signal.SIGINT):
            signal.signal(sig, lambda *_: stop.set())
        run_forever(config, stop)
        return 0
    store = Store(config.db_path)
    client = CentralClient(config.sync.server, timeout=config.sync.timeout)
    try:
        result = Uploader(store, client, config.sync.batch_size).drain()
    except TransientError as exc:
        print(f"rating-sync: could not deliver ({exc}); {store.counts()['pending']} ratings stay pending",
              file=sys.stderr)
        return 1
    print(f"delivered {result.delivered}, dead-lettered {result.dead}, "
          f"{result.batches} batches, {result.bytes_sent} bytes")
    return 0


def run_arguments(parser) -> None:
    parser.add_argument("--once", action="store_true",
                        help="drain and exit: status 0 when the queue is empty, 1 if the server could not be reached")


def cmd_status(config, args) -> int:
    store = Store(config.db_path)
    counts = store.counts()
    print(f"database      {config.db_path}")
    print(f"server        {config.sync.server}")
    print(f"pending       {counts['pending']}")
    print(f"delivered     {counts['delivered']}")
    print(f"dead letters  {counts['dead']}")
    print(f"oldest pending recorded at {store.oldest_pending() or '-'}")
    return 0


COMMANDS = {
    "run": Command(cmd_run, "upload pending ratings; with --once drain the queue and exit", run_arguments),
    "status": Command(cmd_status, "show queue depth, dead letters and the oldest pending rating"),
}


def main(argv: list[str] | None = None) -> int:
    return run_table("rating-sync", "Upload the terminal's ratings to the central server.", COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
