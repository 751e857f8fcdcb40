"""Enrolling this terminal: the one way the CLI, the provisioning screen and the boot file do it.

``enroll`` exchanges a checked request (``terminal.core.provision``) for the terminal's own id
and secret and saves them (``credentials.json``, mode 600). ``from_boot_file`` does it with the
``provision.toml`` a technician left on the boot partition and then deletes that file: the code
is a secret on a FAT partition every user can read. ``wait_for_enrollment`` keeps trying the
file, with bounded backoff while the network or the server is not there yet, until the terminal
is enrolled by any way. Nothing here logs or prints the code or the secret.
"""

from __future__ import annotations

import errno
import logging
import os
import stat
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from terminal.config import Config
from terminal.core.provision import MAX_FILE_BYTES, ProvisionError, Request, failure, parse_file
from terminal.credentials import Credentials, file_stamp

log = logging.getLogger("rating-terminal")
RETRY_BASE_S, RETRY_CAP_S = 2.0, 60.0  # the network may come up a minute after the kiosk
POLL_S = 2.0  # how often a terminal waiting for enrollment looks for the file (or credentials)
_ONE_AT_A_TIME = threading.Lock()  # the screen and the boot file must not enroll twice


class AlreadyEnrolled(RuntimeError):
    pass


class Undelivered(RuntimeError):
    """Enrolling again now would strand what the old identity made: the server takes a record only
    from the terminal it names (terminal_mismatch, a dead letter), and the old one is then revoked."""


def enrolled(config: Config) -> Credentials | None:
    return Credentials.load(config.terminal.data_dir)


def enroll(config: Config, request: Request, force: bool = False, despite_undelivered: bool = False) -> Credentials:
    """Exchange the request's code for credentials and save them; ProvisionError says why not
    (``retry``: trying again later may work). ``despite_undelivered``: enroll again although records
    made as the old identity wait (it was revoked, or its server is gone, so they can never go as it):
    they then go as the new one, and the server keeps them, refused, for inspection, never counted."""
    from sync.client import TransientError, enroll as enroll_call
    with _ONE_AT_A_TIME:
        existing = enrolled(config)
        if existing and not force:
            raise AlreadyEnrolled(f"already enrolled as {existing.terminal_id}")
        if existing and not despite_undelivered:
            _refuse_while_undelivered(config, existing)
        try:
            answer = enroll_call(request.server, request.code, timeout=config.sync.timeout,
                                 ca_file=config.sync.ca_file, server_key_pin=config.sync.server_key_pin)
        except TransientError as exc:
            raise failure(exc.status, exc.code, str(exc)) from None
        creds = Credentials(terminal_id=answer["terminal_id"], secret=answer["secret"], server=request.server,
                            window=answer["window"], window_name=str(answer.get("window_name", ""))[:128],
                            hall=str(answer.get("hall", ""))[:128])
        creds.save(config.terminal.data_dir)
    log.info("enrolled as %s at window %s (%s); server %s", creds.terminal_id, creds.window,
             creds.window_name or "-", creds.server)
    return creds


def _refuse_while_undelivered(config: Config, existing: Credentials) -> None:
    """Undelivered while any rating or event waits to be sent as ``existing`` (checked before the
    code is sent, so it is not spent)."""
    if not config.db_path.exists():
        return
    from terminal.store import Store
    store = Store(config.db_path)
    try:
        ratings, events = store.counts()["pending"], store.counts("events")["pending"]
    finally:
        store.close()
    if ratings or events:
        raise Undelivered(f"{ratings} rating(s) and {events} event(s) made as {existing.terminal_id} are not "
                          "delivered yet; the server takes them only from that terminal. Deliver them first "
                          "(rating-sync run --once, or wait for rating-sync; rating-terminal status shows the "
                          "queue), then enroll again; if the old identity can never send them (revoked, its server gone), "
                          "--despite-undelivered enrolls now: the server then keeps them, refused, for inspection")


def read_boot_file(path: Path) -> bytes | None:
    """The file's bytes, or None when there is none. Only a regular file, never through a
    symlink, never blocking on a FIFO, never more than the limit (ProvisionError otherwise)."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except FileNotFoundError:
        return None
    except OSError as exc:
        why = "it is a symbolic link" if exc.errno == errno.ELOOP else os.strerror(exc.errno or 0)
        raise ProvisionError("provision.toml 文件无效", f"{path}: not read ({why})") from None
    try:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            raise ProvisionError("provision.toml 文件无效", f"{path}: not a regular file")
        return os.read(fd, MAX_FILE_BYTES + 1)
    finally:
        os.close(fd)


@dataclass(frozen=True)
class Outcome:
    """One try with the boot file: enrolled (``creds``), no file (both None), or why not."""
    creds: Credentials | None = None
    error: ProvisionError | None = None


def from_boot_file(config: Config) -> Outcome:
    """Enroll from ``[terminal] provision_file`` if it is there; remove it once it is spent."""
    path = config.terminal.provision_file
    try:
        data = read_boot_file(path)
        if data is None:
            return Outcome()
        creds = enroll(config, parse_file(data, path.name))
    except ProvisionError as exc:
        log.warning("enrollment from %s failed: %s", path, exc)
        return Outcome(error=exc)
    except AlreadyEnrolled:
        creds = enrolled(config)
    remove_spent(path)
    return Outcome(creds=creds)


def remove_spent(path: Path) -> None:
    """The code is spent, but it stays a secret: delete the file, or say loudly that it stays."""
    try:
        path.unlink()
        log.info("%s removed: its enrollment code is spent", path)
    except FileNotFoundError:
        pass
    except OSError as exc:
        log.warning("could not remove %s (%s): the service's next start removes it as root (its unit's "
                    "ExecStartPre), or remove it by hand", path, os.strerror(exc.errno or 0))


def wait_for_enrollment(config: Config, stop: threading.Event, report=lambda outcome: None,
                        each_round=lambda: None, rng=None) -> Credentials | None:
    """Until enrolled (by the boot file, the screen or the CLI) or ``stop``: try the boot file
    whenever it is new or changed, and again with bounded backoff after a failure that time may
    cure (no network yet, a busy server). ``report`` hears each try's outcome; ``each_round``
    runs every round (at most POLL_S apart, e.g. to feed a watchdog)."""
    from sync.backoff import Backoff
    backoff = Backoff(RETRY_BASE_S, RETRY_CAP_S, rng)
    tried, retry_at = None, 0.0
    while not stop.is_set():
        each_round()
        creds = enrolled(config)
        if creds:
            return creds
        stamp = file_stamp(config.terminal.provision_file)
        if stamp is not None and (stamp != tried or (retry_at and time.monotonic() >= retry_at)):
            outcome = from_boot_file(config)
            report(outcome)
            if outcome.creds:
                return outcome.creds
            tried, retry_at = stamp, 0.0
            if outcome.error and outcome.error.retry:
                retry_at = time.monotonic() + backoff.next_delay()
        elif stamp is None:
            tried, retry_at = None, 0.0
            backoff.reset()
        stop.wait(POLL_S if not retry_at else max(0.05, min(POLL_S, retry_at - time.monotonic())))
    return None
