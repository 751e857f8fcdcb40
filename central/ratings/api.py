"""The terminal-facing HTTP API, v1 (django-ninja). See docs/integrators.md, "Wire API", and docs/reference/wire-api.md.

Every endpoint but ``enroll`` and ``health`` takes only signed requests (``auth.authenticate``),
and its answers are signed in return (``sign_answers``): a terminal believes nothing it cannot
verify came from its own server. Every answer carries the server's time, in the ``X-Server-Time`` header (Unix seconds) and, for
JSON bodies, in ``server_time``, so terminals can correct their clocks. Errors are
``{"error": <machine code>, "detail": <human text>, "server_time": ...}``.
"""

from __future__ import annotations

import functools
import hashlib
import json
import math
import re
import zlib
from datetime import datetime
from functools import wraps

import orjson
from django.db import connection, transaction
from django.http import FileResponse, HttpRequest, HttpResponse
from django.utils import timezone
from django.views.decorators.gzip import gzip_page
from ninja import NinjaAPI
from ninja.decorators import decorate_view

import terminal
from terminal.core import checks, signing
from terminal.core.checks import clean_text, unclean_path

from . import auth, cases, content, invites, overload
from .ingest import EVENTS, MAX_BATCH_ITEMS, RATINGS, ingest, note_boot
from .models import Terminal

MAX_INFLATED_BYTES = 8 * 1024 * 1024  # a batch of 1,000 of the largest ratings is under 5 MiB
MAX_ENROLL_BYTES = 1024  # {"code": "ABCD-EFGH-JKLM"}: the one unsigned body, and never compressed
MAX_CASE_BYTES = 4096  # a case report's dozen short fields
SHA256_HEX = re.compile("[0-9a-f]{64}")  # what names a content file, checked before any query

api = NinjaAPI(title="Window rating terminal — central API", version="1", urls_namespace="api-v1")


def stamp(response: HttpResponse) -> HttpResponse:
    response[signing.HEADER_SERVER_TIME] = f"{timezone.now().timestamp():.3f}"
    return response


def answer(payload: dict, status: int = 200) -> HttpResponse:
    """A JSON answer (orjson: a drain's acknowledgements are a thousand objects a batch), with the time."""
    payload = {**payload, "server_time": timezone.localtime().isoformat(timespec="milliseconds")}
    return stamp(HttpResponse(orjson.dumps(payload), status=status, content_type="application/json"))


def error(status: int, code: str, detail: str) -> HttpResponse:
    return answer({"error": code, "detail": detail}, status)


@api.exception_handler(auth.AuthError)
def auth_failed(request, exc: auth.AuthError):
    return error(exc.status, exc.code, exc.detail)


def signed(request: HttpRequest) -> Terminal:
    """ninja auth hook: the calling terminal, or AuthError (answered by ``auth_failed``)."""
    return auth.authenticate(request)


def sign_answers(run):
    """Sign the answer to a request whose signature verified (``auth`` leaves the terminal's key
    on the request, even when it then refuses it as stale, replayed or revoked): HMAC over the
    request's nonce, the status, ``X-Server-Time`` and the body's SHA-256 (``terminal.core.signing``).
    A streamed file is signed with its own SHA-256, which the terminal checks as it reads."""
    @wraps(run)
    def signed_run(request, *args, **kwargs):
        response = run(request, *args, **kwargs)
        key = getattr(request, "answer_key", None)
        if key is None:
            return response
        if signing.HEADER_SERVER_TIME not in response:
            stamp(response)
        if response.streaming:
            body_sha256 = getattr(response, "body_sha256", None)
            if body_sha256 is None:
                return response
        else:
            body_sha256 = hashlib.sha256(response.content).hexdigest()
        secret, nonce = key
        response[signing.HEADER_ANSWER_SIGNATURE] = signing.sign_answer(
            secret, nonce, response.status_code, response[signing.HEADER_SERVER_TIME], body_sha256)
        return response
    return signed_run


class BadBody(ValueError):
    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


@api.exception_handler(BadBody)
def bad_body(request, exc: BadBody):
    return error(exc.status, exc.code, exc.detail)


