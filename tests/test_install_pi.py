"""hardware/install-pi.sh run for real in a throwaway Debian Bookworm root made with debootstrap (the
base of Raspberry Pi OS Lite), with the Pi's boot partition files in place: the packages, files,
user, groups and units it leaves; then run again as an upgrade to a box-only terminal, keeping the
config. Slow (a few minutes, downloads from the Debian mirror and PyPI); make test runs it."""

import configparser
import shutil

import pytest

from conftest import ROOT
from debian_root import in_root, make_root

pytestmark = pytest.mark.slow
SKIP_COPY = shutil.ignore_patterns(".venv", "var", ".git", "__pycache__", "*.egg-info", "build", ".pytest_cache",
                                   ".hypothesis", "bench")


@pytest.fixture(scope="module")
def pi_root(tmp_path_factory):
    root = make_root(tmp_path_factory.mktemp("pi") / "root")
    shutil.copytree(ROOT, root / "src", ignore=SKIP_COPY)
    return root


def test_install_then_upgrade_to_a_box_only_terminal(pi_root):
    root = pi_root
    first = in_root(root, "/src/hardware/install-pi.sh --source /src")
    assert first.returncode == 0, first.stdout[-3000:] + first.stderr[-3000:]

    packages = in_root(root, "dpkg-query -W -f='${Package} ${Status}\\n' libmtdev1 libegl1 libgles2 alsa-utils "
                             "systemd-timesyncd python3-venv gcc")
    assert packages.stdout.count("install ok installed") == 7, packages.stdout
    user = in_root(root, "id -nG rating")
    assert set(user.stdout.split()) >= {"rating", "video", "render", "input", "dialout", "audio", "gpio"}
    data = root / "var/lib/rating-terminal"
    info = in_root(root, "stat -c '%U %a' /var/lib/rating-terminal")
    assert info.stdout.split() == ["rating", "750"] and (data / "kivy").is_dir()

    config = (root / "etc/rating-terminal/terminal.toml").read_text()
    assert 'data_dir = "/var/lib/rating-terminal"' in config
    assert (root / "etc/udev/rules.d/70-rating-box.rules").read_text() == \
        (ROOT / "hardware/udev/70-rating-box.rules").read_text()
    assert "SystemMaxUse=" in (root / "etc/systemd/journald.conf.d/rating-terminal.conf").read_text()
    wants = root / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "rating-kiosk.service").is_symlink() and (wants / "rating-sync.service").is_symlink()
    assert not (wants / "rating-headless.service").exists()
    assert "consoleblank=0" in (root / "boot/firmware/cmdline.txt").read_text()
    assert "dtoverlay=vc4-kms-v3d" in (root / "boot/firmware/config.txt").read_text()

    # The installed software runs, finds its font and reads the installed config.
    tool = in_root(root, "RATING_TERMINAL_CONFIG=/etc/rating-terminal/terminal.toml "
                         "/opt/rating-terminal/bin/rating-terminal --version && "
                         "/opt/rating-terminal/bin/python -c 'from terminal import doctor; print(doctor.check_font().status)'"
                         " && /opt/rating-terminal/bin/rating-sync --version")
    assert tool.returncode == 0, tool.stderr
    assert "rating-terminal 0.1.0" in tool.stdout and "\npass\n" in tool.stdout
    verify = in_root(root, "systemd-analyze verify --man=no /etc/systemd/system/rating-kiosk.service "
                           "/etc/systemd/system/rating-sync.service /etc/systemd/system/rating-headless.service")
    assert verify.returncode == 0, verify.stderr

    # Again, as a box-only terminal: an upgrade in place keeps the technician's config.
    (root / "etc/rating-terminal/terminal.toml").write_text(config.replace('staff_no = ""', 'staff_no = "SZ0101"'))
    second = in_root(root, "/src/hardware/install-pi.sh --source /src --headless")
    assert second.returncode == 0, second.stdout[-3000:] + second.stderr[-3000:]
    assert 'staff_no = "SZ0101"' in (root / "etc/rating-terminal/terminal.toml").read_text()
    assert (wants / "rating-headless.service").is_symlink() and not (wants / "rating-kiosk.service").exists()
    assert (wants / "rating-sync.service").is_symlink()


