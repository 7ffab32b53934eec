"""The speech request's fields and validation: moved to ``pipeline.coze.speech``.

Kept so that ``from pipeline.speech import ...`` goes on working everywhere.
"""

from pipeline.coze.speech import (
    DEFAULT_EMOTION_SCALE,
    DEFAULT_FORMAT,
    DEFAULT_LOUDNESS_RATE,
    DEFAULT_SAMPLE_RATE,
    DEFAULT_SPEED,
    EMOTION_SCALE_RANGE,
    EMOTIONS,
    FILE_EXTENSIONS,
    FORMATS,
    LOUDNESS_RANGE,
    MAX_INPUT_BYTES,
    OPUS_RATES,
    SAMPLE_RATES,
    SPEECH_FIELDS,
    SPEED_RANGE,
    SpeechParams,
    SpeechRequest,
    check_body,
    check_field,
    opus_rate,
)

__all__ = [
    "DEFAULT_EMOTION_SCALE",
    "DEFAULT_FORMAT",
    "DEFAULT_LOUDNESS_RATE",
    "DEFAULT_SAMPLE_RATE",
    "DEFAULT_SPEED",
    "EMOTIONS",
    "EMOTION_SCALE_RANGE",
    "FILE_EXTENSIONS",
    "FORMATS",
    "LOUDNESS_RANGE",
    "MAX_INPUT_BYTES",
    "OPUS_RATES",
    "SAMPLE_RATES",
    "SPEECH_FIELDS",
    "SPEED_RANGE",
    "SpeechParams",
    "SpeechRequest",
    "check_body",
    "check_field",
    "opus_rate",
]
