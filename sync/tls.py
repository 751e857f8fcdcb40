"""TLS to the central server: whom a terminal trusts, in one place.

``session`` gives a requests session that verifies the server's certificate against the system's
CAs, or against a private CA (``[sync] ca_file``, a PEM bundle: a hall's own CA), and, when
``[sync] server_key_pin`` is set, also checks that the server's public key is the pinned one:
the SHA-256 of its SubjectPublicKeyInfo, as 64 hex characters or as ``sha256/<base64>`` (the
form ``openssl x509 -pubkey | openssl pkey -pubin -outform der | openssl dgst -sha256 -binary |
base64`` prints). A pin survives certificate renewals that keep the key, and refuses a server
whose certificate a compromised CA signed. The pin is checked on every new connection, before
a byte of the request is sent.
"""

from __future__ import annotations

import hashlib

import requests
from requests.adapters import HTTPAdapter
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import SSLError

from terminal.core.key_pin import parse_pin

from .deadline import DeadlineHTTPConnection, DeadlineHTTPSConnection


def spki_sha256(der_certificate: bytes) -> str:
    """SHA-256 (hex) of the certificate's SubjectPublicKeyInfo."""
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization
    key = x509.load_der_x509_certificate(der_certificate).public_key()
    return hashlib.sha256(key.public_bytes(serialization.Encoding.DER,
                                           serialization.PublicFormat.SubjectPublicKeyInfo)).hexdigest()


class _PinnedConnection(DeadlineHTTPSConnection):
    pin = ""

    def connect(self):
        super().connect()
        der = self.sock.getpeercert(binary_form=True)
        if not der or spki_sha256(der) != self.pin:
            self.close()
            raise SSLError("the server's public key is not the pinned one ([sync] server_key_pin)")


class DeadlineAdapter(HTTPAdapter):
    """An adapter whose connections read their answers within the calling thread's deadline
    (``deadline.within``)."""

    https_connection: type = DeadlineHTTPSConnection

    def init_poolmanager(self, *args, **kwargs):
        super().init_poolmanager(*args, **kwargs)
        plain = type("DeadlinePool", (HTTPConnectionPool,), {"ConnectionCls": DeadlineHTTPConnection})
        secure = type("DeadlineTLSPool", (HTTPSConnectionPool,), {"ConnectionCls": self.https_connection})
        self.poolmanager.pool_classes_by_scheme = {"http": plain, "https": secure}


class PinnedAdapter(DeadlineAdapter):
    """An HTTPS adapter whose connections refuse any server key but the pinned one."""

    def __init__(self, pin: str):
        self.pin = pin
        self.https_connection = type("PinnedConnection", (_PinnedConnection,), {"pin": pin})
        super().__init__()


class _Unredirected(requests.Session):
    """Follows no redirect: a 307 would send a signed request again, its batch of ratings or an
    enrollment code with it, to whatever URL it names (plain http to another machine, past the
    pin's host), and an enrollment's answer would come from there. A 3xx is the answer itself:
    unsigned, not a 2xx, so no answer."""

    def get_redirect_target(self, resp):
        return None


def session(ca_file: str | None = None, server_key_pin: str = "") -> requests.Session:
    """Calls made ``deadline.within`` a deadline end by it, whatever the server sends; no
    redirect is followed."""
    http = _Unredirected()
    http.trust_env = False  # no proxy or CA bundle slipped in through the environment
    if ca_file:
        http.verify = str(ca_file)
    pin = parse_pin(server_key_pin)
    http.mount("http://", DeadlineAdapter())
    http.mount("https://", PinnedAdapter(pin) if pin else DeadlineAdapter())
    return http
