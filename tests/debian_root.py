"""Throwaway Debian Bookworm roots (the base of Raspberry Pi OS Lite) made with debootstrap, with the
Pi's boot partition files in place: what tests/test_install_pi.py installs into with install-pi.sh and
tests/test_fleet.py with the fleet playbook. Needs root (debootstrap, chroot); CI runs as root."""

from __future__ import annotations

import os
import shlex
import shutil
import subprocess
from pathlib import Path

MIRROR = "http://deb.debian.org/debian"
BASE = "python3,python3-venv,systemd,udev,passwd,ca-certificates"


def make_root(root: Path, timeout: float = 900) -> Path:
    """debootstrap a minimal Bookworm root at ``root``, with /boot/firmware's cmdline.txt and
    config.txt and this machine's own certificate authorities; fails (never skips) without root."""
    assert os.geteuid() == 0, "a Debian root needs root (debootstrap, chroot); CI runs as root"
    debootstrap = shutil.which("debootstrap")
    assert debootstrap, "debootstrap comes from scripts/install-system-deps.sh"
    made = subprocess.run([debootstrap, "--variant=minbase", f"--include={BASE}", "bookworm", str(root), MIRROR],
                          capture_output=True, text=True, timeout=timeout)
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
    return root


def copy_root(source: Path, target: Path, timeout: float = 300) -> Path:
    """A second root, the same as the first (cp -a keeps owners, modes, links and device nodes):
    seconds instead of another debootstrap."""
    subprocess.run(["cp", "-a", str(source), str(target)], check=True, capture_output=True, timeout=timeout)
    return target


def in_root(root: Path, script: str, timeout: float = 900) -> subprocess.CompletedProcess:
    """Run a shell script inside the root, with /dev and /proc mounted in a private mount namespace
    (they vanish with it)."""
    command = (f"mount --bind /dev {root}/dev && mount -t proc proc {root}/proc && "
               f"exec chroot {root} /bin/bash -c {shlex.quote(script)}")
    return subprocess.run(["unshare", "-m", "sh", "-c", command], capture_output=True, text=True, timeout=timeout)
