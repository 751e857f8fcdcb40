"""Shared fixtures: real processes on loopback, a private Xvfb, real SQLite files."""

from __future__ import annotations

import json
import os
import shutil
import sys
import tempfile
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
sys.path.insert(0, str(ROOT / "scripts"))

from loopback_central import Central, free_port, start_central  # noqa: E402,F401
from postgres import start_postgres  # noqa: E402
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


def pytest_addoption(parser):
    parser.addoption("--central-db", choices=["sqlite", "postgresql"], default="sqlite",
                     help="database for the central server under test: SQLite files (default) or a private "
                          "PostgreSQL server started for the run (make test runs the central tests on both)")
    parser.addoption("--fleet", action="store_true",
                     help="also run the tests marked fleet (install-pi.sh, and the Ansible fleet install into two Debian roots, "
                          "several minutes): make fleet-check passes it, make test does not")
    parser.addoption("--pi-image", metavar="DIR", default=None,
                     help="run the pi_image tests on the Raspberry Pi image built in DIR (make pi-check); "
                          "without it they are left out")


#: marker -> the option that lets its tests run: slow checks with make targets of their own
OWN_TARGET = {"fleet": "--fleet", "pi_image": "--pi-image"}


def pytest_collection_modifyitems(config, items):
    """Tests marked fleet (make fleet-check: the Ansible install into two Debian roots) or pi_image
    (make pi-check: a built Raspberry Pi image, a quarter of an hour) run only with their option:
    without it they are deselected, and pytest says how many, never skipped as if something were missing."""
    left_out = [item for item in items
                if any(item.get_closest_marker(m) and not config.getoption(o) for m, o in OWN_TARGET.items())]
    if left_out:
        config.hook.pytest_deselected(items=left_out)
        items[:] = [item for item in items if item not in left_out]


def pytest_configure(config):
    """Point Django (for the in-process central tests, through pytest-django) at a data folder of
    this run's own and at the chosen database, before pytest-django sets Django up."""
    data = Path(tempfile.mkdtemp(prefix="rating-central-tests-"))
    config.stash[DATA] = data
    os.environ["RATING_CENTRAL_DATA"] = str(data)
    os.environ["RATING_CENTRAL_AREA_CODE"] = "440100"  # the demo hall's 行政区划, which GB/T 39046 records carry
    os.environ.pop("RATING_CENTRAL_DATABASE_URL", None)
    if config.getoption("--central-db") == "postgresql":
        server = start_postgres(Path(tempfile.mkdtemp(prefix="rating-pg-")))  # its own: the server user reads it
        config.stash[POSTGRES] = server
        os.environ["RATING_CENTRAL_DATABASE_URL"] = server.database_url("rating_central")
    os.environ["DJANGO_SETTINGS_MODULE"] = "central.settings"
    from django.conf import settings
    assert settings.INSTALLED_APPS  # configures settings now, so pytest-django finishes the set-up


def pytest_unconfigure(config):
    """The run's PostgreSQL server and data folder go with it: each left 160 MB in /tmp before."""
    server = config.stash.get(POSTGRES, None)
    if server is not None:
        server.stop()
    if DATA in config.stash:
        shutil.rmtree(config.stash[DATA], ignore_errors=True)


POSTGRES, DATA = pytest.StashKey(), pytest.StashKey()


@pytest.fixture(scope="session")
def central_database_url(request):
    """A fresh database for each real central server a test starts: None for SQLite (the file in
    its data folder), else a new PostgreSQL database on the run's server."""
    server = request.config.stash.get(POSTGRES, None)
    count = iter(range(1, 1000))
    return lambda: server.create_database(f"central_{next(count)}") if server else None


