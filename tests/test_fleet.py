"""The fleet playbook (hardware/ansible/fleet.yml) for real: two Debian Bookworm roots as two
terminals (through the playbook's own chroot connection), a real central server on loopback, a
simulated button box (the real firmware in the MicroPython unix port, an older version) on one of
them. The first run installs both with install-pi.sh, enrolls each for its own window with codes
from one enroll-code call, flashes the box and collects both doctor reports in one file; a second
run changes nothing; a third, after one terminal's window changed in the inventory, changes only
that terminal; a fourth with --limit does one terminal; a fifth with a window central does not know
stops before any code is issued. Slow (two installs): only make fleet-check runs it (``--fleet``)."""

from __future__ import annotations

import json
import os
import re
import stat
import subprocess
import time
from pathlib import Path

import pytest

import firmware
from conftest import BIN, ROOT
from debian_root import copy_root, make_root
from firmware.cable import Cable
from firmware.sim import SimulatedBox, flash_with
from hardware.flashbox import ask_hello

pytestmark = [pytest.mark.fleet, pytest.mark.timeout(1200)]
ANSIBLE = ROOT / "hardware" / "ansible"
CODE = re.compile(r"\b[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}-[A-HJ-NP-Z2-9]{4}\b")  # auth.CODE_ALPHABET, as issued
RECAP = re.compile(r"^(\S+)\s+:\s+ok=(\d+)\s+changed=(\d+)\s+unreachable=(\d+)\s+failed=(\d+)", re.M)


@pytest.fixture(scope="module")
def roots(tmp_path_factory):
    """Two terminals' root file systems: one debootstrap, then a copy."""
    base = tmp_path_factory.mktemp("fleet")
    started = time.monotonic()
    first = make_root(base / "pj-w01")
    second = copy_root(first, base / "pj-w02")
    print(f"\nfleet: two Debian roots in {time.monotonic() - started:.0f} s")
    return first, second


@pytest.fixture
def old_box(tmp_path):
    """A button box running firmware 0.0.1 (today's files with an older VERSION), REPL and data on
    pseudo-terminals the chroot sees through its /dev (opened there by the user rating)."""
    flash = flash_with(tmp_path / "box-flash", "0.0.1")
    console, data = Cable(), Cable()
    for end in (console.host_end, data.host_end):
        os.chmod(end, 0o666)  # the terminal's user rating is in dialout, not in this machine's tty group
    box = SimulatedBox(data.box_end, flash, console=console.box_end)
    assert ask_hello(data.host_end, 20)[1] == "0.0.1"
    yield box, console, data, flash
    box.close()
    console.close()
    data.close()


def run_playbook(inventory: Path, tmp: Path, *args: str, timeout: float = 900,
                 succeed: bool = True) -> tuple[subprocess.CompletedProcess, dict, float]:
    """ansible-playbook with -v, so every task's result is printed (what no_log must keep codes out of)."""
    env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "PATH": f"{BIN}:{os.environ['PATH']}",
           "ANSIBLE_LOCAL_TEMP": str(tmp / "ansible-local"), "ANSIBLE_NOCOLOR": "1"}
    started = time.monotonic()
    done = subprocess.run([str(BIN / "ansible-playbook"), "-v", "-i", str(inventory), "fleet.yml", *args], cwd=ANSIBLE, env=env,
                          capture_output=True, text=True, timeout=timeout)
    took = time.monotonic() - started
    assert (done.returncode == 0) == succeed, done.stdout[-6000:] + done.stderr[-3000:]
    recap = {host: {"ok": int(ok), "changed": int(changed), "unreachable": int(unreachable), "failed": int(failed)}
             for host, ok, changed, unreachable, failed in RECAP.findall(done.stdout)}
    return done, recap, took


def write_inventory(path: Path, central, roots, windows: dict, box, report: Path, tarball: Path) -> Path:
    _, console, data, _ = box
    hosts = {
        "pj-w01": {"ansible_host": str(roots[0]), "rating_window": windows["pj-w01"], "rating_box": True,
                   "rating_box_repl": console.host_end, "rating_box_data": data.host_end},
        "pj-w02": {"ansible_host": str(roots[1]), "rating_window": windows["pj-w02"], "rating_headless": True,
                   "rating_box": "auto"},  # no box there: none is flashed
    }
    central_env = {"RATING_CENTRAL_DATA": str(central.data_dir)}
    if central.database_url:
        central_env["RATING_CENTRAL_DATABASE_URL"] = central.database_url
    inventory = {"all": {
        "vars": {"rating_server": central.url, "rating_central_command": [str(BIN / "rating-central")],
                 "rating_central_environment": central_env, "rating_report": str(report),
                 "rating_source_tarball": str(tarball)},
        "children": {"rating_terminals": {
            "vars": {"ansible_connection": "chroot", "ansible_become": False},
            "hosts": hosts}}}}
    path.write_text(json.dumps(inventory, indent=1))  # JSON is YAML
    return path


def credentials(root: Path) -> tuple[dict, os.stat_result]:
    path = root / "var/lib/rating-terminal/credentials.json"
    return json.loads(path.read_text()), path.stat()


def uid_of(root: Path, user: str) -> int:
    for line in (root / "etc/passwd").read_text().splitlines():
        if line.split(":")[0] == user:
            return int(line.split(":")[2])
    raise AssertionError(f"no user {user} in {root}")


def assert_nothing_secret(output: str, *secrets: str) -> None:
    assert not CODE.search(output), "an enrollment code is in the playbook's output"
    for secret in secrets:
        assert secret not in output


