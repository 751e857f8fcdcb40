"""A terminal believes only its real server, and no server can hurt it.

- A fake server on the LAN (it does not know the terminal's secret) or one with another key answers
  a batch ``accepted`` or ``rejected``: nothing is marked delivered or dead, and the ratings reach
  the real server afterwards.
- A compromised server (it knows the secret and signs) answers ``ETag: "../"``, an absolute path, a
  manifest declaring a 1 TiB file, or a 16000×16000 PNG photo: the running sync daemon keeps the data
  folder, the credentials, every pending rating and the old content; the kiosk never loads the bomb.
"""

import gzip
import hashlib
import json
import resource
import signal
import struct
import subprocess
import zlib

import pytest

from sync.client import CentralClient, TransientError
from sync.outbox import Uploader
from terminal import images
from terminal.content import PLACEHOLDER_PHOTO, Content
from terminal.core.levels import Level
from terminal.credentials import Credentials
from terminal.store import Store

import fake_central
from conftest import BIN, make_rating, wait_for
from fake_central import FakeCentral
from test_content import png

pytestmark = pytest.mark.central


class ForgingServer(FakeCentral):
    """Answers every batch with a per-item verdict for each id it was sent, as our server would."""
    verdict = "accepted"

    def do_POST(self):
        body = json.loads(gzip.decompress(self.rfile.read(int(self.headers["Content-Length"]))))
        items = body.get("ratings") or body.get("events") or []
        results = [{"index": i, "id": item["id"], "status": self.verdict, "reason": "forged"}
                   for i, item in enumerate(items)]
        self.answer(200, json.dumps({"results": results, "server_time": "x"}).encode())


@pytest.mark.parametrize("verdict", ["accepted", "rejected"])
@pytest.mark.parametrize("key", ["none", "another terminal's"])
def test_a_forged_verdict_marks_nothing_and_the_real_server_gets_everything(tmp_path, central, verdict, key):
    creds = central.enroll()
    store = Store(tmp_path / "terminal.db")
    ratings = [store.record(make_rating(Level(1 + i % 5), terminal_id=creds.terminal_id, reasons=("slow",)))
               for i in range(6)]
    handler = type("H", (ForgingServer,), {"verdict": verdict,
                                           "secret": None if key == "none" else central.enroll().secret})
    server, url = fake_central.serve(handler)
    try:
        with pytest.raises(TransientError, match="not signed" if key == "none" else "mis-signed"):
            Uploader(store, CentralClient(url, creds)).drain()
    finally:
        server.shutdown()
    assert store.counts() == {"pending": 6, "delivered": 0, "dead": 0}
    result = Uploader(store, central.client(creds)).drain()
    assert (result.delivered, result.dead) == (6, 0)
    assert central.count("terminal_id = ?", [creds.terminal_id]) == 6
    assert sorted(r[0] for r in central.query("SELECT rating_id FROM ratings_rating WHERE terminal_id = ?",
                                              [creds.terminal_id])) == sorted(r.id for r in ratings)


