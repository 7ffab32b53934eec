"""Real offline speech for the local server: eSpeak NG through ctypes (``espeakng-loader``).

eSpeak NG is a C library with global state (one voice, one set of parameters, one callback),
so every use goes through one module-level lock and the library is initialised once per
process. It synthesizes at its own rate (22050 Hz); PyAV's resampler brings the samples to the
rate of the request.

How the Coze fields map onto eSpeak's parameters:

``speed``
    words per minute = 175 * speed, clamped to eSpeak's 80 to 450: speeds below 0.46 all
    sound like 0.46 and speeds above 2.57 like 2.57.
``emotion`` and ``emotion_scale``
    a shift of pitch and pitch range (0-100 scales, voice default 50), a factor on the rate
    and one on the volume (100 = normal), taken at full strength for ``emotion_scale`` 5 and
    proportionally less below it (``emotion_scale`` 1 is a fifth of the effect):

    ==========  =====  =====  =====  ======
    emotion     pitch  range  rate   volume
    ==========  =====  =====  =====  ======
    happy        +15    +20   1.10    1.00
    excited      +20    +30   1.20    1.15
    surprised    +25    +35   1.05    1.10
    sad          -15    -25   0.80    0.85
    fear         +10    -10   1.15    0.90
    angry         -5    +25   1.15    1.35
    hate         -10    +10   0.95    1.20
    coldness     -10    -30   0.95    0.90
    neutral        0      0   1.00    1.00
    ==========  =====  =====  =====  ======
"""

from __future__ import annotations

import ctypes
import re
import threading
from dataclasses import dataclass
from typing import Any

import av
import espeakng_loader
import numpy as np
import numpy.typing as npt

from pipeline.speech import DEFAULT_EMOTION_SCALE, EMOTION_SCALE_RANGE, EMOTIONS

__all__ = ["EMOTION_EFFECTS", "EspeakEngine", "UnknownVoice", "VOICES", "resolve_voice"]

Samples = npt.NDArray[np.int16]

# speak_lib.h
_AUDIO_OUTPUT_SYNCHRONOUS = 2
_INITIALIZE_DONT_EXIT = 0x8000  # report errors instead of calling exit() inside the library
_CHARS_UTF8 = 1
_POS_CHARACTER = 1
_EE_OK = 0
_PARAM_RATE, _PARAM_VOLUME, _PARAM_PITCH, _PARAM_RANGE = 1, 2, 3, 4

WORDS_PER_MINUTE = 175
RATE_LIMITS = (80, 450)
BASE_PITCH = 50
BASE_RANGE = 50
BASE_VOLUME = 100


class UnknownVoice(LookupError):
    """The voice_id is not one of this engine's voices (the server answers code 4200)."""


@dataclass(frozen=True)
class _Voice:
    voice_id: str
    espeak_name: str  # eSpeak voice plus variant: "cmn+f3"
    name: str
    language_code: str
    language_name: str
    preview_text: str


VOICES = (
    _Voice("local-zh-female", "cmn+f3", "本地女声（eSpeak）", "zh", "中文", "你好，欢迎收听。"),
    _Voice("local-zh-male", "cmn+m3", "本地男声（eSpeak）", "zh", "中文", "你好，欢迎收听。"),
    _Voice("local-en-female", "en-us+f3", "Local female (eSpeak)", "en", "English", "Hello."),
    _Voice("local-en-male", "en-us+m3", "Local male (eSpeak)", "en", "English", "Hello."),
)
_BY_ID = {v.voice_id: v for v in VOICES}
_CJK = re.compile(r"[\u3400-\u9fff\uf900-\ufaff]")

_EMOTION_NAMES = {
    "happy": "开心",
    "excited": "兴奋",
    "surprised": "惊讶",
    "sad": "悲伤",
    "fear": "恐惧",
    "angry": "生气",
    "hate": "厌恶",
    "coldness": "冷漠",
    "neutral": "中性",
}


@dataclass(frozen=True)
class _Effect:
    pitch: float
    range: float
    rate: float
    volume: float


