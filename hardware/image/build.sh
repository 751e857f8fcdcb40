#!/usr/bin/env bash
# Build a Raspberry Pi image (arm64, Debian 12 Bookworm) with the rating terminal installed:
#
#   sudo hardware/image/build.sh [--headless] [--out DIR] [--mirror URL]      (make pi-image)
#
# On any Debian/Ubuntu amd64 or arm64 machine, as root, no loop devices: mmdebstrap makes the root
# (Debian's own kernel, linux-image-arm64, and boot firmware, raspi-firmware, run under qemu-user
# when the host is not arm64), hardware/install-pi.sh installs the terminal into it exactly as on a
# Pi, hardware/image/rootfs/ adds what an image needs (fstab, network, the first-boot growth of the
# data partition), then mkfs.vfat + mcopy, mkfs.ext4 -d and sfdisk assemble one card image:
#
#   1  FAT32  RATINGBOOT   /boot/firmware            firmware, kernel, initrd, config.txt, cmdline.txt
#                                                    and the technician's provision.toml
#   2  ext4   rating-root  /
#   3  ext4   rating-data  /var/lib/rating-terminal  grows to fill the card on first boot
#
# Output in DIR (default var/pi-image): rating-terminal.img, and root/ (the tree the image was made
# from, which `make pi-check` runs under qemu-user). Each stage prints how long it took.
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
SOURCE="$(cd "$HERE/../.." && pwd)"
OUT="$SOURCE/var/pi-image"
MIRROR=http://deb.debian.org/debian
SECURITY=http://deb.debian.org/debian-security
MODE=kiosk
while [ $# -gt 0 ]; do
  case "$1" in
    --headless) MODE=headless ;;
    --out) OUT="$2"; shift ;;
    --mirror) MIRROR="$2"; shift ;;
    --security-mirror) SECURITY="$2"; shift ;;
    -h|--help) sed -n '2,19p' "$0"; exit 0 ;;
    *) echo "pi-image: unknown option $1 (see --help)" >&2; exit 2 ;;
  esac
  shift
done
[ "$(id -u)" -eq 0 ] || { echo "pi-image: run as root (mmdebstrap, chroot, file ownership in the image)" >&2; exit 1; }
for tool in mmdebstrap mkfs.ext4 mkfs.vfat mcopy sfdisk unshare chroot; do
  command -v "$tool" >/dev/null || { echo "pi-image: $tool missing: run scripts/install-system-deps.sh" >&2; exit 1; }
done
mkdir -p "$OUT"
OUT="$(cd "$OUT" && pwd)"
ROOT="$OUT/root"
IMAGE="$OUT/rating-terminal.img"

START=$SECONDS
STAGE_START=$SECONDS
stage() {  # stage NAME: the previous stage's time, then the next stage's name
  local now=$SECONDS
  [ -z "${STAGE:-}" ] || printf 'pi-image: %-34s %4ds\n' "$STAGE done" "$((now - STAGE_START))"
  STAGE="$1"; STAGE_START=$now
  [ -z "$STAGE" ] || echo "pi-image: $STAGE ..."
}

# Commands in the root: a private mount namespace with the host's /dev, proc, sys and a /run of its
# own (all gone with the namespace, so nothing stays mounted if the build is interrupted); the
# host's name servers through /run, where the image's /etc/resolv.conf (systemd-resolved) points.
in_root() {
  unshare -m sh -ec '
    root=$1; shift
    mount --rbind /dev "$root/dev"; mount -t proc proc "$root/proc"; mount --rbind /sys "$root/sys"
    mount -t tmpfs -o mode=755 tmpfs "$root/run"; mkdir -p "$root/run/systemd/resolve"
    cat /etc/resolv.conf > "$root/run/systemd/resolve/stub-resolv.conf"
    exec chroot "$root" /usr/bin/env -i PATH=/usr/sbin:/usr/bin:/sbin:/bin HOME=/root LANG=C.UTF-8 \
      DEBIAN_FRONTEND=noninteractive PIP_CERT=/etc/ssl/certs/ca-certificates.crt PIP_NO_CACHE_DIR=1 \
      ${PIP_INDEX_URL:+PIP_INDEX_URL=$PIP_INDEX_URL} ${http_proxy:+http_proxy=$http_proxy} \
      ${https_proxy:+https_proxy=$https_proxy} ${no_proxy:+no_proxy=$no_proxy} "$@"' in_root "$ROOT" "$@"
}

"$HERE/binfmt.sh"

