"""Scale-out on existing engines: two app servers (gunicorn) on one PostgreSQL behind Debian's
nginx on loopback. A terminal records and uploads through nginx while one node is killed with
SIGKILL: every rating arrives once, identical; the photo a terminal pulls and a manager's login
live in the shared database and storage, not on the dead node; ``tick`` runs one at a time."""

import io
import os
import signal
import subprocess
import tempfile
import threading
import time
from pathlib import Path

import pytest

from loopback_nginx import start_nginx
from postgres import start_postgres
from terminal import config as terminal_config_module
from terminal.core.channels import InputDevice
from terminal.core.levels import Level
from terminal.recorder import Recorder
from terminal.store import Store

from conftest import BIN, POSTGRES, start_central, wait_for

RATINGS = 3000


@pytest.fixture
def database(request, tmp_path_factory):
    """A fresh database on the run's PostgreSQL server, or on one of this test's own."""
    server = request.config.stash.get(POSTGRES, None)
    own = None
    if server is None:
        own = server = start_postgres(Path(tempfile.mkdtemp(prefix="rating-pg-scale-")))
    yield server.create_database("scale_out")
    if own:
        own.stop()


@pytest.fixture
def cluster(tmp_path, database):
    """Two nodes, each its own data folder (its own disk), sharing what several nodes must share:
    the database, the session key file and the uploads folder (a shared mount; or S3, README)."""
    shared = tmp_path / "shared"
    (shared / "media").mkdir(parents=True)
    env = {"RATING_CENTRAL_SECRET_KEY_FILE": str(shared / "secret_key"), "RATING_CENTRAL_MEDIA": str(shared / "media")}
    nodes = [start_central(tmp_path / f"node-{n}", workers=1, database_url=database, extra_env=env) for n in "ab"]
    proxy = start_nginx(tmp_path / "nginx", [node.url for node in nodes])
    yield nodes, proxy
    proxy.stop()
    for node in nodes:
        node.stop()


