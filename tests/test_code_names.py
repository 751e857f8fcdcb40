"""Every name the code uses is defined: a name misspelt or never imported fails only when its line
runs, and the lines that run least are those of faults (the window's bound on records waiting for
refusing storage named a type it had not imported, and no test had reached it). pyflakes reads
each file without running it."""

from pathlib import Path

import pytest
from pyflakes import api, messages
from pyflakes.reporter import Reporter

from conftest import ROOT

UNDEFINED = (messages.UndefinedName, messages.UndefinedLocal, messages.UndefinedExport)
CODE = ["central", "terminal", "sync", "hardware", "firmware", "scripts", "bench"]


class Collected(Reporter):
    def __init__(self):
        self.found: list[str] = []

    def flake(self, message):
        if isinstance(message, UNDEFINED):
            self.found.append(str(message))

    def syntaxError(self, filename, msg, lineno, offset, text):
        self.found.append(f"{filename}:{lineno}: {msg}")

    def unexpectedError(self, filename, msg):
        self.found.append(f"{filename}: {msg}")


@pytest.mark.parametrize("folder", CODE)
def test_every_name_used_is_defined(folder):
    reporter = Collected()
    for path in sorted((ROOT / folder).rglob("*.py")):
        if "migrations" not in path.parts:
            api.checkPath(str(path), reporter)
    assert reporter.found == []


def test_the_check_sees_an_undefined_name(tmp_path):
    """The check itself: a name never imported is found."""
    faulty = tmp_path / "faulty.py"
    faulty.write_text("def bounded(effects):\n    return [e for e in effects if isinstance(e, Hold)]\n")
    reporter = Collected()
    api.checkPath(str(faulty), reporter)
    assert reporter.found and "Hold" in reporter.found[0]
