"""hardware/install-pi.sh run for real in a throwaway Debian Bookworm root made with debootstrap (the
base of Raspberry Pi OS Lite), with the Pi's boot partition files in place: the packages, files,
user, groups and units it leaves; then run again as an upgrade to a box-only terminal, keeping the
config. Slow (a few minutes, downloads from the Debian mirror and PyPI): marked fleet, so make
fleet-check runs it (its own line in .ci/run), beside the fleet playbook's installs."""

import configparser
import shutil

import pytest

from conftest import ROOT
from debian_root import in_root, make_root

pytestmark = [pytest.mark.slow, pytest.mark.fleet]
SKIP_COPY = shutil.ignore_patterns(".venv", "var", ".git", "__pycache__", "*.egg-info", "build", ".pytest_cache",
                                   ".hypothesis", "bench")


@pytest.fixture(scope="module")
def pi_root(tmp_path_factory):
    root = make_root(tmp_path_factory.mktemp("pi") / "root")
    shutil.copytree(ROOT, root / "src", ignore=SKIP_COPY)
    return root


def units_data_folders(root) -> set[str]:
    """The folders the installed units may write and wait for, as systemd reads them."""
    folders = set()
    for name in ("rating-kiosk.service", "rating-headless.service", "rating-sync.service"):
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.optionxform = str
        unit.read(root / "etc/systemd/system" / name)
        folders |= {unit["Service"]["ReadWritePaths"], unit["Unit"]["RequiresMountsFor"]}
    return folders


def test_install_then_upgrade_to_a_box_only_terminal(pi_root):
    """Installed by a technician whose shell has a hardened umask (077: sudo keeps the stricter of
    its own and the user's) into a data folder of its own (``--data-dir /srv/rating/``); then the
    Python environment is cut short as a power cut while it was made leaves it (a python, no pip);
    then upgraded as the docs say, the same script with no option, to a box-only terminal. Each of
    these broke a terminal: the venv was root's alone and the services, run as ``rating``, could not
    start; every later run failed on `No module named pip`; and the upgrade put the default data
    folder in the units while terminal.toml kept its own, so under ProtectSystem=strict the services
    could not write their database. Only two runs of the script: each is a minute of make test."""
    root = pi_root
    first = in_root(root, "umask 077 && /src/hardware/install-pi.sh --source /src --data-dir /srv/rating/")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    packages = in_root(root, "dpkg-query -W -f='${Package} ${Status}\\n' libmtdev1 libegl1 libgles2 alsa-utils "
                             "systemd-timesyncd python3-venv gcc")
    assert packages.stdout.count("install ok installed") == 7, packages.stdout
    user = in_root(root, "id -nG rating")
    assert set(user.stdout.split()) >= {"rating", "video", "render", "input", "dialout", "audio", "gpio"}
    data = root / "srv/rating"
    info = in_root(root, "stat -c '%U %a' /srv/rating")
    assert info.stdout.split() == ["rating", "750"] and (data / "kivy").is_dir()
    assert units_data_folders(root) == {"/srv/rating"}

    config = (root / "etc/rating-terminal/terminal.toml").read_text()
    assert 'data_dir = "/srv/rating"' in config
    assert (root / "etc/udev/rules.d/70-rating-box.rules").read_text() == \
        (ROOT / "hardware/udev/70-rating-box.rules").read_text()
    assert "SystemMaxUse=" in (root / "etc/systemd/journald.conf.d/rating-terminal.conf").read_text()
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "rating-kiosk.service").is_symlink() and (wants / "rating-sync.service").is_symlink()
    assert not (wants / "rating-headless.service").exists()
    assert "consoleblank=0" in (root / "boot/firmware/cmdline.txt").read_text()
    assert "dtoverlay=vc4-kms-v3d" in (root / "boot/firmware/config.txt").read_text()

    # The installed software runs as its own user, finds its font and reads the installed config.
    tool = in_root(root, "export RATING_TERMINAL_CONFIG=/etc/rating-terminal/terminal.toml && "
                         "runuser -u rating -- /opt/rating-terminal/bin/rating-terminal --version && "
                         "runuser -u rating -- /opt/rating-terminal/bin/python -c "
                         "'from terminal import doctor; print(doctor.check_font().status)'"
                         " && runuser -u rating -- /opt/rating-terminal/bin/rating-sync --version && "
                         "runuser -u rating -- cat /etc/rating-terminal/terminal.toml >/dev/null")
    assert tool.returncode == 0, tool.stderr
    assert "rating-terminal 0.1.0" in tool.stdout and "\npass\n" in tool.stdout
    verify = in_root(root, "systemd-analyze verify --man=no /etc/systemd/system/rating-kiosk.service "
                           "/etc/systemd/system/rating-sync.service /etc/systemd/system/rating-headless.service")
    assert verify.returncode == 0, verify.stderr

    # Cut short while the environment was made (venv installs pip last), then upgraded in place
    # as a box-only terminal, with no option: the technician's config and data folder are kept.
    cut = in_root(root, "rm -rf /opt/rating-terminal/lib/python3*/site-packages/pip*")
    assert cut.returncode == 0 and in_root(root, "/opt/rating-terminal/bin/python -m pip --version").returncode != 0
    (root / "etc/rating-terminal/terminal.toml").write_text(config.replace('staff_no = ""', 'staff_no = "SZ0101"'))
    second = in_root(root, "/src/hardware/install-pi.sh --source /src --headless")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert 'staff_no = "SZ0101"' in (root / "etc/rating-terminal/terminal.toml").read_text()
    assert (wants / "rating-headless.service").is_symlink() and not (wants / "rating-kiosk.service").exists()
    assert (wants / "rating-sync.service").is_symlink()
    assert units_data_folders(root) == {"/srv/rating"}
    assert in_root(root, "/opt/rating-terminal/bin/python -m pip --version").returncode == 0

    # Another data folder than the config's is refused before anything changes: the ratings are there.
    other = in_root(root, "/src/hardware/install-pi.sh --source /src --headless --data-dir /var/lib/rating-terminal")
    assert other.returncode == 2 and "keeps this terminal's data" in other.stderr, other.stderr
    assert "1/5" not in other.stdout and units_data_folders(root) == {"/srv/rating"}
