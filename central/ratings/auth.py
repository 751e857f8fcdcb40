"""Who is calling: enrollment codes, and signed requests of terminals and business systems.

``authenticate`` checks a request's four signing headers (``terminal.core.signing``) and returns
the Terminal (``authenticate_system``: the BusinessSystem), or raises ``AuthError`` with the HTTP status and a machine-readable code. Once the
signature verifies, the request carries the key its answer is signed with (``api.sign_answers``). Nothing
from a refused request is stored; a nonce is remembered only once the signature is good.
"""

from __future__ import annotations

import functools
import hashlib
import re
import secrets
from datetime import timedelta

from django.db import DEFAULT_DB_ALIAS, connection, connections, transaction
from django.http import HttpRequest
from django.utils import timezone

from terminal.core import signing
from terminal.core.provision import CODE_ALPHABET  # the terminal checks a typed code against it

from .models import BusinessSystem, ContentGeneration, EnrollmentCode, Hall, SeenNonce, Terminal, Window

DEFAULT_CODE_HOURS = 24


class AuthError(Exception):
    def __init__(self, status: int, code: str, detail: str):
        super().__init__(detail)
        self.status, self.code, self.detail = status, code, detail


CODE_FORM = re.compile(r"^[A-Za-z0-9 -]{4,32}$")
_NOBODY = secrets.token_urlsafe(32)  # an unknown terminal's request is checked against this, in equal time


def hash_code(code: str) -> str:
    normalised = code.replace("-", "").replace(" ", "").upper()
    return hashlib.sha256(normalised.encode()).hexdigest()


def issue_code(window: Window, hours: float = DEFAULT_CODE_HOURS) -> tuple[str, EnrollmentCode]:
    """A new one-time code for a window. The plain code is returned once and never stored."""
    raw = "".join(secrets.choice(CODE_ALPHABET) for _ in range(12))
    code = "-".join(raw[i:i + 4] for i in range(0, 12, 4))
    record = EnrollmentCode.objects.create(code_hash=hash_code(code), window=window,
                                           expires_at=timezone.now() + timedelta(hours=hours))
    return code, record


def enroll(code: str) -> Terminal:
    """Exchange a code for a new terminal with its own secret; the code is spent."""
    if not (isinstance(code, str) and CODE_FORM.match(code)):
        raise AuthError(400, "bad_code", "an enrollment code is 12 letters and digits, as ABCD-EFGH-JKLM")
    with transaction.atomic():
        record = EnrollmentCode.objects.select_for_update().filter(code_hash=hash_code(code)).first()
        if record is None:
            raise AuthError(403, "code_invalid", "unknown enrollment code")
        if record.used_at is not None:
            raise AuthError(403, "code_used", "this enrollment code has already been used")
        if record.expires_at <= timezone.now():
            raise AuthError(403, "code_expired", "this enrollment code has expired; ask for a new one")
        terminal = Terminal.objects.create(
            terminal_id=f"T{secrets.token_hex(5).upper()}", window=record.window,
            secret=secrets.token_urlsafe(32))
        record.used_at, record.terminal = timezone.now(), terminal
        record.save(update_fields=["used_at", "terminal"])
    return terminal


def authenticate(request: HttpRequest) -> Terminal:
    """The terminal that signed this request (``X-Terminal-Id``), or AuthError."""
    return _signed_by(request, signing.HEADER_TERMINAL, calling_terminal, "terminal")


def authenticate_system(request: HttpRequest) -> BusinessSystem:
    """The business system that signed this request (``X-System-Id``), or AuthError: the same
    scheme, the same checks and answers as a terminal's."""
    return _signed_by(request, signing.HEADER_SYSTEM,
                      lambda system_id: BusinessSystem.objects.filter(system_id=system_id).first(), "system")


def _signed_by(request: HttpRequest, id_header: str, find, caller: str):
    headers = request.headers
    caller_id = headers.get(id_header, "")
    timestamp = headers.get(signing.HEADER_TIMESTAMP, "")
    nonce = headers.get(signing.HEADER_NONCE, "")
    signature = headers.get(signing.HEADER_SIGNATURE, "")
    if not (caller_id and timestamp and nonce and signature):
        raise AuthError(401, "unsigned", f"request is not signed ({id_header}, X-Timestamp, X-Nonce, X-Signature)")
    if not (8 <= len(nonce) <= 64 and nonce.isascii() and nonce.isalnum()):
        raise AuthError(401, "bad_nonce", "X-Nonce must be 8-64 letters or digits")
    if not (timestamp.isascii() and timestamp.isdigit() and len(timestamp) <= 12):
        raise AuthError(401, "bad_timestamp", "X-Timestamp must be Unix seconds")
    sent = int(timestamp)
    found = find(caller_id) if len(caller_id) <= 64 else None
    # An unknown id and a wrong signature get the same answer in the same time: a prober learns
    # nothing about which ids exist.
    if not signing.verify(found.secret if found else _NOBODY, request.method, request.get_full_path(),
                          timestamp, nonce, request.body, signature) or found is None:
        raise AuthError(401, "bad_signature", f"the signature does not match an enrolled {caller}'s")
    request.answer_key = (found.secret, nonce)  # the request is the caller's: its answer is signed
    skew = sent - timezone.now().timestamp()
    if abs(skew) > signing.MAX_SKEW_SECONDS:
        raise AuthError(401, "stale_timestamp",
                        f"timestamp is {skew:+.0f} s from server time; correct the clock offset and retry")
    if found.revoked_at is not None:
        raise AuthError(403, "revoked", f"this {caller} has been revoked")
    if not _remember_nonce(caller, found.pk, nonce):
        raise AuthError(401, "replayed_nonce", "this nonce has been used before")
    return found


