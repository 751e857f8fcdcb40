"""``make run``: the whole system on one machine with demo content, on loopback.

Starts the central server (migrated, demo roster loaded) and its upward push to a reference
provincial platform (scripts/reference_platform.py), the sync daemon, the kiosk and a simulated
button box (the real firmware in the MicroPython unix port, on a pseudo-terminal cable, at the
kiosk's [box] port). The console's keys press the box's buttons: 1-5 rate, i is its 请评价 key.
Without a display the kiosk runs on a private Xvfb, so a newcomer sees ratings reach the dashboard
either way. Ctrl-C stops everything; nothing is left.
"""

from __future__ import annotations

import dataclasses
import os
import select
import signal
import subprocess
import sys
import termios
import threading
import time
import tty
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from loopback_central import free_port, start_central  # noqa: E402
from xvfb import start_xvfb  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
from firmware.cable import Cable  # noqa: E402
from firmware.sim import SimulatedBox  # noqa: E402
from terminal.credentials import Credentials  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
VAR = Path(os.environ.get("RATING_DEMO_VAR") or ROOT / "var")  # the tests run the demo in a folder of their own
BIN = Path(sys.executable).parent
LEGEND = ("keys on the simulated button box: i 请评价 (invite)   5 非常满意  4 满意  3 基本满意  2 不满意  1 非常不满意\n"
          "        b badge (log 李明华 out / in)   q quit\n"
          "  (one rating per service: a press without an invitation, or during the thank-you,\n"
          "   is kept as suspected misuse and never counted)")


def write_terminal_config(server: str) -> Path:
    path = VAR / "terminal.toml"
    path.write_text(
        "# written by make run (scripts/run_demo.py)\n"
        "[terminal]\n"
        f'data_dir = "{VAR / "terminal"}"\n'
        f'[kiosk]\nconsole_keys = true\nstaff_no = "SZ0101"\nmobile_url = "{server}"\n'
        f'[sync]\nserver = "{server}"\ninterval = 2.0\nbackoff_max = 10.0\n'
        '[invite]\nlisten = "127.0.0.1:8766"\n'
        f'[box]\nport = "{VAR / "rating-box"}"\n', encoding="utf-8")
    return path


