"""``rating-terminal``: the terminal's command line."""

from __future__ import annotations

import sys

from terminal.commands import Command, main as run_table


def cmd_run(config, args) -> int:
    if args.headless:
        import threading
        from terminal import headless, systemd
        stop = threading.Event()
        systemd.stop_on_signals(stop)
        headless.run(config, stop)
        return 0
    from terminal import kiosk
    kiosk.run(config)
    return 0


def run_arguments(parser) -> None:
    parser.add_argument("--headless", action="store_true",
                        help="a box-only terminal: button box or GPIO buttons, badges and the invite API, no screen")


def cmd_status(config, args) -> int:
    from terminal.store import Store
    store = Store(config.db_path)
    counts = store.counts()
    print(f"terminal {config.terminal.id}  window {config.terminal.window}  config {config.source}")
    print(f"database {config.db_path} (schema v{store.schema_version})")
    print(f"ratings: {counts['pending']} pending, {counts['delivered']} delivered, {counts['dead']} dead letters")
    events = store.counts("events")
    print(f"events:  {events['pending']} pending, {events['delivered']} delivered, {events['dead']} dead letters")
    store.close()
    return 0


def cmd_provision(config, args) -> int:
    """Exchange a one-time enrollment code for this terminal's own id and secret."""
    from terminal.core.provision import ProvisionError, check_request
    from terminal.provisioning import AlreadyEnrolled, Undelivered, enroll
    try:
        creds = enroll(config, check_request(args.server, args.code), force=args.force,
                       despite_undelivered=args.despite_undelivered)
    except AlreadyEnrolled as exc:
        print(f"rating-terminal: {exc}; use --force to enroll again "
              "(the old identity should then be revoked centrally)", file=sys.stderr)
        return 1
    except Undelivered as exc:
        print(f"rating-terminal: {exc}", file=sys.stderr)
        return 1
    except ProvisionError as exc:
        print(f"rating-terminal: {exc.detail or exc.reason}", file=sys.stderr)
        return 1
    from terminal.credentials import FILENAME
    path = config.terminal.data_dir / FILENAME
    print(f"enrolled as {creds.terminal_id} at {creds.window_name or creds.window} ({creds.hall}); "
          f"credentials in {path} (mode 600)")
    if args.force:  # rating-sync signs as the new identity at once; a running kiosk follows at a calm moment
        print("rating-sync now signs as the new identity, and a running rating-kiosk or rating-headless follows "
              "by itself: once no session is in progress it exits and systemd starts it again as the new one (no "
              "restart by hand). A session under way now still ends as the old identity", file=sys.stderr)
    return 0


def provision_arguments(parser) -> None:
    parser.add_argument("--server", required=True, help="central server URL, e.g. https://pj.example.gov.cn "
                        "(https://; a private CA and a key pin come from [sync] ca_file and server_key_pin)")
    code = parser.add_mutually_exclusive_group(required=True)
    code.add_argument("--code", help="one-time enrollment code from the central server (a command line other "
                      "users can see: prefer --code-file)")
    code.add_argument("--code-file", dest="code", type=read_code_file, metavar="FILE",
                      help="read the code from FILE, or from standard input with - (scripts, the fleet playbook)")
    parser.add_argument("--force", action="store_true", help="enroll again even if credentials exist")
    parser.add_argument("--despite-undelivered", action="store_true",
                        help="with --force: enroll again although ratings made as the old identity wait "
                             "(it was revoked or its server is gone; the server keeps them, refused, for inspection)")


MAX_CODE_LINE = 256  # a code is 14 characters; more is not a code file (the check then says why)


def read_code_file(path: str) -> str:
    """The enrollment code in a file (or ``-``, standard input): its first line, stripped, bounded."""
    import argparse
    try:
        if path == "-":
            return sys.stdin.readline(MAX_CODE_LINE).strip()
        with open(path, encoding="utf-8", errors="replace") as f:
            return f.readline(MAX_CODE_LINE).strip()
    except OSError as exc:
        raise argparse.ArgumentTypeError(f"cannot read {path}: {exc.strerror or exc}") from None


