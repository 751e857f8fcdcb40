"""Pack this checkout into the tarball the fleet playbook installs on every terminal.

The tarball is the same bytes for the same source on every controller (files sorted, one fixed
time, owner and mode normalised, gzip without a name or a date), so its sha256 says what a terminal
was installed from and a re-run with the same source installs nothing. The file is rewritten only
when its bytes change. Prints one JSON object: path, sha256, changed.

    python3 hardware/ansible/pack_source.py --out var/fleet/source.tar.gz
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import os
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
# What install-pi.sh needs to build /opt/rating-terminal (setup.cfg's packages and data files).
TOP = ("setup.cfg", "pyproject.toml", "README.md", "LICENSE", "terminal", "sync", "central", "hardware", "firmware",
       "assets")
SKIP_DIRS = {"__pycache__", ".pytest_cache", ".hypothesis", "build"}
SKIP_PATHS = {"hardware/ansible"}  # the controller's own files: editing the playbook reinstalls no terminal
MTIME = 1577836800  # 2020-01-01: a fixed time (wheels cannot hold times before 1980)


def files(root: Path) -> list[Path]:
    found = []
    for top in TOP:
        path = root / top
        if path.is_file():
            found.append(path)
        for folder, dirs, names in os.walk(path):
            rel = Path(folder).relative_to(root).as_posix()
            dirs[:] = sorted(d for d in dirs if d not in SKIP_DIRS and not d.endswith(".egg-info")
                             and f"{rel}/{d}" not in SKIP_PATHS)
            found += [Path(folder) / n for n in sorted(names) if not n.endswith((".pyc", ".pyo"))]
    return sorted(found)


def pack(root: Path = ROOT) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for path in files(root):
            info = tarfile.TarInfo(f"source/{path.relative_to(root).as_posix()}")
            if path.is_symlink():
                info.type, info.linkname, info.mode = tarfile.SYMTYPE, os.readlink(path), 0o777
                data = None
            else:
                data = path.read_bytes()
                info.size, info.mode = len(data), 0o755 if os.access(path, os.X_OK) else 0o644
            info.mtime, info.uid, info.gid, info.uname, info.gname = MTIME, 0, 0, "root", "root"
            tar.addfile(info, io.BytesIO(data) if data is not None else None)
    out = io.BytesIO()
    with gzip.GzipFile(filename="", mode="wb", fileobj=out, mtime=0, compresslevel=6) as gz:
        gz.write(raw.getvalue())
    return out.getvalue()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", required=True, type=Path, help="the tarball to write")
    parser.add_argument("--source", type=Path, default=ROOT, help="the checkout (default: this one)")
    args = parser.parse_args(argv)
    data = pack(args.source)
    changed = not args.out.exists() or args.out.read_bytes() != data
    if changed:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        tmp = args.out.with_name(f".{args.out.name}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, args.out)
    print(json.dumps({"path": str(args.out.resolve()), "sha256": hashlib.sha256(data).hexdigest(), "changed": changed}))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
