"""Voice prompts: 请您对我的服务做出评价 on an invitation, 感谢您的评价 after a rating, and a called
queue ticket (请 A012 号，到本窗口办理), said from pieces in ``assets/sounds/ticket/``.

Played from ``assets/sounds/<prompt>-<language>.wav`` at the volume in ``[kiosk] volume``
(0 = silent): by Kivy's SoundLoader in the kiosk (``KivyPlayer``), by ALSA's ``aplay`` on a
box-only terminal, which has no Kivy (``AplayPlayer``, device ``[kiosk] audio_device``). A terminal
with no audio device, a missing file or a failing driver stays silent and says why once in the
log: a prompt is never worth a crash.
"""

from __future__ import annotations

import array
import io
import logging
import subprocess
import sys
import threading
import wave
from pathlib import Path

from terminal import i18n
from terminal.config import ASSETS

log = logging.getLogger("rating-terminal.voice")
SOUNDS = ASSETS / "sounds"
KEEP_LOADED = 16  # sounds kept decoded by a player


class KivyPlayer:
    """The kiosk's: SDL2 audio through Kivy, sounds loaded once."""

    def __init__(self):
        self.sounds: dict[Path, object] = {}

    def play(self, path: Path, volume: float) -> str | None:
        if path not in self.sounds:
            from kivy.core.audio import SoundLoader
            self.sounds[path] = SoundLoader.load(str(path))
            while len(self.sounds) > KEEP_LOADED:  # called tickets are many: keep the prompts and a few calls
                del self.sounds[next(iter(self.sounds))]
        sound = self.sounds[path]
        if sound is None or not sound.length:  # Kivy logs and hands back an empty sound on failure
            return f"cannot play {path.name} (no audio device or no decoder)"
        sound.volume = volume
        sound.stop()
        sound.play()
        return None


class AplayPlayer:
    """A box-only terminal's: 16-bit WAV samples scaled to the volume and piped to ``aplay``.
    Playing does not wait; a prompt still playing is cut off by the next."""

    def __init__(self, device: str = ""):
        self.device = device
        self.proc: subprocess.Popen | None = None
        self.prepared: dict[tuple[Path, float], bytes] = {}  # WAV at a volume, made once

    def play(self, path: Path, volume: float) -> str | None:
        if (path, volume) not in self.prepared:
            wav_bytes = _scaled(path, volume)
            if wav_bytes is None:
                return f"{path.name}: only 16-bit WAV is played here"
            self.prepared[(path, volume)] = wav_bytes
            while len(self.prepared) > KEEP_LOADED:
                del self.prepared[next(iter(self.prepared))]
        data = self.prepared[(path, volume)]
        if self.proc and self.proc.poll() is None:
            self.proc.kill()
        command = ["aplay", "-q", *(["-D", self.device] if self.device else []), "-"]
        try:
            self.proc = subprocess.Popen(command, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE)
        except FileNotFoundError:
            return "no aplay (install alsa-utils)"
        threading.Thread(target=_feed, args=(self.proc, data), name="aplay-feed", daemon=True).start()
        if self.proc.poll() is None:
            try:
                self.proc.wait(0.2)  # a missing device fails at once; a playing prompt keeps going
            except subprocess.TimeoutExpired:
                return None
        if self.proc.returncode:
            said = self.proc.stderr.read().decode(errors="replace").strip().splitlines()
            return f"aplay failed: {said[-1] if said else 'exit status ' + str(self.proc.returncode)}"
        return None


def _feed(proc: subprocess.Popen, data: bytes) -> None:
    """Hand aplay its sound on a thread of its own: a prompt is longer than a pipe holds, and an
    aplay that takes nothing (a device that blocks at open, a stalled USB speaker) would otherwise
    hold the caller, which is the window with its lock: no press, invitation or tick until it read
    (the next prompt kills it, and this write ends)."""
    try:
        proc.stdin.write(data)
        proc.stdin.close()
    except (BrokenPipeError, ValueError, OSError):
        pass  # aplay gave up or was cut off by the next prompt: its reason is on stderr


