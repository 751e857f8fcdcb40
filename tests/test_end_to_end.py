"""One rating all the way: a badge login, an invitation from the business system over the kiosk's
invite API, a real pointer click on 满意 under Xvfb, the sync daemon's ``run --once``, and the
central server holding exactly that rating, once, with the staff events beside it."""

import json
import os
import subprocess
import time

import requests

import kiosk
from conftest import BIN, free_port


def _auth(tmp_path) -> dict:
    return {"Authorization": "Bearer " + (tmp_path / "data" / "invite-token").read_text().strip()}


def test_click_on_satisfied_reaches_central_exactly_once(display, terminal_config, tmp_path, central):
    config = terminal_config()
    port = free_port()
    with config.open("a") as f:
        f.write(f'[invite]\nlisten = "127.0.0.1:{port}"\n')
    provision = subprocess.run([str(BIN / "rating-terminal"), "--config", str(config), "provision",
                                "--server", central.url, "--code", central.enroll_code("W01")],
                               capture_output=True, text=True, timeout=60)
    assert provision.returncode == 0, provision.stderr
    terminal_id = json.loads((tmp_path / "data" / "credentials.json").read_text())["terminal_id"]
    centres = tmp_path / "centres.json"
    driver, result = kiosk.start(config, [
        {"do": "wait_screen", "screen": "paused"},
        {"do": "swipe", "badge": "0004521873"},  # 李明华 logs in
        {"do": "wait_screen", "screen": "rating", "timeout": 30},  # the invitation comes over HTTP
        {"do": "centres", "path": str(centres)},
        {"do": "wait_screen", "screen": "thanks", "timeout": 30},
    ], display, tmp_path)
    # the window's business system: case done, please rate
    deadline = time.monotonic() + 60
    api = f"http://127.0.0.1:{port}/v1"
    while True:
        try:
            state = requests.get(f"{api}/state", headers=_auth(tmp_path), timeout=2).json()
            if state["state"] == "idle":
                break
        except (requests.ConnectionError, FileNotFoundError):
            pass
        assert driver.poll() is None and time.monotonic() < deadline, driver.stdout.read()[-3000:]
        time.sleep(0.1)
    invited = requests.post(f"{api}/invite", json={"case_no": "C-E2E-1"}, headers=_auth(tmp_path), timeout=5)
    assert invited.status_code == 201, invited.text
    while not centres.exists():
        assert driver.poll() is None and time.monotonic() < deadline, driver.stdout.read()[-3000:]
        time.sleep(0.1)
    x, y = json.loads(centres.read_text())["4"]  # 满意
    # a real X pointer event: Xvfb -> SDL2 -> Kivy's mouse provider -> the button
    subprocess.run(["xdotool", "mousemove", "--sync", str(x), str(y), "click", "1"],
                   env={**os.environ, "DISPLAY": display}, check=True, timeout=10)
    output, _ = driver.communicate(timeout=60)
    assert driver.returncode == 0, output[-3000:]
    session = invited.json()["session_id"]

    assert central.count("terminal_id = ?", [terminal_id]) == 0
    sync = [str(BIN / "rating-sync"), "--config", str(config), "run", "--once"]
    first = subprocess.run(sync, capture_output=True, text=True, timeout=60)
    assert first.returncode == 0, first.stderr
    assert "delivered 1," in first.stdout
    rows = central.query("SELECT level, window_code, staff_no, channel, device FROM ratings_rating "
                         "WHERE terminal_id = ?", [terminal_id])
    assert rows == [(4, "W01", "SZ0101", 4, "touchscreen")]

    events = central.query("SELECT kind, staff_no, case_no FROM ratings_terminalevent WHERE terminal_id = ? "
                           "ORDER BY at", [terminal_id])
    assert events == [("login", "SZ0101", ""), ("invited", "SZ0101", "C-E2E-1")]

    assert central.query("SELECT json_extract(payload, '$.session_id') FROM ratings_rating WHERE terminal_id = ?",
                         [terminal_id]) == [(session,)]

    second = subprocess.run(sync, capture_output=True, text=True, timeout=60)
    assert second.returncode == 0 and "delivered 0," in second.stdout
    assert central.count("terminal_id = ?", [terminal_id]) == 1
