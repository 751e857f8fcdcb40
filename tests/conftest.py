"""Shared fixtures: real processes on loopback, a private Xvfb, real SQLite files."""

from __future__ import annotations

import os
import shutil
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "scripts"))

from xvfb import start_xvfb  # noqa: E402

from terminal.core.channels import InputDevice  # noqa: E402
from terminal.core.levels import Level  # noqa: E402
from terminal.core.rating import Rating  # noqa: E402
from terminal.credentials import Credentials  # noqa: E402
from sync.client import CentralClient, enroll  # noqa: E402

CST = timezone(timedelta(hours=8))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def make_rating(level: Level = Level.SATISFIED, **fields) -> Rating:
    defaults = dict(device=InputDevice.TOUCHSCREEN, now=datetime.now(CST), mono_ms=1000,
                    boot_id="0" * 32, clock_synced=True, terminal_id="T-TEST", window="W01",
                    app_version="test", staff_no="SZ0101")
    return Rating.create(level=level, **{**defaults, **fields})


@dataclass
class Central:
    url: str
    data_dir: Path
    proc: subprocess.Popen

    def query(self, sql: str, params=()) -> list[tuple]:
        with sqlite3.connect(self.data_dir / "central.db") as db:
            return db.execute(sql, params).fetchall()

    def count(self, where: str = "1", params=()) -> int:
        return self.query(f"SELECT count(*) FROM ratings_rating WHERE {where}", params)[0][0]

    def manage(self, *args: str) -> subprocess.CompletedProcess:
        return subprocess.run([str(BIN / "rating-central"), *args], capture_output=True, text=True, timeout=60,
                              env={**os.environ, "RATING_CENTRAL_DATA": str(self.data_dir)})

    def enroll_code(self, window: str = "W01", hours: float = 24) -> str:
        done = self.manage("enroll_code", "--window", window, "--hours", str(hours))
        assert done.returncode == 0, done.stderr
        return done.stdout.strip()

    def enroll(self, window: str = "W01") -> Credentials:
        """A freshly enrolled terminal's credentials, through the real enrollment endpoint."""
        answer = enroll(self.url, self.enroll_code(window))
        return Credentials(terminal_id=answer["terminal_id"], secret=answer["secret"], server=self.url,
                           window=answer["window"])

    def client(self, credentials: Credentials | None) -> CentralClient:
        return CentralClient(self.url, credentials, timeout=10)


def start_central(data_dir: Path) -> Central:
    env = {**os.environ, "RATING_CENTRAL_DATA": str(data_dir)}
    subprocess.run([str(BIN / "rating-central"), "migrate", "--verbosity", "0"], env=env, check=True)
    subprocess.run([str(BIN / "rating-central"), "load_demo"], env=env, check=True, stdout=subprocess.DEVNULL)
    port = free_port()
    log = (data_dir / "server.log").open("ab")
    proc = subprocess.Popen(
        [str(BIN / "rating-central"), "serve", "--bind", f"127.0.0.1:{port}", "--workers", "1"],
        env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(f"{url}/api/v1/health", timeout=1).status_code == 200:
                return Central(url, data_dir, proc)
        except requests.ConnectionError:
            pass
        if proc.poll() is not None or time.monotonic() > deadline:
            proc.kill()
            raise RuntimeError("central server did not start:\n" + (data_dir / "server.log").read_text()[-3000:])
        time.sleep(0.2)


@pytest.fixture(scope="session")
def central(tmp_path_factory):
    server = start_central(tmp_path_factory.mktemp("central"))
    yield server
    server.proc.terminate()
    server.proc.wait(10)


@pytest.fixture(scope="session")
def display():
    """A private X display for real Kivy windows; never the developer's own screen."""
    proc, name = start_xvfb()
    yield name
    proc.terminate()
    proc.wait(10)


@pytest.fixture
def enrolled(central) -> Credentials:
    return central.enroll()


@pytest.fixture
def terminal_config(tmp_path):
    """A terminal config file in a fresh data folder, with a copy of the shipped demo content
    (as a plain folder outside the data folder: what a kiosk reads, never what sync manages)."""
    def write(server: str = "http://127.0.0.1:9", **kiosk) -> Path:
        demo = tmp_path / "demo-content"
        if not demo.exists():
            shutil.copytree(ROOT / "assets" / "demo", demo)
        path = tmp_path / "terminal.toml"
        kiosk_lines = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in kiosk.items())
        path.write_text(
            f'[terminal]\ndata_dir = "{tmp_path / "data"}"\ncontent_dir = "{demo}"\n'
            f"[kiosk]\n{kiosk_lines}"
            f'[sync]\nserver = "{server}"\ntimeout = 5.0\n', encoding="utf-8")
        return path
    return write
