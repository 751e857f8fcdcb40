#!/usr/bin/env bash
# Debian packages the kiosk and its tests need on a machine with no display: a virtual X server,
# Mesa's software OpenGL for Kivy, xdotool to inject real pointer events, mtdev for Kivy's input,
# alsa-utils (aplay) for a box-only terminal's voice prompts; for the central server's tests, a
# PostgreSQL server (run privately by scripts/postgres.py), nginx (run privately as the reverse
# proxy of the scale-out test, two app servers behind it) and Chromium with its WebDriver for pages
# rendered in a real headless browser; debootstrap for the Raspberry Pi install script's test; zbar-tools
# (zbarimg) to read the QR codes the kiosk draws, as a phone would; for make pi-image and pi-check,
# mmdebstrap, qemu-user-static with binfmt-support (arm64 programs run here), mtools, dosfstools and
# fdisk (the card image made without loop devices).
# Installs them when run as root and they are missing; otherwise says what to install.
set -euo pipefail
packages=(xvfb xauth xdotool libgl1 libgl1-mesa-dri libegl1 libmtdev1 alsa-utils postgresql nginx chromium chromium-driver debootstrap zbar-tools
          mmdebstrap qemu-user-static binfmt-support arch-test mtools dosfstools fdisk e2fsprogs)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
if ! command -v apt-get >/dev/null; then
  echo "install-system-deps: not a Debian system; please install the equivalents of: ${missing[*]}" >&2
  exit 1
fi
if [ "$(id -u)" -ne 0 ]; then
  echo "install-system-deps: missing Debian packages: ${missing[*]}" >&2
  echo "  run: sudo apt-get install -y ${missing[*]}" >&2
  exit 1
fi
echo "install-system-deps: installing ${missing[*]}"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
