"""The terminal's own credentials from enrollment: ``<data_dir>/credentials.json``, mode 0600.

Written once by ``rating-terminal provision`` (atomically: a crash leaves the old file or the new
one, never half of one) and read by the config loader (id, window, server) and by the sync
client (the secret, which nothing else touches and nothing prints).
"""

from __future__ import annotations

import json
import logging
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

FILENAME = "credentials.json"
FOLLOW_S = 1.0  # how often a recording process looks for new credentials (one lstat)
log = logging.getLogger("rating-terminal")


class CredentialsError(RuntimeError):
    pass


@dataclass(frozen=True)
class Credentials:
    """What enrollment issued this terminal: its id, its signing secret (never in a repr or a log),
    the server it was enrolled with and its window."""
    terminal_id: str
    secret: str = field(repr=False)
    server: str
    window: str
    window_name: str = ""
    hall: str = ""

    def __post_init__(self):
        check_ids(self.terminal_id, self.window)

    @classmethod
    def load(cls, data_dir: Path) -> "Credentials | None":
        path = Path(data_dir) / FILENAME
        try:
            raw = json.loads(path.read_text(encoding="utf-8"))
            return cls(**raw)
        except FileNotFoundError:
            return None
        except CredentialsError as exc:
            raise CredentialsError(f"{path}: {exc}; provision the terminal again") from None
        except (OSError, ValueError, TypeError) as exc:
            raise CredentialsError(f"{path} is unreadable ({type(exc).__name__}); provision the terminal again") from None

    def save(self, data_dir: Path) -> Path:
        return write_private(Path(data_dir) / FILENAME, json.dumps(asdict(self), ensure_ascii=False, indent=1))


def check_ids(terminal_id: object, window: object) -> None:
    """CredentialsError unless every record can carry the terminal id and window code (text of at
    most MAX_CODE characters, no control characters): each rating made under one it cannot carry
    would fail to be recorded, so enrollment refuses it and nothing is saved."""
    from terminal.core.checks import text
    from terminal.core.rating import MAX_CODE
    for name, value in (("terminal_id", terminal_id), ("window", window)):
        try:
            text(MAX_CODE)(value)
        except (TypeError, ValueError) as exc:
            raise CredentialsError(f"{name} {exc}: a record cannot carry it") from None


def write_private(path: Path, text: str, durable: bool = True) -> Path:
    """Write a file readable by its owner only, atomically (a reader sees the old text or the new),
    and durably (fsync, rename, fsync) unless ``durable`` is false: for a note whose loss costs
    nothing, no fsync."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    # A leftover temporary file (a write cut short, a copied folder) would keep its own mode under
    # O_TRUNC, and a link there would be followed: a new file of mode 600, or nothing.
    try:
        os.unlink(tmp)
    except FileNotFoundError:
        pass
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as f:
        f.write(text)
        if durable:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)
    if not durable:
        return path
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)
    finally:
        os.close(dir_fd)
    return path


def file_stamp(path: Path) -> tuple | None:
    """What changes whenever the file at ``path`` is written again (an atomic replace is a new
    inode), or None when there is none: how a long-running process sees new credentials (or a new
    boot file) without reading them every round."""
    try:
        st = os.lstat(path)
    except OSError:
        return None
    return (st.st_mtime_ns, st.st_size, st.st_ino)


def load_usable(data_dir: Path) -> Credentials | None:
    """The credentials in ``data_dir`` if a process may sign or record with them (None: not
    enrolled); CredentialsError or ConfigError says why not. The one check every process that
    follows a new enrollment makes (rating-sync, the kiosk, the box-only terminal)."""
    from terminal.config import check_server_url
    credentials = Credentials.load(data_dir)
    if credentials is not None:
        check_server_url(credentials.server, str(Path(data_dir) / FILENAME))
    return credentials


class Reenrollment:
    """Whether ``credentials.json`` now names another identity than the one this process records
    as (``config``'s terminal id, window and server). A terminal enrolled again by hand
    (``provision --force``) while its kiosk ran went on recording as the old identity, which
    rating-sync no longer signs as and central then revoked: every record a dead letter. The
    process leaves once its window is calm (``Window.retire_when_calm``) and systemd starts it
    again as the new identity, with nothing of the old window's session carried over."""

    def __init__(self, config):
        self.path = Path(config.terminal.data_dir) / FILENAME
        self.identity = (config.terminal.id, config.terminal.window, config.sync.server)
        self._stamp: object = ()  # never a stamp: the first look reads the file (it may have changed since the config)
        self.new: Credentials | None = None

    def new_identity(self) -> Credentials | None:
        """The usable new identity, once the file names one (then kept); None while it does not."""
        if self.new is not None:
            return self.new
        stamp = file_stamp(self.path)
        if stamp == self._stamp:
            return None
        self._stamp = stamp
        from terminal.config import ConfigError
        try:
            credentials = load_usable(self.path.parent)
        except (CredentialsError, ConfigError) as exc:
            log.error("%s changed but cannot be used (%s); still recording as terminal %s", self.path, exc,
                      self.identity[0])
            return None
        if credentials is None or (credentials.terminal_id, credentials.window, credentials.server) == self.identity:
            return None
        log.warning("%s names a new identity (terminal %s at window %s): this terminal stops taking ratings "
                    "as %s at the next moment no session is in progress, and starts again as the new one",
                    self.path, credentials.terminal_id, credentials.window, self.identity[0])
        self.new = credentials
        return credentials


def needs_enrollment(config) -> bool:
    """Whether this terminal must be enrolled before it takes ratings (``[terminal] demo`` runs
    an un-enrolled terminal as the demo one instead). Here, not in ``provisioning``: the kiosk
    asks at every start, and only a terminal that must enroll needs that module."""
    return not config.terminal.demo and Credentials.load(config.terminal.data_dir) is None
