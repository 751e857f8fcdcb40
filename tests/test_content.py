"""Content pull: from the real central server, and from servers that send bad files."""

import hashlib
import json
import shutil
import subprocess
import sys

import pytest

from sync import content
from sync.client import CentralClient
from terminal.content import Content, ContentError
from terminal.credentials import Credentials
from terminal.store import Store

import fake_central
from conftest import ROOT, make_rating
from fake_central import FakeCentral

pytestmark = pytest.mark.central

FAKE = Credentials(terminal_id="T-FAKE", secret="s" * 43, server="http://unused", window="W01")


class CountingClient(CentralClient):
    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.paths = []

    def request(self, method, path, *args, **kwargs):
        self.paths.append(path)
        return super().request(method, path, *args, **kwargs)


def test_pull_from_central_then_unchanged_etag_downloads_nothing(central, enrolled, tmp_path):
    folder = tmp_path / "content"
    client = CountingClient(central.url, enrolled)
    assert content.pull(client, folder) is True
    assert folder.is_symlink()
    pulled = Content.load(folder)
    assert pulled.hall["name"] == "示范市政务服务中心"
    assert sorted(pulled.staff) == ["SZ0101", "SZ0102"]  # only this window's staff
    photo = pulled.photo_path(pulled.staff["SZ0101"])
    expected = (ROOT / "assets" / "demo" / "photos" / "SZ0101.png").read_bytes()
    assert photo.read_bytes() == expected and photo.name == hashlib.sha256(expected).hexdigest() + ".png"
    assert [t["label"] for t in pulled.reason_tags][0] == "服务态度差"
    assert pulled.settings["rating_mode"] == "invite"
    assert sum(p.startswith("/api/v1/files/") for p in client.paths) == 2

    client.paths.clear()
    assert content.pull(client, folder) is False
    assert client.paths == ["/api/v1/content"]  # answered 304: no manifest, no files


class ContentServer(FakeCentral):
    """Serves a manifest and files, signed as the real server signs (a compromised server knows
    the terminal's secret); ``files`` maps sha256 -> (bytes to send, declared length)."""
    secret = FAKE.secret
    manifest: dict = {}
    etag = "0" * 64
    files: dict = {}

    def do_GET(self):
        if self.path == "/api/v1/content":
            self.answer(200, json.dumps(self.manifest).encode(), headers={"ETag": f'"{self.etag}"'})
        else:
            sha = self.path.rsplit("/", 1)[1]
            body, length = self.files[sha]
            self.answer(200, body, "application/octet-stream", body_sha256=sha, declared=length)


def png(approx_bytes: int, seed: int = 0, side: int | None = None) -> bytes:
    """A real PNG of about ``approx_bytes`` (noise does not compress), or ``side`` pixels square."""
    import io
    import random
    from PIL import Image
    side = side or max(8, int((approx_bytes / 3) ** 0.5))
    rng = random.Random(seed)
    image = Image.frombytes("RGB", (side, side), rng.randbytes(side * side * 3))
    out = io.BytesIO()
    image.save(out, "PNG", compress_level=1)
    return out.getvalue()


def version(name: str, payload: bytes, sent: bytes | None = None, declared: int | None = None) -> dict:
    sha = hashlib.sha256(payload).hexdigest()
    path = f"files/{sha}.png"
    manifest = {"format": 1, "version": name, "hall": {"code": "H", "name": name}, "windows": [],
                "staff": [{"staff_no": "S1", "name": name, "window": "W01", "photo": path}],
                "files": [{"path": path, "sha256": sha, "size": len(payload)}]}
    body = payload if sent is None else sent
    return {"manifest": manifest, "etag": hashlib.sha256(name.encode()).hexdigest(),
            "files": {sha: (body, declared if declared is not None else len(body))}}


@pytest.fixture
def content_server():
    handler = type("H", (ContentServer,), {})
    server, url = fake_central.serve(handler)
    yield handler, url
    server.shutdown()


def serve(handler, v: dict) -> None:
    handler.manifest, handler.etag, handler.files = v["manifest"], v["etag"], v["files"]


