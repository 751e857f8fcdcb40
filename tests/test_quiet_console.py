"""``make run`` on a healthy machine says what it does and nothing alarming: the demo's processes
(central, upward push, reference platform, sync daemon, kiosk on Xvfb, simulated button box) run,
a rating is made with the box's keys and travels, and their whole output holds no traceback, no
CRITICAL line and no library's DEBUG chatter."""

import os
import re
import signal
import subprocess
import sys
import time

import pytest

from conftest import ROOT, free_port, wait_for

pytestmark = pytest.mark.slow
ALARMING = re.compile(r"Traceback \(most recent call last\)|\bCRITICAL\b|\[CRITICAL|\bDEBUG\b|ALSA lib")


def test_the_demo_runs_with_a_quiet_console(tmp_path, display):
    out = tmp_path / "console.txt"
    env = {**os.environ, "RATING_DEMO_VAR": str(tmp_path / "var"), "PORT": str(free_port(0)), "DISPLAY": display}
    env.pop("RATING_CENTRAL_DATABASE_URL", None)
    with out.open("wb") as sink:
        demo = subprocess.Popen([sys.executable, str(ROOT / "scripts" / "run_demo.py")], stdin=subprocess.PIPE,
                                stdout=sink, stderr=subprocess.STDOUT, env=env, start_new_session=True)
        try:
            assert wait_for(lambda: b"upward:" in out.read_bytes() or demo.poll() is not None, 180, 0.5), \
                out.read_text(errors="replace")[-3000:]
            assert demo.poll() is None, out.read_text(errors="replace")[-3000:]
            for key in "i5":  # 请评价, then 非常满意 on the simulated box
                demo.stdin.write(key.encode())
                demo.stdin.flush()
                time.sleep(1.5)
            assert wait_for(lambda: b"PROV: 1 acknowledged" in out.read_bytes(), 60, 0.5), \
                out.read_text(errors="replace")[-3000:]  # the rating reached the provincial platform
        finally:
            demo.send_signal(signal.SIGTERM)
            try:
                demo.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(demo.pid, signal.SIGKILL)
                demo.wait()
    text = out.read_text(errors="replace")
    assert "stopped: central" in text
    alarming = [line for line in text.splitlines() if ALARMING.search(line)]
    assert not alarming, "\n".join(alarming[:20])