def cmd_invite_token(config, args) -> int:
    """The token the window's business system sends to the invite API (made on first use)."""
    from terminal.invite_api import load_or_create_token
    print(load_or_create_token(config.invite_token_path))
    print(f"invite API: {config.invite.listen or 'off (set [invite] listen)'}; send it as "
          "'Authorization: Bearer <token>'", file=sys.stderr)
    return 0


def cmd_set_pin(config, args) -> int:
    """Set the technician menu's PIN: read from the terminal (twice) or one line of stdin."""
    import getpass
    from terminal.core.pin import hash_pin
    from terminal.credentials import write_private
    if sys.stdin.isatty():
        pin = getpass.getpass("new technician PIN (4-12 digits): ")
        if getpass.getpass("again: ") != pin:
            print("rating-terminal: the two PINs differ; nothing changed", file=sys.stderr)
            return 1
    else:
        pin = sys.stdin.readline().strip()
    try:
        stored = hash_pin(pin)
    except ValueError as exc:
        print(f"rating-terminal: {exc}; nothing changed", file=sys.stderr)
        return 1
    path = write_private(config.technician_pin_path, stored + "\n")
    print(f"technician PIN set ({path}, only its hash is kept)")
    return 0


def cmd_flash_box(config, args) -> int:
    """Copy the button box's firmware with mpremote, verify it on the board, reset, read HELLO."""
    from hardware.flashbox import FlashError, flash
    data = args.data
    if data is None and config.box.port not in ("", "auto"):
        data = config.box.port
    repl = args.repl
    if repl is None or data is None:
        from hardware.boxfinder import find_ports
        try:
            found = find_ports(config.box.serial or None)
        except OSError as exc:  # no udev here
            print(f"rating-terminal flash-box: cannot look for the box ({exc}); give --repl and --data",
                  file=sys.stderr)
            return 1
        data, repl = data or found.get("data"), repl or found.get("repl") or "/dev/rating-box-repl"
    try:
        flash(repl, data, args.source, args.timeout, say=lambda line: print(f"flash-box: {line}"))
    except FlashError as exc:
        print(f"rating-terminal flash-box: {exc}", file=sys.stderr)
        return 1
    return 0


def flash_box_arguments(parser) -> None:
    import firmware
    parser.add_argument("--repl", help="the box's REPL port (default: found by udev, else /dev/rating-box-repl)")
    parser.add_argument("--data", help="the box's data port (default: [box] port, else found by udev)")
    parser.add_argument("--source", default=str(firmware.HERE), help="firmware directory (default: the installed one)")
    parser.add_argument("--timeout", type=float, default=20, help="seconds to wait for the box at each restart")


def cmd_doctor(config, args) -> int:
    """Check everything a working window needs; exit status 1 when something fails."""
    from terminal import doctor
    checks = doctor.run(config, headless=args.headless)
    print(doctor.report(checks, args.json))
    return 1 if any(c.status == doctor.FAIL for c in checks) else 0


def doctor_arguments(parser) -> None:
    parser.add_argument("--json", action="store_true", help="one JSON object for scripts: ok, checks[]")
    parser.add_argument("--headless", action="store_true", help="a box-only terminal: skip display, touch and fonts")


COMMANDS = {
    "provision": Command(cmd_provision, "enroll this terminal with a one-time code from the central server",
                         provision_arguments),
    "run": Command(cmd_run, "start the touchscreen kiosk (--headless: a box-only terminal)", run_arguments),
    "status": Command(cmd_status, "show this terminal's identity and rating queue"),
    "doctor": Command(cmd_doctor, "check display, touch, box, badge reader, fonts, audio, disk, clock, server, "
                                  "credentials, content and queue; one line each with what to do", doctor_arguments),
    "set-pin": Command(cmd_set_pin, "set the technician menu's PIN (read from the terminal or stdin)"),
    "flash-box": Command(cmd_flash_box, "flash the button box's firmware (mpremote), verify it and read its hello",
                         flash_box_arguments),
    "invite-token": Command(cmd_invite_token, "print the token for the local invite API (for the business system)"),
}


def main(argv: list[str] | None = None) -> int:
    return run_table("rating-terminal", "Window rating terminal (评价器): the kiosk and the terminal's tools.",
                     COMMANDS, argv)


if __name__ == "__main__":
    sys.exit(main())
