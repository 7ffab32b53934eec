"""Speech engines: plain classes that turn text into int16 mono samples.

An engine has ``synthesize(text, voice_id, speed, emotion, emotion_scale, sample_rate)`` (all
positional; ``emotion`` is None when the request sets none) and ``voices()`` (Coze voice
objects). Optional: ``has_voice(voice_id)`` when the engine accepts ids it does not list, and
``thread_safe = True`` when ``synthesize`` may run in several threads at once; without it the
server calls ``synthesize`` one at a time.
"""

from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import numpy as np
import numpy.typing as npt

from pipeline.errors import ConfigError
from pipeline.localserver.config import ENGINES


class Engine(Protocol):
    def synthesize(
        self,
        text: str,
        voice_id: str,
        speed: float,
        emotion: str | None,
        emotion_scale: float,
        sample_rate: int,
        /,
    ) -> npt.NDArray[np.int16]: ...

    def voices(self) -> list[dict[str, Any]]: ...


@runtime_checkable
class _ChecksVoices(Protocol):
    def has_voice(self, voice_id: str) -> bool: ...


def make_engine(name: str) -> Engine:
    """The engine called ``name``; espeak is imported only when asked for."""
    if name == "tone":
        from pipeline.localserver.tone import ToneEngine

        return ToneEngine()
    if name == "espeak":
        from pipeline.localserver.espeak import EspeakEngine

        return EspeakEngine()
    raise ConfigError(f"engine {name!r} is not one of {', '.join(ENGINES)}")


def voice_exists(engine: Engine, voice_id: str) -> bool:
    """Whether ``engine`` speaks with ``voice_id``: its own check, else its voice list."""
    if isinstance(engine, _ChecksVoices):
        return engine.has_voice(voice_id)
    return any(voice.get("voice_id") == voice_id for voice in engine.voices())


def is_thread_safe(engine: Engine) -> bool:
    return getattr(engine, "thread_safe", False) is True