def test_the_fleet_playbook_installs_enrolls_flashes_checks_and_is_idempotent(roots, central, old_box, tmp_path):
    box, console, data, flash = old_box
    report, tarball = tmp_path / "report" / "doctor.json", tmp_path / "source.tar.gz"
    inventory = tmp_path / "inventory.yml"
    windows = {"pj-w01": "W01", "pj-w02": "W02"}
    write_inventory(inventory, central, roots, windows, old_box, report, tarball)

    # 1. Both installed, each enrolled for its own window, the box flashed, one report.
    first, recap, took_first = run_playbook(inventory, tmp_path)
    print(f"fleet: first run (two installs) {took_first:.0f} s")
    assert recap["pj-w01"]["changed"] > 0 and recap["pj-w02"]["changed"] > 0
    enrolled = {}
    for host, root in zip(("pj-w01", "pj-w02"), roots):
        assert (root / "opt/rating-terminal/bin/rating-terminal").exists()
        creds, info = credentials(root)
        assert creds["window"] == windows[host] and creds["server"] == central.url
        assert stat.S_IMODE(info.st_mode) == 0o600 and info.st_uid == uid_of(root, "rating")
        enrolled[host] = creds
        assert_nothing_secret(first.stdout + first.stderr, creds["secret"])
    assert enrolled["pj-w01"]["terminal_id"] != enrolled["pj-w02"]["terminal_id"]
    rows = central.query("SELECT t.terminal_id, w.code, t.revoked_at FROM ratings_terminal t "
                         "JOIN ratings_window w ON w.id = t.window_id")
    assert {(tid, window) for tid, window, revoked in rows if revoked is None} == \
        {(enrolled[h]["terminal_id"], windows[h]) for h in windows}
    wants = roots[1] / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "rating-headless.service").is_symlink() and not (wants / "rating-kiosk.service").exists()

    assert ask_hello(data.host_end, 20)[1] == firmware.version()  # flashed: old, maintenance, new firmware
    boots = box.boots
    assert boots == 3

    doctor = json.loads(report.read_text())
    assert set(doctor["terminals"]) == {"pj-w01", "pj-w02"} and doctor["missing"] == []
    for host, answer in doctor["terminals"].items():
        checks = {c["name"]: c for c in answer["checks"]}
        assert answer["window"] == windows[host]
        assert checks["credentials"]["status"] == "pass" and enrolled[host]["terminal_id"] in checks["credentials"]["detail"]
        assert checks["server"]["status"] == "pass" and checks["signed request"]["status"] == "pass"
    # doctor looks for the box where the terminal's config says ([box] port, the udev rule's name)
    assert {c["name"] for c in doctor["terminals"]["pj-w01"]["checks"]} >= {"button box", "display", "fonts"}
    assert {c["name"]: c for c in doctor["terminals"]["pj-w02"]["checks"]}["display"]["status"] == "skip"

    # 2. Again: nothing changes anywhere (no install, no code, no flash).
    second, recap, took_second = run_playbook(inventory, tmp_path)
    print(f"fleet: second run {took_second:.0f} s")
    assert {host: r["changed"] for host, r in recap.items()} == {"pj-w01": 0, "pj-w02": 0}, second.stdout[-4000:]
    assert box.boots == boots
    assert [credentials(r)[0]["terminal_id"] for r in roots] == [enrolled[h]["terminal_id"] for h in windows]
    assert json.loads(report.read_text())["terminals"].keys() == {"pj-w01", "pj-w02"}

    # 3. pj-w02 moves to window W03: only it changes; its old identity is revoked at central.
    windows["pj-w02"] = "W03"
    write_inventory(inventory, central, roots, windows, old_box, report, tarball)
    third, recap, took_third = run_playbook(inventory, tmp_path)
    print(f"fleet: third run (one window changed) {took_third:.0f} s")
    assert recap["pj-w01"]["changed"] == 0 and recap["pj-w02"]["changed"] > 0, third.stdout[-4000:]
    moved, _ = credentials(roots[1])
    assert moved["window"] == "W03" and moved["terminal_id"] != enrolled["pj-w02"]["terminal_id"]
    assert credentials(roots[0])[0] == enrolled["pj-w01"]
    revoked = dict(central.query("SELECT terminal_id, revoked_at IS NOT NULL FROM ratings_terminal"))
    assert revoked[enrolled["pj-w02"]["terminal_id"]] and not revoked[moved["terminal_id"]]
    assert not revoked[enrolled["pj-w01"]["terminal_id"]]
    assert json.loads(report.read_text())["terminals"]["pj-w02"]["window"] == "W03"
    assert_nothing_secret(second.stdout + third.stdout + third.stderr, moved["secret"], enrolled["pj-w01"]["secret"])

    # 4. One terminal only (--limit): the controller's parts still run; the report has that one.
    limited, recap, _ = run_playbook(inventory, tmp_path, "--limit", "pj-w02")
    assert {host: r["changed"] for host, r in recap.items()} == {"pj-w02": 0}, limited.stdout[-4000:]
    only = json.loads(report.read_text())
    assert set(only["terminals"]) == {"pj-w02"} and only["missing"] == []

    # 5. A window central does not know: the run stops before any code is issued, and nothing changes.
    codes_before = central.query("SELECT count(*) FROM ratings_enrollmentcode")
    windows["pj-w01"] = "W99"
    write_inventory(inventory, central, roots, windows, old_box, report, tarball)
    refused, recap, _ = run_playbook(inventory, tmp_path, succeed=False)
    assert "no window 'W99'" in refused.stdout and "no code issued" in refused.stdout
    assert central.query("SELECT count(*) FROM ratings_enrollmentcode") == codes_before
    assert recap["pj-w01"]["changed"] == 0 and recap["pj-w02"]["changed"] == 0
    assert credentials(roots[0])[0] == enrolled["pj-w01"] and credentials(roots[1])[0] == moved
    assert_nothing_secret(refused.stdout + refused.stderr)
