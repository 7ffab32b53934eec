"""Mono 16-bit samples -> the bytes of a Coze answer in one of its four formats.

- ``wav``: a canonical 44-byte RIFF header (PCM s16le, mono) and the samples. Written with
  the stdlib ``wave`` module rather than FFmpeg's muxer, which adds a LIST/INFO chunk that a
  Coze answer does not have.
- ``pcm``: the same samples with no header (s16le, mono), so a pcm answer is byte for byte
  the data chunk of the wav answer to the same request.
- ``mp3``: one MPEG audio stream from LAME through PyAV; no ID3 tag, and the single
  Xing/Info frame that encoders write first. Every one of the seven Coze rates is an MP3 rate
  (MPEG-1, -2 or -2.5), so an mp3 answer is at the requested rate.
- ``ogg_opus``: Ogg Opus through PyAV. Opus codes only 8, 12, 16, 24 and 48 kHz: a request at
  22050, 32000 or 44100 Hz is resampled to the next Opus rate up (``speech.opus_rate``:
  24000, 48000, 48000), which is the rate written in the OpusHead. Note that FFmpeg's Opus
  decoder always outputs 48 kHz, whatever the OpusHead says.

The output is deterministic (FFmpeg's bitexact flag keeps the Ogg serial number fixed), so the
same request gives the same bytes.
"""

from __future__ import annotations

import io
import wave

import av
import numpy as np
import numpy.typing as npt
from av.audio.stream import AudioStream

from pipeline.formats import CONTENT_TYPES as CONTENT_TYPES
from pipeline.speech import FORMATS, opus_rate

# LAME's quality 7 is about a third faster than its default and still clean for speech; the
# local server's answers are for tests and benchmarks, where encoding time adds up.
_LAME_OPTIONS = {"compression_level": "7"}
# An ID3v2 tag in front of every chunk would be noise inside an assembled chapter.
_MP3_MUXER_OPTIONS = {"id3v2_version": "0", "fflags": "+bitexact"}
_OGG_MUXER_OPTIONS = {"fflags": "+bitexact"}

Samples = npt.NDArray[np.int16]


def encode(samples: Samples, rate: int, fmt: str) -> bytes:
    """The file bytes of ``samples`` (int16, mono, at ``rate`` Hz) in Coze format ``fmt``."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown response_format {fmt!r}")
    mono = np.ascontiguousarray(samples, dtype=np.int16).reshape(-1)
    if fmt == "pcm":
        return mono.astype("<i2", copy=False).tobytes()
    if fmt == "wav":
        return _wav(mono, rate)
    if fmt == "mp3":
        return _av_encode(mono, rate, "mp3", "libmp3lame", rate, _MP3_MUXER_OPTIONS, _LAME_OPTIONS)
    return _av_encode(mono, rate, "ogg", "libopus", opus_rate(rate), _OGG_MUXER_OPTIONS, {})


def apply_gain(samples: Samples, loudness_rate: int) -> Samples:
    """Coze's ``loudness_rate`` as linear gain: -50 -> 0.5x, 0 -> 1x, 100 -> 2x; clipped."""
    if loudness_rate == 0:
        return samples
    gain = 1.0 + loudness_rate / 100.0
    scaled = np.rint(samples.astype(np.float32) * gain)
    clipped: Samples = np.clip(scaled, -32768, 32767).astype(np.int16)
    return clipped


def _wav(mono: Samples, rate: int) -> bytes:
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as out:
        out.setnchannels(1)
        out.setsampwidth(2)
        out.setframerate(rate)
        out.writeframes(mono.astype("<i2", copy=False).tobytes())
    return buffer.getvalue()


def _av_encode(
    mono: Samples,
    rate: int,
    container: str,
    codec: str,
    codec_rate: int,
    muxer_options: dict[str, str],
    codec_options: dict[str, str],
) -> bytes:
    buffer = io.BytesIO()
    with av.open(buffer, "w", format=container, options=muxer_options) as output:
        stream = output.add_stream(codec, rate=codec_rate, layout="mono", options=codec_options)
        assert isinstance(stream, AudioStream)
        # The resampler converts to the encoder's sample format and rate, and frames the
        # audio; flushing it (None) returns what it still holds.
        resampler = av.AudioResampler(
            format=stream.codec_context.format, layout="mono", rate=codec_rate
        )
        converted = resampler.resample(_frame(mono, rate)) if mono.size else []
        for chunk in [*converted, *resampler.resample(None)]:
            output.mux(stream.encode(chunk))
        output.mux(stream.encode(None))
    return buffer.getvalue()


def _frame(mono: Samples, rate: int) -> av.AudioFrame:
    frame = av.AudioFrame.from_ndarray(mono.reshape(1, -1), format="s16", layout="mono")
    frame.sample_rate = rate
    return frame