@pytest.mark.parametrize("bad", ["hash_mismatch", "cut_halfway"])
def test_bad_download_leaves_the_old_content_in_place(content_server, tmp_path, bad):
    handler, url = content_server
    folder = tmp_path / "content"
    client = CentralClient(url, FAKE)
    serve(handler, version("第一版", png(900, 1)))
    assert content.pull(client, folder)
    before = (folder / "content.json").read_bytes()
    store = Store(tmp_path / "terminal.db")
    ratings = [store.record(make_rating()) for _ in range(5)]

    new = png(9000, 2)
    if bad == "hash_mismatch":
        serve(handler, version("第二版", new, sent=png(9000, 3)[:len(new)]))
        expected = content.ContentPullError
    else:
        serve(handler, version("第二版", new, sent=new[:4000], declared=len(new)))
        expected = Exception  # a TransientError: the connection closed early
    with pytest.raises(expected):
        content.pull(client, folder)
    assert (folder / "content.json").read_bytes() == before
    assert Content.load(folder).hall["name"] == "第一版"
    assert not list(content.versions_dir(folder).glob(".staging-*"))
    assert [p.id for p in store.pending(10)] == [r.id for r in ratings]


FULL_DISK_SCRIPT = r"""
import json, sys
sys.path[:0] = [{root!r}, {tests!r}]
from sync import content
from sync.client import CentralClient
from terminal.content import Content, ContentError
from terminal.store import Store
from conftest import make_rating
from test_content import FAKE

url, folder, db = sys.argv[1:4]
store = Store(db)
ids = [make_rating().id for _ in range(0)]
for _ in range(20):
    r = make_rating(); store.record(r); ids.append(r.id)
client = CentralClient(url, FAKE)
error = None
try:
    content.pull(client, __import__("pathlib").Path(folder), reserve_bytes=0)
except content.ContentPullError as exc:
    error = str(exc)
store.record(make_rating())  # the staging space was freed: ratings still go in
print(json.dumps({{"error": error, "hall": Content.load(folder).hall["name"],
                  "pending": [p.id for p in store.pending(100)][:20] == ids,
                  "integrity": store.db.execute("PRAGMA integrity_check").fetchone()[0]}}))
"""


