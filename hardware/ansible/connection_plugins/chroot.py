"""A chroot connection for the fleet playbook: an SD card's root file system (or a debootstrap root,
as make fleet-check uses) is a host like any terminal reached over SSH.

It does what community.general.chroot does, in the few lines this project needs, because that
collection comes from Ansible Galaxy and ansible-core alone has no chroot connection. One addition:
each command runs in a private mount namespace with the controller's /dev and a fresh /proc mounted
in the root (apt, dpkg, pip and udev's tools need them), so nothing stays mounted when a command
ends or the controller is killed. Run the controller as root.
"""

from __future__ import annotations

DOCUMENTATION = """
    name: chroot
    short_description: run tasks inside a chroot (an image's root file system) on the controller
    description:
        - Runs every command with chroot(8) in the root named by the inventory host (or ansible_host),
          in a private mount namespace (unshare -m) with /dev bound and /proc mounted, which vanish with it.
        - Files go in and out through the root's own dd, so a symbolic link in the root never leads out of it.
    author: window-rating-terminal project
    options:
        remote_addr:
            description: the root folder (an absolute path on the controller)
            default: inventory_hostname
            type: string
            vars:
                - name: inventory_hostname
                - name: ansible_host
        executable:
            description: the shell inside the root
            default: /bin/sh
            type: string
            vars:
                - name: ansible_executable
        mounts:
            description: bind /dev (with /dev/pts) and mount /proc in the root for each command (private to that command)
            default: true
            type: boolean
            vars:
                - name: ansible_chroot_mounts
        command_timeout:
            description: seconds one command may run before it is killed (an apt or pip install included)
            default: 1800
            type: integer
            vars:
                - name: ansible_chroot_command_timeout
    extends_documentation_fragment:
        - connection_pipelining
"""

import os
import shlex
import shutil
import subprocess

from ansible.errors import AnsibleConnectionFailure, AnsibleError, AnsibleFileNotFound
from ansible.module_utils.common.text.converters import to_bytes, to_text
from ansible.plugins.connection import ConnectionBase
from ansible.utils.display import Display

display = Display()
BUFSIZE = 65536


class Connection(ConnectionBase):
    transport = "chroot"
    has_pipelining = True
    has_tty = False
    default_user = "root"

    def _connect(self):
        root = self.get_option("remote_addr")
        if not os.path.isabs(root):
            raise AnsibleConnectionFailure(f"chroot: {root!r} is not an absolute path")
        if not os.path.isdir(os.path.join(root, "dev")) or not os.path.exists(os.path.join(root, "bin", "sh")):
            raise AnsibleConnectionFailure(f"chroot: {root} is not a root file system (no /dev or /bin/sh)")
        for tool in ("chroot", "unshare", "mount"):
            if not shutil.which(tool):
                raise AnsibleConnectionFailure(f"chroot: {tool} not found on the controller (util-linux, coreutils)")
        if os.geteuid() != 0:
            raise AnsibleConnectionFailure("chroot: the controller must run as root to enter a chroot")
        self.root = root
        self._connected = True
        display.vvv(f"ENTER CHROOT {root}", host=root)
        return self

    def _argv(self, cmd: str) -> list[str]:
        inner = ["chroot", self.root, self.get_option("executable"), "-c", cmd]
        if not self.get_option("mounts"):
            return inner
        root = shlex.quote(self.root)
        mount = (f"mount --rbind /dev {root}/dev && mount -t proc proc {root}/proc && "
                 f"exec {shlex.join(inner)}")
        return ["unshare", "--mount", "--propagation", "private", "/bin/sh", "-c", mount]

    def _run(self, cmd: str, in_data: bytes | None = None, stdin=None) -> tuple[int, bytes, bytes]:
        display.vvv(f"EXEC {cmd}", host=self.root)
        timeout = self.get_option("command_timeout")
        proc = subprocess.Popen(self._argv(cmd), stdin=stdin if stdin is not None else subprocess.PIPE,
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, start_new_session=True)
        try:
            stdout, stderr = proc.communicate(in_data, timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, 9)
            proc.communicate()
            raise AnsibleError(f"chroot {self.root}: a command ran longer than {timeout} s and was killed") from None
        return proc.returncode, stdout, stderr

    def exec_command(self, cmd, in_data=None, sudoable=True):
        super().exec_command(cmd, in_data=in_data, sudoable=sudoable)
        return self._run(to_text(cmd), in_data)

    def put_file(self, in_path, out_path):
        super().put_file(in_path, out_path)
        display.vvv(f"PUT {in_path} TO {out_path}", host=self.root)
        if not os.path.exists(to_bytes(in_path)):
            raise AnsibleFileNotFound(f"file or module does not exist: {in_path}")
        with open(to_bytes(in_path), "rb") as source:
            rc, _, stderr = self._run(f"dd of={shlex.quote(out_path)} bs={BUFSIZE} status=none", stdin=source)
        if rc != 0:
            raise AnsibleError(f"chroot: failed to put {in_path} at {out_path}: {to_text(stderr)}")

    def fetch_file(self, in_path, out_path):
        super().fetch_file(in_path, out_path)
        display.vvv(f"FETCH {in_path} TO {out_path}", host=self.root)
        rc, stdout, stderr = self._run(f"dd if={shlex.quote(in_path)} bs={BUFSIZE} status=none")
        if rc != 0:
            raise AnsibleError(f"chroot: failed to fetch {in_path}: {to_text(stderr)}")
        with open(to_bytes(out_path), "wb") as target:
            target.write(stdout)

    def close(self):
        self._connected = False
