"""The tone engine: deterministic, instant "speech" for tests and benchmarks.

An answer is a sine whose length grows with the text and whose pitch is derived from it:

- duration: ``MS_PER_CHARACTER`` per character (code point) divided by ``speed``, plus
  ``BASE_MS``;
- frequency: one of ``len(FREQUENCIES)`` whole-hertz pitches from 200 to 2000 Hz, picked by
  the sha256 of the text; an emotion moves it a fixed number of steps (``tone_frequency``);
- 5 ms fades at both ends, so that chunks joined end to end do not click.

Neighbouring chunks of a chapter thus differ in pitch (unless their hashes collide, one chance
in 64), which lets tests of the assembly find every chunk in the joined file. Whole-hertz
pitches repeat exactly every second, so one second of each (pitch, rate) is computed once and
tiled: a 1024-byte chunk costs a memory copy, not a million sines.

Voices: ``local-tone-1`` to ``local-tone-4`` and ``TONE_EXAMPLE_VOICE`` are listed; any other
all-digit id is accepted too, so that Coze-like ids from real manifests work unchanged. The
voice does not change the sound.
"""

from __future__ import annotations

import hashlib
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from pipeline.speech import EMOTIONS

MS_PER_CHARACTER = 60.0
BASE_MS = 50.0
AMPLITUDE = 0.3  # of full scale: leaves room for loudness_rate 100 (2x) without clipping
FADE_MS = 5.0
FREQUENCIES: tuple[int, ...] = tuple(round(200 * 10 ** (k / 63)) for k in range(64))
TONE_EXAMPLE_VOICE = "7426720361733144585"  # the id in the docs' example manifests

_SUPPORT_EMOTIONS = [
    {
        "emotion": emotion,
        "display_name": emotion,
        "emotion_scale_interval": {"min": 1, "max": 5, "default": 4},
    }
    for emotion in EMOTIONS
]


def tone_frequency(text: str, emotion: str | None = None) -> int:
    """The pitch in Hz of the tone engine's answer for ``text`` (and ``emotion``)."""
    step = int.from_bytes(hashlib.sha256(text.encode("utf-8")).digest()[:8], "big")
    if emotion:
        step += 7 * (EMOTIONS.index(emotion) + 1)
    return FREQUENCIES[step % len(FREQUENCIES)]


def tone_duration(text: str, speed: float = 1.0) -> float:
    """The duration in seconds of the tone engine's answer for ``text`` at ``speed``."""
    return (MS_PER_CHARACTER * len(text) / speed + BASE_MS) / 1000.0


@lru_cache(maxsize=512)
def _one_second(frequency: int, sample_rate: int) -> npt.NDArray[np.int16]:
    t = np.arange(sample_rate, dtype=np.float64) / sample_rate
    wave = np.sin(2 * np.pi * frequency * t) * (AMPLITUDE * 32767)
    table = np.rint(wave).astype(np.int16)
    table.flags.writeable = False
    return table


@lru_cache(maxsize=16)
def _fade(sample_rate: int) -> npt.NDArray[np.float32]:
    n = max(1, round(sample_rate * FADE_MS / 1000))
    ramp = (0.5 - 0.5 * np.cos(np.linspace(0.0, np.pi, n))).astype(np.float32)
    ramp.flags.writeable = False
    return ramp


class ToneEngine:
    """Sine "speech"; see the module docstring."""

    LISTED_VOICES = ("local-tone-1", "local-tone-2", "local-tone-3", "local-tone-4")
    thread_safe = True  # pure numpy over read-only cached tables

    def voices(self) -> list[dict[str, Any]]:
        listed = [*self.LISTED_VOICES, TONE_EXAMPLE_VOICE]
        return [_voice(voice_id, index) for index, voice_id in enumerate(listed)]

    def has_voice(self, voice_id: str) -> bool:
        return voice_id in self.LISTED_VOICES or voice_id.isascii() and voice_id.isdigit()

    def synthesize(
        self,
        text: str,
        voice_id: str,
        speed: float,
        emotion: str | None,
        emotion_scale: float,
        sample_rate: int,
        /,
    ) -> npt.NDArray[np.int16]:
        count = max(1, round(tone_duration(text, speed) * sample_rate))
        table = _one_second(tone_frequency(text, emotion), sample_rate)
        samples = np.resize(table, count)
        _fade_ends(samples, _fade(sample_rate))
        return samples


def _fade_ends(samples: npt.NDArray[np.int16], ramp: npt.NDArray[np.float32]) -> None:
    n = min(len(ramp), len(samples) // 2)
    if n == 0:
        return
    samples[:n] = np.rint(samples[:n] * ramp[:n]).astype(np.int16)
    samples[-n:] = np.rint(samples[-n:] * ramp[:n][::-1]).astype(np.int16)


def _voice(voice_id: str, index: int) -> dict[str, Any]:
    big = index % 2 == 0
    return {
        "voice_id": voice_id,
        "name": f"Local tone {index + 1}",
        "state": "cloned",
        "model_type": "big" if big else "small",
        "model_name": "local-tone-big" if big else "local-tone-small",
        "language_code": "zh",
        "language_name": "中文",
        "preview_text": "你好，这是本地测试音色。",
        "preview_audio": "",
        "is_system_voice": index < 2,
        "available_training_times": 0,
        "create_time": 0,
        "update_time": 0,
        "support_emotions": list(_SUPPORT_EMOTIONS) if big else [],
    }