def bomb_png(side: int) -> bytes:
    """A valid PNG of side × side grey pixels, all zero: under a megabyte that decodes to side² bytes."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))
    packer, row = zlib.compressobj(9), b"\0" * (side + 1)  # filter byte + pixels
    data = b"".join(packer.compress(row) for _ in range(side)) + packer.flush()
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", side, side, 8, 0, 0, 0, 0))
            + chunk(b"IDAT", data) + chunk(b"IEND", b""))


class CompromisedServer(FakeCentral):
    """Signs like the real server (it has the terminal's secret) and serves whatever it is set to."""
    manifest: dict = {}
    etag = ""
    files: dict = {}
    served: list = []

    def do_POST(self):  # heartbeats and uploads: "your content changed"
        body = self.rfile.read(int(self.headers["Content-Length"]))
        if self.path == "/api/v1/heartbeat":
            self.answer(200, json.dumps({"content_etag": self.etag}).encode())
        else:
            items = json.loads(gzip.decompress(body) if self.headers.get("Content-Encoding") == "gzip" else body)
            self.answer(200, json.dumps({"results": []}).encode()) if not items else self.answer(503, b"{}")

    def do_GET(self):
        self.served.append(self.path)
        if self.path == "/api/v1/content":
            self.answer(200, json.dumps(self.manifest).encode(), headers={"ETag": f'"{self.etag}"'})
        else:
            sha = self.path.rsplit("/", 1)[1]
            self.answer(200, self.files[sha], "application/octet-stream", body_sha256=sha)


def manifest_with(photo: bytes, name: str, size: int | None = None) -> tuple[dict, dict]:
    sha = hashlib.sha256(photo).hexdigest()
    path = f"files/{sha}.png"
    manifest = {"format": 1, "version": name, "hall": {"code": "H", "name": name}, "windows": [],
                "staff": [{"staff_no": "SZ0101", "name": name, "window": "W01", "photo": path}],
                "files": [{"path": path, "sha256": sha, "size": len(photo) if size is None else size}]}
    return manifest, {sha: photo}


@pytest.fixture
def compromised(tmp_path, terminal_config):
    """A terminal whose sync daemon talks to a compromised server: enrolled, with good content
    pulled, five pending ratings, and a folder elsewhere on the machine that nothing should touch."""
    handler = type("H", (CompromisedServer,), {"served": []})
    server, url = fake_central.serve(handler)
    data = tmp_path / "data"
    creds = Credentials(terminal_id="T-HOSTILE", secret="k" * 43, server=url, window="W01")
    creds.save(data)
    handler.secret = creds.secret
    config = terminal_config(server=url)
    text = config.read_text().replace(f'content_dir = "{tmp_path / "demo-content"}"\n', "")
    config.write_text(text)  # sync manages <data>/content
    handler.manifest, handler.files = manifest_with(png(3000, 9), "好的内容")
    handler.etag = "a" * 64
    good = BIN / "rating-sync"
    assert subprocess.run([str(good), "--config", str(config), "pull-content"], capture_output=True,
                          timeout=60).returncode == 0
    store = Store(data / "terminal.db")
    pending = [store.record(make_rating(terminal_id=creds.terminal_id)).id for _ in range(5)]
    victim = tmp_path / "elsewhere"
    victim.mkdir()
    (victim / "keep.txt").write_text("someone else's")
    yield handler, config, data, store, pending, victim
    store.close()
    server.shutdown()


def run_daemon_until_it_gave_up(config, store):
    """The real daemon, on its own: heartbeat, "content changed", pull; until it records why it refused."""
    daemon = subprocess.Popen([str(BIN / "rating-sync"), "--config", str(config), "run"],
                              stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        assert wait_for(lambda: store.state().get("last_content_error"), 30), "the daemon never pulled"
    finally:
        daemon.send_signal(signal.SIGTERM)
        output, _ = daemon.communicate(timeout=30)
    return store.state()["last_content_error"], output


def untouched(data, store, pending, victim, handler):
    assert (data / "credentials.json").is_file() and json.loads((data / "credentials.json").read_text())["secret"]
    assert [p.id for p in store.pending(100)] == pending
    assert store.db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
    assert (victim / "keep.txt").read_text() == "someone else's"
    assert Content.load(data / "content").hall["name"] == "好的内容"
    assert not list(data.rglob("*.part")) and not list(data.rglob(".staging-*"))


@pytest.mark.parametrize("etag", ["../", "..", "/", "ELSEWHERE", "../../../../../../tmp"])
def test_a_forged_etag_names_nothing_on_disk(compromised, etag):
    handler, config, data, store, pending, victim = compromised
    handler.manifest, handler.files = manifest_with(png(3000, 10), "坏的内容")
    handler.etag = str(victim) if etag == "ELSEWHERE" else etag
    error, _ = run_daemon_until_it_gave_up(config, store)
    assert "ETag" in error and "64-hex" in error
    untouched(data, store, pending, victim, handler)


def test_a_manifest_declaring_a_terabyte_is_refused_before_any_download(compromised):
    handler, config, data, store, pending, victim = compromised
    handler.manifest, handler.files = manifest_with(png(3000, 11), "坏的内容", size=2 ** 40)
    handler.etag = "b" * 64
    handler.served.clear()
    error, _ = run_daemon_until_it_gave_up(config, store)
    assert "1099511627776 bytes" in error and "at most 2097152" in error
    assert "/api/v1/content" in handler.served
    assert not any(p.startswith("/api/v1/files/") for p in handler.served)  # not a byte asked for
    untouched(data, store, pending, victim, handler)


def test_a_decompression_bomb_is_refused_and_the_kiosk_never_loads_one(compromised, tmp_path):
    handler, config, data, store, pending, victim = compromised
    bomb = bomb_png(16000)
    assert len(bomb) < 1_000_000  # a 730 KB-class file that decodes to 256 MB
    handler.manifest, handler.files = manifest_with(bomb, "炸弹")
    handler.etag = "c" * 64
    error, _ = run_daemon_until_it_gave_up(config, store)
    assert "refused: a decompression bomb" in error
    untouched(data, store, pending, victim, handler)
    # even planted in a content folder by hand, the kiosk's loader shows the placeholder instead
    planted = tmp_path / "planted"
    (planted / "files").mkdir(parents=True)
    manifest, _ = manifest_with(bomb, "炸弹")
    (planted / manifest["files"][0]["path"]).write_bytes(bomb)
    (planted / "content.json").write_text(json.dumps(manifest, ensure_ascii=False))
    content = Content.load(planted)
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert content.photo_path(content.staff["SZ0101"]) == PLACEHOLDER_PHOTO
    assert resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before < 50_000  # KiB: nothing decoded
    assert "decompression bomb" in images.problem(planted / manifest["files"][0]["path"])
    # a photo merely too large for the admin's limit is refused by its size, read from the header alone
    big = tmp_path / "big.png"
    big.write_bytes(bomb_png(4001))
    assert images.problem(big) == "4001×4001 pixels, more than 4000 a side"


def test_a_manifest_with_text_no_disk_can_hold_is_refused(compromised):
    handler, config, data, store, pending, victim = compromised
    manifest, files = manifest_with(png(3000, 12), "坏的内容")
    manifest["notices"] = [{"title": "\ud800", "body": "\u0000"}]
    handler.manifest, handler.files, handler.etag = manifest, files, "d" * 64
    error, output = run_daemon_until_it_gave_up(config, store)
    assert "notices.0.title.(text)" in error and "Traceback" not in output
    untouched(data, store, pending, victim, handler)


class Catcher(FakeCentral):
    """Another machine: takes whatever reaches it and answers as if it were the server."""
    caught: list = []

    def do_POST(self):
        self.caught.append((self.path, self.rfile.read(int(self.headers.get("Content-Length") or 0))))
        self.answer(201, json.dumps({"terminal_id": "T-EVIL", "secret": "e" * 43, "window": "W09",
                                     "results": []}).encode())


class Redirecting(FakeCentral):
    """Our server's address (or a proxy before it) answering with a redirect to another machine."""
    to = ""

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length") or 0))
        self.send_response(307)
        self.send_header("Location", self.to + self.path)
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.mark.parametrize("call", ["upload", "enroll"])
def test_a_redirect_carries_neither_ratings_nor_an_enrollment_code_elsewhere(tmp_path, call):
    """A 307 would have requests send the batch (or the code) again, to any URL it names, plain
    http to another machine included: an answer that is a redirect is no answer, and is not followed."""
    from sync.client import enroll
    catcher = type("C", (Catcher,), {"caught": []})
    elsewhere, elsewhere_url = fake_central.serve(catcher)
    ours, url = fake_central.serve(type("R", (Redirecting,), {"to": elsewhere_url}))
    creds = Credentials(terminal_id="T-R", secret="r" * 43, server=url, window="W01")
    store = Store(tmp_path / "terminal.db")
    store.record(make_rating(terminal_id=creds.terminal_id, text="我的电话 13800138000"))
    try:
        with pytest.raises(TransientError):
            if call == "upload":
                Uploader(store, CentralClient(url, creds)).drain()
            else:
                enroll(url, "ENROLL-CODE-1234")
    finally:
        ours.shutdown()
        elsewhere.shutdown()
    assert catcher.caught == []
    assert store.counts() == {"pending": 1, "delivered": 0, "dead": 0}


def test_content_pulls_through_a_proxy_that_compresses_json_and_weakens_its_etag(tmp_path, central):
    """nginx with ``gzip_types application/json`` (a common setting) compresses the manifest and, as
    RFC 9110 asks of a changed body, turns its ETag into ``W/"<hash>"``: the terminal refused that
    as no 64-hex hash on every pull, and kept its old roster for ever. The same tag, taken."""
    from loopback_nginx import start_nginx
    from sync import content
    proxy = start_nginx(tmp_path / "nginx", [central.url], http="gzip on; gzip_proxied any; gzip_types application/json;")
    try:
        client = CentralClient(proxy.url, central.enroll())
        response = client.request("GET", "/api/v1/content", headers={"Accept-Encoding": "gzip"})
        assert response.headers["ETag"].startswith('W/"')  # what the proxy did, or the test proves nothing
        folder = tmp_path / "data" / "content"
        folder.parent.mkdir()
        assert content.pull(client, folder)
        etag = content.current_etag(folder)
        assert etag is not None and len(etag) == 64 and Content.load(folder).staff
        assert not content.pull(client, folder)  # unchanged: a 304, through the proxy, nothing fetched
        assert content.current_etag(folder) == etag
    finally:
        proxy.stop()
