"""Start a real central server on loopback in a data folder of its own: for the demo, the tests and
the benchmarks (one way to do it, so all three exercise what an operator runs: migrate, load the
demo roster, ``rating-central serve`` under gunicorn)."""

from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

BIN = Path(sys.executable).parent


def free_port(preferred: int = 0) -> int:
    for port in dict.fromkeys((preferred, 0)):
        with socket.socket() as s:
            s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)  # as the server will
            try:
                s.bind(("127.0.0.1", port))
                return s.getsockname()[1]
            except OSError:
                continue
    raise RuntimeError("no free port")


def wait_healthy(url: str, proc: subprocess.Popen, seconds: float = 30, log: Path | None = None) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            break
        try:
            with urllib.request.urlopen(f"{url}/api/v1/health", timeout=1) as r:
                if r.status == 200:
                    return
        except OSError:
            time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else "(see its output above)"
    raise RuntimeError(f"central server at {url} did not become healthy:\n{tail}")


def central_env(data_dir: Path, database_url: str | None, extra: dict | None = None) -> dict:
    env = {**os.environ, "RATING_CENTRAL_DATA": str(data_dir), **(extra or {})}
    env.pop("RATING_CENTRAL_DATABASE_URL", None)
    if database_url:
        env["RATING_CENTRAL_DATABASE_URL"] = database_url
    return env


@dataclass
class Central:
    url: str
    data_dir: Path
    proc: subprocess.Popen
    database_url: str | None = None  # None: SQLite, central.db in the data folder
    extra_env: dict | None = None  # e.g. a key file and media folder shared by several nodes

    @property
    def env(self) -> dict:
        return central_env(self.data_dir, self.database_url, self.extra_env)

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "rating-central"), *args], capture_output=True, text=True, timeout=60,
                              env=self.env)

    def enroll_code(self, window: str = "W01", hours: float = 24) -> str:
        done = self.manage("enroll_code", "--window", window, "--hours", str(hours))
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        return done.stdout.strip()

    def enroll(self, window: str = "W01"):
        """A freshly enrolled terminal's credentials, through the real enrollment endpoint."""
        from sync.client import enroll
        from terminal.credentials import Credentials
        answer = enroll(self.url, self.enroll_code(window))
        return Credentials(terminal_id=answer["terminal_id"], secret=answer["secret"], server=self.url,
                           window=answer["window"])

    def add_user(self, username: str, role: str, department: str | None = None) -> str:
        """A staff user with a role (``add_user``); their generated password."""
        args = ["add_user", username, "--role", role] + (["--department", department] if department else [])
        done = self.manage(*args)
        if done.returncode != 0:
            raise RuntimeError(done.stderr)
        return done.stdout.strip()

    def login(self, username: str, password: str):
        """A requests session logged in through the admin's login form, as a browser would."""
        import re
        import requests
        session = requests.Session()
        page = session.get(f"{self.url}/admin/login/", timeout=10)
        token = re.search(r'name="csrfmiddlewaretoken" value="([^"]+)"', page.text).group(1)
        reply = session.post(f"{self.url}/admin/login/?next=/", timeout=10, allow_redirects=False,
                             data={"csrfmiddlewaretoken": token, "username": username, "password": password},
                             headers={"Referer": f"{self.url}/admin/login/"})
        if reply.status_code != 302:
            raise RuntimeError(f"login as {username} failed ({reply.status_code})")
        return session

    def client(self, credentials, timeout: float = 10):
        from sync.client import CentralClient
        return CentralClient(self.url, credentials, timeout=timeout)

    def query(self, sql: str, params=()) -> list[tuple]:
        """Read (or, for a test's set-up, change) the server's database directly (``?`` placeholders,
        on SQLite and PostgreSQL alike)."""
        if self.database_url:
            import psycopg
            with psycopg.connect(self.database_url) as db:
                cursor = db.execute(sql.replace("%", "%%").replace("?", "%s"), params)
                return [tuple(row) for row in cursor.fetchall()] if cursor.description else []
        with sqlite3.connect(self.data_dir / "central.db", timeout=30) as db:
            return db.execute(sql, params).fetchall()

    def backdate(self, terminal_id: str, days: float) -> None:
        """Pretend a terminal was enrolled ``days`` ago, so ratings it made in those days are plausible."""
        from datetime import datetime, timedelta, timezone
        then = datetime.now(timezone.utc) - timedelta(days=days)
        self.query("UPDATE ratings_terminal SET enrolled_at = ? WHERE terminal_id = ?",
                   [then if self.database_url else then.strftime("%Y-%m-%d %H:%M:%S.%f"), terminal_id])

    def count(self, where: str = "1 = 1", params=()) -> int:
        return self.query(f"SELECT count(*) FROM ratings_rating WHERE {where}", params)[0][0]

    def stop(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(15)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def start_central(data_dir: Path, port: int = 0, workers: int | None = None, log: Path | None = None,
                  collectstatic: bool = False, database_url: str | None = None,
                  extra_env: dict | None = None) -> Central:
    """Migrate, load the demo roster and serve; return once ``/api/v1/health`` answers.

    ``log``: a file for the server's output (default: ``server.log`` in the data folder);
    pass ``Path("-")`` to let it print to ours, as ``make run`` does. ``database_url``: a
    PostgreSQL database to use instead of the SQLite file in the data folder."""
    data_dir.mkdir(parents=True, exist_ok=True)
    env = central_env(data_dir, database_url, extra_env)
    central = [str(BIN / "rating-central")]
    steps = [["migrate", "--verbosity", "0"]]
    if collectstatic:
        steps.append(["collectstatic", "--noinput", "--verbosity", "0"])
    for step in steps + [["load_demo"]]:
        subprocess.run(central + step, env=env, check=True, stdout=subprocess.DEVNULL)
    url_port = free_port(port)
    log = log or data_dir / "server.log"
    out = None if str(log) == "-" else log.open("ab")
    command = central + ["serve", "--bind", f"127.0.0.1:{url_port}"]
    if workers:
        command += ["--workers", str(workers)]
    proc = subprocess.Popen(command, env=env, stdout=out, stderr=subprocess.STDOUT if out else None,
                            start_new_session=True)
    if out:
        out.close()
    url = f"http://127.0.0.1:{url_port}"
    try:
        wait_healthy(url, proc, log=None if str(log) == "-" else log)
    except BaseException:
        Central(url, data_dir, proc, database_url, extra_env).stop()
        raise
    return Central(url, data_dir, proc, database_url, extra_env)
