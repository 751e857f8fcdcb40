"""Pulling the window's content into the folder the kiosk reads, never leaving it half-done.

Layout under the data folder::

    content -> content-versions/v-<hash>     a symlink, swapped atomically with rename(2)
    content-versions/v-<hash>/content.json   the manifest as the server sent it
    content-versions/v-<hash>/files/<sha256>.<ext>

A new version is built in a staging folder: files already held (same SHA-256) are hard-linked,
others downloaded and verified against the manifest's hash and size, everything fsynced; only then
is the symlink swapped. A failed, cut or mismatched download, or a full disk, leaves the current
content exactly as it was. On a full disk, old content versions are evicted first (never ratings),
and the pull tried once more.

Nothing the server says names a folder: a version's folder is ``v-`` and the SHA-256 of the
manifest as this terminal writes it, and every path is resolved and must lie directly inside the
versions folder before anything is removed or renamed there. A manifest is refused whole, before
a byte is downloaded, if it lists more than ``MAX_FILES`` files, a file over the photo limit
(``terminal.images``), more than ``MAX_TOTAL_BYTES`` in all, or more than the disk can hold while
keeping ``[sync] disk_reserve_mb`` free for ratings, or if the kiosk's own reader
(``terminal.content.Content.load``) cannot load it: a version the kiosk cannot load would leave it
with no roster, and the good one before unused. Each image is checked (format, pixel size,
decompression bombs) before the swap.
"""

from __future__ import annotations

import errno
import hashlib
import json
import logging
import os
import re
import shutil
from pathlib import Path

from terminal import images
from terminal.content import Content, ContentError
from terminal.core.checks import unclean_path

from .client import CentralClient, FileMismatch

log = logging.getLogger("rating-sync")
FILE_PATH = re.compile(r"^files/([0-9a-f]{64})(\.[a-z0-9]{1,5})$")
KEEP_VERSIONS = 2  # the current one and the one before
MAX_FILES = 2000
MAX_TOTAL_BYTES = 512 * 1024 * 1024
DEFAULT_RESERVE = 128 * 1024 * 1024


class ContentPullError(RuntimeError):
    pass


def versions_dir(content_dir: Path) -> Path:
    return content_dir.with_name(content_dir.name + "-versions")


def current_etag(content_dir: Path) -> str | None:
    try:
        return json.loads((content_dir / ".etag").read_text())["etag"]
    except (OSError, ValueError, KeyError, TypeError):
        return None


def pull(client: CentralClient, content_dir: Path, reserve_bytes: int = DEFAULT_RESERVE) -> bool:
    """Bring the content up to date; True if a new version was swapped in."""
    _check_managed(content_dir)
    manifest, etag = client.content(current_etag(content_dir))
    if manifest is None:
        return False
    files = checked_files(manifest)
    try:
        _install(client, content_dir, manifest, etag, files, reserve_bytes)
    except OSError as exc:
        if exc.errno != errno.ENOSPC:
            raise ContentPullError(f"cannot write content: {exc}") from None
        freed = evict_old_versions(content_dir, keep=1)
        log.warning("disk full while pulling content; evicted %d old content versions, trying once more", freed)
        try:
            _install(client, content_dir, manifest, etag, files, reserve_bytes)
        except OSError as again:
            raise ContentPullError(f"disk full: cannot store new content ({again.strerror}); "
                                   "the current content stays") from None
    return True


def checked_files(manifest: dict) -> list[dict]:
    """The manifest's file entries, if every one is well formed and the whole stays in bounds (and
    no text in it holds control characters or lone surrogates: what the kiosk shows, it can write)."""
    unclean = unclean_path(manifest)
    if unclean:
        raise ContentPullError(f"manifest refused: {unclean} holds control characters or lone surrogates")
    entries = manifest.get("files", [])
    if not isinstance(entries, list) or len(entries) > MAX_FILES:
        raise ContentPullError(f"manifest lists {len(entries) if isinstance(entries, list) else 'no list of'} "
                               f"files; at most {MAX_FILES}")
    total, seen = 0, set()
    for entry in entries:
        path = entry.get("path") if isinstance(entry, dict) else None
        match = FILE_PATH.match(path) if isinstance(path, str) else None
        size, sha256 = (entry.get("size"), entry.get("sha256")) if isinstance(entry, dict) else (None, None)
        if not (match and isinstance(size, int) and not isinstance(size, bool) and size >= 0
                and sha256 == match.group(1) and path not in seen):
            raise ContentPullError(f"manifest names a file badly: {str(entry)[:200]}")
        if match.group(2) not in images.SUFFIXES:
            raise ContentPullError(f"manifest lists {path}: only JPEG, PNG and WebP images are content files")
        if size > images.MAX_BYTES:
            raise ContentPullError(f"manifest lists {path} of {size} bytes; a content file is at most "
                                   f"{images.MAX_BYTES} bytes (the admin's photo limit)")
        seen.add(path)
        total += size
    if total > MAX_TOTAL_BYTES:
        raise ContentPullError(f"manifest lists {total} bytes of files; at most {MAX_TOTAL_BYTES}")
    return entries


