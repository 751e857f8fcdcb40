"""HTTP client for the central server's v1 API (requests), signing every request.

Only a 2xx whose body is the JSON the API promises counts as an answer: a captive portal's 200
HTML page, a truncated body or a proxy's error page are ``TransientError`` and the batch is simply
sent again later (the server's per-id rule makes the resend harmless).

The client keeps the offset between the server's clock and ours, learned from the
``X-Server-Time`` header of every answer, and signs with the corrected time: a terminal whose
clock is years off is refused once (``stale_timestamp``), learns the offset, and goes on.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import time
from dataclasses import dataclass
from typing import BinaryIO

import requests

import terminal
from terminal.core import signing
from terminal.credentials import Credentials

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
ITEM_STATUSES = {"accepted", "duplicate", "rejected"}


class TransientError(RuntimeError):
    """Try the same request again later; ``retry_after`` is the server's wish, if it said one."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None,
                 code: str | None = None):
        super().__init__(message)
        self.retry_after, self.status, self.code = retry_after, status, code


class BatchRefused(RuntimeError):
    """The central server refused a batch as a whole (too large, or a body it cannot read): sending
    it again unchanged would never work, so the uploader splits it to find what it objects to."""

    def __init__(self, message: str, status: int, code: str):
        super().__init__(message)
        self.status, self.code = status, code


#: whole-batch error codes of our server's API that no resend can cure (see central/ratings/api.py)
BATCH_REFUSALS = {"bad_json", "bad_body", "bad_batch", "bad_gzip", "batch_too_large", "body_too_large",
                  "unsupported_encoding"}


class FileMismatch(RuntimeError):
    """A downloaded file's size or SHA-256 is not what the manifest promised."""


@dataclass(frozen=True)
class Outbox:
    """One kind of record the terminal sends: its table in the terminal database, its endpoint,
    and the key of the batch in the request body."""

    table: str
    path: str
    key: str


RATINGS = Outbox("ratings", "/api/v1/ratings", "ratings")
EVENTS = Outbox("events", "/api/v1/events", "events")


@dataclass(frozen=True)
class ItemAck:
    id: str
    status: str
    reason: str = ""


