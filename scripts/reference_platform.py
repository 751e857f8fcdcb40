"""A strict reference implementation of an upward platform's interface (docs/integrators.md, "Reporting upward"),
speaking one export profile: for the tests, the push benchmark, ``make run``, and a provincial
integrator who wants to see what the central server sends. On loopback only.

    POST <profile path>   {"<batch>": [record, ...]}  signed by the central server as a system
                          (X-System-Id, X-Timestamp, X-Nonce, X-Signature: terminal.core.signing)
      200 {"results": [{"id", "version", "status", "reason"}]}   one per record, in order:
          accepted   stored (operation add), or applied (update: a higher version of a stored record)
          duplicate  this id and version are already held: nothing changed
          rejected   with the reason: an unknown or missing field, an empty required one, a code
                     not in the profile's list (a satisfaction in the other direction, say), a
                     malformed time, an update of a record never added
      400 {"error": "bad_batch" | "bad_json" | "bad_length"}   the body is not a batch at all
      401 {"error"}                             unsigned, mis-signed, stale or replayed
    GET  /v1/counts?day=YYYY-MM-DD   signed: {"day", "counts": {"<channel code>/<level code>": n}} of the
                          valid records held whose time falls on that day: the platform's own count,
                          which the central server's reconciliation compares with its own.
    Every answer carries X-Server-Time and X-Answer-Signature, so the central server believes only
    its platform.

``faults`` makes the platform misbehave as real ones do, each with its probability per request:
``timeout`` (the batch is stored, the answer comes too late), ``error`` (503 before anything is
stored), ``partial`` (all stored, half acknowledged), ``refuse_duplicates`` (a record already held
is answered ``rejected`` with code ``duplicate_id`` instead of ``duplicate``).

    python scripts/reference_platform.py --profile central/ratings/profiles/provincial.toml \\
        --port 8701 --key-id ZJ-DEMO   (the secret from REFERENCE_PLATFORM_SECRET)
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import random
import sys
import threading
import time
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from central.ratings.export_profile import SOURCES, Profile, parse  # noqa: E402
from terminal.core import signing  # noqa: E402

MAX_BODY = 16 * 1024 * 1024
FAULTS = ("timeout", "error", "partial", "refuse_duplicates")


class Platform:
    """The platform's side of one profile: what it holds, per record id, at its latest version."""

    def __init__(self, profile: Profile, key_id: str, secret: str, faults: dict[str, float] | None = None,
                 port: int = 0, seed: int | None = None, answer_delay: float = 5.0):
        self.profile, self.key_id, self.secret = profile, key_id, secret
        self.faults = {k: float(v) for k, v in (faults or {}).items()}
        unknown = set(self.faults) - set(FAULTS)
        if unknown:
            raise ValueError(f"unknown faults {', '.join(sorted(unknown))}: one of {', '.join(FAULTS)}")
        self.rng = random.Random(seed)
        self.answer_delay = answer_delay  # a "timeout": longer than the client waits
        self.held: dict[str, dict] = {}  # record id -> the record at its latest version
        self.log: list[tuple[str, int, str]] = []  # (id, version, status) of every record answered
        self.requests = Counter()
        self.nonces: set[str] = set()
        self.lock = threading.Lock()
        self._fields = {f.name: f for f in profile.fields}
        self._codes = {f.name: set(profile.codes[f.codes].values()) for f in profile.fields if f.codes}
        self._times = {f.name for f in profile.fields if f.source and SOURCES[f.source][0] == "time"}
        named = {source: (f.name if f else None) for source in ("channel", "level", "valid", "rated_at", "operation")
                 for f in [profile.field_for(source)]}
        self._channel, self._level, self._valid = named["channel"], named["level"], named["valid"]
        self._rated, self._operation = named["rated_at"], named["operation"]
        self._valid_yes = profile.code_list("valid").get(True)
        ops = profile.code_list("operation")
        self._add, self._update = ops.get("add"), ops.get("update")
        platform = self
        self.server = ThreadingHTTPServer(("127.0.0.1", port), type("Handler", (_Handler,), {"platform": platform}))
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_port}"

    def start(self) -> "Platform":
        threading.Thread(target=self.server.serve_forever, daemon=True).start()
        return self

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()

    def fault(self, name: str) -> bool:
        chance = self.faults.get(name, 0.0)
        return chance > 0 and self.rng.random() < chance

    # -- the interface's rules ---------------------------------------------------------------

    def problem(self, record: object) -> str:
        """Why a record is not one this profile's platform takes ("" when it is)."""
        if not isinstance(record, dict):
            return "not an object"
        missing, unknown = self._fields.keys() - record.keys(), record.keys() - self._fields.keys()
        if missing or unknown:
            return f"fields missing: {sorted(missing)}, unknown: {sorted(unknown)}"
        for name, f in self._fields.items():
            value = record[name]
            if f.required and value in ("", None):
                return f"{name} is required"
            if f.constant is not None and value != f.constant:
                return f"{name} must be {f.constant!r}"
            if name in self._codes and value not in self._codes[name]:
                return f"{name}: {value!r} is not a code of this platform ({sorted(self._codes[name], key=str)})"
            if name in self._times and value != "":
                try:
                    datetime.strptime(value, self.profile.time_format)
                except (TypeError, ValueError):
                    return f"{name}: {value!r} is not a time in {self.profile.time_format}"
        version = record[self.profile.version_field]
        if not isinstance(version, int) or isinstance(version, bool) or version < 1:
            return f"{self.profile.version_field} must be a positive integer"
        if not isinstance(record[self.profile.id_field], str) or not 1 <= len(record[self.profile.id_field]) <= 64:
            return f"{self.profile.id_field} must be 1-64 characters"
        return ""

    def take(self, record: dict, refuse_duplicates: bool) -> tuple[str, str, str]:
        """(status, reason, code) for one record, applied under the lock."""
        why = self.problem(record)
        if why:
            return "rejected", why, "invalid"
        rid, version = record[self.profile.id_field], record[self.profile.version_field]
        held = self.held.get(rid)
        operation = record.get(self._operation) if self._operation else self._add
        if held is not None and held[self.profile.version_field] >= version:
            if refuse_duplicates:
                return "rejected", "记录已存在", "duplicate_id"
            return "duplicate", "", ""
        if operation == self._update and held is None:
            return "rejected", "update of a record never added", "unknown_record"
        self.held[rid] = record
        return "accepted", "", ""

    def counts(self, day: str) -> dict[str, int]:
        """The platform's own count of valid records on ``day``, by channel and level code."""
        out: Counter = Counter()
        with self.lock:
            for record in self.held.values():
                when = datetime.strptime(record[self._rated], self.profile.time_format)
                if when.date().isoformat() == day and (self._valid is None or record[self._valid] == self._valid_yes):
                    out[f"{record[self._channel]}/{record[self._level]}"] += 1
        return dict(out)


