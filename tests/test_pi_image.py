"""`make pi-check`: the Raspberry Pi image that `make pi-image` built, proven on this machine. The
card image's partitions and boot files; then its root, run through qemu-user as on the Pi (arm64
Python, Kivy, SDL2, Mesa): enrollment with a real central server on loopback, the headless terminal
with the simulated button box on a pseudo-terminal and one rating reaching central, the kiosk under
an arm64 Xvfb up to its first frame (a screenshot is kept), and the doctor. One test per stage, in
order; `--durations=0` prints each one's time. Run only with --pi-image (make pi-check), never by
`make test`. What only a real Pi proves (KMS/DRM, touch, GPIO, the boot firmware): docs/technicians.md."""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import struct
import subprocess
import time
from pathlib import Path

import pytest
import requests

from conftest import ROOT, free_port, wait_for
from firmware.cable import Cable
from firmware.sim import SimulatedBox
from pi_root import PiRoot

pytestmark = pytest.mark.pi_image
SCREENSHOT = ROOT / "var" / "screenshots" / "pi-image-kiosk-arm64.png"
EMULATED = 20  # qemu-user runs Python this many times slower, roughly: the bounded waits allow for it


@pytest.fixture(scope="module")
def image_dir(request) -> Path:
    return Path(request.config.getoption("--pi-image")).resolve()


@pytest.fixture(scope="module")
def pi(image_dir):
    root = PiRoot(image_dir / "root", ROOT / "var" / "pi-check")
    yield root
    root.close()


@pytest.fixture(scope="module")
def state() -> dict:
    """What one stage leaves for the next (the terminal's id, the cable)."""
    return {}


def partitions(image: Path) -> list[dict]:
    table = subprocess.run(["sfdisk", "--json", str(image)], capture_output=True, text=True, check=True, timeout=30)
    return json.loads(table.stdout)["partitiontable"]["partitions"]


def extract(image: Path, part: dict, to: Path) -> Path:
    subprocess.run(["dd", f"if={image}", f"of={to}", "bs=4M", "iflag=skip_bytes,count_bytes",
                    f"skip={part['start'] * 512}", f"count={part['size'] * 512}", "conv=sparse", "status=none"],
                   check=True, timeout=600)
    return to


def test_the_card_image_has_boot_root_and_data_partitions(image_dir, tmp_path):
    image = image_dir / "rating-terminal.img"
    assert image.is_file(), f"{image} missing: make pi-image"
    boot, root, data = partitions(image)
    assert boot["type"] == "c" and boot.get("bootable") and root["type"] == data["type"] == "83"
    assert data["start"] + data["size"] == image.stat().st_size // 512  # the last one: free to grow
    assert all(p["start"] % 8192 == 0 for p in (boot, root, data))  # 4 MiB aligned
    fat = f"{image}@@{boot['start'] * 512}"
    listing = subprocess.run(["mdir", "-b", "-i", fat, "::/"], capture_output=True, text=True, timeout=60)
    names = {Path(line).name for line in listing.stdout.split()}
    assert {"config.txt", "cmdline.txt", "start4.elf", "fixup4.dat", "bootcode.bin", "bcm2711-rpi-4-b.dtb",
            "bcm2837-rpi-3-b-plus.dtb"} <= names, listing.stdout + listing.stderr
    assert any(n.startswith("vmlinuz-") for n in names) and any(n.startswith("initrd.img-") for n in names)
    label = subprocess.run(["mlabel", "-s", "-i", fat, "::"], capture_output=True, text=True, timeout=30)
    assert label.stdout.split()[-1:] == ["RATINGBOOT"], label.stdout + label.stderr
    cmdline = subprocess.run(["mtype", "-i", fat, "::/cmdline.txt"], capture_output=True, text=True, timeout=30)
    assert "root=LABEL=rating-root" in cmdline.stdout and "consoleblank=0" in cmdline.stdout
    config = subprocess.run(["mtype", "-i", fat, "::/config.txt"], capture_output=True, text=True, timeout=30)
    kernel = re.search(r"^kernel=(\S+)", config.stdout, re.M)
    assert "arm_64bit=1" in config.stdout and kernel and kernel.group(1) in names
    for part, label in ((root, "rating-root"), (data, "rating-data")):
        fs = extract(image, part, tmp_path / f"{label}.fs")
        check = subprocess.run(["e2fsck", "-fn", str(fs)], capture_output=True, text=True, timeout=600)
        assert check.returncode == 0, check.stdout[-2000:] + check.stderr[-2000:]
        found = subprocess.run(["e2label", str(fs)], capture_output=True, text=True, timeout=30)
        assert found.stdout.strip() == label
        if label == "rating-root":
            fstab = subprocess.run(["debugfs", "-R", "cat /etc/fstab", str(fs)], capture_output=True, text=True,
                                   timeout=60).stdout
            assert re.search(r"^LABEL=rating-data\s+/var/lib/rating-terminal\s+ext4\s+\S*x-systemd.growfs", fstab, re.M)
            assert re.search(r"^LABEL=RATINGBOOT\s+/boot/firmware\s+vfat\s", fstab, re.M)
            kiosk = subprocess.run(["debugfs", "-R", "stat /opt/rating-terminal/bin/rating-terminal", str(fs)],
                                   capture_output=True, text=True, timeout=60)
            assert "Type: regular" in kiosk.stdout, kiosk.stdout + kiosk.stderr
        else:  # the terminal's own folder, before anything at boot fixes it
            rating = next(line.split(":") for line in (image_dir / "root/etc/passwd").read_text().splitlines()
                          if line.startswith("rating:"))
            top = subprocess.run(["debugfs", "-R", "stat /", str(fs)], capture_output=True, text=True, timeout=60)
            assert re.search(r"Mode:\s+0750\b", top.stdout), top.stdout[:300]
            assert re.search(rf"User:\s+{rating[2]}\s+Group:\s+{rating[3]}\b", top.stdout), top.stdout[:300]
            listing = subprocess.run(["debugfs", "-R", "ls -l /", str(fs)], capture_output=True, text=True, timeout=60)
            assert re.search(r"\skivy\s", listing.stdout), listing.stdout
        fs.unlink()


