"""Shared fixtures: real processes on loopback, a private Xvfb, real SQLite files."""

from __future__ import annotations

import json
import shutil
import sys
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "scripts"))

from loopback_central import Central, free_port, start_central  # noqa: E402,F401
from xvfb import start_xvfb  # noqa: E402

from terminal.core.channels import InputDevice  # noqa: E402
from terminal.core.levels import Level  # noqa: E402
from terminal.core.rating import Rating  # noqa: E402
from terminal.credentials import Credentials  # noqa: E402

CST = timezone(timedelta(hours=8))


def make_rating(level: Level = Level.SATISFIED, **fields) -> Rating:
    defaults = dict(device=InputDevice.TOUCHSCREEN, now=datetime.now(CST), mono_ms=1000,
                    boot_id="0" * 32, clock_synced=True, terminal_id="T-TEST", window="W01",
                    app_version="test", staff_no="SZ0101")
    return Rating.create(level=level, **{**defaults, **fields})


def wait_for(predicate, seconds: float = 10.0, interval: float = 0.02) -> bool:
    """Poll until ``predicate()`` holds or ``seconds`` pass; the last answer decides."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and not predicate():
        time.sleep(interval)
    return predicate()


def payloads(*wires: dict) -> dict[str, str]:
    """Wire dicts as ``CentralClient.upload`` takes them: id -> JSON text."""
    return {w["id"]: json.dumps(w, ensure_ascii=False) for w in wires}


@pytest.fixture(scope="session")
def central(tmp_path_factory):
    server = start_central(tmp_path_factory.mktemp("central"), workers=1)
    yield server
    server.stop()


@pytest.fixture(scope="session")
def display():
    """A private X display for real Kivy windows; never the developer's own screen."""
    proc, name = start_xvfb(1920, 1920)  # room for a portrait window too
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


@pytest.fixture
def window(terminal_config):
    """A window session on a fresh database with the demo content (no Kivy): what the kiosk,
    the badge readers and the invite API talk to."""
    from terminal import config as config_module
    from terminal.content import Content
    from terminal.store import Store
    from terminal.window import Window
    config = config_module.load(terminal_config())
    store = Store(config.db_path)
    yield Window(config, store, Content.load(config.content_dir))
    store.close()