EMOTION_EFFECTS = {
    "happy": _Effect(15, 20, 1.10, 1.00),
    "excited": _Effect(20, 30, 1.20, 1.15),
    "surprised": _Effect(25, 35, 1.05, 1.10),
    "sad": _Effect(-15, -25, 0.80, 0.85),
    "fear": _Effect(10, -10, 1.15, 0.90),
    "angry": _Effect(-5, 25, 1.15, 1.35),
    "hate": _Effect(-10, 10, 0.95, 1.20),
    "coldness": _Effect(-10, -30, 0.95, 0.90),
    "neutral": _Effect(0, 0, 1.00, 1.00),
}


@dataclass(frozen=True)
class _Settings:
    """eSpeak parameter values for one request."""

    rate: int
    pitch: int
    range: int
    volume: int


def _clamp(value: float, lo: int, hi: int) -> int:
    return int(round(min(hi, max(lo, value))))


def settings_for(speed: float, emotion: str | None, emotion_scale: float | None) -> _Settings:
    """The eSpeak parameters for the Coze speed, emotion and emotion_scale (table above)."""
    effect = EMOTION_EFFECTS.get(emotion or "neutral", EMOTION_EFFECTS["neutral"])
    scale = DEFAULT_EMOTION_SCALE if emotion_scale is None else emotion_scale
    strength = scale / EMOTION_SCALE_RANGE[1]
    rate_factor = 1 + (effect.rate - 1) * strength
    volume_factor = 1 + (effect.volume - 1) * strength
    return _Settings(
        rate=_clamp(WORDS_PER_MINUTE * speed * rate_factor, *RATE_LIMITS),
        pitch=_clamp(BASE_PITCH + effect.pitch * strength, 0, 100),
        range=_clamp(BASE_RANGE + effect.range * strength, 0, 100),
        volume=_clamp(BASE_VOLUME * volume_factor, 0, 200),
    )


# The callback type of espeak_SetSynthCallback: (short *wav, int numsamples, espeak_EVENT *).
_SynthCallback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.c_void_p
)


class _Library:
    """The initialised C library. Only ever used under ``_LOCK``."""

    def __init__(self) -> None:
        lib = ctypes.CDLL(espeakng_loader.get_library_path())
        lib.espeak_Initialize.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_char_p, ctypes.c_int]
        lib.espeak_Initialize.restype = ctypes.c_int
        lib.espeak_SetSynthCallback.argtypes = [_SynthCallback]
        lib.espeak_SetSynthCallback.restype = None
        lib.espeak_SetVoiceByName.argtypes = [ctypes.c_char_p]
        lib.espeak_SetVoiceByName.restype = ctypes.c_int
        lib.espeak_SetParameter.argtypes = [ctypes.c_int, ctypes.c_int, ctypes.c_int]
        lib.espeak_SetParameter.restype = ctypes.c_int
        lib.espeak_Synth.argtypes = [
            ctypes.c_void_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.c_void_p,
            ctypes.c_void_p,
        ]
        lib.espeak_Synth.restype = ctypes.c_int
        lib.espeak_Synchronize.argtypes = []
        lib.espeak_Synchronize.restype = ctypes.c_int
        data_path = espeakng_loader.get_data_path().encode()
        rate = lib.espeak_Initialize(_AUDIO_OUTPUT_SYNCHRONOUS, 0, data_path, _INITIALIZE_DONT_EXIT)
        if rate <= 0:
            raise RuntimeError(f"espeak-ng failed to initialise with data at {data_path!r}")
        self.rate = rate
        self._lib = lib
        self._chunks: list[Samples] = []
        # Kept on the instance: the C library holds only a raw pointer to it.
        self._callback = _SynthCallback(self._collect)
        lib.espeak_SetSynthCallback(self._callback)

    def _collect(self, wav: Any, count: int, _events: Any) -> int:
        if wav and count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).astype(np.int16))
        return 0  # 0: go on synthesizing

    def _check(self, result: int, what: str) -> None:
        if result != _EE_OK:
            raise RuntimeError(f"espeak-ng {what} failed with error {result}")

    def speak(self, text: str, espeak_voice: str, settings: _Settings) -> Samples:
        self._check(self._lib.espeak_SetVoiceByName(espeak_voice.encode()), "SetVoiceByName")
        for parameter, value in (
            (_PARAM_RATE, settings.rate),
            (_PARAM_PITCH, settings.pitch),
            (_PARAM_RANGE, settings.range),
            (_PARAM_VOLUME, settings.volume),
        ):
            self._check(self._lib.espeak_SetParameter(parameter, value, 0), "SetParameter")
        data = text.encode("utf-8") + b"\0"
        self._chunks = []
        try:
            self._check(
                self._lib.espeak_Synth(
                    data, len(data), 0, _POS_CHARACTER, 0, _CHARS_UTF8, None, None
                ),
                "Synth",
            )
            self._check(self._lib.espeak_Synchronize(), "Synchronize")
            chunks = self._chunks
        finally:
            self._chunks = []
        return np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.int16)