GZIP_MAGIC = b"\x1f\x8b"  # how every gzip stream starts; no JSON text does


def read_json(request: HttpRequest, inflated_limit: int = MAX_INFLATED_BYTES, gzip_allowed: bool = True,
              batch: str | None = None) -> object:
    """The request body as JSON, inflating gzip up to ``inflated_limit``, with a clear 4xx for
    anything else: nesting deeper than ``checks.MAX_DEPTH``, numbers of thousands of digits or past
    a float's range, NaN and Infinity are refused here, before any of it reaches a model (a 500
    would be retried by the terminal for ever).

    Whether the body is gzip is read from the body itself (its magic bytes), never from
    ``Content-Encoding``: the signature covers the body but not that header, so a proxy that
    strips or swaps it must not turn a correctly signed batch into a refusal.

    A batch's items (``batch``: the key of its list) are left to ``ingest``, which refuses one
    nested too deep on its own: the good items beside it are stored."""
    body = request.body
    if body.startswith(GZIP_MAGIC):
        if not gzip_allowed:
            raise BadBody(415, "unsupported_encoding", "a compressed body is not taken here")
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            body = inflater.decompress(body, inflated_limit)
        except zlib.error as exc:
            raise BadBody(400, "bad_gzip", f"body is not valid gzip: {exc}") from None
        if inflater.unconsumed_tail:
            raise BadBody(413, "body_too_large", f"inflated body exceeds {inflated_limit} bytes")
    if len(body) > inflated_limit:
        raise BadBody(413, "body_too_large", f"body exceeds {inflated_limit} bytes")
    try:  # orjson first (it refuses NaN, lone surrogates and huge numbers itself, and nesting past 1024) ...
        document = orjson.loads(body)
    except orjson.JSONDecodeError:
        try:  # ... then the standard library, which takes lone surrogates, so they are refused item by item
            document = json.loads(body.decode("utf-8"), parse_constant=_no_constant, parse_float=_finite)
        except RecursionError:  # nested past what Python's parser takes
            raise BadBody(400, "bad_json", f"body is nested more than {checks.MAX_DEPTH} deep") from None
        except (UnicodeDecodeError, ValueError) as exc:  # JSONDecodeError, and ints past Python's digit limit
            raise BadBody(400, "bad_json", f"body is not UTF-8 JSON: {' '.join(str(exc).split())[:200]}") from None
    envelope = document
    if batch and type(document) is dict and type(document.get(batch)) is list:
        envelope = {k: v for k, v in document.items() if k != batch}
    if checks.too_deep(envelope):  # orjson takes 1,024 levels: json.dumps and repr of them raise RecursionError
        raise BadBody(400, "bad_json", f"body is nested more than {checks.MAX_DEPTH} deep")
    return document


def _no_constant(name: str):
    raise ValueError(f"{name} is not a JSON number")


def _finite(literal: str) -> float:
    """A JSON number as the standard library reads it, but never infinite: ``1e400`` (which orjson
    refuses) would become ``inf``, which no JSON column holds (a heartbeat was a 500 on it)."""
    value = float(literal)
    if math.isinf(value):
        raise ValueError(f"{literal[:40]} is too large for a number")
    return value


def json_object(request: HttpRequest, **limits) -> dict:
    body = read_json(request, **limits)
    if not isinstance(body, dict):
        raise BadBody(400, "bad_body", "body must be a JSON object")
    return body


@api.post("/enroll", summary="Exchange a one-time enrollment code for a terminal id and secret")
def enroll(request: HttpRequest):
    """Body ``{"code": "ABCD-EFGH-JKLM"}``. The answer holds the terminal's own secret: it is
    shown this once, over this connection, and never again."""
    body = json_object(request, inflated_limit=MAX_ENROLL_BYTES, gzip_allowed=False)
    new = auth.enroll(body.get("code"))
    window = new.window
    given = answer({"terminal_id": new.terminal_id, "secret": new.secret,
                    "window": window.code, "window_name": window.name, "hall": window.hall.name}, 201)
    given["Cache-Control"] = "no-store"  # a secret: no proxy or cache on the way may keep it
    return given


