"""The terminal-facing HTTP API, v1 (django-ninja). See README "Wire API".

Every answer, success or error, carries ``server_time`` so terminals can judge their clocks.
Errors are ``{"error": <machine code>, "detail": <human text>, "server_time": ...}``.
"""

from __future__ import annotations

import gzip
import json
import zlib

from django.db import connection
from django.http import HttpRequest, JsonResponse
from django.utils import timezone
from ninja import NinjaAPI

import terminal

from .ingest import MAX_BATCH_ITEMS, ingest

MAX_INFLATED_BYTES = 32 * 1024 * 1024

api = NinjaAPI(title="Window rating terminal — central API", version="1", urls_namespace="api-v1")


def answer(payload: dict, status: int = 200) -> JsonResponse:
    payload = {**payload, "server_time": timezone.now().isoformat(timespec="milliseconds")}
    return JsonResponse(payload, status=status, json_dumps_params={"ensure_ascii": False})


def error(status: int, code: str, detail: str) -> JsonResponse:
    return answer({"error": code, "detail": detail}, status)


class BadBody(ValueError):
    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


def read_json(request: HttpRequest) -> object:
    """The request body as JSON, inflating gzip, with a clear error for anything else."""
    body = request.body
    encoding = request.headers.get("Content-Encoding", "identity").strip().lower()
    if encoding == "gzip":
        try:
            inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
            body = inflater.decompress(body, MAX_INFLATED_BYTES)
            if inflater.unconsumed_tail:
                raise BadBody(413, "body_too_large", f"inflated body exceeds {MAX_INFLATED_BYTES} bytes")
        except (zlib.error, gzip.BadGzipFile) as exc:
            raise BadBody(400, "bad_gzip", f"body is not valid gzip: {exc}") from None
    elif encoding != "identity":
        raise BadBody(415, "unsupported_encoding", f"Content-Encoding {encoding!r} is not supported")
    try:
        return json.loads(body.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise BadBody(400, "bad_json", f"body is not UTF-8 JSON: {exc}") from None


@api.post("/ratings", summary="Upload a batch of ratings", openapi_extra={
    "requestBody": {"content": {"application/json": {"schema": {
        "type": "object", "required": ["ratings"],
        "properties": {"ratings": {"type": "array", "maxItems": MAX_BATCH_ITEMS,
                                   "items": {"type": "object"}}}}}}}})
def upload_ratings(request: HttpRequest):
    """Each item is answered in order: ``accepted``, ``duplicate`` (already stored, identical) or
    ``rejected`` with a ``reason`` (malformed, or the id already stored with other content)."""
    try:
        body = read_json(request)
    except BadBody as exc:
        return error(exc.status, exc.code, exc.detail)
    if not isinstance(body, dict) or not isinstance(body.get("ratings"), list):
        return error(400, "bad_batch", 'body must be an object {"ratings": [...]}')
    items = body["ratings"]
    if len(items) > MAX_BATCH_ITEMS:
        return error(413, "batch_too_large", f"{len(items)} items; at most {MAX_BATCH_ITEMS} per batch")
    results = ingest(items)
    counts = {s: sum(1 for r in results if r.status == s) for s in ("accepted", "duplicate", "rejected")}
    return answer({"results": [r.as_dict() for r in results], **counts})


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