def _scaled(path: Path, volume: float) -> bytes | None:
    """The WAV file with its 16-bit samples multiplied by ``volume``; None for other widths."""
    with wave.open(str(path), "rb") as wav:
        params, frames = wav.getparams(), wav.readframes(wav.getnframes())
    if params.sampwidth != 2:
        return None
    samples = array.array("h", frames)  # WAV is little-endian
    if sys.byteorder == "big":
        samples.byteswap()
    samples = array.array("h", (int(x * volume) for x in samples))
    if sys.byteorder == "big":
        samples.byteswap()
    out = io.BytesIO()
    with wave.open(out, "wb") as scaled:
        scaled.setparams(params)
        scaled.writeframes(samples.tobytes())
    return out.getvalue()


class Voice:
    def __init__(self, volume: float, folder: Path = SOUNDS, player=None):
        self.volume, self.folder = volume, folder
        self.player = player or KivyPlayer()
        self.said: list[str] = []  # prompts asked for, in order (for the technician and tests)
        self.silent_because: str | None = None if volume > 0 else "volume 0"

    def say(self, prompt: str, language: str) -> None:
        self.said.append(prompt)
        log.info("voice prompt %s (%s)", prompt, language)
        if self.volume <= 0:
            return
        path = self.folder / f"{prompt}-{language}.wav"
        if not path.exists():
            path = self.folder / f"{prompt}-{i18n.DEFAULT}.wav"
        if not path.exists():
            return self._silent(f"no {path.name}")
        self._play(path)

    def call(self, ticket_no: str, language: str) -> None:
        """A called ticket, said from its pieces: 请 + each letter and digit + 号，到本窗口办理."""
        self.said.append(f"call {ticket_no}")
        log.info("voice: ticket %s called (%s)", ticket_no, language)
        if self.volume <= 0:
            return
        path = ticket_wav(ticket_no, language, self.folder / "ticket")
        if path is None:
            return self._silent(f"no ticket pieces for {language}")
        self._play(path)

    def _play(self, path: Path) -> None:
        try:
            problem = self.player.play(path, self.volume)
        except Exception as exc:  # an audio stack that fails mid-way: stay silent, keep rating
            problem = f"{type(exc).__name__}: {exc}"
        if problem:
            self._silent(problem)

    def _silent(self, why: str) -> None:
        if self.silent_because is None:
            log.warning("voice prompts are silent: %s", why)
        self.silent_because = why


CALLS_KEPT = 20  # composed calls kept on disk (a hall calls the same few prefixes all day)


def ticket_wav(ticket_no: str, language: str, pieces: Path) -> Path | None:
    """The WAV saying a called ticket, composed once per ticket and language into a private folder:
    the pieces' leading and trailing silence trimmed, 80 ms between them. Only letters and digits
    are said; None when this language has no pieces."""
    if not (pieces / f"before-{language}.wav").exists():
        language = i18n.DEFAULT
    said = [c for c in ticket_no.upper() if c.isascii() and c.isalnum()][:16]
    names = ["before", *said, "after"]
    paths = [pieces / f"{name}-{language}.wav" for name in names]
    paths = [p for p in paths if p.exists()]
    if len(paths) < 2:
        return None
    import tempfile
    folder = Path(tempfile.gettempdir()) / f"rating-terminal-calls-{_uid()}"
    folder.mkdir(mode=0o700, exist_ok=True)
    target = folder / f"{language}-{''.join(said) or 'none'}.wav"
    if target.exists():
        return target
    params, frames = None, []
    for path in paths:
        with wave.open(str(path), "rb") as wav:
            params = params or wav.getparams()
            if (wav.getframerate(), wav.getsampwidth(), wav.getnchannels()) != (params.framerate, 2, 1):
                return None  # a replaced piece in another format: silent rather than noise
            frames.append(_trimmed(wav.readframes(wav.getnframes())))
    gap = b"\0\0" * int(params.framerate * 0.08)
    with wave.open(str(target), "wb") as out:
        out.setparams(params)
        out.writeframes(gap.join(frames))
    for old in sorted(folder.glob("*.wav"), key=lambda p: p.stat().st_mtime)[:-CALLS_KEPT]:
        old.unlink(missing_ok=True)
    return target


def _trimmed(frames: bytes, threshold: int = 400) -> bytes:
    """16-bit mono samples without the silence eSpeak puts before and after a word."""
    samples = array.array("h", frames)
    if sys.byteorder == "big":
        samples.byteswap()
    loud = [i for i, x in enumerate(samples) if abs(x) > threshold]
    if not loud:
        return b""
    return frames[loud[0] * 2:(loud[-1] + 1) * 2]


def _uid() -> int:
    import os
    return os.getuid()
