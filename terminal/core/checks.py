"""Checks for the fields of untrusted records (ratings, events, invitations, badges, content):
each returns the clean value or raises ValueError/TypeError saying why; ``check_fields`` runs a
table of them and reports every problem at once.

``text`` is the one validation of text at every boundary: control characters (but tab and
newline), DEL and lone surrogates (valid JSON, ``"\ud800"``, but not text any disk, database or
log can hold) are refused, so a record that passes can always be stored, sent and shown. Numbers
and times are range-checked here too, before any arithmetic is done with them."""

from __future__ import annotations

import json
import re
from datetime import datetime, timedelta

_ID = re.compile(r"^[A-Za-z0-9_-]{8,64}$")
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f\ud800-\udfff]")  # controls but tab and newline; DEL; lone surrogates
EARLIEST_YEAR, LATEST_YEAR = 1970, 2200  # a Pi whose clock was never set says 1970; beyond these is nobody's clock
#: How deeply a JSON document from outside may nest: a record is about three levels deep, so
#: sixteen leaves room and still stops a document nested a thousand deep (which orjson parses)
#: before any recursive code (json.dumps, repr, a checker) meets it and raises RecursionError.
MAX_DEPTH = 16
#: No zone is further from UTC than this (Kiribati, UTC+14). Python takes offsets up to ±24 h, but
#: PostgreSQL's timestamptz only up to ±15:59: a record kept with +23:59 made its batch a 500 there.
MAX_UTC_OFFSET = timedelta(hours=14)
MAX_MONO_MS = 10 ** 13  # 317 years of uptime: anything more is not a monotonic clock  # a time outside these is no clock's, only someone's input


class InvalidRecord(ValueError):
    """Untrusted input that is not a valid record; ``problems`` maps field name to why."""

    def __init__(self, problems: dict[str, str]):
        self.problems = problems
        super().__init__("; ".join(f"{k}: {v}" for k, v in problems.items()))


def check_fields(data: object, table: dict, what: str) -> dict:
    """Validate ``data`` against ``table`` (name -> (required, check)); InvalidRecord names every bad field.

    On the path every rating takes into the central server (a drain moves thousands a second), so
    it stays plain: one pass over the table, the unknown-field check only when there are extra keys."""
    if type(data) is not dict:
        raise InvalidRecord({what: f"must be a JSON object, got {type(data).__name__}"})
    problems: dict[str, str] = {}
    values: dict[str, object] = {}
    get = data.get
    for name, (required, check) in table.items():
        value = get(name)
        if value is None:
            if required:
                problems[name] = "is required"
            continue
        try:
            values[name] = check(value)
        except (ValueError, TypeError) as exc:
            problems[name] = str(exc)
    if len(data) > len(values) and data.keys() - table.keys():
        problems["unknown fields"] = ", ".join(repr(k)[1:-1] for k in sorted(data.keys() - table.keys())[:10])
    if problems:
        raise InvalidRecord(problems)
    return values


def text(max_len: int, *, allow_empty: bool = False):
    search = _CONTROL.search

    def check(v):
        if type(v) is not str:
            raise TypeError(f"must be a string, got {type(v).__name__}")
        if not v and not allow_empty:
            raise ValueError("must not be empty")
        if len(v) > max_len:
            raise ValueError(f"is {len(v)} characters, at most {max_len} allowed")
        bad = search(v)
        if bad:
            what = "a lone surrogate" if "\ud800" <= bad.group() <= "\udfff" else "control characters"
            raise ValueError(f"contains {what} (U+{ord(bad.group()):04X})")
        return v
    return check


def clean_text(v: str) -> bool:
    """Whether ``v`` holds nothing ``text`` refuses (for callers that only need yes or no)."""
    return isinstance(v, str) and not _CONTROL.search(v)


_timestamp_text = text(40)


def ident(v):
    if not isinstance(v, str) or not _ID.match(v):
        raise ValueError("must be 8-64 characters of letters, digits, '-' or '_'")
    return v


def integer(lo: int, hi: int):
    def check(v):
        if isinstance(v, bool) or not isinstance(v, int):
            raise TypeError(f"must be an integer, got {type(v).__name__}")
        if not lo <= v <= hi:
            raise ValueError(f"{shown(v)} is outside {lo}..{hi}")
        return v
    return check


def bool_(v):
    if not isinstance(v, bool):
        raise TypeError(f"must be true or false, got {type(v).__name__}")
    return v


def shown(v: object, limit: int = 40) -> str:
    """An untrusted value as an error message may show it: a short excerpt of a string or number,
    only the type of anything else. Never ``repr`` of the whole value: one nested a thousand deep
    raises RecursionError, and a megabyte of it would become a megabyte of message."""
    if isinstance(v, str):
        return repr(v[:limit]) + ("…" if len(v) > limit else "")
    if v is None or isinstance(v, (bool, float)) or (isinstance(v, int) and -10**limit < v < 10**limit):
        return repr(v)
    return f"a{'n' if type(v).__name__[0] in 'aeiou' else ''} {type(v).__name__}"


