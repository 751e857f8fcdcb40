"""The fleet playbook's files, quickly (make test; the real run is make fleet-check): it parses, its
role keeps install-pi.sh as the one place that knows the platform files, every task that holds an
enrollment code hides its output, and the source tarball is the same bytes for the same source."""

import hashlib
import json
import os
import re
import shutil
import subprocess

import yaml

from conftest import BIN, ROOT

ANSIBLE = ROOT / "hardware" / "ansible"
ROLE = ANSIBLE / "roles" / "rating_terminal"
INSTALL_PI = (ROOT / "hardware" / "install-pi.sh").read_text()


def test_the_playbook_parses_with_the_example_inventory():
    env = {**os.environ, "ANSIBLE_CONFIG": str(ANSIBLE / "ansible.cfg"), "ANSIBLE_NOCOLOR": "1"}
    done = subprocess.run([str(BIN / "ansible-playbook"), "--syntax-check", "-i", "inventory.example.yml", "fleet.yml"],
                          cwd=ANSIBLE, env=env, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stdout + done.stderr
    listed = subprocess.run([str(BIN / "ansible-inventory"), "-i", "inventory.example.yml", "--list"], cwd=ANSIBLE,
                            env=env, capture_output=True, text=True, timeout=120)
    hosts = json.loads(listed.stdout)["_meta"]["hostvars"]
    assert {h["rating_window"] for h in hosts.values()} == {"W01", "W02", "W03", "W04"}


def test_install_pi_stays_the_one_place_that_knows_the_platform_files():
    """The role runs install-pi.sh and names none of the files it installs; the paths the role uses
    afterwards are the script's own."""
    defaults = yaml.safe_load((ROLE / "defaults" / "main.yml").read_text())
    assert f"PREFIX={defaults['rating_prefix']}\n" in INSTALL_PI
    assert f"DATA_DIR={defaults['rating_data_dir']}\n" in INSTALL_PI
    assert f"install -m 644 \"$SOURCE/hardware/terminal.toml.example\" {defaults['rating_config']}" in INSTALL_PI
    platform_files = [p.name for d in ("systemd", "udev", "journald") for p in (ROOT / "hardware" / d).iterdir()]
    assert len(platform_files) >= 5
    for path in [*ROLE.rglob("*.yml"), ANSIBLE / "fleet.yml"]:
        text = path.read_text()
        for name in [*platform_files, "apt-get", "useradd", "python3 -m venv"]:
            assert name not in text, f"{path.relative_to(ROOT)} repeats install-pi.sh's {name}"


def tasks_in(data):
    for task in data if isinstance(data, list) else []:
        yield task
        for key in ("block", "rescue", "always"):
            yield from tasks_in(task.get(key))


def test_every_task_that_holds_an_enrollment_code_hides_its_output():
    holding = []
    for path in ROLE.rglob("tasks/*.yml"):
        for task in tasks_in(yaml.safe_load(path.read_text())):
            own = {k: v for k, v in task.items() if k not in ("block", "rescue", "always")}
            text = json.dumps(own)
            if "'enroll-code'" in text or "rating_issued.stdout" in text or "rating_code.code" in text:
                holding.append(task["name"])
                assert task.get("no_log") is True, f"{path.name}: {task['name']!r} needs no_log: true"
    assert len(holding) == 3, holding  # issuing, handing out, provisioning


def test_the_source_tarball_is_the_same_bytes_for_the_same_source(tmp_path):
    tree = tmp_path / "tree"
    shutil.copytree(ROOT, tree, ignore=shutil.ignore_patterns(".venv", "var", ".git", "site", "tests", "docs",
                                                              "bench", "__pycache__", "*.egg-info"))
    pack = [str(BIN / "python"), str(ANSIBLE / "pack_source.py"), "--source", str(tree)]

    def packed(name: str) -> dict:
        done = subprocess.run([*pack, "--out", str(tmp_path / name)], capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, done.stderr
        return json.loads(done.stdout)

    first = packed("a.tar.gz")
    assert first["changed"] and first["sha256"] == hashlib.sha256((tmp_path / "a.tar.gz").read_bytes()).hexdigest()
    os.utime(tree / "setup.cfg", (0, 0))  # another checkout: other times, same content
    (tree / "terminal" / "__pycache__").mkdir(exist_ok=True)
    (tree / "terminal" / "__pycache__" / "x.pyc").write_bytes(b"junk")
    again = packed("a.tar.gz")
    assert again == {**first, "changed": False}
    (tree / "hardware" / "ansible" / "README.md").write_text("edited\n")  # the controller's files: no reinstall
    assert packed("a.tar.gz")["sha256"] == first["sha256"]
    (tree / "terminal" / "__init__.py").write_text((tree / "terminal" / "__init__.py").read_text() + "\n# changed\n")
    changed = packed("a.tar.gz")
    assert changed["changed"] and changed["sha256"] != first["sha256"]
    names = subprocess.run(["tar", "tzf", str(tmp_path / "a.tar.gz")], capture_output=True, text=True,
                           check=True, timeout=60).stdout.split()
    assert "source/hardware/install-pi.sh" in names and "source/setup.cfg" in names
    assert not [n for n in names if re.search(r"__pycache__|\.pyc$|^source/(tests|docs|bench|hardware/ansible)/", n)]
