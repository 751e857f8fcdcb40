"""The central server's systemd units pass ``systemd-analyze verify`` and run what the README says."""

import shutil
import subprocess

import pytest

from conftest import BIN, ROOT

pytestmark = pytest.mark.central
UNITS = ROOT / "central" / "deploy"
INSTALLED = "/opt/rating-central/bin/rating-central"


def test_units_verify(tmp_path):
    analyze = shutil.which("systemd-analyze")
    assert analyze, "systemd-analyze comes with systemd (Debian package systemd)"
    names = sorted(p.name for p in UNITS.glob("rating-central*"))
    assert names == ["rating-central-tick.service", "rating-central-tick.timer", "rating-central-upward.service",
                     "rating-central.service"]
    for name in names:  # the venv's own script stands where the install puts it
        text = (UNITS / name).read_text().replace(INSTALLED, str(BIN / "rating-central"))
        (tmp_path / name).write_text(text)
    done = subprocess.run([analyze, "verify", "--man=no", *[str(tmp_path / n) for n in names]],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stderr
    assert "rating-central tick" in (UNITS / "rating-central-tick.service").read_text()
    assert "rating-central push_upward" in (UNITS / "rating-central-upward.service").read_text()


def test_the_commands_the_units_run_exist(tmp_path):
    import os
    env = {**os.environ, "RATING_CENTRAL_DATA": str(tmp_path)}
    env.pop("RATING_CENTRAL_DATABASE_URL", None)
    for args in (["migrate", "--noinput", "--verbosity", "0"], ["push_upward", "--once"], ["tick"]):
        done = subprocess.run([str(BIN / "rating-central"), *args], capture_output=True, text=True, timeout=120, env=env)
        assert done.returncode == 0, done.stderr
    assert "default ratings: 0 made" in done.stdout and "alerts: 0 raised" in done.stdout


def test_a_worker_freezes_what_it_loaded(tmp_path):
    """Each gunicorn worker loads ``central.wsgi``: Django, our views and the URL table are then
    set aside from the cyclic collector (``gc.freeze``), so no collection during an upload walks them."""
    import os
    probe = "import gc, central.wsgi, central.ratings.views; print(gc.get_freeze_count(), gc.isenabled())"
    env = {**os.environ, "RATING_CENTRAL_DATA": str(tmp_path)}
    env.pop("RATING_CENTRAL_DATABASE_URL", None)
    done = subprocess.run([str(BIN / "python"), "-c", probe], capture_output=True, text=True, timeout=60, env=env,
                          cwd=ROOT)
    assert done.returncode == 0, done.stderr
    frozen, collecting = done.stdout.split()
    assert int(frozen) > 50_000 and collecting == "True", done.stdout


def test_the_servers_log_masks_the_codes_of_citizens_links(central):
    """An SMS link (``/s/<code>``) rates its case, and a QR code's ``/r/<token>`` adds to its rating,
    for whoever holds them: gunicorn's access log and Django's own warnings (a 404, a 429) say
    which page was asked for, never with the code."""
    import time
    import urllib.error
    import urllib.request
    sms_code, qr_token = "Zq8sLinkC0de_x-Y", "T0A1B2C3D4.AAAAAAAAAAAAAAAAAAAAAA.mqx1k2.QrMacQrMacQrMacQrMacQ"
    for path in (f"/s/{sms_code}", f"/r/{qr_token}"):
        try:
            urllib.request.urlopen(central.url + path, timeout=10).close()
        except urllib.error.HTTPError:
            pass
    log, said = central.data_dir / "server.log", ""
    for _ in range(50):  # gunicorn writes its access line after the answer
        said = log.read_text(encoding="utf-8", errors="replace")
        if "GET /s/" in said and "GET /r/" in said:
            break
        time.sleep(0.1)
    assert "GET /s/" in said and "GET /r/" in said, said[-2000:]
    assert sms_code not in said and qr_token not in said and "QrMacQrMac" not in said, said[-2000:]
