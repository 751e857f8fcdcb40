"""Request signing between a terminal and the central server (HMAC-SHA256), shared by both.

A signed request carries four headers:

    X-Terminal-Id   the terminal's id from enrollment
    X-Timestamp     Unix seconds (the terminal's clock corrected by the offset it learned)
    X-Nonce         32 random hex characters, never reused
    X-Signature     hex HMAC-SHA256(secret, canonical string)

The canonical string is the method, the path with its query, the timestamp, the nonce and the
SHA-256 of the body, one per line. The secret itself never travels after enrollment, never goes
into a URL, and is never logged.

Answers are signed too, so a terminal believes only its own server: ``X-Answer-Signature`` is
hex HMAC-SHA256 with the same secret over ``answer``, the request's nonce, the HTTP status, the
answer's ``X-Server-Time`` and the SHA-256 of the answer's body (decoded, as the client reads it),
one per line. The leading word keeps an answer's signature from ever passing as a request's.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets

HEADER_TERMINAL = "X-Terminal-Id"
HEADER_SYSTEM = "X-System-Id"  # a business or queue system reporting cases signs the same way
HEADER_TIMESTAMP = "X-Timestamp"
HEADER_NONCE = "X-Nonce"
HEADER_SIGNATURE = "X-Signature"
HEADER_ANSWER_SIGNATURE = "X-Answer-Signature"
HEADER_SERVER_TIME = "X-Server-Time"
MAX_SKEW_SECONDS = 300


def canonical(method: str, path: str, timestamp: str, nonce: str, body: bytes) -> bytes:
    return "\n".join([method.upper(), path, timestamp, nonce, hashlib.sha256(body).hexdigest()]).encode()


def sign(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes) -> str:
    return hmac.new(secret.encode(), canonical(method, path, timestamp, nonce, body), hashlib.sha256).hexdigest()


def signed_headers(terminal_id: str, secret: str, method: str, path: str, body: bytes, now: float,
                   id_header: str = HEADER_TERMINAL) -> dict[str, str]:
    """The four headers for one request; ``now`` is the corrected Unix time. A business system
    names itself in ``X-System-Id`` (``id_header``) instead."""
    timestamp, nonce = str(int(now)), secrets.token_hex(16)
    return {id_header: terminal_id, HEADER_TIMESTAMP: timestamp, HEADER_NONCE: nonce,
            HEADER_SIGNATURE: sign(secret, method, path, timestamp, nonce, body)}


def verify(secret: str, method: str, path: str, timestamp: str, nonce: str, body: bytes, signature: str) -> bool:
    return _same(sign(secret, method, path, timestamp, nonce, body), signature)


def answer_canonical(nonce: str, status: int, server_time: str, body_sha256: str) -> bytes:
    return "\n".join(["answer", nonce, str(status), server_time, body_sha256]).encode()


def sign_answer(secret: str, nonce: str, status: int, server_time: str, body_sha256: str) -> str:
    return hmac.new(secret.encode(), answer_canonical(nonce, status, server_time, body_sha256),
                    hashlib.sha256).hexdigest()


def verify_answer(secret: str, nonce: str, status: int, server_time: str, body_sha256: str, signature: str) -> bool:
    return _same(sign_answer(secret, nonce, status, server_time, body_sha256), signature)


def _same(expected: str, given: str) -> bool:
    """Constant-time comparison that also takes any text a stranger sends (non-ASCII, any length)."""
    return hmac.compare_digest(expected.encode(), given.encode("utf-8", "surrogatepass"))
