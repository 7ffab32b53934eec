"""Helpers for the audio tests (no tests here): tone parts made with PyAV, decoding, FFT.

Parts are made the way an API would return them: wav with a LIST chunk, headerless pcm,
mp3 with an ID3v2 tag and a LAME/Info frame, Ogg Opus from libopus.
"""

from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import av
import av.logging
import numpy as np
import numpy.typing as npt
import pytest

from pipeline.audio import Part, procs
from pipeline.speech import opus_rate

Samples = npt.NDArray[np.float32]
EXTENSIONS = {"mp3": "mp3", "wav": "wav", "pcm": "pcm", "ogg_opus": "opus"}
# Tones far apart, so that each segment's dominant frequency names its part.
FREQUENCIES = (300.0, 500.0, 700.0, 900.0, 1100.0, 1300.0)


def tone(freq: float, seconds: float, rate: int, amplitude: float = 0.3) -> Samples:
    t = np.arange(round(seconds * rate)) / rate
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def _encode(
    path: Path,
    container: str,
    codec: str,
    rate: int,
    samples: Samples,
    options: dict[str, str] | None = None,
    bit_rate: int | None = None,
) -> None:
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=rate, layout="mono")
        assert isinstance(stream, av.AudioStream)
        if bit_rate:
            stream.bit_rate = bit_rate
        out.metadata.update(options or {})
        for i in range(0, len(samples), 4096):
            block = samples[None, i : i + 4096]
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(block), format="flt", layout="mono"
            )
            frame.sample_rate = rate
            frame.pts = i
            frame.time_base = Fraction(1, rate)
            out.mux(stream.encode(frame))
        out.mux(stream.encode(None))


def write_part(path: Path, fmt: str, rate: int, samples: Samples) -> Path:
    """``samples`` as an API answer in ``fmt`` at ``rate``."""
    if fmt == "pcm":
        path.write_bytes((np.clip(samples, -1, 1) * 32767).astype("<i2").tobytes())
    elif fmt == "wav":
        # FFmpeg writes the title into a LIST/INFO chunk before the data chunk.
        _encode(path, "wav", "pcm_s16le", rate, samples, {"title": "part"})
    elif fmt == "mp3":
        _encode(
            path,
            "mp3",
            "libmp3lame",
            rate,
            samples,
            {"title": "part"},
            bit_rate=64000 if rate < 32000 else 96000,
        )
    elif fmt == "ogg_opus":
        _encode(path, "ogg", "libopus", opus_rate(rate), samples, bit_rate=32000)
    else:
        raise ValueError(fmt)
    return path


def make_parts(
    directory: Path, fmt: str, rate: int, spans: list[tuple[float, int]], *, lines_of: int = 1
) -> list[Part]:
    """Parts of ``(seconds, pause_ms)``, a different tone each; ``lines_of`` parts per line."""
    parts = []
    for i, (seconds, pause) in enumerate(spans):
        path = directory / f"part{i:04d}.{EXTENSIONS[fmt]}"
        # An Ogg Opus answer decodes at the codec's rate, not the requested one.
        tone_rate = opus_rate(rate) if fmt == "ogg_opus" else rate
        write_part(path, fmt, rate, tone(FREQUENCIES[i % len(FREQUENCIES)], seconds, tone_rate))
        end = (i + 1) % lines_of == 0 or i == len(spans) - 1
        parts.append(Part(path, f"text {i}", f"line{i // lines_of}", end, pause if end else 0))
    return parts


def decode(path: Path, fmt: str | None = None, rate: int | None = None) -> tuple[Samples, int]:
    """All of a file's audio as mono float samples, and its rate; fails on FFmpeg warnings."""
    options = {"sample_rate": str(rate), "ch_layout": "mono"} if fmt == "pcm" else None
    av.logging.set_level(av.logging.WARNING)
    try:
        with (
            av.logging.Capture() as logs,
            av.open(str(path), "r", format="s16le" if fmt == "pcm" else None, options=options) as c,
        ):
            stream = c.streams.audio[0]
            chunks = [
                f.to_ndarray().reshape(f.samples, -1).mean(axis=1)
                if f.format.is_packed
                else f.to_ndarray().mean(axis=0)
                for f in c.decode(stream)
            ]
            out_rate = stream.codec_context.sample_rate
    finally:
        av.logging.set_level(None)
    # Raw s16le has no header to take a duration from: FFmpeg says so, and that is fine.
    problems = [
        line
        for line in logs
        if line[0] <= av.logging.WARNING and "Estimating duration from bitrate" not in line[2]
    ]
    assert not problems, problems
    data = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if data.dtype.kind == "i" or np.abs(data).max(initial=0) > 2:
        data = data / 32768
    return data.astype(np.float32), out_rate


def dominant_frequency(samples: Samples, rate: int) -> float:
    window = samples * np.hanning(len(samples))
    spectrum = np.abs(np.fft.rfft(window))
    return float(np.argmax(spectrum) * rate / len(samples))


def calls(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Which runner (threads or processes) each pass of a chapter or book used, in order."""
    used: list[str] = []
    for name in ("run_in_processes", "run_on_cores"):
        real = getattr(procs, name)

        def spy(jobs, watch, real=real, name=name):  # type: ignore[no-untyped-def]
            used.append(name)
            return real(jobs, watch)

        monkeypatch.setattr(procs, name, spy)
    return used
