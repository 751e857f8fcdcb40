#!/usr/bin/env bash
# Make sure this machine runs arm64 programs (the Pi's root) through qemu-user: binfmt_misc mounted,
# qemu-aarch64 registered with the F flag (the interpreter opened now, so it works inside a chroot
# that lacks it). Nothing to do on an arm64 host. Needs root; idempotent.
set -euo pipefail
case "$(uname -m)" in aarch64|arm64) exit 0 ;; esac
BINFMT=/proc/sys/fs/binfmt_misc
[ -e "$BINFMT/register" ] || mount -t binfmt_misc binfmt_misc "$BINFMT"
if [ ! -e "$BINFMT/qemu-aarch64" ]; then
  command -v update-binfmts >/dev/null && [ -e /usr/share/binfmts/qemu-aarch64 ] ||
    { echo "binfmt: qemu-user-static and binfmt-support missing: run scripts/install-system-deps.sh" >&2; exit 1; }
  update-binfmts --enable qemu-aarch64
fi
grep -qx enabled "$BINFMT/qemu-aarch64" || echo 1 > "$BINFMT/qemu-aarch64"
grep -q '^flags: .*F' "$BINFMT/qemu-aarch64" ||
  { echo "binfmt: qemu-aarch64 is registered without the F flag: arm64 programs will not run in a chroot" >&2; exit 1; }