stage "1/5 Debian root (mmdebstrap, arm64)"
rm -rf "$ROOT" "$IMAGE" "$OUT/parts"
# Debian's kernel and Raspberry Pi firmware (non-free-firmware), systemd with networkd, resolved
# and timesyncd; growpart (cloud-guest-utils) for the first boot; e2fsprogs and dosfstools to check
# the data and boot partitions at boot. The terminal's own packages come from install-pi.sh.
PACKAGES=systemd,systemd-sysv,systemd-resolved,systemd-timesyncd,udev,dbus,kmod,initramfs-tools,\
linux-image-arm64,raspi-firmware,cloud-guest-utils,e2fsprogs,dosfstools,fdisk,ca-certificates,tzdata,\
iproute2,python3
# The initramfs is made once, later, beside install-pi.sh: not at each package that asks for it
# (emulated, each run takes minutes), so update-initramfs is a no-op until then.
mmdebstrap --quiet --arch=arm64 --variant=apt --components=main,non-free-firmware --include="$PACKAGES" \
  --essential-hook='mkdir -p "$1/boot/firmware" && chroot "$1" dpkg-divert --quiet --local --rename \
    --divert /usr/sbin/update-initramfs.real --add /usr/sbin/update-initramfs && ln -s /bin/true "$1/usr/sbin/update-initramfs"' \
  bookworm "$ROOT" \
  "deb $MIRROR bookworm main non-free-firmware" \
  "deb $MIRROR bookworm-updates main non-free-firmware" \
  "deb $SECURITY bookworm-security main non-free-firmware"
cp -r --no-preserve=ownership "$HERE/rootfs/." "$ROOT/"
chmod 755 "$ROOT/usr/local/sbin/rating-grow-data" "$ROOT/etc/initramfs-tools/hooks/rating-pi"
# Debian's raspi-firmware writes config.txt and cmdline.txt afresh at every kernel upgrade, from
# these files: the root by label (the card may be mmcblk0 or, in a USB reader, sda), the serial
# console and the screen; CMA left to the device tree (a cma= that suits a Pi 3 can keep a Pi 4
# from booting, says raspi-firmware).
sed -i -e 's|^#\?ROOTPART=.*|ROOTPART=LABEL=rating-root|' -e 's|^#\?CONSOLES=.*|CONSOLES="ttyS1,115200 tty0"|' \
  -e 's|^#\?CMA=.*|CMA=0|' "$ROOT/etc/default/raspi-firmware"
KVER=$(basename "$(ls -d "$ROOT"/usr/lib/modules/* | sort -V | tail -1)")

