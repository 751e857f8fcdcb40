"""HTTP client for the central server's v1 API (requests), signing every request.

Only a 2xx whose body is the JSON the API promises counts as an answer: a captive portal's 200
HTML page, a truncated body or a proxy's error page are ``TransientError`` and the batch is simply
sent again later (the server's per-id rule makes the resend harmless).

Every answer must also carry the server's signature (``X-Answer-Signature``, see
``terminal.core.signing``) over this request's nonce, the status, its time and its body: an
answer that is unsigned or mis-signed is no answer (``TransientError``), so a fake server, a
proxy or anyone on the LAN can neither mark a rating delivered nor refuse it. Answers are read
up to a size limit and within a deadline (``DEADLINE_TIMEOUTS`` read timeouts for a request and
its whole answer, its head and a content file included: requests' timeout bounds each read, so
a server or proxy trickling a byte a second would otherwise hold a call for ever; ``deadline``),
and the connection is TLS
to anything off the machine (``tls``): the system's CAs or ``[sync] ca_file``, and optionally a
pinned server key.

The client keeps the offset between the server's clock and ours, learned from the signed
``X-Server-Time`` header of every answer, and signs with the corrected time: a terminal whose
clock is years off is refused once (``stale_timestamp``), learns the offset, and goes on.
"""

from __future__ import annotations

import gzip
import hashlib
import json
import re
import time
from dataclasses import dataclass, field
from typing import BinaryIO

import requests
import urllib3

import terminal
from terminal.core import signing
from terminal.core.checks import plausible_seconds
from terminal.credentials import Credentials, CredentialsError, check_ids

from . import deadline, tls
from .outbox import EVENTS, RATINGS, BatchRefused, ItemAck, Outbox, TransientError  # noqa: F401 (this client's API)

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
ITEM_STATUSES = {"accepted", "duplicate", "rejected"}
MAX_ANSWER_BYTES = 8 * 1024 * 1024  # a manifest or 1,000 acknowledgements are far smaller
ETAG = re.compile(r"^[0-9a-f]{64}$")
DEADLINE_TIMEOUTS = 4  # a request and its whole answer take at most this many read timeouts
CHUNK = 64 * 1024


#: whole-batch error codes of our server's API that no resend can cure (see central/ratings/api.py)
BATCH_REFUSALS = {"bad_json", "bad_body", "bad_batch", "bad_gzip", "batch_too_large", "body_too_large",
                  "unsupported_encoding"}


class FileMismatch(RuntimeError):
    """A downloaded file's size or SHA-256 is not what the manifest promised."""


@dataclass
class Answer:
    """A verified answer: its status, headers and body, read whole (up to MAX_ANSWER_BYTES)."""

    status_code: int
    headers: requests.structures.CaseInsensitiveDict
    content: bytes = b""
    stream: requests.Response | None = field(default=None, repr=False)  # a file being fetched
    until: float = 0.0  # the call's deadline (time.monotonic()), for the reader of ``stream``

    @property
    def text(self) -> str:
        return self.content.decode("utf-8", "replace")

    def json(self):
        return json.loads(self.content.decode("utf-8"))



