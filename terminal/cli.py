"""``rating-terminal``: the terminal's command line. Commands are a table, as in mpremote."""

from __future__ import annotations

import argparse
import logging
import sys

import terminal
from terminal import config as config_module


def cmd_run(config: config_module.Config, args: argparse.Namespace) -> int:
    from terminal import kiosk
    kiosk.run(config)
    return 0


def cmd_status(config: config_module.Config, args: argparse.Namespace) -> int:
    from terminal.store import Store
    store = Store(config.db_path)
    counts = store.counts()
    print(f"terminal {config.terminal.id}  window {config.terminal.window}  config {config.source}")
    print(f"database {config.db_path} (schema v{store.schema_version})")
    print(f"ratings: {counts['pending']} pending, {counts['delivered']} delivered, {counts['dead']} dead letters")
    return 0


COMMANDS = {
    # name: (function, help, extra-arguments setup)
    "run": (cmd_run, "start the touchscreen kiosk", None),
    "status": (cmd_status, "show this terminal's identity and rating queue", None),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="rating-terminal",
        description="Window rating terminal (评价器): the kiosk and the terminal's tools. "
                    "Config: --config, $RATING_TERMINAL_CONFIG or /etc/rating-terminal/terminal.toml; "
                    "with none, embedded demo defaults.")
    parser.add_argument("--version", action="version", version=f"rating-terminal {terminal.__version__}")
    parser.add_argument("--config", help="terminal config file (TOML)")
    sub = parser.add_subparsers(dest="command", required=True)
    for name, (_, help_text, setup) in COMMANDS.items():
        command = sub.add_parser(name, help=help_text, description=help_text)
        if setup:
            setup(command)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = config_module.load(args.config)
    except config_module.ConfigError as exc:
        print(f"rating-terminal: {exc}", file=sys.stderr)
        return 2
    return COMMANDS[args.command][0](config, args)


if __name__ == "__main__":
    sys.exit(main())
