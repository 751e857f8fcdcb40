"""A command table, as in mpremote: each terminal-side CLI lists ``name -> Command`` and this
module does the rest (argparse, --version, --config, logging, config errors as exit status 2)."""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass
from typing import Callable

import terminal
from terminal import config as config_module

CONFIG_HELP = ("terminal config file (TOML); default $RATING_TERMINAL_CONFIG, else "
               "/etc/rating-terminal/terminal.toml, else embedded demo defaults")


@dataclass(frozen=True)
class Command:
    run: Callable[[config_module.Config, argparse.Namespace], int]
    help: str
    arguments: Callable[[argparse.ArgumentParser], None] | None = None


def main(prog: str, description: str, commands: dict[str, Command], argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog=prog, description=description)
    parser.add_argument("--version", action="version", version=f"{prog} {terminal.__version__}")
    parser.add_argument("--config", help=CONFIG_HELP)
    sub = parser.add_subparsers(dest="command", required=True)
    for name, command in commands.items():
        sub_parser = sub.add_parser(name, help=command.help, description=command.help)
        if command.arguments:
            command.arguments(sub_parser)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s %(message)s")
    try:
        config = config_module.load(args.config)
    except config_module.ConfigError as exc:
        print(f"{prog}: {exc}", file=sys.stderr)
        return 2
    return commands[args.command].run(config, args)
