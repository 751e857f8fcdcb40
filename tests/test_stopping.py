"""A daemon stops on SIGTERM whatever its main thread is doing, even waiting on its own stop event.

Setting a ``threading.Event`` from the signal handler deadlocks when the signal lands while the main
thread's ``wait`` holds the event's lock (cpython#126434): the sync daemon and the headless terminal
then ignore systemd's SIGTERM until SIGKILL, and a test waiting for them times out now and then.
"""

import signal
import subprocess
import sys
import textwrap
import time

from conftest import ROOT

SPINNER = textwrap.dedent("""
    import threading, time
    from terminal import systemd
    stop = threading.Event()
    systemd.stop_on_signals(stop)
    print("ready", flush=True)
    while not stop.is_set():  # the worst case: always inside stop.wait, holding its lock most of the time
        stop.wait(0)
    print("stopped", flush=True)
""")


def test_sigterm_stops_a_main_thread_that_spins_on_its_own_stop_event():
    """Twelve processes spin on ``stop.wait(0)``; each gets SIGTERM and must stop. With the event set
    inside the handler, about four in ten of them hang for good."""
    children = [subprocess.Popen([sys.executable, "-c", SPINNER], cwd=ROOT, stdout=subprocess.PIPE, text=True)
                for _ in range(12)]
    try:
        for child in children:
            assert child.stdout.readline() == "ready\n"
        for child in children:
            child.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 20
        outcomes = []
        for child in children:
            try:
                child.wait(max(0.1, deadline - time.monotonic()))
                outcomes.append(child.stdout.read())
            except subprocess.TimeoutExpired:
                outcomes.append("hung")
        assert outcomes == ["stopped\n"] * 12
    finally:
        for child in children:
            child.kill()
            child.wait()


def test_other_signals_do_not_stop_it():
    """Only the signals it was given stop it: a SIGUSR1 with a handler of its own passes by."""
    script = textwrap.dedent("""
        import signal, threading
        from terminal import systemd
        stop, heard = threading.Event(), []
        signal.signal(signal.SIGUSR1, lambda *_: heard.append(1))
        systemd.stop_on_signals(stop)
        print("ready", flush=True)
        input()
        print("stopped" if stop.is_set() else f"running, heard {len(heard)}", flush=True)
        stop.wait(10)
        print("stopped" if stop.is_set() else "still running", flush=True)
    """)
    child = subprocess.Popen([sys.executable, "-c", script], cwd=ROOT, stdin=subprocess.PIPE,
                             stdout=subprocess.PIPE, text=True)
    try:
        assert child.stdout.readline() == "ready\n"
        child.send_signal(signal.SIGUSR1)  # handled before input() returns
        child.stdin.write("\n")
        child.stdin.flush()
        assert child.stdout.readline() == "running, heard 1\n"
        child.send_signal(signal.SIGTERM)
        assert child.stdout.readline() == "stopped\n"
        assert child.wait(10) == 0
    finally:
        child.kill()
        child.wait()


def test_the_kiosk_stops_on_sigterm(display, terminal_config, tmp_path):
    """systemctl stop: SDL would turn SIGTERM into a window-close request, which the kiosk refuses
    (only the technician menu closes it); the kiosk's own handler stops it at once, cleanly."""
    import os
    import socket

    from conftest import BIN
    notify_path = tmp_path / "notify"
    notify = socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM)
    notify.bind(str(notify_path))
    notify.settimeout(60)
    kiosk = subprocess.Popen([str(BIN / "rating-terminal"), "--config", str(terminal_config()), "run"],
                             env={**os.environ, "DISPLAY": display, "KIVY_HOME": str(tmp_path / "kivy"),
                                  "NOTIFY_SOCKET": str(notify_path)},
                             stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        messages = [notify.recv(4096).decode()]
        while "READY=1" not in messages[-1].split("\n"):  # after the first frame
            messages.append(notify.recv(4096).decode())
        kiosk.send_signal(signal.SIGTERM)
        output, _ = kiosk.communicate(timeout=20)
    finally:
        notify.close()
        if kiosk.poll() is None:
            kiosk.kill()
            kiosk.wait()
    assert kiosk.returncode == 0, output[-2000:]
    assert "Leaving application" in output