class CentralClient:
    id_header = signing.HEADER_TERMINAL  # how the signer names itself (a platform client: X-System-Id)

    def __init__(self, server: str, credentials: Credentials | None, timeout: float = 15.0,
                 clock_offset: float = 0.0, wall_clock=time.time, ca_file: str | None = None,
                 server_key_pin: str = ""):
        self.server = server.rstrip("/")
        self.wall_clock = wall_clock  # the terminal's own clock, however wrong
        self.credentials = credentials
        self.timeout = timeout
        self.clock_offset = clock_offset if plausible_seconds(clock_offset) else 0.0  # server minus ours, seconds
        self.answered_at = time.monotonic()  # when a call last came back whole: the daemon's sign of progress
        self.http = tls.session(ca_file, server_key_pin)
        self.http.headers["User-Agent"] = f"rating-sync/{terminal.__version__}"

    def close(self) -> None:
        self.http.close()

    @property
    def deadline_s(self) -> float:
        """How long one call (a request and its whole answer, or a content file) may take in all."""
        return self.timeout * DEADLINE_TIMEOUTS

    # -- transport ---------------------------------------------------------------------------

    def request(self, method: str, path: str, body: bytes = b"", headers: dict | None = None,
                stream_sha256: str | None = None) -> Answer:
        """Send a signed request and return its verified answer, each attempt within ``deadline_s``;
        on ``stale_timestamp`` correct the clock offset and resend once. ``stream_sha256``: the
        answer is a file of that hash, left unread in ``Answer.stream`` (its signature covers that
        hash; the caller reads it by ``Answer.until``)."""
        if self.credentials is None:
            raise TransientError("this terminal is not enrolled: run rating-terminal provision", code="not_enrolled")
        for attempt in (1, 2):
            until = time.monotonic() + self.deadline_s
            sent_at = self.wall_clock()
            signed = signing.signed_headers(self.credentials.terminal_id, self.credentials.secret,
                                            method, path, body, sent_at + self.clock_offset, self.id_header)
            try:
                with deadline.within(until):  # the answer's head and body, however slowly they come
                    response = self.http.request(method, self.server + path, data=body or None, stream=True,
                                                 timeout=self.timeout, headers={**(headers or {}), **signed})
            except requests.RequestException as exc:
                if time.monotonic() >= until:
                    raise TransientError("no answer's head within the call's deadline: a server or proxy "
                                         "trickling it?", code="deadline") from None
                raise TransientError(f"network: {type(exc).__name__}: {_short(exc)}") from None
            answer = self._verified(response, signed[signing.HEADER_NONCE], stream_sha256, until)
            if answer.stream is None:
                self.answered_at = time.monotonic()
            self._learn_clock(answer, sent_at, self.wall_clock())
            if answer.status_code in (401, 403):
                code = _error_code(answer)
                if code == "stale_timestamp" and attempt == 1:
                    continue
                raise TransientError(f"refused by the server: HTTP {answer.status_code} {code}",
                                     status=answer.status_code, code=code)
            return answer
        raise AssertionError("unreachable")

    def _verified(self, response: requests.Response, nonce: str, stream_sha256: str | None,
                  until: float) -> Answer:
        """The answer, if our server signed it for this request; else TransientError (no answer)."""
        keep_open = stream_sha256 is not None and response.status_code == 200
        try:
            body = b"" if keep_open else read_bounded(response, MAX_ANSWER_BYTES, until)
        finally:
            if not keep_open:
                response.close()
        server_time = response.headers.get(signing.HEADER_SERVER_TIME, "")
        given = response.headers.get(signing.HEADER_ANSWER_SIGNATURE, "")
        digest = stream_sha256 if keep_open else hashlib.sha256(body).hexdigest()
        if not given or not signing.verify_answer(self.credentials.secret, nonce, response.status_code,
                                                  server_time, digest, given):
            response.close()
            claim = _claimed_code(body)
            raise TransientError(f"HTTP {response.status_code} answer {'mis-signed' if given else 'not signed'}: "
                                 "not from our server (captive portal, proxy or impostor?); nothing taken from it"
                                 + (f" (unverified, it says {claim}: our server says bad_signature unsigned when "
                                    "it does not know this terminal or its secret)" if claim else ""),
                                 code="unsigned_answer")
        return Answer(response.status_code, response.headers, body, response if keep_open else None, until)

    def _learn_clock(self, answer: Answer, sent_at: float, received_at: float) -> None:
        try:
            server_time = float(answer.headers[signing.HEADER_SERVER_TIME])
        except (KeyError, ValueError):
            return
        if plausible_seconds(server_time):
            self.clock_offset = server_time - (sent_at + received_at) / 2

    # -- endpoints ---------------------------------------------------------------------------

    @staticmethod
    def batch_body(payloads: dict[str, str], clock: dict, outbox: Outbox = RATINGS) -> bytes:
        """The gzip body of one batch. ``payloads`` maps each rating id to its wire JSON text as the
        terminal recorded it; the texts are joined into the body as they are, never decoded and
        encoded again."""
        text = f'{{"{outbox.key}":[' + ",".join(payloads.values()) + '],"clock":' + json.dumps(clock) + "}"
        return gzip.compress(text.encode(), compresslevel=6)

    def upload(self, payloads: dict[str, str], clock: dict, outbox: Outbox = RATINGS,
               body: bytes | None = None) -> tuple[dict[str, ItemAck], int]:
        """POST one batch; return the acknowledgements by rating id and the bytes sent. ``body``:
        the batch's ``batch_body``, when it was made ahead (while the batch before was on its way)."""
        if body is None:
            body = self.batch_body(payloads, clock, outbox)
        response = self.request("POST", outbox.path, body,
                                {"Content-Type": "application/json", "Content-Encoding": "gzip"})
        return self.acknowledgements(response, payloads, lambda item: (item["id"], item["status"])), len(body)

    def acknowledgements(self, response: Answer, payloads: dict[str, str], read) -> dict[str, ItemAck]:
        """The per-item word of a verified answer to a batch: ``read(result)`` gives the key the item
        was sent under and its status. BatchRefused for a batch refused as a whole, TransientError
        for an answer that is not the interface's; results for items not in the batch are ignored, and
        so are an item's results that disagree (it stays unanswered, sent again)."""
        if response.status_code in (400, 413, 415):
            code = _error_code(response) or ("batch_too_large" if response.status_code == 413 else "")
            if code in BATCH_REFUSALS:
                raise BatchRefused(f"refused the batch of {len(payloads)}: HTTP {response.status_code} "
                                   f"{code}: {_short(_error_detail(response))}", response.status_code, code)
        results = self._json(response).get("results")
        acks, contradicted = {}, set()
        try:
            for item in results:
                key, status = read(item)
                if key in payloads and status in ITEM_STATUSES:
                    if key in acks and acks[key].status != status:
                        contradicted.add(key)  # rejected and accepted at once: no word on it at all
                    acks[key] = ItemAck(key, status, str(item.get("reason") or ""))
        except (KeyError, TypeError) as exc:
            raise TransientError(f"malformed acknowledgement body: {_short(exc)}") from None
        return {key: ack for key, ack in acks.items() if key not in contradicted}

    def heartbeat(self, report: dict) -> dict:
        body = json.dumps(report, ensure_ascii=False).encode()
        return self._json(self.request("POST", "/api/v1/heartbeat", body, {"Content-Type": "application/json"}))

    def content(self, etag: str | None) -> tuple[dict | None, str]:
        """The content manifest and its ETag, or (None, etag) when it has not changed. The ETag
        must be the server's 64-hex manifest hash: it is only ever sent back, never used as a name.
        A proxy that compresses the answer (nginx's ``gzip`` for JSON) marks it weak, ``W/"…"``:
        the same tag, and the server takes it back as it was."""
        headers = {"If-None-Match": f'"{etag}"'} if etag and ETAG.match(etag) else {}
        response = self.request("GET", "/api/v1/content", headers=headers)
        if response.status_code == 304:
            return None, etag or ""
        manifest = self._json(response)
        new_etag = response.headers.get("ETag", "").removeprefix("W/").strip('"')
        if not ETAG.match(new_etag):
            raise TransientError(f"content answer whose ETag is not a 64-hex hash: {_short(new_etag, 80)!r}")
        return manifest, new_etag

    def fetch_file(self, sha256: str, size: int, out: BinaryIO) -> None:
        """Stream a content file into ``out``, checking its size and hash as it comes."""
        answer = self.request("GET", f"/api/v1/files/{sha256}", stream_sha256=sha256)
        if answer.status_code != 200:
            raise TransientError(f"file {sha256[:12]}: HTTP {answer.status_code}", status=answer.status_code)
        digest, got = hashlib.sha256(), 0
        try:
            for chunk in _chunks(answer.stream, answer.until, f"file {sha256[:12]}"):
                got += len(chunk)
                if got > size:
                    raise FileMismatch(f"file {sha256[:12]} is longer than the manifest's {size} bytes")
                digest.update(chunk)
                out.write(chunk)
        finally:
            answer.stream.close()
        if got != size or digest.hexdigest() != sha256:
            raise FileMismatch(f"file {sha256[:12]}: got {got} bytes with another hash; expected {size} bytes")
        self.answered_at = time.monotonic()

    @staticmethod
    def _json(response: Answer) -> dict:
        if response.status_code in RETRYABLE_STATUS or not 200 <= response.status_code < 300:
            raise TransientError(f"HTTP {response.status_code}: {_short(response.text)}",
                                 retry_after=_retry_after(response), status=response.status_code)
        if "application/json" not in response.headers.get("Content-Type", ""):
            raise TransientError(f"HTTP {response.status_code} but not JSON "
                                 f"({response.headers.get('Content-Type', 'no content type')}): "
                                 "captive portal or proxy?")
        try:
            body = response.json()
        except (ValueError, RecursionError) as exc:
            raise TransientError(f"malformed acknowledgement body: {_short(exc)}") from None
        if not isinstance(body, dict):
            raise TransientError("malformed acknowledgement body: not an object")
        return body