@api.post("/ratings", auth=signed, summary="Upload a batch of ratings", openapi_extra={
    "requestBody": {"content": {"application/json": {"schema": {
        "type": "object", "required": ["ratings"],
        "properties": {"ratings": {"type": "array", "maxItems": MAX_BATCH_ITEMS, "items": {"type": "object"}},
                       "clock": {"type": "object", "properties": {"boot_id": {"type": "string"},
                                                                  "mono_ms": {"type": "integer"}}}}}}}}})
@decorate_view(sign_answers, gzip_page)  # signed, then compressed: acks are most of what a drain moves back
def upload_ratings(request: HttpRequest):
    """Each item is answered in order: ``accepted``, ``duplicate`` (already stored, identical) or
    ``rejected`` with a ``reason`` (malformed, another terminal's, or the id already stored with
    other content). The answer is gzip-compressed when the terminal accepts it."""
    return take_batch(request, "ratings", RATINGS)


@api.post("/events", auth=signed, summary="Upload a batch of terminal events (logins, session events, misuse)")
@decorate_view(sign_answers, gzip_page)
def upload_events(request: HttpRequest):
    """Body ``{"events": [...], "clock": {...}}``; each item answered as for ratings. Events are
    never ratings: a press kept as suspected misuse is an event of kind ``misuse``."""
    return take_batch(request, "events", EVENTS)


def take_batch(request: HttpRequest, key: str, kind) -> HttpResponse:
    """After authentication (the answer is signed, its Retry-After believed), before any parsing:
    a worker busy with its other uploads refuses this one at once (``overload``)."""
    with overload.upload_slot() as free:
        return _take_batch(request, key, kind) if free else overload.busy()


def _take_batch(request: HttpRequest, key: str, kind) -> HttpResponse:
    body = json_object(request, batch=key)
    if not isinstance(body.get(key), list):
        raise BadBody(400, "bad_batch", f'body must be an object {{"{key}": [...]}}')
    items = body[key]
    if len(items) > MAX_BATCH_ITEMS:
        raise BadBody(413, "batch_too_large", f"{len(items)} items; at most {MAX_BATCH_ITEMS} per batch")
    note_boot(request.auth, body.get("clock"))
    results = ingest(items, request.auth, kind)
    counts = {s: sum(1 for r in results if r.status == s) for s in ("accepted", "duplicate", "rejected")}
    return answer({"results": [r.as_dict() for r in results], **counts})


MAX_COLUMN_INT = 2**31 - 1  # the most a PositiveIntegerField holds on PostgreSQL (68 years, in seconds)
#: field -> (type, lowest, highest): a heartbeat's numbers, range-checked before anything is stored
#: (those kept in the terminal's row no higher than its columns hold: past that, PostgreSQL refuses the UPDATE)
HEARTBEAT_NUMBERS = {"queue_depth": (int, 0, 10**9), "events_pending": (int, 0, 10**9),
                     "oldest_pending_s": (int, 0, MAX_COLUMN_INT), "dead_letters": (int, 0, 10**9),
                     "disk_free_bytes": (int, 0, 10**16), "clock_offset_s": (float, -1e10, 1e10),
                     "mono_ms": (int, 0, 10**13)}
HEARTBEAT_TEXTS = {"version": 32, "boot_id": 64, "content_version": 64}
MAX_HEARTBEAT_BYTES = 16_000


def checked_heartbeat(body: dict) -> dict:
    """The heartbeat if every number is in range and every text clean (BadBody 400 names the field)."""
    for key, (kind, low, high) in HEARTBEAT_NUMBERS.items():
        value = body.get(key)
        if value is None:
            continue
        if isinstance(value, bool) or not isinstance(value, (int, float)) or (kind is int and not isinstance(value, int)):
            raise BadBody(400, "bad_heartbeat", f"{key} must be a number ({kind.__name__})")
        if not low <= value <= high:
            raise BadBody(400, "bad_heartbeat", f"{key} must be within {low}..{high}")
    for key, limit in HEARTBEAT_TEXTS.items():
        value = body.get(key)
        if value is not None and not (isinstance(value, str) and len(value) <= limit and clean_text(value)):
            raise BadBody(400, "bad_heartbeat", f"{key} must be clean text of at most {limit} characters")
    size = len(json.dumps(body))
    if size > MAX_HEARTBEAT_BYTES:
        raise BadBody(413, "heartbeat_too_large", f"heartbeat of {size} bytes; at most 16 kB")
    unclean = unclean_path(body)  # PostgreSQL's jsonb, for one, cannot hold a lone surrogate
    if unclean:
        raise BadBody(400, "bad_heartbeat", f"{unclean}: text with control characters or lone surrogates")
    return body