def test_the_root_runs_arm64_and_starts_the_terminal_at_boot(pi):
    arch = pi.run("uname", "-m", user=False)
    assert arch.stdout.strip() == "aarch64", arch.stderr
    wants = pi.files / "etc/systemd/system/multi-user.target.wants"
    assert (wants / "rating-kiosk.service").is_symlink() and (wants / "rating-sync.service").is_symlink()
    assert not (wants / "rating-headless.service").exists()
    assert (pi.files / "etc/systemd/system/var-lib-rating\\x2dterminal.mount.wants/rating-grow-data.service").is_symlink()
    verify = pi.run("systemd-analyze", "verify", "--man=no", "/etc/systemd/system/rating-kiosk.service",
                    "/etc/systemd/system/rating-grow-data.service", user=False)
    assert verify.returncode == 0, verify.stderr
    # The kiosk's window on a Pi: Kivy's sdl2 provider on the SDL2 bundled in the kivy wheel, whose
    # video drivers must include KMS/DRM (the unit sets SDL_VIDEODRIVER=kmsdrm).
    probe = pi.run("/opt/rating-terminal/bin/python", "-c",
                   "import ctypes, glob, os, kivy\n"
                   "lib = ctypes.CDLL(glob.glob(os.path.join(os.path.dirname(kivy.__file__), '..', 'Kivy.libs', "
                   "'libSDL2-*'))[0])\n"
                   "lib.SDL_GetVideoDriver.restype = ctypes.c_char_p\n"
                   "print(' '.join(lib.SDL_GetVideoDriver(i).decode() for i in range(lib.SDL_GetNumVideoDrivers())))",
                   env=pi.env(KIVY_NO_ARGS="1", KIVY_NO_CONSOLELOG="1", KIVY_HOME="/tmp/kivy"))
    assert probe.returncode == 0, probe.stderr[-2000:]
    drivers = probe.stdout.split()
    print(f"SDL2 video drivers in the arm64 kivy wheel: {drivers}")
    assert "KMSDRM" in drivers and "x11" in drivers
    unit = (pi.files / "etc/systemd/system/rating-kiosk.service").read_text()
    assert "Environment=KIVY_WINDOW=sdl2" in unit and "Environment=SDL_VIDEODRIVER=kmsdrm" in unit
    mesa = pi.files / "usr/lib/aarch64-linux-gnu/dri"
    assert (mesa / "vc4_dri.so").exists() and (mesa / "v3d_dri.so").exists()  # the Pi 3's and the Pi 4's GPU