def stop_all(procs: list[subprocess.Popen]) -> None:
    for p in reversed(procs):
        if p.poll() is None:
            os.killpg(p.pid, signal.SIGTERM)
    deadline = time.monotonic() + 10
    for p in reversed(procs):
        try:
            p.wait(max(0.1, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            os.killpg(p.pid, signal.SIGKILL)
            p.wait()


def demo_login(central) -> str:
    """A hall administrator for the demo; the password is kept in a file only its owner reads."""
    path = VAR / "central" / "demo-login.txt"
    if not path.exists():
        password = central.add_user("demo-admin", "hall_admin")
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(f"user: demo-admin\npassword: {password}\n")
    return f"demo-admin, password in {path.relative_to(ROOT) if path.is_relative_to(ROOT) else path}"


def platform_secret() -> str:
    """The demo's key at its reference platform, kept in a file only its owner reads."""
    import secrets
    path = VAR / "platform-secret"
    if not path.exists():
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.write(secrets.token_hex(24))
    return path.read_text().strip()


def tick_every_minute(central, stopping: threading.Event) -> None:
    """The central server's timer, as a systemd timer would run it: default ratings, early warnings."""
    while not stopping.wait(60):
        done = central.manage("tick")
        if done.returncode != 0:
            print(f"rating-central tick failed: {done.stderr.strip()[-500:]}", file=sys.stderr)


def main() -> int:
    VAR.mkdir(exist_ok=True)
    env = {**os.environ, "RATING_CENTRAL_DATA": str(VAR / "central")}
    procs: list[subprocess.Popen] = []
    stopping = xvfb_started = False
    cable = box = None

    def on_signal(*_):
        nonlocal stopping
        stopping = True

    for sig in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, on_signal)
    tty_state = termios.tcgetattr(sys.stdin) if sys.stdin.isatty() else None
    try:
        port = free_port(int(os.environ.get("PORT", "8000")))
        platform_port, secret = free_port(8701), platform_secret()
        # the provincial platform, as its strict reference implementation: every rating goes up to it
        platform = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "reference_platform.py"), "--profile",
                                     str(ROOT / "central" / "ratings" / "profiles" / "provincial.toml"),
                                     "--port", str(platform_port), "--key-id", "demo-hall"],
                                    env={**os.environ, "REFERENCE_PLATFORM_SECRET": secret}, start_new_session=True)
        procs.append(platform)
        central = start_central(VAR / "central", port=port, log=Path("-"), collectstatic=True, extra_env={
            "RATING_CENTRAL_PUBLIC_URL": f"http://127.0.0.1:{port}", "RATING_CENTRAL_AREA_CODE": "440100",
            "RATING_CENTRAL_UPWARD_PROV_URL": f"http://127.0.0.1:{platform_port}",
            "RATING_CENTRAL_UPWARD_PROV_KEY_ID": "demo-hall", "RATING_CENTRAL_UPWARD_PROV_SECRET": secret})
        procs.append(central.proc)
        server = central.url
        central.manage("add_platform", "PROV", "--name", "省好差评系统（参考实现）", "--profile", "provincial")
        procs.append(subprocess.Popen([str(BIN / "rating-central"), "push_upward"], env=central.env,
                                      start_new_session=True))
        env["RATING_TERMINAL_CONFIG"] = str(write_terminal_config(server))
        # the technician's flow: an enrollment code from central, provision, first content pull
        if not (VAR / "terminal" / "credentials.json").exists():
            code = central.enroll_code("W01")
            subprocess.run([str(BIN / "rating-terminal"), "provision", "--server", server, "--code", code],
                           env=env, check=True)
        else:  # keep the identity (and its pending ratings); the port may differ from the last run
            creds = Credentials.load(VAR / "terminal")
            dataclasses.replace(creds, server=server).save(VAR / "terminal")
        subprocess.run([str(BIN / "rating-sync"), "pull-content"], env=env, check=True)
        procs.append(subprocess.Popen([str(BIN / "rating-sync"), "run"], env=env, start_new_session=True))
        if not env.get("DISPLAY"):
            xvfb, env["DISPLAY"] = start_xvfb()
            xvfb_started = True
            procs.insert(0, xvfb)
            print(f"no display: the kiosk runs on a virtual screen ({env['DISPLAY']}); use the keys below")
        kiosk_env = {**env, "KCFG_KIVY_LOG_LEVEL": "warning"}  # Kivy's start-up chatter hides the banner
        kiosk = subprocess.Popen([str(BIN / "rating-terminal"), "run"], env=kiosk_env, stdin=subprocess.PIPE,
                                 start_new_session=True, text=True)
        procs.append(kiosk)
        cable = Cable(host_link=str(VAR / "rating-box"))  # the stable name the udev rule gives a real box
        box = SimulatedBox(cable.box_end, VAR / "box-flash")
        threading.Thread(target=lambda: [None for _ in box.proc.stdout], daemon=True).start()  # its LEDs
        login = demo_login(central)
        ticking = threading.Event()
        threading.Thread(target=tick_every_minute, args=(central, ticking), daemon=True).start()
        print(f"\n  dashboard: {server}/  (log in: {login})\n  public:    {server}/public/\n"
              f"  admin:     {server}/admin/\n  upward:    {server}/upward/  (pushed to the reference provincial "
              f"platform on port {platform_port})\n  {LEGEND}\n", flush=True)
        if tty_state:
            tty.setcbreak(sys.stdin)
        stdin_open = True
        while not stopping:
            if any(p.poll() is not None for p in procs + [box.proc]):
                print("a component exited; stopping", file=sys.stderr)
                return 1
            if not stdin_open:  # not a terminal and closed: run until Ctrl-C or SIGTERM
                time.sleep(0.5)
                continue
            ready, _, _ = select.select([sys.stdin], [], [], 0.5)
            if not ready:
                continue
            key = os.read(sys.stdin.fileno(), 1).decode(errors="ignore")
            if key in ("q", "Q"):
                break
            if key == "":
                stdin_open = False
            elif key in "12345i":
                button = "6" if key == "i" else key
                box.key(f"D{button}")  # pressed, and let go once the box has taken it in
                box.key(f"U{button}")
            elif key == "b":
                kiosk.stdin.write(key + "\n")
                kiosk.stdin.flush()
    except KeyboardInterrupt:
        pass
    finally:
        stop_all(procs)  # first: printing may fail if our output pipe is already gone
        if box:
            box.close()
        if cable:
            cable.close()
        if tty_state:
            termios.tcsetattr(sys.stdin, termios.TCSADRAIN, tty_state)
        try:
            print("stopped: central, upward push, reference platform, sync, kiosk, button box"
                  + (", Xvfb" if xvfb_started else ""), flush=True)
        except OSError:
            pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