class CentralClient:
    def __init__(self, server: str, credentials: Credentials | None, timeout: float = 15.0,
                 clock_offset: float = 0.0, wall_clock=time.time):
        self.server = server.rstrip("/")
        self.wall_clock = wall_clock  # the terminal's own clock, however wrong
        self.credentials = credentials
        self.timeout = timeout
        self.clock_offset = clock_offset  # server time minus our time, seconds
        self.http = requests.Session()
        self.http.headers["User-Agent"] = f"rating-sync/{terminal.__version__}"

    def close(self) -> None:
        self.http.close()

    # -- transport ---------------------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None,
                stream: bool = False) -> requests.Response:
        """Send a signed request; on ``stale_timestamp`` correct the clock offset and resend once."""
        if self.credentials is None:
            raise TransientError("this terminal is not enrolled: run rating-terminal provision", code="not_enrolled")
        for attempt in (1, 2):
            sent_at = self.wall_clock()
            signed = signing.signed_headers(self.credentials.terminal_id, self.credentials.secret,
                                            method, path, body, sent_at + self.clock_offset)
            try:
                response = self.http.request(method, self.server + path, data=body or None, stream=stream,
                                             timeout=self.timeout, headers={**(headers or {}), **signed})
            except requests.RequestException as exc:
                raise TransientError(f"network: {type(exc).__name__}: {_short(exc)}") from None
            self._learn_clock(response, sent_at, self.wall_clock())
            if response.status_code in (401, 403):
                code = _error_code(response)
                if code == "stale_timestamp" and attempt == 1:
                    continue
                raise TransientError(f"refused by the server: HTTP {response.status_code} {code}",
                                     status=response.status_code, code=code)
            return response
        raise AssertionError("unreachable")

    def _learn_clock(self, response: requests.Response, sent_at: float, received_at: float) -> None:
        try:
            server_time = float(response.headers["X-Server-Time"])
        except (KeyError, ValueError):
            return  # not our server (a proxy's page): learn nothing from it
        self.clock_offset = server_time - (sent_at + received_at) / 2

    # -- endpoints ---------------------------------------------------------------------------

    def upload(self, payloads: dict[str, str], clock: dict, outbox: Outbox = RATINGS) -> tuple[dict[str, ItemAck], int]:
        """POST one batch; return the acknowledgements by rating id and the bytes sent.

        ``payloads`` maps each rating id to its wire JSON text as the terminal recorded it; the
        texts are joined into the body as they are, never decoded and encoded again."""
        text = f'{{"{outbox.key}":[' + ",".join(payloads.values()) + '],"clock":' + json.dumps(clock) + "}"
        body = gzip.compress(text.encode(), compresslevel=6)
        response = self.request("POST", outbox.path, body,
                                {"Content-Type": "application/json", "Content-Encoding": "gzip"})
        if response.status_code in (400, 413, 415) and "X-Server-Time" in response.headers:
            code = _error_code(response)
            if code in BATCH_REFUSALS:
                raise BatchRefused(f"server refused the batch of {len(payloads)}: HTTP {response.status_code} "
                                   f"{code}: {_short(_error_detail(response))}", response.status_code, code)
        results = self._json(response).get("results")
        sent = payloads.keys()
        acks = {}
        try:
            for item in results:
                rid, status = item["id"], item["status"]
                if rid in sent and status in ITEM_STATUSES:
                    acks[rid] = ItemAck(rid, status, str(item.get("reason") or ""))
        except (KeyError, TypeError) as exc:
            raise TransientError(f"malformed acknowledgement body: {_short(exc)}") from None
        return acks, len(body)

    def heartbeat(self, report: dict) -> dict:
        body = json.dumps(report, ensure_ascii=False).encode()
        return self._json(self.request("POST", "/api/v1/heartbeat", body, {"Content-Type": "application/json"}))

    def content(self, etag: str | None) -> tuple[dict | None, str]:
        """The content manifest and its ETag, or (None, etag) when it has not changed."""
        headers = {"If-None-Match": f'"{etag}"'} if etag else {}
        response = self.request("GET", "/api/v1/content", headers=headers)
        if response.status_code == 304:
            return None, etag or ""
        manifest = self._json(response)
        new_etag = response.headers.get("ETag", "").strip('"')
        if not new_etag:
            raise TransientError("content answer without an ETag")
        return manifest, new_etag

    def fetch_file(self, sha256: str, size: int, out: BinaryIO) -> None:
        """Stream a content file into ``out``, checking its size and hash as it comes."""
        response = self.request("GET", f"/api/v1/files/{sha256}", stream=True)
        if response.status_code != 200:
            raise TransientError(f"file {sha256[:12]}: HTTP {response.status_code}", status=response.status_code)
        digest, got = hashlib.sha256(), 0
        try:
            for chunk in response.iter_content(64 * 1024):
                got += len(chunk)
                if got > size:
                    raise FileMismatch(f"file {sha256[:12]} is longer than the manifest's {size} bytes")
                digest.update(chunk)
                out.write(chunk)
        except requests.RequestException as exc:
            raise TransientError(f"file {sha256[:12]} cut off after {got} bytes: {type(exc).__name__}") from None
        finally:
            response.close()
        if got != size or digest.hexdigest() != sha256:
            raise FileMismatch(f"file {sha256[:12]}: got {got} bytes with another hash; expected {size} bytes")

    @staticmethod
    def _json(response: requests.Response) -> dict:
        if response.status_code in RETRYABLE_STATUS or not 200 <= response.status_code < 300:
            raise TransientError(f"HTTP {response.status_code}: {_short(response.text)}",
                                 retry_after=_retry_after(response), status=response.status_code)
        if "application/json" not in response.headers.get("Content-Type", ""):
            raise TransientError(f"HTTP {response.status_code} but not JSON "
                                 f"({response.headers.get('Content-Type', 'no content type')}): "
                                 "captive portal or proxy?")
        try:
            body = response.json()
        except ValueError as exc:
            raise TransientError(f"malformed acknowledgement body: {_short(exc)}") from None
        if not isinstance(body, dict):
            raise TransientError("malformed acknowledgement body: not an object")
        return body


def enroll(server: str, code: str, timeout: float = 15.0) -> dict:
    """Exchange an enrollment code for credentials (the one unsigned call a terminal makes)."""
    try:
        response = requests.post(f"{server.rstrip('/')}/api/v1/enroll", json={"code": code}, timeout=timeout)
    except requests.RequestException as exc:
        raise TransientError(f"cannot reach {server}: {type(exc).__name__}") from None
    if response.status_code != 201:
        raise TransientError(f"enrollment refused: HTTP {response.status_code} {_error_code(response)}",
                             status=response.status_code, code=_error_code(response))
    body = response.json()
    if not all(isinstance(body.get(k), str) for k in ("terminal_id", "secret", "window")):
        raise TransientError("enrollment answer is malformed")
    return body


def _error_code(response: requests.Response) -> str:
    try:
        return str(response.json().get("error", ""))
    except (ValueError, AttributeError):
        return ""


def _error_detail(response: requests.Response) -> str:
    try:
        return str(response.json().get("detail", ""))
    except (ValueError, AttributeError):
        return ""


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff


def _short(thing: object, limit: int = 200) -> str:
    text = " ".join(str(thing).split())
    return text[:limit] + ("…" if len(text) > limit else "")