_LOCK = threading.Lock()
_library: _Library | None = None


def _loaded() -> _Library:
    """The library, initialised on first use. Call with ``_LOCK`` held."""
    global _library
    if _library is None:
        _library = _Library()
    return _library


def resample(samples: Samples, from_rate: int, to_rate: int) -> Samples:
    """Mono int16 samples at ``from_rate`` -> the same sound at ``to_rate`` (PyAV/FFmpeg)."""
    if from_rate == to_rate or samples.size == 0:
        return samples
    resampler = av.AudioResampler(format="s16", layout="mono", rate=to_rate)
    frame = av.AudioFrame.from_ndarray(
        np.ascontiguousarray(samples, dtype=np.int16).reshape(1, -1), format="s16", layout="mono"
    )
    frame.sample_rate = from_rate
    frames = [*resampler.resample(frame), *resampler.resample(None)]
    if not frames:
        return np.zeros(0, dtype=np.int16)
    out = np.concatenate([f.to_ndarray().reshape(-1) for f in frames])
    return out.astype(np.int16, copy=False)


class EspeakEngine:
    """The local server's speech engine that really speaks (Mandarin and English)."""

    # Safe because every call into the C library holds _LOCK; resampling runs outside it.
    thread_safe = True

    def voices(self) -> list[dict[str, Any]]:
        """The voice list, in the shape of Coze's ``GET /v1/audio/voices`` items."""
        return [_voice_object(v) for v in VOICES]

    def has_voice(self, voice_id: str) -> bool:
        """Listed voices, and Coze-style numeric ids (as the tone engine takes them)."""
        return voice_id in _BY_ID or _is_coze_id(voice_id)

    def synthesize(
        self,
        text: str,
        voice_id: str,
        speed: float = 1.0,
        emotion: str | None = None,
        emotion_scale: float | None = None,
        sample_rate: int = 24000,
    ) -> Samples:
        """``text`` spoken by ``voice_id``: int16 mono samples at ``sample_rate``.

        A numeric Coze voice id (from a job written for the real API) gets a local voice of
        the text's language, male or female by the id's parity. Raises UnknownVoice for any
        other voice_id that :meth:`has_voice` refuses.
        """
        voice = _BY_ID[resolve_voice(voice_id, text)]
        settings = settings_for(speed, emotion, emotion_scale)
        with _LOCK:
            library = _loaded()
            samples = library.speak(text, voice.espeak_name, settings)
            native_rate = library.rate
        return resample(samples, native_rate, sample_rate)


def _is_coze_id(voice_id: str) -> bool:
    return voice_id.isascii() and voice_id.isdigit()


def resolve_voice(voice_id: str, text: str) -> str:
    """The listed voice that speaks ``text`` for ``voice_id`` (see ``synthesize``)."""
    if voice_id in _BY_ID:
        return voice_id
    if not _is_coze_id(voice_id):
        raise UnknownVoice(voice_id)
    language = "zh" if _CJK.search(text) else "en"
    gender = "male" if int(voice_id) % 2 else "female"
    return f"local-{language}-{gender}"


def _voice_object(voice: _Voice) -> dict[str, Any]:
    lo, hi = EMOTION_SCALE_RANGE
    return {
        "voice_id": voice.voice_id,
        "name": voice.name,
        "state": "cloned",
        "model_type": "small",
        "model_name": "espeak-ng",
        "language_code": voice.language_code,
        "language_name": voice.language_name,
        "preview_text": voice.preview_text,
        "preview_audio": "",
        "is_system_voice": True,
        "available_training_times": 0,
        "create_time": 0,
        "update_time": 0,
        "support_emotions": [
            {
                "emotion": emotion,
                "display_name": _EMOTION_NAMES[emotion],
                "emotion_scale_interval": {
                    "min": lo,
                    "max": hi,
                    "default": DEFAULT_EMOTION_SCALE,
                },
            }
            for emotion in EMOTIONS
        ],
    }