def test_a_node_killed_under_load_loses_and_doubles_nothing(cluster, tmp_path):
    nodes, proxy = cluster
    from sync.client import CentralClient, enroll
    from terminal.credentials import Credentials
    answer = enroll(proxy.url, nodes[0].enroll_code("W01"))
    creds = Credentials(terminal_id=answer["terminal_id"], secret=answer["secret"], server=proxy.url,
                        window=answer["window"])
    nodes[0].backdate(creds.terminal_id, 1)
    data = tmp_path / "terminal"
    creds.save(data)
    path = tmp_path / "terminal.toml"
    path.write_text(f'[terminal]\ndata_dir = "{data}"\ncontent_dir = "{data / "content"}"\n'
                    f'[sync]\nserver = "{proxy.url}"\nbatch_size = 100\ninterval = 0.1\ntimeout = 5.0\n'
                    f"backoff_max = 1.0\nheartbeat_s = 1.0\n", encoding="utf-8")
    config = terminal_config_module.load(path)
    store = Store(config.db_path)
    recorded = []

    def kiosk():
        own = Store(config.db_path)
        recorder = Recorder(config, own)
        for n in range(RATINGS):
            level = Level(1 + n % 5)
            recorded.append(recorder.record(level, InputDevice.TOUCHSCREEN, staff_no="SZ0101",
                                            reasons=["slow"] if level.is_bad else []))
            time.sleep(0.002)
        own.close()

    daemon = subprocess.Popen([str(BIN / "rating-sync"), "--config", str(path), "run"],
                              stdout=(tmp_path / "sync.log").open("w"), stderr=subprocess.STDOUT)
    recording = threading.Thread(target=kiosk)
    recording.start()
    try:
        assert wait_for(lambda: nodes[0].count(f"terminal_id = '{creds.terminal_id}'") >= RATINGS // 4, 60)
        arrived_before_kill = nodes[0].count(f"terminal_id = '{creds.terminal_id}'")
        os.killpg(nodes[0].proc.pid, signal.SIGKILL)  # the node, its master and workers, mid-upload
        nodes[0].proc.wait(10)
        recording.join(120)
        assert wait_for(lambda: store.counts()["pending"] == 0, 120), (store.counts(), (tmp_path / "sync.log").read_text()[-3000:])
    finally:
        daemon.terminate()
        daemon.wait(20)
    survivor = nodes[1]
    assert arrived_before_kill < RATINGS  # the kill came with work in hand
    mine = {r.id: r.digest() for r in recorded}
    at_central = survivor.query("SELECT rating_id, digest FROM ratings_rating WHERE terminal_id = ?", [creds.terminal_id])
    assert len(at_central) == RATINGS and dict(at_central) == mine  # each once, identical
    assert store.counts() == {"pending": 0, "delivered": RATINGS, "dead": 0}
    bad = sum(1 for r in recorded if r.level.is_bad)
    assert survivor.query("SELECT count(*) FROM ratings_workorder w JOIN ratings_rating r ON r.id = w.rating_id "
                          "WHERE r.terminal_id = ?", [creds.terminal_id]) == [(bad,)]  # one work order each

    # what the dead node's disk never held alone: the photo a terminal pulls, through the survivor
    client = CentralClient(proxy.url, creds)
    manifest, _ = client.content(None)
    photo = next(f for f in manifest["files"] if f["path"].startswith("files/"))
    out = io.BytesIO()
    client.fetch_file(photo["sha256"], photo["size"], out)
    assert len(out.getvalue()) == photo["size"]
    store.close()


def test_a_login_on_one_node_holds_on_the_other(cluster):
    nodes, proxy = cluster
    password = nodes[0].add_user("ops", "hall_admin")
    from loopback_central import Central
    session = Central(proxy.url, nodes[0].data_dir, nodes[0].proc).login("ops", password)
    os.killpg(nodes[0].proc.pid, signal.SIGKILL)
    nodes[0].proc.wait(10)
    page = session.get(f"{proxy.url}/", timeout=10, allow_redirects=False)
    assert page.status_code == 200 and "ops" in page.text  # the session is in the database, the key shared


@pytest.mark.central
@pytest.mark.django_db(transaction=True)
def test_tick_runs_on_one_node_at_a_time():
    """While another node's tick holds the lock (PostgreSQL: an advisory lock in another session;
    SQLite: the lock file), a tick does nothing and says so; once it is let go, the tick runs."""
    import fcntl
    from django.conf import settings
    from django.core.management import call_command
    from django.db import connection
    from central.ratings import tick_lock

    def tick() -> str:
        out = io.StringIO()
        call_command("tick", stdout=out)
        return out.getvalue()

    if connection.vendor == "postgresql":
        import psycopg
        params = connection.get_connection_params()
        other = psycopg.connect(host=params.get("host"), port=params.get("port"), user=params.get("user"),
                                dbname=params.get("dbname"), autocommit=True)
        other.execute("SELECT pg_advisory_lock(%s)", [tick_lock.ADVISORY_KEY])
        backend = other.info.backend_pid

        def release():  # the session ends: its lock goes with it, once its server process has gone
            other.close()
            with connection.cursor() as cursor:
                def gone():
                    cursor.execute("SELECT count(*) FROM pg_stat_activity WHERE pid = %s", [backend])
                    return cursor.fetchone()[0] == 0
                assert wait_for(gone, 10), "the other node's session outlived its connection"
    else:
        other = open(settings.DATA_DIR / "tick.lock", "a")
        fcntl.flock(other, fcntl.LOCK_EX)
        release = other.close
    try:
        assert "another tick is running" in tick()
    finally:
        release()
    assert "alerts:" in tick() and "another tick" not in tick()


def test_uploads_in_an_object_store_are_served_by_any_node(tmp_path):
    """Staff photos through django-storages into an S3-compatible store (moto's server, a reference
    implementation of the S3 API, over HTTP on loopback): the admin's upload lands in the bucket,
    not on the node's disk, and a terminal pulls it through the API."""
    import boto3
    from moto.server import ThreadedMotoServer
    from loopback_central import free_port
    from sync.client import CentralClient
    port = free_port()
    s3 = ThreadedMotoServer(ip_address="127.0.0.1", port=port)
    s3.start()
    endpoint = f"http://127.0.0.1:{port}"
    keys = {"AWS_ACCESS_KEY_ID": "test-key", "AWS_SECRET_ACCESS_KEY": "test-secret", "AWS_DEFAULT_REGION": "cn-south-1"}
    try:
        bucket = boto3.client("s3", endpoint_url=endpoint, region_name="cn-south-1",
                              aws_access_key_id="test-key", aws_secret_access_key="test-secret")
        bucket.create_bucket(Bucket="hall-media", CreateBucketConfiguration={"LocationConstraint": "cn-south-1"})
        node = start_central(tmp_path / "node", workers=1, extra_env={
            "RATING_CENTRAL_S3_BUCKET": "hall-media", "RATING_CENTRAL_S3_ENDPOINT": endpoint, **keys})
        try:
            stored = [o["Key"] for o in bucket.list_objects_v2(Bucket="hall-media").get("Contents", [])]
            assert stored and all(key.startswith("staff/") for key in stored)  # load_demo's photos
            assert not (tmp_path / "node" / "media").exists() or not any((tmp_path / "node" / "media").rglob("*.*"))
            creds = node.enroll()
            client = CentralClient(node.url, creds)
            manifest, _ = client.content(None)
            photo = next(f for f in manifest["files"] if f["path"].startswith("files/"))
            out = io.BytesIO()
            client.fetch_file(photo["sha256"], photo["size"], out)  # read from the bucket, hash checked
            assert len(out.getvalue()) == photo["size"]
        finally:
            node.stop()
    finally:
        s3.stop()
