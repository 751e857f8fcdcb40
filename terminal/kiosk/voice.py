"""Voice prompts: 请您对我的服务做出评价 on an invitation, 感谢您的评价 after a rating.

Played through Kivy's SoundLoader from ``assets/sounds/<prompt>-<language>.wav`` at the volume in
``[kiosk] volume`` (0 = silent). A terminal with no audio device, a missing file or a failing
driver stays silent and says why once in the log: a prompt is never worth a crash.
"""

from __future__ import annotations

import logging
from pathlib import Path

from terminal import i18n
from terminal.config import ASSETS

log = logging.getLogger("rating-terminal.voice")
SOUNDS = ASSETS / "sounds"


class Voice:
    def __init__(self, volume: float, folder: Path = SOUNDS):
        self.volume, self.folder = volume, folder
        self.sounds: dict[Path, object] = {}
        self.said: list[str] = []  # prompts asked for, in order (for the technician and tests)
        self.silent_because: str | None = None if volume > 0 else "volume 0"

    def say(self, prompt: str, language: str) -> None:
        self.said.append(prompt)
        if self.volume <= 0:
            return
        path = self.folder / f"{prompt}-{language}.wav"
        if not path.exists():
            path = self.folder / f"{prompt}-{i18n.DEFAULT}.wav"
        try:
            sound = self._load(path)
            if sound is None or not sound.length:  # Kivy logs and hands back an empty sound on failure
                return self._silent(f"cannot play {path.name} (no audio device or no decoder)")
            sound.volume = self.volume
            sound.stop()
            sound.play()
        except Exception as exc:  # an audio stack that fails mid-way: stay silent, keep rating
            self._silent(f"{type(exc).__name__}: {exc}")

    def _load(self, path: Path):
        if path not in self.sounds:
            from kivy.core.audio import SoundLoader
            self.sounds[path] = SoundLoader.load(str(path)) if path.exists() else None
        return self.sounds[path]

    def _silent(self, why: str) -> None:
        if self.silent_because is None:
            log.warning("voice prompts are silent: %s", why)
        self.silent_because = why
