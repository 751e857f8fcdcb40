"""Enrollment and signed requests against the real central server: every forgery is refused with
its error code, and nothing from a refused request is stored."""

import dataclasses
import json
import os
import stat
import subprocess
import time

import pytest
import requests

from sync.client import TransientError, enroll
from terminal.core import signing

from conftest import BIN, make_rating

pytestmark = pytest.mark.central

PATH = "/api/v1/ratings"


def batch_for(creds) -> bytes:
    return json.dumps({"ratings": [make_rating(terminal_id=creds.terminal_id).to_wire()]}).encode()


def send(central, body: bytes, headers: dict) -> requests.Response:
    return requests.post(central.url + PATH, data=body, timeout=10,
                         headers={"Content-Type": "application/json", **headers})


def refused(central, reply: requests.Response, status: int, code: str, before: int) -> None:
    assert reply.status_code == status, reply.text
    assert reply.json()["error"] == code
    assert reply.json()["server_time"] and reply.headers["X-Server-Time"]
    assert central.count() == before


def test_a_correctly_signed_request_is_accepted(central, enrolled):
    body = batch_for(enrolled)
    headers = signing.signed_headers(enrolled.terminal_id, enrolled.secret, "POST", PATH, body, time.time())
    assert send(central, body, headers).json()["accepted"] == 1


def test_unsigned_forged_foreign_replayed_stale_and_revoked_requests_are_refused(central, enrolled):
    body = batch_for(enrolled)
    before = central.count()
    now = time.time()
    refused(central, send(central, body, {}), 401, "unsigned", before)

    forged = signing.signed_headers(enrolled.terminal_id, "not-the-secret", "POST", PATH, body, now)
    refused(central, send(central, body, forged), 401, "bad_signature", before)

    other = central.enroll()
    foreign = signing.signed_headers(enrolled.terminal_id, other.secret, "POST", PATH, body, now)
    refused(central, send(central, body, foreign), 401, "bad_signature", before)

    tampered = signing.signed_headers(enrolled.terminal_id, enrolled.secret, "POST", PATH, body, now)
    refused(central, send(central, body.replace(b'"level": 4', b'"level": 1'), tampered), 401, "bad_signature", before)

    stale = signing.signed_headers(enrolled.terminal_id, enrolled.secret, "POST", PATH, body, now - 600)
    refused(central, send(central, body, stale), 401, "stale_timestamp", before)
    future = signing.signed_headers(enrolled.terminal_id, enrolled.secret, "POST", PATH, body, now + 600)
    refused(central, send(central, body, future), 401, "stale_timestamp", before)

    unknown = signing.signed_headers("T-NOBODY", enrolled.secret, "POST", PATH, body, now)
    refused(central, send(central, body, unknown), 401, "bad_signature", before)  # no hint which ids exist

    good = signing.signed_headers(enrolled.terminal_id, enrolled.secret, "POST", PATH, body, now)
    assert send(central, body, good).status_code == 200
    before = central.count()
    refused(central, send(central, body, good), 401, "replayed_nonce", before)

    assert central.manage("revoke", enrolled.terminal_id).returncode == 0
    fresh = batch_for(enrolled)
    after_revoke = signing.signed_headers(enrolled.terminal_id, enrolled.secret, "POST", PATH, fresh, now)
    refused(central, send(central, fresh, after_revoke), 403, "revoked", before)


def test_every_terminal_endpoint_needs_a_signature(central):
    for method, path in [("POST", "/api/v1/heartbeat"), ("GET", "/api/v1/content"), ("GET", "/api/v1/files/" + "0" * 64)]:
        reply = requests.request(method, central.url + path, timeout=10)
        assert reply.status_code == 401 and reply.json()["error"] == "unsigned", path


def test_enrollment_codes_are_one_time_and_expire(central):
    code = central.enroll_code()
    first = enroll(central.url, code)
    assert first["window"] == "W01" and len(first["secret"]) >= 32
    with pytest.raises(TransientError) as reused:
        enroll(central.url, code)
    assert reused.value.code == "code_used"
    expired = central.enroll_code(hours=-1)
    with pytest.raises(TransientError) as late:
        enroll(central.url, expired)
    assert late.value.code == "code_expired"
    with pytest.raises(TransientError) as wrong:
        enroll(central.url, "AAAA-BBBB-CCCC")
    assert wrong.value.code == "code_invalid"
    terminals = central.query("SELECT count(*) FROM ratings_terminal WHERE terminal_id = ?", [first["terminal_id"]])
    assert terminals == [(1,)]
    # only the hash of a code is stored
    assert central.query("SELECT count(*) FROM ratings_enrollmentcode WHERE code_hash = ?", [code]) == [(0,)]


