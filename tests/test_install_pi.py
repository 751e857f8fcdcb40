"""hardware/install-pi.sh run for real in a throwaway Debian Bookworm root made with debootstrap (the
base of Raspberry Pi OS Lite), with the Pi's boot partition files in place: the packages, files,
user, groups and units it leaves; then run again as an upgrade to a box-only terminal, keeping the
config. Slow (a few minutes, downloads from the Debian mirror and PyPI); make test runs it."""

import os
import shlex
import shutil
import subprocess
from pathlib import Path

import pytest

from conftest import ROOT

pytestmark = pytest.mark.slow
MIRROR = "http://deb.debian.org/debian"
BASE = "python3,python3-venv,systemd,udev,passwd,ca-certificates"
SKIP_COPY = shutil.ignore_patterns(".venv", "var", ".git", "__pycache__", "*.egg-info", "build", ".pytest_cache",
                                   ".hypothesis", "bench")


def in_root(root: Path, script: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a shell script inside the root, with /dev and /proc mounted in a private mount namespace
    (they vanish with it)."""
    command = (f"mount --bind /dev {root}/dev && mount -t proc proc {root}/proc && "
               f"exec chroot {root} /bin/bash -c {shlex.quote(script)}")
    return subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def pi_root(tmp_path_factory):
    if os.geteuid() != 0:
        pytest.fail("the install script's test needs root (debootstrap, chroot); CI runs as root")
    debootstrap = shutil.which("debootstrap")
    assert debootstrap, "debootstrap comes from scripts/install-system-deps.sh"
    root = tmp_path_factory.mktemp("pi") / "root"
    made = subprocess.run([debootstrap, "--variant=minbase", f"--include={BASE}", "bookworm", str(root), MIRROR],
                          capture_output=True, text=True, timeout=900)
    assert made.returncode == 0, made.stdout[-2000:] + made.stderr[-2000:]
    boot = root / "boot" / "firmware"  # what Raspberry Pi OS has and a plain Debian root lacks
    boot.mkdir(parents=True)
    (boot / "cmdline.txt").write_text("console=serial0,115200 console=tty1 root=PARTUUID=0a1b2c3d-02 rootfstype=ext4 "
                                      "fsck.repair=yes rootwait\n")
    (boot / "config.txt").write_text("[all]\narm_64bit=1\n")
    # This machine reaches the mirrors through its own certificate authorities: the root trusts them too.
    extra = list(Path("/usr/local/share/ca-certificates").glob("*.crt"))
    for cert in extra:
        shutil.copy(cert, root / "usr/local/share/ca-certificates" / cert.name)
    if extra:
        subprocess.run(["chroot", str(root), "update-ca-certificates"], capture_output=True, check=True, timeout=120)
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
