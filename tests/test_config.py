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
])
def test_mistakes_are_errors_not_defaults(tmp_path, text, message):
    path = tmp_path / "t.toml"
    path.write_text(text)
    with pytest.raises(C.ConfigError, match=message):
        C.load(path)


def test_missing_file_is_an_error():
    with pytest.raises(C.ConfigError, match="does not exist"):
        C.load(Path("/nonexistent/terminal.toml"))