def test_provision_stores_credentials_for_the_owner_only_and_never_prints_the_secret(central, terminal_config, tmp_path):
    config = terminal_config()
    done = subprocess.run([str(BIN / "rating-terminal"), "--config", str(config), "provision",
                           "--server", central.url, "--code", central.enroll_code()],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    path = tmp_path / "data" / "credentials.json"
    creds = json.loads(path.read_text())
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    assert creds["secret"] not in done.stdout + done.stderr
    assert creds["terminal_id"] in done.stdout
    status = subprocess.run([str(BIN / "rating-sync"), "--config", str(config), "status"],
                            capture_output=True, text=True, timeout=60)
    assert creds["terminal_id"] in status.stdout and creds["secret"] not in status.stdout + status.stderr
    again = subprocess.run([str(BIN / "rating-terminal"), "--config", str(config), "provision",
                            "--server", central.url, "--code", "AAAA-BBBB-CCCC"], capture_output=True, text=True)
    assert again.returncode == 1 and "already enrolled" in again.stderr


def test_provision_reads_the_code_from_stdin_or_a_file_never_the_command_line(central, terminal_config, tmp_path):
    """The fleet playbook passes the code on standard input, a technician's script in a file of mode 600:
    no other user sees it in the process list."""
    config = terminal_config()
    tool = [str(BIN / "rating-terminal"), "--config", str(config), "provision", "--server", central.url]
    done = subprocess.run([*tool, "--code-file", "-"], input=central.enroll_code("W02") + "\n",
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert json.loads((tmp_path / "data" / "credentials.json").read_text())["window"] == "W02"
    code_file = tmp_path / "code.txt"
    code_file.write_text(central.enroll_code("W03") + "\n")
    code_file.chmod(0o600)
    again = subprocess.run([*tool, "--force", "--code-file", str(code_file)], capture_output=True, text=True, timeout=60)
    assert again.returncode == 0, again.stderr
    assert json.loads((tmp_path / "data" / "credentials.json").read_text())["window"] == "W03"
    both = subprocess.run([*tool, "--code", "AAAA-BBBB-CCCC", "--code-file", str(code_file)],
                          capture_output=True, text=True, timeout=60)
    missing = subprocess.run([*tool, "--code-file", str(tmp_path / "nowhere")], capture_output=True, text=True,
                             timeout=60)
    assert both.returncode == 2 and "not allowed with" in both.stderr
    assert missing.returncode == 2 and "cannot read" in missing.stderr


def test_secret_is_not_in_repr():
    from terminal.credentials import Credentials
    creds = Credentials(terminal_id="T1", secret="s3cr3t-value", server="http://x", window="W01")
    assert "s3cr3t-value" not in repr(creds) and "s3cr3t-value" not in str(dataclasses.replace(creds))


@pytest.mark.parametrize("wrong", ["secret", "terminal id"])
def test_a_terminal_its_server_does_not_know_says_so_and_marks_nothing(central, enrolled, tmp_path, wrong):
    """The server cannot sign its refusal of a terminal it does not know, or knows by another secret
    (a database restored from before its enrollment, a secret file replaced): that answer is no
    answer, and the log said only "captive portal, proxy or impostor?", for ever. It also says what
    the answer claims, marked unverified, and still nothing is taken from it."""
    from sync.outbox import Uploader
    from terminal.store import Store
    creds = dataclasses.replace(enrolled, **({"secret": "x" * 43} if wrong == "secret" else {"terminal_id": "TNOSUCH0000"}))
    store = Store(tmp_path / "terminal.db")
    store.record(make_rating(terminal_id=creds.terminal_id))
    with pytest.raises(TransientError, match="not signed") as refused_answer:
        Uploader(store, central.client(creds)).drain()
    assert "unverified, it says bad_signature" in str(refused_answer.value)
    assert store.counts() == {"pending": 1, "delivered": 0, "dead": 0}
    store.close()


def test_credentials_are_never_written_into_a_readable_or_linked_leftover_temporary_file(tmp_path):
    """A leftover ``.credentials.json.tmp`` (a write cut short, a copied folder, another tool's
    umask) kept its own mode when opened again with O_TRUNC, and a link there was followed: the
    secret went into a file others may read, renamed to credentials.json or written elsewhere."""
    from terminal.credentials import Credentials
    data = tmp_path / "data"
    data.mkdir()
    leftover = data / ".credentials.json.tmp"
    leftover.write_text("half a secret")
    leftover.chmod(0o644)
    creds = Credentials(terminal_id="T0123456789", secret="s" * 43, server="https://pj.example.gov.cn", window="W01")
    creds.save(data)
    assert stat.S_IMODE(os.stat(data / "credentials.json").st_mode) == 0o600
    assert Credentials.load(data) == creds and not leftover.exists()
    elsewhere = tmp_path / "readable-by-all"
    elsewhere.write_text("")
    elsewhere.chmod(0o644)
    leftover.symlink_to(elsewhere)
    creds.save(data)
    assert elsewhere.read_text() == "" and Credentials.load(data) == creds
    assert stat.S_IMODE(os.stat(data / "credentials.json").st_mode) == 0o600
