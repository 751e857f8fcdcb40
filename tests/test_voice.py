"""A box-only terminal's voice: the prompt's samples, scaled to the volume, through the real aplay
into ALSA's file plugin (what a speaker would have been given); no device: silent, said once."""

import array
import time
import wave

from terminal.voice import SOUNDS, AplayPlayer, Voice


def test_the_prompt_reaches_alsa_scaled_to_the_volume(tmp_path):
    out = tmp_path / "speaker.raw"
    player = AplayPlayer(f"file:FILE={out},FORMAT=raw")
    voice = Voice(0.5, player=player)
    voice.say("thanks", "zh_CN")
    player.proc.wait(10)
    assert player.proc.returncode == 0 and voice.silent_because is None
    with wave.open(str(SOUNDS / "thanks-zh_CN.wav"), "rb") as wav:
        original = array.array("h", wav.readframes(wav.getnframes()))
    played = array.array("h", out.read_bytes()[:len(original) * 2])
    assert len(played) == len(original)
    assert max(abs(p - int(o * 0.5)) for p, o in zip(played, original)) == 0
    assert max(abs(o) for o in original) > 1000  # a real prompt, not silence


def test_english_falls_back_to_the_chinese_file_when_missing_and_a_new_prompt_cuts_the_old(tmp_path):
    player = AplayPlayer("null")
    voice = Voice(0.8, player=player)
    voice.say("invite", "en")
    first = player.proc
    voice.say("thanks", "xx")  # no such language: the default language's file
    assert first.wait(5) is not None and voice.silent_because is None
    assert voice.said == ["invite", "thanks"]


def test_no_audio_device_stays_silent_and_says_why_once(caplog):
    voice = Voice(0.8, player=AplayPlayer("hw:7,0"))  # no such card
    with caplog.at_level("WARNING"):
        voice.say("invite", "zh_CN")
        time.sleep(0.1)
        voice.say("thanks", "zh_CN")
    assert voice.silent_because and "aplay failed" in voice.silent_because
    assert len([r for r in caplog.records if "silent" in r.message]) == 1


def test_volume_zero_never_starts_a_player():
    player = AplayPlayer("null")
    Voice(0.0, player=player).say("invite", "zh_CN")
    assert player.proc is None


def test_a_called_ticket_is_said_from_its_pieces_through_alsa(tmp_path):
    """请 A012 号，到本窗口办理: the pieces for 请, A, 0, 1, 2 and the rest, each without its silence,
    80 ms apart, played through the real aplay; a character with no piece is not said."""
    from terminal.voice import _trimmed, ticket_wav
    out = tmp_path / "speaker.raw"
    player = AplayPlayer(f"file:FILE={out},FORMAT=raw")
    voice = Voice(1.0, player=player)
    voice.call("A-012", "zh_CN")
    player.proc.wait(10)
    assert player.proc.returncode == 0 and voice.silent_because is None and voice.said == ["call A-012"]
    pieces = []
    for name in ("before", "A", "0", "1", "2", "after"):
        with wave.open(str(SOUNDS / "ticket" / f"{name}-zh_CN.wav"), "rb") as wav:
            rate = wav.getframerate()
            pieces.append(_trimmed(wav.readframes(wav.getnframes())))
    expected = (b"\0\0" * int(rate * 0.08)).join(pieces)
    played = out.read_bytes()
    assert len(played) >= len(expected) and played[:len(expected)] == expected
    assert all(len(p) > 2000 for p in pieces)  # every piece says something
    english = ticket_wav("B7", "en", SOUNDS / "ticket")
    assert english.name == "en-B7.wav" and english.stat().st_size > 20_000
    assert ticket_wav("号", "zh_CN", SOUNDS / "ticket").name == "zh_CN-none.wav"  # 请…办理 alone still calls


def test_a_speaker_that_takes_no_sound_holds_up_no_invitation_or_press(terminal_config, tmp_path):
    """A box-only terminal says its prompts from inside the window (under its lock). A speaker
    that takes nothing (here the real aplay writing to a pipe nobody reads: it blocks, as at a
    busy ALSA device) once held the invitation until it read the whole prompt, and with it
    every press, the invite API and the clock. Now the invitation is taken and the press counted."""
    import os
    import threading

    from terminal import config as config_module
    from terminal.content import Content
    from terminal.core.channels import InputDevice
    from terminal.core.session import State
    from terminal.headless import spoken
    from terminal.store import Store
    from terminal.window import Window

    speaker = tmp_path / "speaker"
    os.mkfifo(speaker)
    config = config_module.load(terminal_config())
    store = Store(config.db_path)
    player = AplayPlayer(f"file:FILE={speaker},FORMAT=raw")
    window = Window(config, store, Content.load(config.content_dir), screen=False)
    window.listeners.append(spoken(Voice(0.8, player=player), "zh_CN"))
    window.swipe("0004521873")
    invited = threading.Thread(target=window.invite, kwargs={"case_no": "C-SPK"}, daemon=True)
    try:
        invited.start()
        invited.join(5)
        assert not invited.is_alive(), "the invitation waited for the speaker"
        assert window.state is State.INVITED and player.proc.poll() is None  # aplay still stuck
        window.press(2, InputDevice.BUTTON_BOX)
        assert store.db.execute("SELECT count(*) FROM ratings").fetchone() == (1,)
    finally:
        with open(speaker, "rb") as drain:  # let aplay go
            drain.read()
        invited.join(5)
        player.proc.kill()
        store.close()