def one_of(choices):
    def check(v):
        if type(v) is not str or v not in choices:
            raise ValueError(f"{shown(v)} is not one of {', '.join(choices)}")
        return v
    return check


def enum(kind):
    members = {m.value: m for m in kind}  # a lookup, not Enum's slow call, for every record

    def check(v):
        found = members.get(v) if type(v) is not bool else None
        if found is None:
            raise ValueError(f"{shown(v)} is not one of {', '.join(str(m) for m in members)}")
        return found
    return check


def plausible_seconds(v: object) -> bool:
    """A number of seconds a clock, or the offset between two, can be: not NaN, not infinite, not
    past year 5000. (An offset the sync daemon kept reads back through this: NaN failed every
    signature, and the daemon never reached the server that would have corrected it.)"""
    return isinstance(v, (int, float)) and not isinstance(v, bool) and v == v and abs(v) < 1e11


def timestamp(v):
    _timestamp_text(v)
    try:
        parsed = datetime.fromisoformat(v)
    except ValueError:
        raise ValueError(f"{v!r} is not an ISO 8601 time") from None
    if parsed.tzinfo is None:
        raise ValueError("must carry a UTC offset, e.g. 2026-11-22T10:30:00+08:00")
    if abs(parsed.utcoffset()) > MAX_UTC_OFFSET:
        raise ValueError(f"UTC offset {parsed.strftime('%z')} is more than 14 hours: no time zone's")
    if not EARLIEST_YEAR <= parsed.year <= LATEST_YEAR:
        raise ValueError(f"year {parsed.year} is outside {EARLIEST_YEAR}..{LATEST_YEAR}")
    return v


def too_deep(value: object, limit: int = MAX_DEPTH) -> bool:
    """Whether a parsed JSON document nests containers more than ``limit`` deep (``[]`` is one
    deep). Level by level, not recursively: it must not itself fail on the documents it refuses."""
    level = [value] if type(value) is dict or type(value) is list else []
    for _ in range(limit):  # after i rounds, ``level`` holds the containers i + 1 deep
        if not level:
            return False
        level = [child for node in level for child in (node.values() if type(node) is dict else node)
                 if type(child) is dict or type(child) is list]
    return bool(level)


def kept_json(text: str, limit: int = MAX_DEPTH) -> object:
    """JSON text others wrote and the central server kept (an event's ``detail``, a refused item),
    read back for a page or a rule: ValueError unless it is JSON nested at most ``limit`` deep.
    Never RecursionError, which no ``except ValueError`` catches: ``json.loads`` of 1,999 ``[``
    in a ``chain_restart`` event's detail raised it from ``tick`` on every run."""
    try:
        document = json.loads(text)
    except RecursionError:
        raise ValueError(f"nested more than {limit} deep") from None
    if too_deep(document, limit):
        raise ValueError(f"nested more than {limit} deep")
    return document


def unclean_path(value: object, depth: int = 0, max_depth: int = MAX_DEPTH) -> str | None:
    """Where, in a parsed JSON document, the first key or string ``text`` would refuse is (tab and
    newline allowed), or None: for documents stored whole (a heartbeat, a content manifest)."""
    if depth > max_depth:
        return "(nested too deeply)"
    if isinstance(value, str):
        return None if clean_text(value) else "(text)"
    items = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, item in items:
        if isinstance(key, str) and not clean_text(key):
            return "(a key)"
        found = unclean_path(item, depth + 1, max_depth)
        if found:
            return f"{key}.{found}"
    return None


def escape_unclean(value: object) -> object:
    """A copy of a parsed JSON document whose keys and strings hold, for each character ``text``
    refuses, its escape (``\\x1b``, ``\\ud800``): for a document made of others' text (a device's
    self-description, an error message) that must reach a reader whole, who refuses unclean text."""
    if isinstance(value, str):
        return _CONTROL.sub(lambda m: ascii(m.group())[1:-1], value)
    if isinstance(value, dict):
        return {escape_unclean(k): escape_unclean(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [escape_unclean(v) for v in value]
    return value


def build(cls, values: dict):
    """An instance of the frozen dataclass ``cls`` from values ``check_fields`` already checked,
    without its generated ``__init__`` (which sets each field through ``object.__setattr__``: a
    fifth of taking a rating in). Fields left out get their declared defaults, as ``__init__`` would."""
    defaults = cls.__dict__.get("_built_defaults")
    if defaults is None:
        import dataclasses
        defaults = {f.name: (f.default_factory, True) if f.default_factory is not dataclasses.MISSING
                    else (f.default, False) for f in dataclasses.fields(cls)
                    if f.default is not dataclasses.MISSING or f.default_factory is not dataclasses.MISSING}
        type.__setattr__(cls, "_built_defaults", defaults)
    instance = object.__new__(cls)
    state = instance.__dict__
    for name, (default, made) in defaults.items():
        if name not in values:
            state[name] = default() if made else default
    state.update(values)
    return instance