def version_name(text: bytes) -> str:
    """A version's folder: our own hash of the manifest we write, never a name the server gave."""
    return "v-" + hashlib.sha256(text).hexdigest()[:32]


def _install(client: CentralClient, content_dir: Path, manifest: dict, etag: str, files: list[dict],
             reserve_bytes: int) -> None:
    versions = versions_dir(content_dir)
    if versions.is_symlink():
        raise ContentPullError(f"{versions} is a symlink, not the content versions folder; move it away")
    versions.mkdir(parents=True, exist_ok=True)
    text = json.dumps(manifest, ensure_ascii=False, indent=1).encode()
    name = version_name(text)
    final = _inside(versions, versions / name)
    staging = _inside(versions, versions / f".staging-{name}")
    _check_room(versions, content_dir, files, len(text), reserve_bytes)
    shutil.rmtree(staging, ignore_errors=True)
    try:
        (staging / "files").mkdir(parents=True)
        _write_synced(staging / "content.json", text)
        _check_loads(staging)
        for entry in files:
            _place_file(client, content_dir, staging, entry)
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
    log.info("content %s installed (%d files)", name, len(files))


def _check_loads(staging: Path) -> None:
    """Refuse, before a file is downloaded, a manifest the kiosk's reader refuses."""
    try:
        Content.load(staging)
    except ContentError as exc:
        raise ContentPullError(f"manifest refused: the kiosk cannot load it "
                               f"({str(exc).replace(str(staging), 'content')}); the current content stays") from None


def _inside(versions: Path, path: Path) -> Path:
    """``path``, if it resolves to an entry directly inside the versions folder; else refuse."""
    resolved = path.resolve()
    if resolved.parent != versions.resolve() or resolved.name in ("", ".", ".."):
        raise ContentPullError(f"refusing to touch {path}: not inside {versions}")
    return resolved


def _check_room(versions: Path, content_dir: Path, files: list[dict], manifest_bytes: int, reserve: int) -> None:
    """Refuse a pull that would leave less than the reserve free (what ratings need), before any download."""
    needed = manifest_bytes + sum(e["size"] for e in files if not _held(content_dir, e))
    free = shutil.disk_usage(versions).free
    if free - needed < reserve:
        evict_old_versions(content_dir, keep=1)
        free = shutil.disk_usage(versions).free
    if free - needed < reserve:
        raise ContentPullError(f"not enough disk for new content: it needs {needed} bytes, {free} are free and "
                               f"{reserve} stay reserved for ratings; the current content stays")


def _held(content_dir: Path, entry: dict) -> bool:
    held = content_dir / entry["path"]
    return held.is_file() and held.stat().st_size == entry["size"]


def _place_file(client: CentralClient, content_dir: Path, staging: Path, entry: dict) -> None:
    path, sha256, size = entry["path"], entry["sha256"], entry["size"]
    target = staging / path
    held = content_dir / path
    if _held(content_dir, entry):
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
    why = images.problem(partial)
    if why:
        raise ContentPullError(f"{path} refused: {why}; the current content stays")
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
    """Remove content versions other than the current one, oldest first, keeping ``keep`` in all.
    Only real folders directly inside the versions folder are ever removed (never a symlink's target)."""
    versions = versions_dir(content_dir)
    if not versions.is_dir() or versions.is_symlink():
        return 0
    current = content_dir.resolve() if content_dir.is_symlink() else None
    others = sorted((p for p in versions.iterdir()
                     if p.is_dir() and not p.is_symlink() and p.resolve() != current
                     and p.resolve().parent == versions.resolve()),
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