def one_transaction(run):
    """The whole answer in one transaction: the nonce, the terminal's row and what it reads are one
    commit, not three (a province's terminals send hundreds of heartbeats a second)."""
    @wraps(run)
    def atomic_run(request, *args, **kwargs):
        with transaction.atomic():
            return run(request, *args, **kwargs)
    return atomic_run


@api.post("/heartbeat", auth=signed, summary="Report the terminal's health")
@decorate_view(one_transaction, sign_answers)
def heartbeat(request: HttpRequest):
    """Body: version, boot_id, mono_ms, queue_depth, oldest_pending_s, dead_letters, devices,
    disk_free_bytes, clock_offset_s, clock_synced, content_version, chain, errors, alerts. The
    answer tells the terminal the current content ETag, so it pulls only when something changed."""
    body = checked_heartbeat(json_object(request))
    node = request.auth
    note_boot(node, body)
    node.last_seen = timezone.now()
    node.version = str(body.get("version", ""))[:32]
    node.queue_depth = body.get("queue_depth") or 0
    node.oldest_pending_s = body.get("oldest_pending_s")
    node.dead_letters = body.get("dead_letters") or 0
    node.clock_offset_s = body.get("clock_offset_s")
    node.heartbeat = body
    devices = body.get("devices") if isinstance(body.get("devices"), list) else []
    down = any(isinstance(d, dict) and d.get("connected") is False for d in devices)
    if not down:
        node.device_down_since = None
    elif node.device_down_since is None:
        node.device_down_since = node.last_seen
    save_heartbeat(node)
    reply = {"content_etag": content.etag_for(node)}
    if body.get("invite_results"):
        invites.note_results(node, body["invite_results"])
    if node.window.invite_waiting:  # read with the terminal: nothing more to ask when no case waits
        offer = invites.offer_for(node)
        if offer:
            reply["invite"] = offer
    return answer(reply)


HEARTBEAT_FIELDS = ["last_seen", "version", "queue_depth", "oldest_pending_s", "dead_letters", "clock_offset_s",
                    "heartbeat", "device_down_since"]
_HEARTBEAT_COLUMNS = [Terminal._meta.get_field(name) for name in HEARTBEAT_FIELDS]


def save_heartbeat(node: Terminal) -> None:
    """The terminal's row, as ``node.save(update_fields=HEARTBEAT_FIELDS)`` writes it, from a statement
    composed once: hundreds of heartbeats a second each had Django compile the same UPDATE again.
    Each value goes through its field's own conversion for this database."""
    values = [f.get_db_prep_save(getattr(node, f.attname), connection) for f in _HEARTBEAT_COLUMNS]
    with connection.cursor() as cursor:
        cursor.execute(_heartbeat_update_sql(), [*values, node.pk])


@functools.cache
def _heartbeat_update_sql() -> str:
    quote = connection.ops.quote_name
    columns = ", ".join(f"{quote(f.column)} = %s" for f in _HEARTBEAT_COLUMNS)
    return f"UPDATE {quote(Terminal._meta.db_table)} SET {columns} WHERE {quote(Terminal._meta.pk.column)} = %s"


@api.get("/content", auth=signed, summary="The terminal's content manifest (ETag / If-None-Match)")
@decorate_view(sign_answers)
def get_content(request: HttpRequest):
    quoted = f'"{content.etag_for(request.auth)}"'
    if request.headers.get("If-None-Match") == quoted:
        response = stamp(HttpResponse(status=304))  # its roster was noted when it was served
    else:
        manifest, etag = content.manifest(request.auth)
        quoted = f'"{etag}"'
        content.note_served(request.auth, manifest)
        response = answer(manifest)
    response["ETag"] = quoted
    return response