stage "2/5 install-pi.sh in the root"
# The build machine may reach the mirrors and PyPI through its own certificate authorities (a
# proxy): trusted while installing, removed again before the image is made.
extra_cas=()
for cert in /usr/local/share/ca-certificates/*.crt; do
  [ -e "$cert" ] || continue
  cp "$cert" "$ROOT/usr/local/share/ca-certificates/build-host-$(basename "$cert")"
  extra_cas+=("$cert")
done
[ ${#extra_cas[@]} -eq 0 ] || in_root update-ca-certificates >/dev/null
mkdir -p "$ROOT/usr/src/rating-terminal"
tar -C "$SOURCE" --exclude=./.venv --exclude=./var --exclude=./.git --exclude=__pycache__ --exclude='*.egg-info' \
  --exclude=./build --exclude=./site --exclude=.pytest_cache --exclude=.hypothesis --exclude=./bench -cf - . |
  tar -C "$ROOT/usr/src/rating-terminal" -xf -
install_args=(--source /usr/src/rating-terminal)
[ "$MODE" = kiosk ] || install_args+=(--headless)
in_root update-initramfs.real -c -k "$KVER" > "$OUT/initramfs.log" 2>&1 &
initramfs=$!
in_root /usr/src/rating-terminal/hardware/install-pi.sh "${install_args[@]}"
wait $initramfs || { cat "$OUT/initramfs.log" >&2; echo "pi-image: the initramfs failed" >&2; exit 1; }
rm -rf "$ROOT/usr/src/rating-terminal" "$ROOT"/usr/local/share/ca-certificates/build-host-*
[ ${#extra_cas[@]} -eq 0 ] || in_root update-ca-certificates --fresh >/dev/null

stage "3/5 image configuration"
rm "$ROOT/usr/sbin/update-initramfs"
in_root dpkg-divert --quiet --local --rename --remove /usr/sbin/update-initramfs
rating_gid=$(awk -F: '$1 == "rating" {print $3}' "$ROOT/etc/group")
[ -n "$rating_gid" ] || { echo "pi-image: install-pi.sh made no group rating" >&2; exit 1; }
sed -i "s/@RATING_GID@/$rating_gid/" "$ROOT/etc/fstab"
echo rating-terminal > "$ROOT/etc/hostname"
printf '127.0.0.1\tlocalhost\n127.0.1.1\trating-terminal\n::1\t\tlocalhost ip6-localhost ip6-loopback\n' \
  > "$ROOT/etc/hosts"
ln -sf ../run/systemd/resolve/stub-resolv.conf "$ROOT/etc/resolv.conf"
ln -sf /usr/share/zoneinfo/Asia/Shanghai "$ROOT/etc/localtime"
echo Asia/Shanghai > "$ROOT/etc/timezone"
# The boot partition's files, now with the initramfs and install-pi.sh's kernel command line.
in_root env DEB_MAINT_PARAMS=configure /etc/kernel/postinst.d/z50-raspi-firmware "$KVER"
grep -q 'root=LABEL=rating-root' "$ROOT/boot/firmware/cmdline.txt" || { echo "pi-image: cmdline.txt lacks the root label" >&2; exit 1; }
[ -s "$ROOT/boot/firmware/initrd.img-$KVER" ] || { echo "pi-image: no initrd on the boot partition" >&2; exit 1; }
# (systemctl warns that the data mount does not exist: it is made from /etc/fstab at boot)
in_root systemctl enable systemd-networkd.service systemd-resolved.service rating-grow-data.service >/dev/null 2>&1
in_root usermod -p '*' root   # no password login: the terminal is run by its services
# Each card gets its own machine id and journal on first boot; no apt lists or caches to ship.
: > "$ROOT/etc/machine-id"
rm -f "$ROOT/var/lib/dbus/machine-id"
in_root apt-get clean
rm -rf "$ROOT"/var/lib/apt/lists/* "$ROOT"/var/log/*.log "$ROOT"/var/log/apt/* "$ROOT"/root/.cache "$ROOT"/tmp/*

stage "4/5 file systems"
parts="$OUT/parts"
mkdir -p "$parts/boot" "$parts/data"
# The two mounted folders go into their own file systems: moved aside while the root's is made.
mv "$ROOT/boot/firmware" "$parts/boot/tree"; mkdir -m 755 "$ROOT/boot/firmware"
mv "$ROOT/var/lib/rating-terminal" "$parts/data/tree"; install -d -m 750 "$ROOT/var/lib/rating-terminal"
restore() {
  if [ -d "$parts/boot/tree" ]; then rmdir "$ROOT/boot/firmware" && mv "$parts/boot/tree" "$ROOT/boot/firmware"; fi
  if [ -d "$parts/data/tree" ]; then rmdir "$ROOT/var/lib/rating-terminal" && mv "$parts/data/tree" "$ROOT/var/lib/rating-terminal"; fi
}
trap restore EXIT
MiB=$((1024 * 1024))
BOOT_MB=256   # two kernels with their initrds fit: an upgrade writes the new one before removing the old
root_used_mb=$(( $(du -s --block-size=1M "$ROOT" | cut -f1) ))
ROOT_MB=$(( (root_used_mb * 12 / 10 + 768 + 3) / 4 * 4 ))   # room for upgrades (apt, a second kernel); 4 MiB steps
DATA_MB=256   # grown on first boot
mkfs.vfat -F 32 -n RATINGBOOT -C "$parts/boot.fs" $((BOOT_MB * 1024)) >/dev/null
mcopy -s -p -m -i "$parts/boot.fs" "$parts/boot/tree"/* ::/
truncate -s "${ROOT_MB}M" "$parts/root.fs"
mkfs.ext4 -q -F -L rating-root -b 4096 -d "$ROOT" "$parts/root.fs"
truncate -s "${DATA_MB}M" "$parts/data.fs"
# resize=: enough reserved group descriptors for the on-line growth to a 1 TiB card at first boot.
mkfs.ext4 -q -F -L rating-data -b 4096 -E resize=268435456 -d "$parts/data/tree" "$parts/data.fs"
# mkfs -d copies what is inside a folder, not the folder: its top is the terminal's, mode 750.
rating_uid=$(awk -F: '$1 == "rating" {print $3}' "$ROOT/etc/passwd")
for field in "uid $rating_uid" "gid $rating_gid" "mode 040750"; do
  debugfs -w -R "set_inode_field / $field" "$parts/data.fs" >/dev/null 2>&1
done
restore
trap - EXIT

stage "5/5 card image"
# MBR, not GPT: every Pi's boot ROM reads it (a Pi 3 reads no GPT; a Pi 4 only with a recent
# EEPROM). Partitions start on 4 MiB boundaries (SD cards' erase blocks).
first=4
boot_start=$first; root_start=$((boot_start + BOOT_MB)); data_start=$((root_start + ROOT_MB))
total=$((data_start + DATA_MB))
rm -f "$IMAGE"
truncate -s "${total}M" "$IMAGE"
sfdisk --quiet "$IMAGE" <<EOF
label: dos
start=$((boot_start * 2048)), size=$((BOOT_MB * 2048)), type=c, bootable
start=$((root_start * 2048)), size=$((ROOT_MB * 2048)), type=83
start=$((data_start * 2048)), size=$((DATA_MB * 2048)), type=83
EOF
dd if="$parts/boot.fs" of="$IMAGE" bs=1M seek=$boot_start conv=notrunc,sparse status=none
dd if="$parts/root.fs" of="$IMAGE" bs=1M seek=$root_start conv=notrunc,sparse status=none
dd if="$parts/data.fs" of="$IMAGE" bs=1M seek=$data_start conv=notrunc,sparse status=none
rm -rf "$parts"
stage ""
echo "pi-image: $IMAGE ($MODE terminal, ${total} MiB; $(du -h "$IMAGE" | cut -f1) on disk), in $((SECONDS - START))s"
echo "pi-image: flash it with: dd if=$IMAGE of=/dev/sdX bs=4M conv=fsync status=progress (docs/technicians.md)"
