#!/usr/bin/env bash
# Install a window rating terminal on Raspberry Pi OS Lite (Bookworm, 64-bit), booted to console.
#
#   sudo hardware/install-pi.sh [--headless] [--source DIR] [--data-dir DIR]
#
# --data-dir defaults to the installed terminal.toml's data_dir (else /var/lib/rating-terminal); one
# that differs from it is refused: the terminal's ratings and credentials are there.
#
# What it does, and nothing else:
#   1. installs the Debian packages the kiosk needs (Python, Mesa/EGL, mtdev, ALSA, timesyncd, and
#      a C compiler for evdev, which PyPI ships as source only);
#   2. creates the system user `rating` (groups video, render, input, dialout, audio, gpio) and the
#      data folder /var/lib/rating-terminal (mode 750), the one place the terminal writes;
#   3. makes the Python environment /opt/rating-terminal from the source folder (this checkout);
#   4. installs /etc/rating-terminal/terminal.toml (kept if present), the udev rule, the systemd
#      units, a journald size limit, and enables rating-kiosk (or, with --headless,
#      rating-headless) and rating-sync;
#   5. turns off console blanking (consoleblank=0 in /boot/firmware/cmdline.txt) and checks the KMS
#      overlay is on (dtoverlay=vc4-kms-v3d in /boot/firmware/config.txt); on Debian's own
#      raspi-firmware (no Raspberry Pi OS), consoleblank=0 goes to /etc/default/raspi-extra-cmdline.
# Running it again upgrades in place: the data folder, the config and the credentials are kept;
# the terminal's database migrates itself when the services start again.
set -euo pipefail
# What this makes is read and run by the user rating: a hardened root's umask (027, 077; sudo keeps
# the stricter of its own and the caller's) made the venv root's alone and the services could not start.
umask 022

SOURCE="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
DATA_DIR=/var/lib/rating-terminal
GIVEN_DATA_DIR=
PREFIX=/opt/rating-terminal
MODE=kiosk
while [ $# -gt 0 ]; do
  case "$1" in
    --headless) MODE=headless ;;
    --source) SOURCE="$2"; shift ;;
    --data-dir) GIVEN_DATA_DIR="$2"; shift ;;
    -h|--help) sed -n '2,22p' "$0"; exit 0 ;;
    *) echo "install-pi: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || { echo "install-pi: run as root (sudo)" >&2; exit 1; }
[ -f "$SOURCE/setup.cfg" ] || { echo "install-pi: $SOURCE is not the project's source folder" >&2; exit 2; }
say() { echo "install-pi: $*"; }

