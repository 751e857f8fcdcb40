"""A private, throwaway PostgreSQL server on loopback for the tests and benchmarks.

``start_postgres(folder)`` runs Debian's PostgreSQL binaries (``postgresql`` package, installed by
scripts/install-system-deps.sh) from a data folder of its own, on a free port of 127.0.0.1, with
trust authentication for local connections only, and returns its URL; ``stop()`` shuts it down
and removes its folder (a test run's left 155 MB in /tmp each, a benchmark's gigabytes).
PostgreSQL refuses to run as root, so as root the server runs as the ``postgres`` user the package
creates. Nothing is written outside the folder, and the machine's own cluster is never touched.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback_central import free_port  # noqa: E402


def binaries() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: int(p.parent.parent.name))
    if not found:
        raise RuntimeError("PostgreSQL server binaries not found: run scripts/install-system-deps.sh "
                           "(Debian package postgresql)")
    return found[-1].parent


def _as_server_user(command: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *command] if os.geteuid() == 0 else command


@dataclass
class Postgres:
    folder: Path
    port: int

    @property
    def url(self) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/postgres"

    def database_url(self, name: str) -> str:
        return f"postgres://postgres@127.0.0.1:{self.port}/{name}"

    def create_database(self, name: str) -> str:
        """A fresh, empty database; its URL."""
        import psycopg
        with psycopg.connect(self.url, autocommit=True) as db:
            db.execute(f'DROP DATABASE IF EXISTS "{name}"')
            db.execute(f'CREATE DATABASE "{name}"')
        return self.database_url(name)

    def stop(self) -> None:
        """Shut the server down and remove its folder: it is throwaway, and nothing else is in it."""
        subprocess.run(_as_server_user([str(binaries() / "pg_ctl"), "-D", str(self.folder / "data"), "-m", "fast",
                                        "-w", "stop"]), capture_output=True, timeout=60)
        shutil.rmtree(self.folder, ignore_errors=True)


def start_postgres(folder: Path) -> Postgres:
    """Start a server in ``folder`` (made if missing; as root, the ``postgres`` user must be able to
    reach it, so use a folder of its own such as ``tempfile.mkdtemp()``)."""
    bin_dir = binaries()
    folder.mkdir(parents=True, exist_ok=True)
    data = folder / "data"
    if data.exists():
        shutil.rmtree(data)
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres")
    subprocess.run(_as_server_user([str(bin_dir / "initdb"), "-D", str(data), "-U", "postgres", "-A", "trust",
                                    "-E", "UTF8", "--locale=C.UTF-8"]), check=True, capture_output=True, timeout=120)
    port = free_port()
    options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={folder} "
               "-c fsync=on -c max_connections=100")
    done = subprocess.run(_as_server_user([str(bin_dir / "pg_ctl"), "-D", str(data), "-l", str(folder / "server.log"),
                                           "-o", options, "-w", "-t", "60", "start"]), capture_output=True, text=True,
                          timeout=90)
    if done.returncode != 0:
        log = (folder / "server.log").read_text(errors="replace")[-2000:] if (folder / "server.log").exists() else ""
        raise RuntimeError(f"PostgreSQL did not start: {done.stderr}\n{log}")
    return Postgres(folder, port)


if __name__ == "__main__":
    import tempfile
    server = start_postgres(Path(tempfile.mkdtemp(prefix="rating-pg-")))
    print(server.url)