def read_bounded(response: requests.Response, limit: int, until: float) -> bytes:
    """The whole (decoded) body, or TransientError once it passes ``limit`` bytes or ``until``."""
    parts, got = [], 0
    for chunk in _chunks(response, until, "answer"):
        got += len(chunk)
        if got > limit:
            raise TransientError(f"answer larger than {limit} bytes: refused unread")
        parts.append(chunk)
    return b"".join(parts)


def _chunks(response: requests.Response, until: float, what: str):
    """The (decoded) body as it comes, or TransientError once ``until`` (``time.monotonic()``) has
    passed or the connection fails. Each piece is what one read from the socket brought
    (``read1``): ``iter_content`` waits to fill its chunk, so a trickle of a byte a second would
    hold it, and any deadline checked between its chunks, for hours."""
    got = 0

    def too_slow() -> TransientError:
        return TransientError(f"{what} not complete within its deadline ({got} bytes came): "
                              "a server or proxy trickling its answer?", code="deadline")
    try:
        while True:
            if time.monotonic() > until:
                raise too_slow()
            chunk = response.raw.read1(CHUNK, decode_content=True)
            if not chunk:
                return
            got += len(chunk)
            yield chunk
    except (requests.RequestException, urllib3.exceptions.HTTPError, OSError) as exc:
        if time.monotonic() >= until:  # the socket's own deadline (``deadline``) ended the read
            raise too_slow() from None
        raise TransientError(f"{what} cut off after {got} bytes: {type(exc).__name__}") from None