def units_data_folders(root) -> set[str]:
    """The folders the installed units may write and wait for, as systemd reads them."""
    folders = set()
    for name in ("rating-kiosk.service", "rating-headless.service", "rating-sync.service"):
        unit = configparser.ConfigParser(strict=False, interpolation=None)
        unit.optionxform = str
        unit.read(root / "etc/systemd/system" / name)
        folders |= {unit["Service"]["ReadWritePaths"], unit["Unit"]["RequiresMountsFor"]}
    return folders


def test_an_upgrade_keeps_the_units_on_the_configured_data_folder(pi_root):
    """A terminal installed with --data-dir and upgraded as the docs say (the same script, no
    option): the units kept the default folder while terminal.toml kept its own, so under
    ProtectSystem=strict the services could not write their database. Another --data-dir than
    the config's is refused before anything changes: the pending ratings are in the config's."""
    root = pi_root
    config_path = root / "etc/rating-terminal/terminal.toml"
    before = config_path.read_text() if config_path.exists() else None
    config_path.parent.mkdir(parents=True, exist_ok=True)  # as `install-pi.sh --data-dir /srv/rating/` left it
    config_path.write_text((ROOT / "hardware/terminal.toml.example").read_text()
                           .replace('data_dir = "/var/lib/rating-terminal"', 'data_dir = "/srv/rating/"'))
    try:
        upgrade = in_root(root, "/src/hardware/install-pi.sh --source /src --headless")
        assert upgrade.returncode == 0, upgrade.stdout[-3000:] + upgrade.stderr[-3000:]
        assert units_data_folders(root) == {"/srv/rating"}
        assert in_root(root, "stat -c '%U %a' /srv/rating").stdout.split() == ["rating", "750"]

        other = in_root(root, "/src/hardware/install-pi.sh --source /src --headless --data-dir /var/lib/rating-terminal")
        assert other.returncode == 2 and "keeps this terminal's data" in other.stderr, other.stderr
        assert "1/5" not in other.stdout and units_data_folders(root) == {"/srv/rating"}
        same = in_root(root, "/src/hardware/install-pi.sh --source /src --headless --data-dir /srv/rating")
        assert same.returncode == 0 and units_data_folders(root) == {"/srv/rating"}, same.stderr[-3000:]
    finally:
        if before is None:
            config_path.unlink()
        else:
            config_path.write_text(before)


def test_a_run_cut_short_while_it_made_the_environment_is_finished_by_the_next(pi_root):
    """venv makes bin/python first and pip last (ensurepip, its slow part): a run stopped there (a
    power cut, a dropped SSH session) left a python with no pip, and every later run failed on
    `No module named pip`. `venv --without-pip` leaves exactly that state."""
    root = pi_root
    cut = in_root(root, "rm -rf /opt/rating-terminal && python3 -m venv --without-pip /opt/rating-terminal")
    assert cut.returncode == 0, cut.stderr
    again = in_root(root, "/src/hardware/install-pi.sh --source /src --headless")
    assert again.returncode == 0, again.stdout[-3000:] + again.stderr[-3000:]
    tool = in_root(root, "/opt/rating-terminal/bin/rating-terminal --version && /opt/rating-terminal/bin/python -m pip --version")
    assert tool.returncode == 0 and "rating-terminal 0.1.0" in tool.stdout, tool.stderr


def test_a_technicians_strict_umask_leaves_a_terminal_its_user_can_run(pi_root):
    """Hardened hosts set umask 027 or 077, and sudo keeps the stricter of its own and the user's:
    the venv and pip's files were made root's alone, and the services, run as `rating`, could not
    start their own program."""
    root = pi_root
    strict = in_root(root, "rm -rf /opt/rating-terminal && umask 077 && "
                           "/src/hardware/install-pi.sh --source /src --headless")
    assert strict.returncode == 0, strict.stdout[-3000:] + strict.stderr[-3000:]
    as_rating = in_root(root, "runuser -u rating -- /opt/rating-terminal/bin/rating-terminal --version && "
                              "runuser -u rating -- /opt/rating-terminal/bin/rating-sync --version && "
                              "runuser -u rating -- cat /etc/rating-terminal/terminal.toml >/dev/null")
    assert as_rating.returncode == 0, as_rating.stderr
    assert "rating-terminal 0.1.0" in as_rating.stdout
