"""Exactly once upward, through everything at once: 10,000 ratings with re-checks and rectifications
pushed by the real ``rating-central push_upward`` to a reference platform that times out, answers
503, acknowledges half a batch and refuses duplicates, while the pusher is SIGKILLed at least ten
times with work in hand. At the end the platform holds each record once, at its latest version,
with every update applied, and nothing that was valid is dead."""

import json
import random
import signal
import subprocess
import sys
import time

import pytest

from central.ratings import exports
from reference_platform import Platform

from conftest import BIN, ROOT, wait_for
from loopback_central import central_env

pytestmark = pytest.mark.central
RATINGS = 10_000
KILLS = 10
SECRET = "chaos-platform-secret-0123456789"


def test_ten_thousand_records_reach_the_platform_once_with_their_updates_through_faults_and_kills(
        tmp_path, central_database_url):
    rng = random.Random(10_000)
    platform = Platform(exports.shipped()["provincial"], "key-chaos", SECRET, seed=10_000, answer_delay=2.0,
                        faults={"timeout": 0.1, "error": 0.15, "partial": 0.15, "refuse_duplicates": 0.3}).start()
    env = central_env(tmp_path / "central", central_database_url(), {
        "RATING_CENTRAL_UPWARD_PROV_URL": platform.url, "RATING_CENTRAL_UPWARD_PROV_KEY_ID": "key-chaos",
        "RATING_CENTRAL_UPWARD_PROV_SECRET": SECRET, "RATING_CENTRAL_UPWARD_TIMEOUT": "1.0"})
    central = [str(BIN / "rating-central")]
    helper = [sys.executable, str(ROOT / "tests" / "upward_helper.py")]
    try:
        for step in (central + ["migrate", "--verbosity", "0"], central + ["load_demo"], helper + ["fill", str(RATINGS), "PROV"]):
            subprocess.run(step, env=env, check=True, stdout=subprocess.DEVNULL, timeout=600)
        expected = json.loads(subprocess.run(helper + ["state"], env=env, check=True, capture_output=True,
                                             text=True).stdout)
        queued = expected["items"]["pending"]
        assert queued > RATINGS  # the ratings, and the updates behind them
        log = (tmp_path / "push.log").open("ab")
        push = central + ["push_upward", "--interval", "0.2", "--max-backoff", "0.5"]
        kills = 0
        while kills < KILLS:
            before = platform.requests["all"]
            pusher = subprocess.Popen(push, env=env, stdout=log, stderr=log)
            # killed with work in hand: once it has sent at least one batch in this life
            assert wait_for(lambda: platform.requests["all"] > before or pusher.poll() is not None, 60)
            time.sleep(rng.uniform(0.0, 0.5))
            assert pusher.poll() is None, "the pusher ended by itself"
            pusher.send_signal(signal.SIGKILL)
            pusher.wait()
            kills += 1
            assert len(platform.log) < queued, "killed with nothing left to send"
        pusher = subprocess.Popen(push, env=env, stdout=log, stderr=log)
        try:
            def done():
                now = json.loads(subprocess.run(helper + ["state"], env=env, capture_output=True, text=True).stdout)
                return now["items"]["pending"] == 0
            assert wait_for(done, 300, interval=2.0), (tmp_path / "push.log").read_text()[-3000:]
        finally:
            pusher.kill()
            pusher.wait()
        final = json.loads(subprocess.run(helper + ["state"], env=env, check=True, capture_output=True,
                                          text=True).stdout)
    finally:
        platform.close()
    assert final["items"]["dead"] == 0, final["dead_reasons"]
    assert final["items"]["sent"] == queued
    assert set(platform.held) == set(final["ratings"])  # each rating once: the platform keys by id
    for rid, want in final["ratings"].items():
        record = platform.held[rid]
        assert record["isValid"] == (1 if want["valid"] else 0), rid
        assert record["rectifyContent"] == want["rectification"], rid
    assert sum(1 for w in final["ratings"].values() if not w["valid"]) > 50  # re-checks happened …
    assert sum(1 for w in final["ratings"].values() if w["rectification"]) > 50  # … and rectifications
    assert platform.requests["timeout"] and platform.requests["partial"] and platform.requests["error"]
    assert any(status == "rejected" for _, _, status in platform.log)  # duplicates refused, taken as delivered
