"""HTTP client for the central server's v1 API (requests).

Only a 2xx whose body is the JSON the API promises counts as an answer: a captive portal's 200
HTML page, a truncated body or a proxy's error page are ``TransientError`` and the batch is simply
sent again later (the server's per-id rule makes the resend harmless).
"""

from __future__ import annotations

import gzip
import json
from dataclasses import dataclass

import requests

import terminal

RETRYABLE_STATUS = {408, 425, 429, 500, 502, 503, 504}
ITEM_STATUSES = {"accepted", "duplicate", "rejected"}


class TransientError(RuntimeError):
    """Try the same request again later; ``retry_after`` is the server's wish, if it said one."""

    def __init__(self, message: str, retry_after: float | None = None, status: int | None = None):
        super().__init__(message)
        self.retry_after, self.status = retry_after, status


class BatchTooLarge(RuntimeError):
    pass


@dataclass(frozen=True)
class ItemAck:
    id: str
    status: str
    reason: str = ""


class CentralClient:
    def __init__(self, server: str, timeout: float = 15.0):
        self.server = server.rstrip("/")
        self.timeout = timeout
        self.http = requests.Session()
        self.http.headers["User-Agent"] = f"rating-sync/{terminal.__version__}"

    def close(self) -> None:
        self.http.close()

    def upload(self, ratings: list[dict]) -> tuple[dict[str, ItemAck], int]:
        """POST one batch; return the acknowledgements by rating id and the bytes sent."""
        body = gzip.compress(json.dumps({"ratings": ratings}, ensure_ascii=False,
                                        separators=(",", ":")).encode(), compresslevel=6)
        try:
            response = self.http.post(
                f"{self.server}/api/v1/ratings", data=body, timeout=self.timeout,
                headers={"Content-Type": "application/json", "Content-Encoding": "gzip"})
        except requests.RequestException as exc:
            raise TransientError(f"network: {type(exc).__name__}: {_short(exc)}") from None
        if response.status_code == 413:
            raise BatchTooLarge(f"server refused a batch of {len(ratings)} as too large")
        if not 200 <= response.status_code < 300:
            raise TransientError(f"HTTP {response.status_code}: {_short(response.text)}",
                                 retry_after=_retry_after(response), status=response.status_code)
        return self._acks(response, {r["id"] for r in ratings}), len(body)

    @staticmethod
    def _acks(response: requests.Response, sent: set[str]) -> dict[str, ItemAck]:
        if "application/json" not in response.headers.get("Content-Type", ""):
            raise TransientError(f"HTTP {response.status_code} but not JSON "
                                 f"({response.headers.get('Content-Type', 'no content type')}): "
                                 "captive portal or proxy?")
        try:
            results = response.json()["results"]
            acks = {}
            for item in results:
                rid, status = item["id"], item["status"]
                if rid in sent and status in ITEM_STATUSES:
                    acks[rid] = ItemAck(rid, status, str(item.get("reason") or ""))
        except (ValueError, KeyError, TypeError) as exc:
            raise TransientError(f"malformed acknowledgement body: {_short(exc)}") from None
        return acks


def _retry_after(response: requests.Response) -> float | None:
    value = response.headers.get("Retry-After", "")
    try:
        return max(0.0, float(value))
    except ValueError:
        return None  # HTTP-date form: fall back to our own backoff


def _short(thing: object, limit: int = 200) -> str:
    text = " ".join(str(thing).split())
    return text[:limit] + ("…" if len(text) > limit else "")