def test_provision_against_central_on_loopback(pi, central, state):
    provision = pi.run("rating-terminal", "provision", "--server", central.url, "--code", central.enroll_code("W01"),
                       timeout=10 * EMULATED)
    assert provision.returncode == 0, provision.stdout[-2000:] + provision.stderr[-2000:]
    credentials = pi.files / "var/lib/rating-terminal/credentials.json"
    info = credentials.stat()
    assert (info.st_uid, info.st_mode & 0o777) == (pi.uid, 0o600)
    secret = json.loads(credentials.read_text())["secret"]
    assert secret not in provision.stdout + provision.stderr
    state["terminal_id"] = json.loads(credentials.read_text())["terminal_id"]
    for step in (["pull-content"], ["run", "--once"]):  # the window's content (staff, photos), a heartbeat
        done = pi.run("rating-sync", *step, timeout=10 * EMULATED)
        assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
        assert secret not in done.stdout + done.stderr
    assert central.query("SELECT count(*) FROM ratings_terminal WHERE terminal_id = ?", [state["terminal_id"]]) == [(1,)]


def _configure(pi, sections: dict) -> None:
    """Set keys of the installed /etc/rating-terminal/terminal.toml, as a technician would."""
    path = pi.files / "etc/rating-terminal/terminal.toml"
    text = path.read_text()
    for (section, key), value in sections.items():
        block = re.search(rf"^\[{section}\]\n(.*?)(?=^\[|\Z)", text, re.M | re.S)
        assert block, f"no [{section}] in the installed config"
        body, found = re.subn(rf"^{key} = .*$", f"{key} = {json.dumps(value)}", block.group(1), count=1, flags=re.M)
        if not found:
            body = f"{key} = {json.dumps(value)}\n" + body
        text = text[:block.start(1)] + body + text[block.end(1):]
    path.write_text(text)


def test_headless_terminal_with_the_simulated_box_rates_and_the_rating_reaches_central(pi, central, state, tmp_path):
    cable = Cable()
    # what the udev rule does for a real box: the port is the group dialout's
    os.chown(cable.host_end, -1, pi._id("group", "dialout"))
    os.chmod(cable.host_end, 0o660)
    port = free_port()
    _configure(pi, {("invite", "listen"): f"127.0.0.1:{port}", ("box", "port"): cable.host_end,
                      ("kiosk", "audio_device"): "null", ("kiosk", "staff_no"): "SZ0101"})
    terminal = pi.popen("rating-terminal", "run", "--headless", stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                        text=True, start_new_session=True)
    box = SimulatedBox(cable.box_end, tmp_path / "flash")
    api = f"http://127.0.0.1:{port}/v1"
    try:
        token = pi.files / "var/lib/rating-terminal/invite-token"
        assert wait_for(token.exists, 30 * EMULATED), "the headless terminal wrote no invite token"
        auth = {"Authorization": "Bearer " + token.read_text().strip()}

        def idle():
            try:
                return requests.get(f"{api}/state", headers=auth, timeout=5).json()["state"] == "idle"
            except requests.RequestException:
                return False
        assert wait_for(idle, 30 * EMULATED, 0.5), "the headless terminal's invite API never answered idle"
        invited = requests.post(f"{api}/invite", json={"case_no": "C-PI-1"}, headers=auth, timeout=30)
        assert invited.status_code == 201, invited.text
        session = invited.json()["session_id"]

        def rated():
            return requests.get(f"{api}/sessions/{session}", headers=auth, timeout=30).json()["rated"]
        box.key("D5")  # 非常满意, pressed and released on the simulated box
        time.sleep(0.1)
        box.key("U5")
        assert wait_for(rated, 10 * EMULATED, 0.5), "the box's press never rated the session"
    finally:
        os.killpg(terminal.pid, signal.SIGTERM)
        output, _ = terminal.communicate(timeout=30 * EMULATED)
        box.close()
        cable.close()
    assert terminal.returncode == 0 and "headless terminal stopped" in output, output[-3000:]
    sync = pi.run("rating-sync", "run", "--once", timeout=10 * EMULATED)
    assert sync.returncode == 0 and "delivered 1," in sync.stdout, sync.stdout[-2000:] + sync.stderr[-2000:]
    rows = central.query("SELECT level, window_code, channel, device, json_extract(payload, '$.case_no') "
                         "FROM ratings_rating WHERE terminal_id = ?", [state["terminal_id"]])
    assert rows == [(5, "W01", 5, "button_box", "C-PI-1")]
    _configure(pi, {("box", "port"): ""})  # the cable is gone


