"""``rating-sync``: run the upload daemon, or show the queue."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

import terminal
from terminal import config as config_module
from terminal.store import Store

from .client import CentralClient, TransientError
from .daemon import Uploader, run_forever


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rating-sync",
        description="Upload the terminal's ratings to the central server and keep its content fresh. "
                    "Reads the terminal config (--config, $RATING_TERMINAL_CONFIG or "
                    "/etc/rating-terminal/terminal.toml).")
    parser.add_argument("--version", action="version", version=f"rating-sync {terminal.__version__}")
    parser.add_argument("--config", help="terminal config file (TOML)")
    sub = parser.add_subparsers(dest="command", required=True)
    run = sub.add_parser("run", help="upload pending ratings; with --once drain the queue and exit")
    run.add_argument("--once", action="store_true",
                     help="drain and exit: status 0 when the queue is empty, 1 if the server could not be reached")
    sub.add_parser("status", help="show queue depth, dead letters and the oldest pending rating")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = config_module.load(args.config)
    except config_module.ConfigError as exc:
        print(f"rating-sync: {exc}", file=sys.stderr)
        return 2

    if args.command == "status":
        store = Store(config.db_path)
        counts = store.counts()
        print(f"database      {config.db_path}")
        print(f"server        {config.sync.server}")
        print(f"pending       {counts['pending']}")
        print(f"delivered     {counts['delivered']}")
        print(f"dead letters  {counts['dead']}")
        print(f"oldest pending recorded at {store.oldest_pending() or '-'}")
        return 0

    if args.once:
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

    stop = threading.Event()
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    run_forever(config, stop)
    return 0


if __name__ == "__main__":
    sys.exit(main())