def calling_terminal(terminal_id: str) -> Terminal | None:
    """The terminal with its window, hall and the province's content number (0 before the first
    change, as ``content.generation`` counts it), in one query written once: every signed request
    starts here, and Django compiling the same join each time cost more than the database answering
    it. Terminal's own columns go through the ORM's converters for this database (its times);
    Window's and Hall's are text and numbers, taken as they are. The last heartbeat's JSON is left
    unread (deferred): nothing a request does needs it."""
    db = connections[DEFAULT_DB_ALIAS]
    with db.cursor() as cursor:
        cursor.execute(_calling_terminal_sql(), [terminal_id])
        row = cursor.fetchone()
    if row is None:
        return None
    compiler, converters = _terminal_converters(db)
    row = next(compiler.apply_converters([list(row)], converters))
    ends = (len(_TERMINAL_FIELDS), len(_TERMINAL_FIELDS) + len(_WINDOW_FIELDS))
    terminal = Terminal.from_db(db.alias, _TERMINAL_FIELDS, row[:ends[0]])
    terminal.window = Window.from_db(db.alias, _WINDOW_FIELDS, row[ends[0]:ends[1]])
    terminal.window.hall = Hall.from_db(db.alias, _HALL_FIELDS, row[ends[1]:-1])
    terminal.province_generation = row[-1]
    return terminal


_TERMINAL_COLUMNS = [f for f in Terminal._meta.concrete_fields if f.name != "heartbeat"]
_TERMINAL_FIELDS = [f.attname for f in _TERMINAL_COLUMNS]
_WINDOW_FIELDS = [f.attname for f in Window._meta.concrete_fields]
_HALL_FIELDS = [f.attname for f in Hall._meta.concrete_fields]


@functools.lru_cache(maxsize=64)  # one per server thread's connection
def _terminal_converters(db) -> tuple:
    """Django's own converters for the terminal's columns on this connection (as a queryset applies them)."""
    compiler = db.ops.compiler("SQLCompiler")(Terminal.objects.none().query, db, db.alias)
    return compiler, compiler.get_converters([f.get_col(Terminal._meta.db_table) for f in _TERMINAL_COLUMNS])


@functools.cache
def _calling_terminal_sql() -> str:
    quote = connection.ops.quote_name
    t, w, h = (quote(m._meta.db_table) for m in (Terminal, Window, Hall))
    columns = [f"{t}.{quote(f.column)}" for f in _TERMINAL_COLUMNS]
    columns += [f"{w}.{quote(f.column)}" for f in Window._meta.concrete_fields]
    columns += [f"{h}.{quote(f.column)}" for f in Hall._meta.concrete_fields]
    generation = (f"COALESCE((SELECT {quote('number')} FROM {quote(ContentGeneration._meta.db_table)} "
                  f"WHERE {quote(ContentGeneration._meta.pk.column)} = 1), 0)")
    return (f"SELECT {', '.join(columns)}, {generation} FROM {t} "
            f"JOIN {w} ON {w}.{quote(Window._meta.pk.column)} = {t}.{quote(Terminal._meta.get_field('window').column)} "
            f"JOIN {h} ON {h}.{quote(Hall._meta.pk.column)} = {w}.{quote(Window._meta.get_field('hall').column)} "
            f"WHERE {t}.{quote('terminal_id')} = %s")


def _remember_nonce(caller: str, pk: int, nonce: str) -> bool:
    """Record the nonce; False if it was already there. One statement (ON CONFLICT DO NOTHING), no
    savepoint: on PostgreSQL a refused INSERT would otherwise spoil the request's transaction."""
    table = SeenNonce._meta.db_table
    column = {"terminal": "terminal_id", "system": "system_id"}[caller]
    with connection.cursor() as cursor:
        cursor.execute(f"INSERT INTO {table} ({column}, nonce, seen_at) VALUES (%s, %s, %s) "
                       f"ON CONFLICT ({column}, nonce) DO NOTHING",
                       [pk, nonce, SeenNonce._meta.get_field("seen_at").get_db_prep_value(timezone.now(), connection)])
        return cursor.rowcount == 1


def add_system(name: str) -> BusinessSystem:
    """A new business system with its own id and secret (shown to the operator once)."""
    return BusinessSystem.objects.create(system_id=f"S{secrets.token_hex(5).upper()}", name=name,
                                         secret=secrets.token_urlsafe(32))


#: how far apart the clocks of several app servers may be (each keeps NTP time: docs/operators.md)
NODE_CLOCK_SLACK_S = 60


def forget_old_nonces() -> int:
    """Nonces older than twice the skew window can no longer be replayed (the timestamp check stops
    them): every terminal's are dropped by ``tick``, whether or not the terminal still calls. Kept
    ``NODE_CLOCK_SLACK_S`` longer: a request stamped at the skew's future edge is taken until twice
    the skew after it was seen, by the clock of the node that saw it; ``tick`` on a node whose clock
    runs ahead would otherwise forget its nonce while a node behind still takes it again."""
    cutoff = timezone.now() - timedelta(seconds=2 * signing.MAX_SKEW_SECONDS + NODE_CLOCK_SLACK_S)
    return SeenNonce.objects.filter(seen_at__lt=cutoff).delete()[0]
