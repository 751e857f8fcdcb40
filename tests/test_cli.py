"""Every console script answers --help and --version, and its commands are documented."""

import re
import subprocess

import pytest

import terminal
from terminal.cli import COMMANDS

from terminal.store import SCHEMA_VERSION

from conftest import BIN, ROOT


@pytest.mark.parametrize("script, words", [
    ("rating-terminal", ["run", "status", "--config"]),
    ("rating-sync", ["run", "status", "--config"]),
    ("rating-central", ["migrate", "load_demo", "serve", "createsuperuser"]),
])
def test_help_and_version(script, words):
    shown = subprocess.run([str(BIN / script), "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0
    for word in words:
        assert word in shown.stdout
    version = subprocess.run([str(BIN / script), "--version"], capture_output=True, text=True, timeout=60)
    assert version.returncode == 0 and terminal.__version__ in version.stdout


def test_every_terminal_command_is_in_the_documentation():
    readme = (ROOT / "docs" / "terminal.md").read_text(encoding="utf-8")
    for name in COMMANDS:
        assert re.search(rf"rating-terminal( \[--config FILE\])? {name}\b", readme), f"docs/terminal.md lacks {name}"


def test_bad_config_is_a_clear_error(tmp_path):
    bad = tmp_path / "t.toml"
    bad.write_text("[terminal]\nwindw = 'W01'\n")
    done = subprocess.run([str(BIN / "rating-terminal"), "--config", str(bad), "status"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and "unknown key 'windw'" in done.stderr


def test_status_shows_the_queue(terminal_config):
    done = subprocess.run([str(BIN / "rating-terminal"), "--config", str(terminal_config()), "status"],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0 and "0 pending" in done.stdout and f"schema v{SCHEMA_VERSION}" in done.stdout and "events:  0 pending" in done.stdout


def test_every_central_command_is_in_the_usage_and_the_documentation():
    from central.cli import USAGE
    readme = (ROOT / "docs" / "operators.md").read_text(encoding="utf-8")
    commands = sorted(p.stem for p in (ROOT / "central" / "ratings" / "management" / "commands").glob("*.py")
                      if not p.stem.startswith("_"))
    assert "tick" in commands and "add_user" in commands
    for name in commands:
        spelled = {name, name.replace("_", "-")}
        assert any(re.search(rf"^  {s}\b", USAGE, re.M) for s in spelled), f"rating-central --help lacks {name}"
        assert any(f"rating-central {s}" in readme for s in spelled), f"docs/operators.md lacks {name}"