class _Handler(BaseHTTPRequestHandler):
    platform: Platform
    protocol_version = "HTTP/1.1"

    def _signed(self, method: str, path: str, body: bytes) -> str:
        """The error code if the request is not signed by the central server's key ("" if it is)."""
        p = self.platform
        nonce, stamp = self.headers.get(signing.HEADER_NONCE, ""), self.headers.get(signing.HEADER_TIMESTAMP, "")
        if (self.headers.get(signing.HEADER_SYSTEM) != p.key_id or not stamp.isdigit() or not nonce
                or not signing.verify(p.secret, method, path, stamp, nonce, body,
                                      self.headers.get(signing.HEADER_SIGNATURE, ""))):
            return "bad_signature"
        if abs(int(stamp) - time.time()) > signing.MAX_SKEW_SECONDS:
            return "stale_timestamp"
        with p.lock:
            if nonce in p.nonces:
                return "replayed_nonce"
            if len(p.nonces) > 1_000_000:
                p.nonces.clear()
            p.nonces.add(nonce)
        return ""

    def do_GET(self):
        p, nonce = self.platform, self.headers.get(signing.HEADER_NONCE, "")
        url = urlsplit(self.path)
        refused = self._signed("GET", self.path, b"")
        if refused:
            return self.answer(401, {"error": refused}, nonce)
        if url.path != "/v1/counts":
            return self.answer(404, {"error": "no_such_path"}, nonce)
        day = parse_qs(url.query).get("day", [""])[0]
        try:
            datetime.strptime(day, "%Y-%m-%d")
        except ValueError:
            return self.answer(400, {"error": "bad_day"}, nonce)
        self.answer(200, {"day": day, "counts": p.counts(day)}, nonce)

    def do_POST(self):
        p, nonce = self.platform, self.headers.get(signing.HEADER_NONCE, "")
        given = self.headers.get("Content-Length") or "0"
        if not given.isascii() or not given.isdigit():  # "-1" read to the connection's end; "abc" crashed
            self.close_connection = True  # the body's end is unknown: nothing after it can be read
            return self.answer(400, {"error": "bad_length"}, nonce)
        length = int(given)
        if length > MAX_BODY:
            return self.answer(413, {"error": "batch_too_large"}, nonce)
        body = self.rfile.read(length)
        with p.lock:
            p.requests["all"] += 1
        if self.path != p.profile.path:
            return self.answer(404, {"error": "no_such_path"}, nonce)
        refused = self._signed("POST", self.path, body)
        if refused:
            return self.answer(401, {"error": refused}, nonce)
        try:
            batch = json.loads(body)
        except ValueError:
            return self.answer(400, {"error": "bad_json"}, nonce)
        records = batch.get(p.profile.batch_key) if isinstance(batch, dict) else None
        if not isinstance(records, list) or set(batch) != {p.profile.batch_key}:
            return self.answer(400, {"error": "bad_batch"}, nonce)
        if p.fault("error"):
            with p.lock:
                p.requests["error"] += 1
            return self.answer(503, {"error": "unavailable"}, nonce)
        refuse = p.fault("refuse_duplicates")
        results = []
        with p.lock:
            for record in records:
                status, reason, code = p.take(record, refuse)
                rid = record.get(p.profile.id_field) if isinstance(record, dict) else None
                version = record.get(p.profile.version_field) if isinstance(record, dict) else None
                results.append({"id": rid, "version": version, "status": status, "reason": reason, "code": code})
                p.log.append((str(rid), version if isinstance(version, int) else -1, status))
        if p.fault("timeout"):  # stored, but the answer comes after the client gave up
            with p.lock:
                p.requests["timeout"] += 1
            time.sleep(p.answer_delay)
        if p.fault("partial"):
            with p.lock:
                p.requests["partial"] += 1
            results = results[: len(results) // 2]
        self.answer(200, {"results": results}, nonce)

    def answer(self, status: int, payload: dict, nonce: str) -> None:
        body = json.dumps(payload, ensure_ascii=False).encode()
        server_time = f"{time.time():.3f}"
        try:
            self.send_response(status)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.send_header(signing.HEADER_SERVER_TIME, server_time)
            self.send_header(signing.HEADER_ANSWER_SIGNATURE, signing.sign_answer(
                self.platform.secret, nonce, status, server_time, hashlib.sha256(body).hexdigest()))
            self.end_headers()
            self.wfile.write(body)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (a timeout fault): what was stored stays stored

    def log_message(self, *args):
        pass


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--profile", required=True, help="the export profile (TOML) the platform speaks")
    parser.add_argument("--port", type=int, default=8701)
    parser.add_argument("--key-id", required=True, help="the central server's key id at this platform")
    parser.add_argument("--fault", action="append", default=[], metavar="NAME=P",
                        help=f"misbehave with probability P per request; NAME one of {', '.join(FAULTS)}")
    args = parser.parse_args()
    secret = os.environ.get("REFERENCE_PLATFORM_SECRET", "")
    if len(secret) < 16:
        raise SystemExit("set REFERENCE_PLATFORM_SECRET (16 characters or more): the key's secret")
    faults = dict(f.split("=", 1) for f in args.fault)
    platform = Platform(parse(Path(args.profile).read_text(encoding="utf-8"), args.profile), args.key_id, secret,
                        faults, port=args.port)
    print(f"reference platform ({platform.profile.name}) on {platform.url}", flush=True)
    try:
        platform.server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