@pytest.fixture(scope="session")
def central(tmp_path_factory, central_database_url):
    server = start_central(tmp_path_factory.mktemp("central"), workers=1, database_url=central_database_url())
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
    (as a plain folder outside the data folder: what a kiosk reads, never what sync manages).
    An un-enrolled terminal runs as the demo one (``demo = true``); its boot partition is tmp/boot."""
    def write(server: str = "http://127.0.0.1:9", **kiosk) -> Path:
        demo = tmp_path / "demo-content"
        if not demo.exists():
            shutil.copytree(ROOT / "assets" / "demo", demo)
        path = tmp_path / "terminal.toml"
        kiosk_lines = "".join(f"{k} = {v!r}\n".replace("'", '"') for k, v in kiosk.items())
        path.write_text(
            f'[terminal]\ndemo = true\ndata_dir = "{tmp_path / "data"}"\ncontent_dir = "{demo}"\n'
            f'provision_file = "{tmp_path / "boot" / "provision.toml"}"\n'
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


@pytest.fixture
def hall(db):
    """The demo hall in the in-process central database (pytest-django), with an enrolled terminal at
    W01: what the central server's own tests build on."""
    from django.core.management import call_command
    from central.ratings import auth
    from central.ratings.models import Window
    from central.ratings.models import Terminal
    call_command("load_demo", stdout=open(os.devnull, "w"))
    code, _ = auth.issue_code(Window.objects.get(code="W01"))
    node = auth.enroll(code)
    # in service for a year already: the tests' ratings of past days are plausible for it
    Terminal.objects.filter(pk=node.pk).update(enrolled_at=node.enrolled_at - timedelta(days=400))
    node.refresh_from_db()
    return node


@pytest.fixture
def auditor(client):
    """Django's test client, logged in as an auditor (审计员: reads everything, changes nothing)."""
    from django.contrib.auth.models import Group, User
    user = User.objects.create_user("aud", password="pw-aud-123", is_staff=True)
    user.groups.add(Group.objects.get(name="审计员"))
    client.force_login(user)
    return client


def streamed_json(response):
    """A streamed JSON answer (the pull exports), read to its end and parsed."""
    import json
    assert response.streaming, "the answer is built whole in memory, not streamed"
    return json.loads(b"".join(response.streaming_content))


def ingest_ratings(node, *ratings: Rating) -> list[str]:
    """Take ratings in through the server's own ingest path; their statuses."""
    from central.ratings.ingest import ingest
    return [r.status for r in ingest([r.to_wire() for r in ratings], node)]


def make_event(kind: str = "invited", **fields):
    from terminal.core.event import Event
    defaults = dict(now=datetime.now(CST), mono_ms=1000, boot_id="0" * 32, clock_synced=True,
                    terminal_id="T-TEST", window="W01", app_version="test", staff_no="SZ0101")
    return Event.create(kind=kind, **{**defaults, **fields})


def ingest_events(node, *events) -> list[str]:
    from central.ratings.ingest import EVENTS, ingest
    return [r.status for r in ingest([e.to_wire() for e in events], node, EVENTS)]


def race(hold, then, seconds: float = 20.0):
    """A race between two requests made deterministic: ``hold()`` runs in a transaction that stays
    open until ``then()``, on another thread and connection, has finished or waits for a lock held
    by it (PostgreSQL: ``pg_locks``; SQLite, one writer at a time: ``then`` was told the database is
    locked, and asks again). Returns what ``then()`` returned. Needs ``django_db(transaction=True)``."""
    import threading

    from django.db import OperationalError, connection, transaction
    held, done, out = threading.Event(), threading.Event(), {}

    def waits(pid) -> bool:
        if connection.vendor != "postgresql":
            return out.get("locked", False)
        with connection.cursor() as cursor:
            cursor.execute("SELECT count(*) FROM pg_locks WHERE pid = %s AND NOT granted", [pid])
            return cursor.fetchone()[0] > 0

    def first():
        try:
            with transaction.atomic():
                hold()
                held.set()
                deadline = time.monotonic() + seconds
                while not done.is_set() and not ("pid" in out and waits(out["pid"])):
                    assert time.monotonic() < deadline, "the other request neither finished nor waited"
                    time.sleep(0.005)
        except BaseException as exc:
            out["error"] = exc
        finally:
            held.set()
            connection.close()

    def second():
        try:
            held.wait(seconds)
            if connection.vendor == "postgresql":
                with connection.cursor() as cursor:
                    cursor.execute("SELECT pg_backend_pid()")
                    out["pid"] = cursor.fetchone()[0]
            else:
                out["pid"] = None
            deadline = time.monotonic() + seconds
            while True:
                try:
                    out["result"] = then()
                    break
                except OperationalError as exc:  # SQLite's shared-memory test database: ask again
                    if connection.vendor != "sqlite" or "locked" not in str(exc) or time.monotonic() > deadline:
                        raise
                    out["locked"] = True
                    time.sleep(0.01)
        except BaseException as exc:
            out["error"] = exc
        finally:
            done.set()
            connection.close()
    threads = [threading.Thread(target=first), threading.Thread(target=second)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(seconds + 10)
    if "error" in out:
        raise out["error"]
    return out.get("result")
