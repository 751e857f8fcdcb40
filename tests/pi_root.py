"""The Raspberry Pi image's root (hardware/image/build.sh), run on this machine through qemu-user
for `make pi-check`: a copy-on-write overlay over it, so the checks' writes (an installed Xvfb, the
terminal's data) never reach the image's root, in a mount namespace of its own with /dev, /proc,
/sys, a /run and a /tmp; /check in the root is a folder of the host's. The namespace is held by one
process reading its stdin: when the test run ends, even killed, the pipe closes and every mount
goes with it. Commands enter it with nsenter and chroot, as the root's own users."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

HOLD = r"""
set -e
m=$1
mount -t overlay overlay -o "lowerdir=$2,upperdir=$3,workdir=$4" "$m"
mount --rbind /dev "$m/dev"; mount -t proc proc "$m/proc"; mount --rbind /sys "$m/sys"
mount -t tmpfs -o mode=755 tmpfs "$m/run"; mount -t tmpfs -o mode=1777 tmpfs "$m/tmp"
mkdir -p "$m/run/systemd/resolve" "$m/check"
cat /etc/resolv.conf > "$m/run/systemd/resolve/stub-resolv.conf"
mount --bind "$5" "$m/check"
echo ready
exec cat > /dev/null
"""
PATH = "/opt/rating-terminal/bin:/usr/sbin:/usr/bin:/sbin:/bin"


class PiRoot:
    def __init__(self, root: Path, work: Path):
        if not (root / "opt/rating-terminal/bin/rating-terminal").exists():
            raise RuntimeError(f"{root} is no built image root: run make pi-image first")
        subprocess.run([str(Path(__file__).parent.parent / "hardware/image/binfmt.sh")], check=True, timeout=60)
        shutil.rmtree(work, ignore_errors=True)
        self.merged, self.share = work / "merged", work / "share"
        for d in ("merged", "upper", "work", "share"):
            (work / d).mkdir(parents=True)
        self.share.chmod(0o755)
        self.holder = subprocess.Popen(
            ["unshare", "--mount", "--propagation", "private", "sh", "-c", HOLD, "hold", str(self.merged), str(root),
             str(work / "upper"), str(work / "work"), str(self.share)],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        ready = self.holder.stdout.readline()
        if ready.strip() != "ready":
            self.holder.kill()
            raise RuntimeError(f"could not mount the image's root: {self.holder.stderr.read()}")
        self.files = Path(f"/proc/{self.holder.pid}/root{self.merged}")  # the overlay, seen from here
        self.uid, self.gid = self._id("passwd", "rating"), self._id("group", "rating")
        self.groups = ",".join(str(self._id("group", g)) for g in ("video", "render", "input", "dialout", "audio",
                                                                    "gpio"))

    def _id(self, table: str, name: str) -> int:
        for line in (self.files / "etc" / table).read_text().splitlines():
            fields = line.split(":")
            if fields[0] == name:
                return int(fields[2])
        raise RuntimeError(f"no {name} in the root's /etc/{table}")

    def command(self, *args: str, user: bool = True) -> list[str]:
        """The command line that runs ``args`` in the root: as the terminal's user ``rating`` with its
        unit's groups (numbers, so nothing is looked up on the host), or as root."""
        who = [f"--userspec={self.uid}:{self.gid}", f"--groups={self.groups}"] if user else []
        return ["nsenter", f"--mount=/proc/{self.holder.pid}/ns/mnt", "--", "chroot", *who, str(self.merged), *args]

    def env(self, **extra: str) -> dict:
        home = "/var/lib/rating-terminal"
        return {"PATH": PATH, "HOME": home, "LANG": "C.UTF-8", "PYTHONUNBUFFERED": "1",
                "RATING_TERMINAL_CONFIG": "/etc/rating-terminal/terminal.toml", **extra}

    def run(self, *args: str, user: bool = True, timeout: float = 300, env: dict | None = None,
            **kwargs) -> subprocess.CompletedProcess:
        return subprocess.run(self.command(*args, user=user), env=env or self.env(), capture_output=True,
                              text=True, timeout=timeout, **kwargs)

    def popen(self, *args: str, user: bool = True, env: dict | None = None, **kwargs) -> subprocess.Popen:
        return subprocess.Popen(self.command(*args, user=user), env=env or self.env(), **kwargs)

    def close(self) -> None:
        self.holder.stdin.close()
        try:
            self.holder.wait(30)
        except subprocess.TimeoutExpired:
            self.holder.kill()
            self.holder.wait()