def enroll(server: str, code: str, timeout: float = 15.0, ca_file: str | None = None,
           server_key_pin: str = "") -> dict:
    """Exchange an enrollment code for credentials: the one call a terminal makes before it has a
    key, so TLS (checked against the CA and the pin) is what vouches for the answer."""
    until = time.monotonic() + timeout * DEADLINE_TIMEOUTS
    with tls.session(ca_file, server_key_pin) as http:
        try:
            with deadline.within(until):
                response = http.post(f"{server.rstrip('/')}/api/v1/enroll", json={"code": code}, timeout=timeout,
                                     stream=True)
            answer = Answer(response.status_code, response.headers, read_bounded(response, 64 * 1024, until))
        except requests.RequestException as exc:
            raise TransientError(f"cannot reach {server}: {type(exc).__name__}: {_short(exc)}") from None
    if answer.status_code != 201:
        raise TransientError(f"enrollment refused: HTTP {answer.status_code} {_error_code(answer)}",
                             status=answer.status_code, code=_error_code(answer))
    try:
        body = answer.json()
    except ValueError:
        body = None
    if not isinstance(body, dict) or not all(isinstance(body.get(k), str) and 0 < len(body[k]) <= 128
                                             for k in ("terminal_id", "secret", "window")):
        raise TransientError("enrollment answer is malformed", status=answer.status_code, code="malformed_answer")
    try:
        check_ids(body["terminal_id"], body["window"])
    except CredentialsError as exc:
        raise TransientError(f"enrollment answer refused: {exc}", status=answer.status_code,
                             code="malformed_answer") from None
    return body


def _claimed_code(body: bytes) -> str:
    """The error code an unverified answer gives, if it is one of our server's shape (a word of
    letters and underscores), for the log only: a terminal its server does not know (or knows by
    another secret) is answered ``bad_signature`` unsigned, and the technician must see that
    rather than only a suspected captive portal."""
    code = _error_code(Answer(0, requests.structures.CaseInsensitiveDict(), body))
    return code if re.fullmatch(r"[a-z_]{1,40}", code) else ""


def _error_code(response: Answer) -> str:
    try:
        return str(response.json().get("error", ""))[:64]
    except (ValueError, AttributeError, RecursionError):
        return ""


def _error_detail(response: Answer) -> str:
    try:
        return str(response.json().get("detail", ""))
    except (ValueError, AttributeError, RecursionError):
        return ""


def _retry_after(response: Answer) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        wait = float(value)
        return min(3600.0, max(0.0, wait)) if wait == wait else None
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff


def _short(thing: object, limit: int = 200) -> str:
    text = " ".join(str(thing).split())
    return text[:limit] + ("…" if len(text) > limit else "")
