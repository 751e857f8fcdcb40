"""Pulling the window's content into the folder the kiosk reads, never leaving it half-done.

Layout under the data folder::

    content -> content-versions/<version>     a symlink, swapped atomically with rename(2)
    content-versions/<version>/content.json   the manifest as the server sent it
    content-versions/<version>/files/<sha256>.<ext>

A new version is built in a staging folder: files already held (same SHA-256) are hard-linked,
others downloaded and verified against the manifest's hash and size, everything fsynced; only then
is the symlink swapped. A failed, cut or mismatched download, or a full disk, leaves the current
content exactly as it was. On a full disk, old content versions are evicted first (never ratings),
and the pull tried once more.
"""

from __future__ import annotations

import errno
import json
import logging
import os
import re
import shutil
from pathlib import Path

from .client import CentralClient, FileMismatch, TransientError

log = logging.getLogger("rating-sync")
FILE_PATH = re.compile(r"^files/[0-9a-f]{64}\.[a-z0-9]{1,5}$")
KEEP_VERSIONS = 2  # the current one and the one before


class ContentPullError(RuntimeError):
    pass


def versions_dir(content_dir: Path) -> Path:
    return content_dir.with_name(content_dir.name + "-versions")


def current_etag(content_dir: Path) -> str | None:
    try:
        return json.loads((content_dir / ".etag").read_text())["etag"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pull(client: CentralClient, content_dir: Path) -> bool:
    """Bring the content up to date; True if a new version was swapped in."""
    _check_managed(content_dir)
    manifest, etag = client.content(current_etag(content_dir))
    if manifest is None:
        return False
    try:
        _install(client, content_dir, manifest, etag)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise ContentPullError(f"cannot write content: {exc}") from None
        freed = evict_old_versions(content_dir, keep=1)
        log.warning("disk full while pulling content; evicted %d old content versions, trying once more", freed)
        try:
            _install(client, content_dir, manifest, etag)
        except OSError as again:
            raise ContentPullError(f"disk full: cannot store new content ({again.strerror}); "
                                   "the current content stays") from None
    return True


def _install(client: CentralClient, content_dir: Path, manifest: dict, etag: str) -> None:
    versions = versions_dir(content_dir)
    versions.mkdir(parents=True, exist_ok=True)
    final = versions / etag[:16]
    staging = versions / f".staging-{etag[:16]}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "files").mkdir(parents=True)
        for entry in manifest.get("files", []):
            _place_file(client, content_dir, staging, entry)
        _write_synced(staging / "content.json", json.dumps(manifest, ensure_ascii=False, indent=1).encode())
        _write_synced(staging / ".etag", json.dumps({"etag": etag}).encode())
        _fsync_dir(staging / "files")
        _fsync_dir(staging)
        shutil.rmtree(final, ignore_errors=True)
        os.rename(staging, final)
        _fsync_dir(versions)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
    _swap_symlink(content_dir, final)
    evict_old_versions(content_dir, keep=KEEP_VERSIONS)
    log.info("content %s installed (%d files)", manifest.get("version", etag[:16]), len(manifest.get("files", [])))


def _place_file(client: CentralClient, content_dir: Path, staging: Path, entry: dict) -> None:
    path, sha256, size = entry.get("path"), entry.get("sha256"), entry.get("size")
    if not (isinstance(path, str) and FILE_PATH.match(path) and isinstance(size, int) and size >= 0
            and isinstance(sha256, str) and path.startswith(f"files/{sha256}.")):
        raise ContentPullError(f"manifest names a file badly: {entry!r}")
    target = staging / path
    held = content_dir / path
    if held.is_file() and held.stat().st_size == size:
        os.link(held, target)  # same name means same SHA-256: reuse, download nothing
        return
    partial = target.with_name(target.name + ".part")
    try:
        with open(partial, "wb") as out:
            client.fetch_file(sha256, size, out)
            out.flush()
            os.fsync(out.fileno())
    except FileMismatch as exc:
        raise ContentPullError(str(exc)) from None
    except TransientError:
        raise
    os.rename(partial, target)


def _check_managed(content_dir: Path) -> None:
    """Sync replaces only the symlink it made. A plain folder there (a manual copy, or a config
    pointing at the wrong place) is never moved or touched: the technician must clear it."""
    if content_dir.exists() and not content_dir.is_symlink():
        raise ContentPullError(f"{content_dir} is a plain folder, not content managed by rating-sync; "
                               "move it away (or fix content_dir in the config) and pull again")


def _swap_symlink(content_dir: Path, final: Path) -> None:
    tmp = content_dir.with_name(f".{content_dir.name}.swap")
    if tmp.is_symlink() or tmp.exists():
        tmp.unlink()
    os.symlink(os.path.relpath(final, content_dir.parent), tmp)
    os.replace(tmp, content_dir)  # atomic: readers see the old version or the new, never neither
    _fsync_dir(content_dir.parent)


def evict_old_versions(content_dir: Path, keep: int) -> int:
    """Remove content versions other than the current one, oldest first, keeping ``keep`` in all."""
    versions = versions_dir(content_dir)
    if not versions.is_dir():
        return 0
    current = content_dir.resolve() if content_dir.is_symlink() else None
    others = sorted((p for p in versions.iterdir() if p.resolve() != current),
                    key=lambda p: p.stat().st_mtime)
    doomed = others[:max(0, len(others) - (keep - (1 if current else 0)))]
    for old in doomed:
        shutil.rmtree(old, ignore_errors=True)
    return len(doomed)


def _write_synced(path: Path, data: bytes) -> None:
    with open(path, "wb") as f:
        f.write(data)
        f.flush()
        os.fsync(f.fileno())


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
