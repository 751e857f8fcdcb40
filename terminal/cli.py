"""``rating-terminal``: the terminal's command line."""

from __future__ import annotations

import sys

from terminal.commands import Command, main as run_table


def cmd_run(config, args) -> int:
    from terminal import kiosk
    kiosk.run(config)
    return 0


def cmd_status(config, args) -> int:
    from terminal.store import Store
    store = Store(config.db_path)
    counts = store.counts()
    print(f"terminal {config.terminal.id}  window {config.terminal.window}  config {config.source}")
    print(f"database {config.db_path} (schema v{store.schema_version})")
    print(f"ratings: {counts['pending']} pending, {counts['delivered']} delivered, {counts['dead']} dead letters")
    return 0


COMMANDS = {
    "run": Command(cmd_run, "start the touchscreen kiosk"),
    "status": Command(cmd_status, "show this terminal's identity and rating queue"),
}


def main(argv: list[str] | None = None) -> int:
    return run_table("rating-terminal", "Window rating terminal (评价器): the kiosk and the terminal's tools.",
                     COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
