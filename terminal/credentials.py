"""The terminal's own credentials from enrollment: ``<data_dir>/credentials.json``, mode 0600.

Written once by ``rating-terminal provision`` (atomically: a crash leaves the old file or the new
one, never half of one) and read by the config loader (id, window, server) and by the sync
client (the secret, which nothing else touches and nothing prints).
"""

from __future__ import annotations

import json
import os
from dataclasses import asdict, dataclass, field
from pathlib import Path

FILENAME = "credentials.json"


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


def needs_enrollment(config) -> bool:
    """Whether this terminal must be enrolled before it takes ratings (``[terminal] demo`` runs
    an un-enrolled terminal as the demo one instead). Here, not in ``provisioning``: the kiosk
    asks at every start, and only a terminal that must enroll needs that module."""
    return not config.terminal.demo and Credentials.load(config.terminal.data_dir) is None
