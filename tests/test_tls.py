"""TLS to the central server: a hall's private CA through ``[sync] ca_file``, an optional pin of the
server's public key, and plain http:// refused for anything but this machine."""

import base64
import datetime
import hashlib
import ipaddress
import json
import ssl
import subprocess

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from sync.client import CentralClient, TransientError, enroll
from terminal import config as config_module
from terminal.credentials import Credentials

import fake_central
from conftest import BIN
from fake_central import FakeCentral

CREDS = Credentials(terminal_id="T-TLS", secret="t" * 43, server="https://127.0.0.1", window="W01")


def certificate(subject: str, key, issuer_key=None, issuer=None, ca=False):
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)])
    now = datetime.datetime.now(datetime.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(issuer.subject if issuer else name)
               .public_key(key.public_key()).serial_number(x509.random_serial_number())
               .not_valid_before(now - datetime.timedelta(days=1)).not_valid_after(now + datetime.timedelta(days=30))
               .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True))
    if not ca:
        builder = builder.add_extension(x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]),
                                        critical=False)
    return builder.sign(issuer_key or key, hashes.SHA256())


@pytest.fixture(scope="module")
def pki(tmp_path_factory):
    """A hall's own CA and the central server's certificate from it (for 127.0.0.1)."""
    folder = tmp_path_factory.mktemp("pki")
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca = certificate("示范市政务服务中心 CA", ca_key, ca=True)
    key = ec.generate_private_key(ec.SECP256R1())
    cert = certificate("127.0.0.1", key, ca_key, ca)
    pem = serialization.Encoding.PEM
    (folder / "ca.pem").write_bytes(ca.public_bytes(pem))
    (folder / "server.pem").write_bytes(cert.public_bytes(pem))
    (folder / "server.key").write_bytes(key.private_bytes(pem, serialization.PrivateFormat.PKCS8,
                                                          serialization.NoEncryption()))
    spki = key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
    return folder, hashlib.sha256(spki).digest()


class TlsCentral(FakeCentral):
    secret = CREDS.secret

    def do_POST(self):
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        if self.path == "/api/v1/enroll":
            self.answer(201, json.dumps({"terminal_id": "T-TLS", "secret": "u" * 43, "window": "W01"}).encode())
        else:
            self.answer(200, json.dumps({"content_etag": "e" * 64}).encode())


@pytest.fixture(scope="module")
def https(pki):
    folder, _ = pki
    server, url = fake_central.serve(TlsCentral)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(folder / "server.pem", folder / "server.key")
    server.socket = context.wrap_socket(server.socket, server_side=True)
    yield url.replace("http://", "https://")
    server.shutdown()


def test_a_private_ca_is_trusted_only_when_configured(https, pki):
    folder, _ = pki
    with pytest.raises(TransientError, match="SSLError"):
        CentralClient(https, CREDS).heartbeat({})
    assert CentralClient(https, CREDS, ca_file=str(folder / "ca.pem")).heartbeat({})["content_etag"] == "e" * 64


def test_the_server_key_pin_is_checked_on_every_connection(https, pki):
    folder, pin = pki
    ca = str(folder / "ca.pem")
    for good in (pin.hex(), "sha256/" + base64.b64encode(pin).decode()):
        assert CentralClient(https, CREDS, ca_file=ca, server_key_pin=good).heartbeat({})
    wrong = hashlib.sha256(b"another key").hexdigest()
    with pytest.raises(TransientError, match="pinned"):
        CentralClient(https, CREDS, ca_file=ca, server_key_pin=wrong).heartbeat({})
    with pytest.raises(TransientError, match="pinned"):
        enroll(https, "ABCD-EFGH-JKLM", ca_file=ca, server_key_pin=wrong)  # enrollment too: no secret leaks
    assert enroll(https, "ABCD-EFGH-JKLM", ca_file=ca, server_key_pin=pin.hex())["terminal_id"] == "T-TLS"


@pytest.mark.parametrize("server, ok", [
    ("http://127.0.0.1:8000", True), ("http://localhost:8000", True), ("http://[::1]:8000", True),
    ("https://pj.example.gov.cn", True), ("https://10.1.2.3:8443/", True),
    ("http://10.1.2.3:8000", False), ("http://pj.example.gov.cn", False), ("ftp://127.0.0.1", False),
    ("https://user:secret@pj.example.gov.cn", False), ("https://pj.example.gov.cn/?token=x", False),
])
def test_the_config_takes_https_or_loopback_only(tmp_path, server, ok):
    path = tmp_path / "t.toml"
    path.write_text(f'[terminal]\ndata_dir = "{tmp_path}"\n[sync]\nserver = "{server}"\n')
    if ok:
        assert config_module.load(path).sync.server == server.rstrip("/")
    else:
        with pytest.raises(config_module.ConfigError, match="https://|secrets never go in URLs"):
            config_module.load(path)


def test_a_bad_pin_in_the_config_is_named(tmp_path):
    path = tmp_path / "t.toml"
    path.write_text(f'[terminal]\ndata_dir = "{tmp_path}"\n[sync]\nserver_key_pin = "abc"\n')
    with pytest.raises(config_module.ConfigError, match="server_key_pin"):
        config_module.load(path)


def test_provision_refuses_plain_http_to_another_machine_and_says_the_fix(terminal_config, tmp_path):
    config = terminal_config()
    done = subprocess.run([str(BIN / "rating-terminal"), "--config", str(config), "provision",
                           "--server", "http://192.168.1.10:8000", "--code", "ABCD-EFGH-JKLM"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 1 and "use https://192.168.1.10:8000" in done.stderr
    assert not (tmp_path / "data" / "credentials.json").exists()


def test_provision_over_tls_with_the_halls_ca_from_the_config(terminal_config, tmp_path, https, pki):
    folder, pin = pki
    config = terminal_config()
    config.write_text(config.read_text() + f'ca_file = "{folder / "ca.pem"}"\nserver_key_pin = "{pin.hex()}"\n')
    done = subprocess.run([str(BIN / "rating-terminal"), "--config", str(config), "provision",
                           "--server", https, "--code", "ABCD-EFGH-JKLM"], capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    saved = json.loads((tmp_path / "data" / "credentials.json").read_text())
    assert saved["terminal_id"] == "T-TLS" and saved["server"] == https