def xwd_to_png(xwd: bytes, path: Path) -> "Image":
    """Xvfb's screen file (-fbdir: an XWD image, 32 bits a pixel) as a PNG."""
    from PIL import Image
    header = struct.unpack(">25I", xwd[:100])
    header_size, width, height, bits, bytes_per_line, ncolors = (header[0], header[4], header[5], header[11],
                                                                 header[12], header[19])
    assert bits == 32, f"Xvfb screen of {bits} bits a pixel"
    offset = header_size + ncolors * 12
    image = Image.frombuffer("RGB", (width, height), xwd[offset:offset + bytes_per_line * height], "raw", "BGRX",
                             bytes_per_line, 1)
    path.parent.mkdir(parents=True, exist_ok=True)
    image.save(path)
    return image


def test_kiosk_under_an_arm64_xvfb_draws_its_first_frame(pi, state):
    """Xvfb installed into the root (the overlay only) and run emulated; the kiosk started as its
    unit starts it (the unit's environment), but on X instead of KMS/DRM."""
    installed = pi.run("sh", "-c", "apt-get update -qq && apt-get install -y -qq --no-install-recommends xvfb xauth",
                       user=False, timeout=60 * EMULATED,
                       env=pi.env(HOME="/root", DEBIAN_FRONTEND="noninteractive"))
    assert installed.returncode == 0, installed.stdout[-2000:] + installed.stderr[-2000:]
    _configure(pi, {("box", "port"): ""})  # no box on this one: the touchscreen
    read_fd, write_fd = os.pipe()
    xvfb = pi.popen("Xvfb", "-displayfd", str(write_fd), "-screen", "0", "1280x800x24", "-nolisten", "tcp",
                    "-fbdir", "/check", user=False, pass_fds=(write_fd,), stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL, start_new_session=True)
    os.close(write_fd)
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(pi.share / "notify"))
    os.chmod(pi.share / "notify", 0o666)
    kiosk = None
    try:
        with os.fdopen(read_fd) as f:
            display = f.readline().strip()
        assert display, "the arm64 Xvfb did not start"
        unit = (pi.files / "etc/systemd/system/rating-kiosk.service").read_text()
        unit_env = dict(line.split("=", 2)[1:] for line in unit.splitlines() if line.startswith("Environment="))
        env = pi.env(**{**unit_env, "SDL_VIDEODRIVER": "x11", "DISPLAY": f":{display}",
                        "NOTIFY_SOCKET": "/check/notify"})
        kiosk = pi.popen("rating-terminal", "run", env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                         text=True, start_new_session=True)
        messages, deadline = [], time.monotonic() + 30 * EMULATED
        while not any("READY=1" in m.split("\n") for m in messages) and time.monotonic() < deadline:
            assert kiosk.poll() is None, kiosk.stdout.read()[-3000:]
            notify.settimeout(max(0.1, min(5.0, deadline - time.monotonic())))
            try:
                messages.append(notify.recv(4096).decode())
            except socket.timeout:
                pass
        assert any("READY=1" in m.split("\n") for m in messages), f"no READY=1 from the kiosk: {messages}"
        screen = pi.share / "Xvfb_screen0"

        def drawn():  # the first frame: many colours, not the empty screen
            return len(xwd_to_png(screen.read_bytes(), SCREENSHOT).getcolors(1 << 24) or ()) > 50
        assert wait_for(drawn, 10 * EMULATED, 1.0), "the screen stayed empty"
        print(f"kiosk screenshot: {SCREENSHOT}")
    finally:
        if kiosk:
            if kiosk.poll() is None:
                os.killpg(kiosk.pid, signal.SIGTERM)
            output, _ = kiosk.communicate(timeout=30 * EMULATED)
        if xvfb.poll() is None:
            os.killpg(xvfb.pid, signal.SIGTERM)
        xvfb.wait(60)
        notify.close()
    assert kiosk.returncode == 0, output[-3000:]
    assert "Window: Provider: sdl2" in output, output[-3000:]
    assert "kiosk ready" in output and state["terminal_id"] in output


def test_doctor(pi, central):
    done = pi.run("rating-terminal", "doctor", "--json", timeout=10 * EMULATED,
                  env=pi.env(DISPLAY=""))
    assert done.stdout.startswith("{"), done.stdout[-2000:] + done.stderr[-2000:]
    checks = {c["name"]: c for c in json.loads(done.stdout)["checks"]}
    print("\n".join(f"{c['status']:5} {c['name']:15} {c['detail']}" for c in checks.values()))
    for name in ("config", "credentials", "database", "queue", "dead letters", "disk", "server", "signed request",
                 "content", "fonts"):
        assert checks[name]["status"] == "pass", checks[name]
    # No screen, touchscreen or box in a chroot: the doctor says so, with what to do.
    assert checks["display"]["status"] == "fail" and checks["display"]["advice"]