# The units' data folder is the config's: an upgrade without --data-dir (or with another) that put
# the default in the units while terminal.toml kept its own left the services no way to write their
# database (ProtectSystem=strict), and a new empty folder beside the one holding the pending ratings.
CONFIG=/etc/rating-terminal/terminal.toml
configured=
if [ -f "$CONFIG" ]; then
  configured=$(python3 -c 'import sys, tomllib
print(tomllib.load(open(sys.argv[1], "rb")).get("terminal", {}).get("data_dir", ""))' "$CONFIG") ||
    { echo "install-pi: $CONFIG cannot be read as TOML: correct it first" >&2; exit 2; }
  [ -z "$configured" ] || configured=$(realpath -ms -- "$configured")
fi
[ -z "$GIVEN_DATA_DIR" ] || GIVEN_DATA_DIR=$(realpath -ms -- "$GIVEN_DATA_DIR")
if [ -n "$configured" ] && [ -n "$GIVEN_DATA_DIR" ] && [ "$configured" != "$GIVEN_DATA_DIR" ]; then
  echo "install-pi: $CONFIG keeps this terminal's data (ratings, credentials) in $configured, not $GIVEN_DATA_DIR." >&2
  echo "install-pi: to move it: stop the rating units, move the folder, set data_dir, then run again." >&2
  exit 2
fi
DATA_DIR=${GIVEN_DATA_DIR:-${configured:-$DATA_DIR}}

say "1/5 Debian packages"
export DEBIAN_FRONTEND=noninteractive
apt-get update -qq
apt-get install -y -qq --no-install-recommends \
  python3 python3-venv python3-pip python3-dev gcc linux-libc-dev ca-certificates \
  libgl1 libegl1 libgles2 libgbm1 libdrm2 libmtdev1 libinput10 \
  alsa-utils systemd-timesyncd udev >/dev/null

say "2/5 user rating and $DATA_DIR"
for group in video render input dialout audio gpio; do
  getent group "$group" >/dev/null || groupadd --system "$group"
done
if ! id rating >/dev/null 2>&1; then
  useradd --system --home-dir "$DATA_DIR" --no-create-home --shell /usr/sbin/nologin \
    --comment "window rating terminal" rating
fi
usermod -a -G video,render,input,dialout,audio,gpio rating
install -d -m 750 -o rating -g rating "$DATA_DIR" "$DATA_DIR/kivy"

say "3/5 Python environment $PREFIX"
# A venv cut short while it was made (ensurepip is the slow part) has a python and no pip, and every
# later run failed on it: made again over itself (what is installed in it is kept).
"$PREFIX/bin/python" -m pip --version >/dev/null 2>&1 || python3 -m venv "$PREFIX"
"$PREFIX/bin/python" -m pip install --quiet --upgrade pip
"$PREFIX/bin/python" -m pip install --quiet "$SOURCE[kiosk,hw,sync]"
install -m 644 "$SOURCE/README.md" "$PREFIX/README.md"

say "4/5 config, udev rule, systemd units, journald limit"
install -d -m 755 /etc/rating-terminal
if [ ! -f "$CONFIG" ]; then
  install -m 644 "$SOURCE/hardware/terminal.toml.example" /etc/rating-terminal/terminal.toml
  sed -i "s|^data_dir = .*|data_dir = \"$DATA_DIR\"|" "$CONFIG"
fi
install -m 644 "$SOURCE/hardware/udev/70-rating-box.rules" /etc/udev/rules.d/70-rating-box.rules
for unit in rating-kiosk.service rating-headless.service rating-sync.service; do
  sed "s|/var/lib/rating-terminal|$DATA_DIR|g" "$SOURCE/hardware/systemd/$unit" > "/etc/systemd/system/$unit"
  chmod 644 "/etc/systemd/system/$unit"
done
install -d -m 755 /etc/systemd/journald.conf.d
install -m 644 "$SOURCE/hardware/journald/rating-terminal.conf" /etc/systemd/journald.conf.d/rating-terminal.conf
if [ "$MODE" = headless ]; then
  systemctl disable rating-kiosk.service >/dev/null 2>&1 || true
  systemctl enable rating-headless.service rating-sync.service systemd-timesyncd.service
else
  systemctl disable rating-headless.service >/dev/null 2>&1 || true
  systemctl enable rating-kiosk.service rating-sync.service systemd-timesyncd.service
  systemctl disable getty@tty1.service >/dev/null 2>&1 || true
fi
if [ -d /run/systemd/system ]; then  # a running system, not an image being prepared
  systemctl daemon-reload
  udevadm control --reload-rules || true
fi

say "5/5 console blanking off, KMS on"
CMDLINE=/boot/firmware/cmdline.txt
CONFIG_TXT=/boot/firmware/config.txt
if [ -f /etc/default/raspi-firmware ] && [ -x /etc/kernel/postinst.d/z50-raspi-firmware ]; then
  # Debian's raspi-firmware (the image of hardware/image/build.sh) writes both files afresh at every
  # kernel upgrade, from /etc/default: the setting goes there. Its mainline device tree drives the
  # vc4 KMS display itself (there is no vc4-kms-v3d overlay to add).
  grep -qs 'consoleblank=0' /etc/default/raspi-extra-cmdline ||
    echo "$(cat /etc/default/raspi-extra-cmdline 2>/dev/null) consoleblank=0" | sed 's/^ //' > /etc/default/raspi-extra-cmdline
  if [ -d /run/systemd/system ] && ls /boot/vmlinuz-* >/dev/null 2>&1; then  # a running Pi: now
    DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware
  fi
elif [ -f "$CMDLINE" ]; then
  grep -q 'consoleblank=0' "$CMDLINE" || sed -i '1 s/$/ consoleblank=0/' "$CMDLINE"
else
  say "no $CMDLINE (not Raspberry Pi OS?): add consoleblank=0 to the kernel command line yourself"
fi
if [ ! -f /etc/default/raspi-firmware ] && [ -f "$CONFIG_TXT" ] && ! grep -q '^dtoverlay=vc4-kms-v3d' "$CONFIG_TXT"; then
  echo 'dtoverlay=vc4-kms-v3d' >> "$CONFIG_TXT"
fi

say "done: $MODE terminal. Next: rating-terminal provision --server URL --code CODE (as user rating:"
say "  sudo -u rating $PREFIX/bin/rating-terminal provision ...), then flash-box, then doctor; reboot."