def test_full_disk_keeps_old_content_and_ratings(content_server, tmp_path):
    """The data folder on a 1 MiB tmpfs (in a private mount namespace): the new version cannot fit,
    and the pull is refused before it downloads anything."""
    if not shutil.which("unshare"):
        pytest.fail("unshare (util-linux) is needed for the full-disk test")
    handler, url = content_server
    disk = tmp_path / "disk"
    disk.mkdir()
    script = tmp_path / "full_disk.py"
    script.write_text(FULL_DISK_SCRIPT.format(root=str(ROOT), tests=str(ROOT / "tests")))
    first = version("第一版", png(200_000, 4))
    serve(handler, first)
    # first version installed on a roomy disk, then the folder is copied onto the small one
    seed = tmp_path / "seed"
    content.pull(CentralClient(url, FAKE), seed / "content")
    serve(handler, version("第二版", png(900_000, 5)))
    command = (f"mount -t tmpfs -o size=1m tmpfs {disk} && cp -a {seed}/. {disk}/ && "
               f"exec {sys.executable} {script} {url} {disk}/content {disk}/terminal.db")
    done = subprocess.run(["unshare", "-rm", "sh", "-c", command], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    outcome = json.loads(done.stdout.strip().splitlines()[-1])
    assert outcome["error"] and "not enough disk" in outcome["error"]  # refused before a byte was written
    assert outcome["hall"] == "第一版" and outcome["pending"] and outcome["integrity"] == "ok"


def test_a_plain_folder_is_never_moved_or_replaced(content_server, tmp_path):
    handler, url = content_server
    folder = tmp_path / "content"
    folder.mkdir()
    (folder / "content.json").write_text("{}")
    serve(handler, version("新版", png(100)))
    with pytest.raises(content.ContentPullError, match="plain folder"):
        content.pull(CentralClient(url, FAKE), folder)
    assert (folder / "content.json").read_text() == "{}" and not folder.is_symlink()


def test_a_version_the_kiosk_cannot_load_is_refused_and_the_one_before_stays(content_server, tmp_path):
    """A signed manifest whose files are all in order but whose roster the kiosk's reader refuses
    (here a member with no name): swapped in, it left the kiosk with no roster and the good version
    unused. It is refused before a file is downloaded, and the version before stays."""
    handler, url = content_server
    folder = tmp_path / "content"
    client = CountingClient(url, FAKE)
    serve(handler, version("第一版", png(900, 1)))
    assert content.pull(client, folder)
    unloadable = version("第二版", png(900, 2))
    del unloadable["manifest"]["staff"][0]["name"]
    serve(handler, unloadable)
    client.paths.clear()
    with pytest.raises(content.ContentPullError, match=r"the kiosk cannot load it \(content/content.json: "
                                                       r"staff.0: a staff entry has no name\)"):
        content.pull(client, folder)
    assert client.paths == ["/api/v1/content"]  # not a file asked for
    assert Content.load(folder).hall["name"] == "第一版"
    assert not list(content.versions_dir(folder).glob(".staging-*"))


def test_a_roster_entry_with_fields_this_terminal_does_not_know_still_loads(tmp_path):
    """A newer central server adds a field to each member (a phone number): an older terminal
    shows its roster all the same; an entry without a member's required fields, or any other
    malformed part, is a ContentError, never a TypeError, KeyError or ValueError."""
    def load(**changes):
        raw = {"format": 1, "version": "v2", "hall": {"code": "H", "name": "hall"},
               "staff": [{"staff_no": "SZ0101", "name": "张三", "window": "W01", "badge_id": "0004521873",
                          "phone": "0755-1234", "photo": ""}], **changes}
        (tmp_path / "content.json").write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
        return Content.load(tmp_path)
    member = load().staff["SZ0101"]
    assert (member.name, member.window, member.badge_id) == ("张三", "W01", "0004521873")
    for changes, why in [({"staff": [{"staff_no": "SZ0102", "window": "W01"}]}, "staff.0: a staff entry has no name"),
                         ({"staff": [{"name": "李四", "window": "W01"}]}, "staff.0: a staff entry has no staff_no"),
                         ({"staff": ["SZ0101"]}, "staff.0: a staff entry is not an object"),
                         ({"hall": ["abc"]}, "malformed entry"),
                         ({"settings": "abc"}, "malformed entry")]:
        with pytest.raises(ContentError, match=why):
            load(**changes)


def test_content_whose_values_no_rating_can_carry_or_no_screen_can_show_is_refused(tmp_path, terminal_config):
    """A department, staff number or reason tag goes into every rating made under it: one a record
    cannot hold (too long, empty, not text) made each press fail to be recorded while the session,
    and the invite API, said rated. A window's name or stars, the hall's name, a notice or a guide
    of the wrong kind stopped the kiosk as it drew them. The reader refuses such content, so sync
    never swaps it in; the demo content still loads."""
    from terminal import config as config_module
    from terminal.core.channels import InputDevice
    from terminal.core.levels import Level
    from terminal.store import Store
    from terminal.window import Window
    demo = json.loads((ROOT / "assets" / "demo" / "content.json").read_text(encoding="utf-8"))

    def load(path: str, value):
        raw = json.loads(json.dumps(demo))
        *parents, last = path.split(".")
        place = raw
        for key in parents:
            place = place[int(key)] if isinstance(place, list) else place[key]
        place[int(last) if isinstance(place, list) else last] = value
        folder = tmp_path / "c"
        folder.mkdir(exist_ok=True)
        (folder / "content.json").write_text(json.dumps(raw, ensure_ascii=False), encoding="utf-8")
        return Content.load(folder)
    bad = [("windows.0.department", "D" * 65), ("windows.0.department", ""), ("windows.0.department", 7),
           ("staff.0.staff_no", "S" * 65), ("staff.0.staff_no", ""), ("reason_tags.0.code", "r" * 65),
           ("reason_tags.0", "attitude"), ("windows.0.name", ["1号窗口"]), ("windows.0.stars", "five"),
           ("hall.name", 5), ("notices.0", "停电通知"), ("guides", [["title", "body"]])]
    for path, value in bad:
        with pytest.raises(ContentError):
            load(path, value)
            pytest.fail(f"{path} = {value!r} loaded")
    content = load("windows.0.department", None)  # no department: the ratings carry none
    config = config_module.load(terminal_config())
    store = Store(config.db_path)
    window = Window(config, store, content)
    window.swipe(content.staff_of_window("W01")[0].badge_id)
    window.invite(case_no="C-1")
    window.press(Level.SATISFIED, InputDevice.BUTTON_BOX)
    assert store.counts()["pending"] == 1 and window.errors == 0
    store.close()