@api.get("/files/{sha256}", auth=signed, summary="A content file by its SHA-256")
@decorate_view(sign_answers)
def get_file(request: HttpRequest, sha256: str):
    sha256 = sha256.lower()  # an uppercase hash names the same file
    found = content.file_for(request.auth, sha256) if SHA256_HEX.fullmatch(sha256) else None  # no NUL reaches the query
    if found is None:
        return error(404, "no_such_file", "no file with this hash in this terminal's content")
    response = stamp(FileResponse(found.open("rb"), content_type="application/octet-stream"))
    response.body_sha256 = sha256  # what the file is named by; the terminal checks it as it reads
    return response


def signed_system(request: HttpRequest):
    """ninja auth hook for business and queue systems (``X-System-Id``)."""
    return auth.authenticate_system(request)


@api.exception_handler(cases.CaseRefused)
def case_refused(request, exc: cases.CaseRefused):
    return error(exc.status, exc.code, exc.detail)


@api.post("/cases", auth=signed_system, summary="Report a case (办件): accepted, completed or cancelled")
@decorate_view(sign_answers)
def report_case(request: HttpRequest):
    """Body: case_no, window, status (accepted, completed, cancelled) and accepted_at are required;
    item_code, item_name, dept_code, staff_no, applicant_type (person, company), mobile, ticket_no
    and completed_at (required once completed) are optional. Report the case when it is accepted
    and again when it is done: the answer says ``created``, ``updated`` or ``unchanged``, with the
    mobile number masked. Another system's case number is refused (409)."""
    system = request.auth
    type(system).objects.filter(pk=system.pk).update(last_seen=timezone.now())
    reported = cases.report(system, json_object(request, inflated_limit=MAX_CASE_BYTES))
    return answer(cases.as_answer(reported), 201 if reported.outcome == "created" else 200)


@api.post("/sms/inbound", auth=signed_system, summary="An SMS reply, from the SMS gateway")
@decorate_view(sign_answers)
def sms_inbound(request: HttpRequest):
    """The gateway's callback for each SMS a rater sends back, signed with the gateway's own
    credentials (the business system ``SMS_GATEWAY_SYSTEM``). Body ``{"id", "from", "text",
    "received_at"}``; the same ``id`` twice is one reply. Answer ``{"id", "outcome"}``: rated, kept
    and not counted (the case already had its rating), kept and no rating (its invitation expired,
    as its link does), or one clarification asked."""
    from django.conf import settings as django_settings
    from . import sms
    if request.auth.system_id != getattr(django_settings, "SMS_GATEWAY_SYSTEM", ""):
        raise BadBody(403, "not_the_gateway", "only the SMS gateway's credentials deliver replies")
    body = json_object(request, inflated_limit=MAX_CASE_BYTES)
    reply_id, sender, text, when = (body.get(k) for k in ("id", "from", "text", "received_at"))
    if not (isinstance(reply_id, str) and 1 <= len(reply_id) <= 64 and clean_text(reply_id)):
        raise BadBody(400, "bad_reply", "id must be the gateway's message id (1-64 characters)")
    if not (isinstance(text, str) and len(text) <= 1000 and clean_text(text)):
        raise BadBody(400, "bad_reply", "text must be the reply's text (at most 1000 characters)")
    try:
        received = timezone.now() if when is None else datetime.fromisoformat(checks.timestamp(when))
        reply = sms.receive(reply_id, sender, text, min(received, timezone.now()))
    except (ValueError, TypeError) as exc:
        raise BadBody(400, "bad_reply", str(exc)) from None
    return answer({"id": reply_id, "outcome": reply.note})


@api.get("/health", summary="Liveness and database check")
def health(request: HttpRequest):
    try:
        with connection.cursor() as cursor:
            cursor.execute("SELECT 1")
        db = "ok"
    except Exception as exc:  # report, don't crash: this is what monitors poll
        db = f"error: {type(exc).__name__}"
    return answer({"status": "ok" if db == "ok" else "degraded", "database": db,
                   "version": terminal.__version__}, 200 if db == "ok" else 503)
