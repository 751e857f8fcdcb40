from pathlib import Path

import pytest

from terminal import config as C


def test_embedded_defaults_run_a_demo_on_loopback(monkeypatch, tmp_path):
    monkeypatch.delenv("RATING_TERMINAL_CONFIG", raising=False)
    monkeypatch.setattr(C, "SYSTEM_CONFIG", tmp_path / "absent.toml")
    cfg = C.load()
    assert cfg.source == "embedded defaults"
    assert cfg.sync.server.startswith("http://127.0.0.1")
    assert cfg.content_dir == cfg.terminal.data_dir / "content"


def test_file_values_paths_and_env(monkeypatch, tmp_path):
    path = tmp_path / "t.toml"
    path.write_text('[terminal]\nwindow = "W07"\ndata_dir = "data"\n'
                    '[sync]\ninterval = 2\nserver = "https://central.example"\n')
    monkeypatch.setenv("RATING_TERMINAL_CONFIG", str(path))
    cfg = C.load()
    assert cfg.terminal.window == "W07"
    assert cfg.terminal.data_dir == tmp_path / "data"  # relative to the file
    assert cfg.sync.interval == 2.0 and isinstance(cfg.sync.interval, float)
    assert cfg.db_path == tmp_path / "data" / "terminal.db"


@pytest.mark.parametrize("text, message", [
    ("[terminal]\nwindw = 'x'\n", "unknown key 'windw'"),
    ("[termnal]\n", "unknown section"),
    ("[sync]\ntimeout = 'long'\n", "must be float"),
    ("[kiosk]\nfullscreen = 1\n", "must be bool"),
    ("[terminal\n", "not valid TOML"),
    ("[sync]\nbatch_size = 5000\n", "batch_size = 5000 is outside 1..1000"),
    ("[sync]\ninterval = 0\n", "interval = 0.0 is outside"),
    ("[kiosk]\nwidth = -1\n", "width = -1 is outside"),
    ("[gpio]\nbuttons = [17, 27, 22]\n", "buttons must be 5 BCM pin numbers"),
    ("[gpio]\nleds = [1, 2, 3, 4, 99]\n", "leds must be 5 BCM pin numbers"),
    # codes every record carries: longer than a record holds, each rating made under it was lost
    (f"[kiosk]\nstaff_no = '{'S' * 65}'\n", "staff_no is 65 characters, at most 64"),
    (f"[terminal]\nwindow = '{'W' * 65}'\n", "window is 65 characters, at most 64"),
    (f"[terminal]\nid = '{'T' * 65}'\n", "id is 65 characters, at most 64"),
    ("[terminal]\nwindow = ''\n", "window must not be empty"),
    ('[kiosk]\nstaff_no = "SZ\\u0007"\n', "staff_no contains control characters"),
])
def test_mistakes_are_errors_not_defaults(tmp_path, text, message):
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(C.ConfigError, match=message):
        C.load(path)


def test_a_config_file_that_cannot_be_read_is_a_clear_error_with_exit_status_2(tmp_path, capsys):
    """Not UTF-8, or a folder: a traceback at every restart under systemd, never the reason."""
    from terminal.cli import main
    latin = tmp_path / "latin.toml"
    latin.write_bytes('[terminal]\nwindow = "窗口"\n'.encode("gbk"))
    for path, said in ((latin, "not UTF-8"), (tmp_path, "cannot be read")):
        with pytest.raises(C.ConfigError, match=said):
            C.load(path)
        assert main(["--config", str(path), "status"]) == 2 and said in capsys.readouterr().err


@pytest.mark.parametrize("listen", ["127.0.0.1:99999", "127.0.0.1:", ":8766", "127.0.0.1:８７６６"])
def test_an_invite_address_no_socket_can_take_is_a_config_error(tmp_path, listen):
    """Port 99999 passed, and the invite API's thread died at bind while start() waited 10 s and
    then logged "listening": the business system's invitations all failed, and nothing said why."""
    path = tmp_path / "t.toml"
    path.write_text(f'[invite]\nlisten = "{listen}"\n', encoding="utf-8")
    with pytest.raises(C.ConfigError, match=r"\[invite\] listen must be host:port"):
        C.load(path)


def test_missing_file_is_an_error():
    with pytest.raises(C.ConfigError, match="does not exist"):
        C.load(Path("/nonexistent/terminal.toml"))


def test_the_kiosk_reads_its_configuration_without_loading_the_http_stack(tmp_path):
    """The kiosk reads the same file as the sync daemon, pin and all, at every start: checking the
    pin must not import requests and urllib3 (80 ms of a Pi's start, bench/kiosk_ui.py)."""
    import subprocess
    import sys
    path = tmp_path / "terminal.toml"
    path.write_text(f'[terminal]\ndata_dir = "{tmp_path}"\n[sync]\nserver_key_pin = "{"ab" * 32}"\n', encoding="utf-8")
    code = ("import sys\nfrom terminal import config\nconfig.load(sys.argv[1])\nimport terminal.kiosk.app\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in ('requests', 'urllib3')))")
    done = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, check=True,
                          env={**__import__("os").environ, "KIVY_NO_ARGS": "1", "KIVY_NO_CONSOLELOG": "1"})
    assert done.stdout.strip().splitlines()[-1] == "[]"
    bad = tmp_path / "bad.toml"
    bad.write_text('[sync]\nserver_key_pin = "not-a-pin"\n', encoding="utf-8")
    with pytest.raises(C.ConfigError, match="server_key_pin"):
        C.load(bad)


@pytest.mark.parametrize("url", ["htps://ops:s3cretPw@pj.example.gov.cn", "https://ops:s3cretPw@pj.example.gov.cn:99999",
                                 "ftp://pj.example.gov.cn/hook?token=s3cretPw", "https://ops:s3cretPw@[::1/x",
                                 "http://ops:s3cretPw@pj.example.gov.cn/hook"])
def test_a_refused_url_is_never_echoed_with_its_secret(url):
    """A URL is refused for its scheme, its port or its form as well as for a password or a query in
    it: whatever the reason, the message (logged, shown by doctor) names no secret it held."""
    with pytest.raises(C.ConfigError) as refused:
        C.check_server_url(url, "RATING_CENTRAL_ALERT_WEBHOOK")
    assert "s3cretPw" not in str(refused.value) and "RATING_CENTRAL_ALERT_WEBHOOK" in str(refused.value)
