"""The terminal's platform files: systemd units that systemd itself accepts, with what a kiosk on a
Pi needs, and Kivy settings from the unit's environment reaching Kivy."""

import configparser
import os
import shutil
import subprocess
import sys

import pytest

from conftest import BIN, ROOT

UNITS = ROOT / "hardware" / "systemd"
INSTALLED_BIN = "/opt/rating-terminal/bin/"


def unit(name: str) -> configparser.ConfigParser:
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str
    parser.read(UNITS / name)
    return parser


def test_every_unit_verifies(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze comes with systemd"
    names = sorted(p.name for p in UNITS.glob("*.service"))
    assert names == ["rating-headless.service", "rating-kiosk.service", "rating-sync.service"]
    for name in names:
        (tmp_path / name).write_text((UNITS / name).read_text().replace(INSTALLED_BIN, f"{BIN}/"))
    done = subprocess.run([analyze, "verify", "--man=no", *[str(tmp_path / n) for n in names]],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr


@pytest.mark.parametrize("name, groups", [
    ("rating-kiosk.service", {"video", "render", "input"}),
    ("rating-headless.service", {"input", "dialout"}),
    ("rating-sync.service", set()),
])
def test_units_are_watched_run_as_the_terminal_user_and_write_only_the_data_folder(name, groups):
    service = unit(name)["Service"]
    assert service["Type"] == "notify" and int(service["WatchdogSec"]) > 0 and service["Restart"] == "always"
    assert service["User"] == "rating" and groups <= set(service.get("SupplementaryGroups", "").split())
    assert service["ProtectSystem"] == "strict" and service["ReadWritePaths"] == "/var/lib/rating-terminal"
    assert unit(name)["Unit"]["RequiresMountsFor"] == "/var/lib/rating-terminal"
    assert service["ExecStart"].startswith(INSTALLED_BIN)


def test_kiosk_unit_sets_kivy_through_the_environment_and_kivy_takes_it(tmp_path):
    lines = (UNITS / "rating-kiosk.service").read_text().splitlines()
    env = dict(line.split("=", 2)[1:] for line in lines if line.startswith("Environment="))
    assert env["KIVY_HOME"] == "/var/lib/rating-terminal/kivy"
    # the window provider on a Pi, said outright: Kivy's sdl2 on the wheel's SDL2, drawing through KMS/DRM
    assert (env["KIVY_WINDOW"], env["SDL_VIDEODRIVER"]) == ("sdl2", "kmsdrm")
    assert (env["KCFG_GRAPHICS_FULLSCREEN"], env["KCFG_GRAPHICS_SHOW_CURSOR"],
            env["KCFG_GRAPHICS_ALLOW_SCREENSAVER"]) == ("auto", "0", "0")
    # The unit's settings win over the config file's defaults (a windowed demo config here).
    probe = ("from terminal import config, kiosk; kiosk.prepare_kivy(config.load(None)); "
             "from kivy.config import Config as K; "
             "print(K.get('graphics','fullscreen'), K.get('graphics','show_cursor'), "
             "K.get('graphics','allow_screensaver'), sorted(K.options('input')))")
    run_env = {**os.environ, **{k: v for k, v in env.items() if k.startswith("KCFG_")},
               "KIVY_HOME": str(tmp_path / "kivy")}
    run_env.pop("RATING_TERMINAL_CONFIG", None)  # the embedded defaults: a windowed demo
    done = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, env=run_env,
                          cwd=tmp_path)
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split("\n")[-2] == "auto 0 0 ['mouse']"  # and exactly one input provider
    assert env["KCFG_INPUT_MOUSE"] == "mouse,disable_multitouch"
    other = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60, cwd=tmp_path,
                           env={**run_env, "KCFG_INPUT_MOUSE": "", "KCFG_INPUT_TOUCHSCREEN": "mtdev,/dev/input/event3"})
    assert other.stdout.split("\n")[-2] == "auto 0 0 ['touchscreen']"  # still one
    without = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, timeout=60,
                             env={k: v for k, v in run_env.items() if not k.startswith("KCFG_")}, cwd=tmp_path)
    assert without.stdout.split("\n")[-2] == "0 1 0 ['mouse']"  # the demo config: a window with a cursor


def test_journald_limit_and_example_config_are_valid():
    journal = configparser.ConfigParser()
    journal.read(ROOT / "hardware" / "journald" / "rating-terminal.conf")
    assert journal["Journal"]["SystemMaxUse"] == "64M" and journal["Journal"]["RuntimeMaxUse"] == "16M"
    from terminal import config
    example = config.load(ROOT / "hardware" / "terminal.toml.example")
    assert str(example.terminal.data_dir) == "/var/lib/rating-terminal" and example.box.port == "/dev/rating-box"


@pytest.mark.parametrize("name", ["rating-kiosk.service", "rating-headless.service"])
def test_a_spent_provision_file_is_deleted_by_the_next_start_and_only_once_enrolled(name, tmp_path):
    """The service cannot write the boot partition; its root ExecStartPre deletes provision.toml
    once the terminal holds credentials, and leaves it while the code is still to be used."""
    command = unit(name)["Service"]["ExecStartPre"]
    assert command.startswith("+/bin/sh -c ")  # "+": run as root, outside the service's sandbox
    data, boot = tmp_path / "data", tmp_path / "boot"
    data.mkdir(), boot.mkdir()
    script = command[len("+/bin/sh -c "):].strip("'")
    script = script.replace("/var/lib/rating-terminal", str(data)).replace("/boot/firmware", str(boot))
    provision = boot / "provision.toml"
    provision.write_text('server = "https://pj.example.gov.cn"\ncode = "ABCD-EFGH-JKLM"\n')
    for credentials in (None, "", '{"terminal_id": "T-1"}'):
        if credentials is not None:
            (data / "credentials.json").write_text(credentials)
        done = subprocess.run(["/bin/sh", "-c", script], capture_output=True, text=True, timeout=30)
        assert done.returncode == 0, done.stderr  # never fails the start, whatever is there
        assert provision.exists() == (credentials != '{"terminal_id": "T-1"}'), credentials
