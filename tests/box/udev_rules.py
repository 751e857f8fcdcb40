"""Just enough of udev's rule language to check our rules against sample devices: match keys
SUBSYSTEM, KERNEL, ENV{...} with == and != (globs, | alternatives), assignments with = and +=.
Anything else is an error, so a rule this cannot check is noticed rather than passed."""

from __future__ import annotations

import fnmatch
import re

TOKEN = re.compile(r'\s*([A-Z_]+)(?:\{([^}]+)\})?\s*(==|!=|\+=|=)\s*"([^"]*)"\s*(?:,|$)')
MATCH_KEYS = {"SUBSYSTEM", "KERNEL", "ENV"}
ASSIGN_KEYS = {"SYMLINK", "GROUP", "MODE", "TAG", "ENV"}


def parse(text: str) -> list[list[tuple]]:
    rules = []
    for number, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        pos, rule = 0, []
        while pos < len(line):
            m = TOKEN.match(line, pos)
            if not m:
                raise ValueError(f"line {number}: cannot read {line[pos:]!r}")
            key, attr, op, value = m.groups()
            if op in ("==", "!=") and key not in MATCH_KEYS or op in ("=", "+=") and key not in ASSIGN_KEYS:
                raise ValueError(f"line {number}: {key}{op} is not understood here")
            rule.append((key, attr, op, value))
            pos = m.end()
        rules.append(rule)
    return rules


def _matches(value: str | None, pattern: str) -> bool:
    return value is not None and any(fnmatch.fnmatchcase(value, p) for p in pattern.split("|"))


def apply(rules: list[list[tuple]], props: dict[str, str]) -> dict[str, list[str]]:
    """What the rules assign to a device with these properties."""
    out: dict[str, list[str]] = {}
    for rule in rules:
        def lookup(key, attr):
            if key == "KERNEL":
                return props.get("DEVNAME", "").rsplit("/", 1)[-1]
            return props.get(attr) if key == "ENV" else props.get(key)
        if all(_matches(lookup(k, a), v) == (op == "==") for k, a, op, v in rule if op in ("==", "!=")):
            for k, a, op, v in rule:
                if op in ("=", "+="):
                    name = f"{k}{{{a}}}" if a else k
                    out[name] = out.get(name, []) + [v] if op == "+=" else [v]
    return out
