"""Measures of one answer's audio, from its decoded mono samples: a few numpy passes.

Levels are in dBFS of float samples (full scale 1.0). A 20 ms frame is silent when its RMS is
under ``SILENCE_FLOOR_DBFS`` or more than ``SILENCE_BELOW_PEAK_DB`` under the loudest frames
(their 95th percentile), so that both a quiet recording's pauses and a noisy one's count as
silence. Loudness is ITU-R BS.1770's K-weighted mean square over the non-silent frames (LUFS
for mono): a short gated loudness, not a full EBU R128 integration, which is plenty to
compare chunks of one voice with each other.
"""

from __future__ import annotations

import functools
import io
import math
from dataclasses import asdict, dataclass

import av
import numpy as np
import numpy.typing as npt

from pipeline.audio.avutil import av_errors
from pipeline.audio.model import AudioError
from pipeline.audio.wav import WAVE_FORMAT_PCM, read_wav_info

FRAME_S = 0.02
SILENCE_FLOOR_DBFS = -55.0
SILENCE_BELOW_PEAK_DB = 40.0
# A sample this close to full scale is clipped (lossy codecs ring around a clipped top).
CLIP_LEVEL = 0.985
# Levels of digital silence, so that logarithms stay finite.
FLOOR_DB = -120.0

Floats = npt.NDArray[np.float32]


@dataclass(frozen=True)
class Measures:
    """What the gate knows about one answer's audio; seconds and dB, rounded for reports."""

    duration_s: float
    active_s: float  # non-silent time
    leading_silence_s: float
    trailing_silence_s: float
    longest_gap_s: float  # the longest silence between the first and last sound
    rms_dbfs: float
    peak_dbfs: float
    clipped_share: float
    loudness_lufs: float

    @property
    def speech_s(self) -> float:
        """From the first sound to the last: what the text's length predicts."""
        return max(0.0, self.duration_s - self.leading_silence_s - self.trailing_silence_s)

    def to_json(self) -> dict[str, float]:
        return {k: round(v, 4 if k == "clipped_share" else 3) for k, v in asdict(self).items()}


def to_db(power: float) -> float:
    return 10 * math.log10(power) if power > 1e-12 else FLOOR_DB


def measure(samples: npt.NDArray[np.generic], rate: int) -> Measures:
    """The measures of mono ``samples`` (int16, or floats at full scale 1.0) at ``rate`` Hz."""
    x = _as_float(samples)
    n = x.size
    if n == 0 or rate <= 0:
        return Measures(0.0, 0.0, 0.0, 0.0, 0.0, FLOOR_DB, FLOOR_DB, 0.0, FLOOR_DB)
    frame = min(n, max(1, round(rate * FRAME_S)))  # an answer under a frame is one frame
    frames = n // frame
    square = np.square(x, dtype=np.float64)
    power = square[: frames * frame].reshape(frames, frame).mean(axis=1)
    sound = _sounding(power)
    duration = n / rate
    if not sound.any():
        lead = trail = duration
        gap = 0.0
    else:
        idx = np.flatnonzero(sound)
        lead = float(idx[0]) * frame / rate
        trail = max(0.0, duration - float(idx[-1] + 1) * frame / rate)
        gap = _longest_run(~sound[idx[0] : idx[-1] + 1]) * frame / rate
    # Only the sounding frames count (all of them when none sounds): only those are filtered.
    weighted = _k_weighted_frames(x, rate, frame, sound if sound.any() else None)
    k_power = float(weighted.mean())
    return Measures(
        duration_s=duration,
        active_s=float(sound.sum()) * frame / rate,
        leading_silence_s=lead,
        trailing_silence_s=trail,
        longest_gap_s=gap,
        rms_dbfs=to_db(float(square.mean())),
        peak_dbfs=to_db(float(np.max(np.abs(x))) ** 2),
        clipped_share=float(np.count_nonzero(np.abs(x) >= CLIP_LEVEL)) / n,
        loudness_lufs=-0.691 + to_db(k_power),
    )


def _as_float(samples: npt.NDArray[np.generic]) -> Floats:
    flat = np.asarray(samples).reshape(-1)
    if flat.dtype == np.int16:
        return flat.astype(np.float32) / 32768.0
    return flat.astype(np.float32, copy=False)


def _sounding(power: npt.NDArray[np.float64]) -> npt.NDArray[np.bool_]:
    levels = 10 * np.log10(np.maximum(power, 1e-12))
    top = float(np.percentile(levels, 95))
    return levels > max(SILENCE_FLOOR_DBFS, top - SILENCE_BELOW_PEAK_DB)


def _longest_run(flags: npt.NDArray[np.bool_]) -> int:
    if not flags.any():
        return 0
    padded = np.concatenate(([0], flags.astype(np.int8), [0]))
    edges = np.flatnonzero(np.diff(padded))
    return int((edges[1::2] - edges[0::2]).max())


def _biquad_response(b: tuple[float, ...], a: tuple[float, ...], w: Floats) -> Floats:
    z = np.exp(-1j * w)
    h = (b[0] + b[1] * z + b[2] * z * z) / (a[0] + a[1] * z + a[2] * z * z)
    return np.asarray(np.abs(h), dtype=np.float32)


@functools.lru_cache(maxsize=16)
def _k_weighting(rate: int, bins: int) -> Floats:
    """|H| of BS.1770's two K-weighting stages at ``rate``, at ``bins`` rfft bins.

    Made from the stages' analogue prototypes, so that it holds at every sample rate.
    """
    w = np.linspace(0.0, math.pi, bins, dtype=np.float32)
    # Stage 1: a high shelf of +4 dB around 1.68 kHz; stage 2: a 38 Hz high-pass.
    gain, f0, q = 3.99984385397, 1681.97445095, 0.7071752369554196
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain / 20)
    vb = vh**0.4996667741545416
    a0 = 1 + k / q + k * k
    shelf_b = (
        (vh + vb * k / q + k * k) / a0,
        2 * (k * k - vh) / a0,
        (vh - vb * k / q + k * k) / a0,
    )
    shelf_a = (1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0)
    f0, q = 38.13547087613982, 0.5003270373238773
    k = math.tan(math.pi * f0 / rate)
    a0 = 1 + k / q + k * k
    hp_a = (1.0, 2 * (k * k - 1) / a0, (1 - k / q + k * k) / a0)
    response = _biquad_response(shelf_b, shelf_a, w) * _biquad_response((1.0, -2.0, 1.0), hp_a, w)
    response.flags.writeable = False
    return response


def _k_weighted_frames(
    x: Floats, rate: int, frame: int, rows: npt.NDArray[np.bool_] | None = None
) -> npt.NDArray[np.float64]:
    """The K-weighted mean square of each whole frame (of those ``rows`` marks), filtered in
    the frequency domain.

    Each frame's spectrum is weighted and summed (Parseval): many small FFTs, several times
    faster than one over the whole answer, and within 0.01 dB of filtering it whole.
    """
    frames = x.size // frame
    # numpy's float32 FFT is several times slower than its float64 one: convert first.
    whole = x[: frames * frame].reshape(frames, frame)
    whole = (whole if rows is None else whole[rows]).astype(np.float64)
    spectra = np.fft.rfft(whole, axis=1)
    # rfft holds each bin but DC (and Nyquist for an even frame) once for two.
    both_sides = np.full(spectra.shape[1], 2.0)
    both_sides[0] = 1.0
    if frame % 2 == 0:
        both_sides[-1] = 1.0
    weights = _k_weighting(rate, spectra.shape[1]).astype(np.float64) ** 2
    power = spectra.real**2 + spectra.imag**2
    result: npt.NDArray[np.float64] = power @ (weights * both_sides / (frame * frame))
    return result


def decode_answer(data: bytes, response_format: str, sample_rate: int) -> tuple[Floats, int]:
    """An answer's audio as mono float samples and their rate (Opus decodes at 48 kHz)."""
    if response_format == "pcm":
        if len(data) % 2:
            raise AudioError(f"{len(data)} bytes is not whole 16-bit samples")
        return _as_float(np.frombuffer(data, dtype="<i2")), sample_rate
    if response_format == "wav" and (found := _wav_samples(data)) is not None:
        return found
    chunks: list[Floats] = []
    with av_errors("decoding the answer"), av.open(io.BytesIO(data), "r") as container:
        if not container.streams.audio:
            raise AudioError("no audio stream")
        stream = container.streams.audio[0]
        rate = stream.codec_context.sample_rate or sample_rate
        # Mono float frames (what the mp3 and Opus decoders give) are used as they are.
        resampler: av.AudioResampler | None = None
        for frame in container.decode(stream):
            if resampler is None and frame.format.name in ("flt", "fltp"):
                if frame.layout.nb_channels == 1:
                    chunks.append(_as_float(frame.to_ndarray()))
                    continue
            if resampler is None:
                resampler = av.AudioResampler(format="flt", layout="mono", rate=rate)
            frame.pts = None
            chunks.extend(_as_float(f.to_ndarray()) for f in resampler.resample(frame))
        if resampler is not None:
            chunks.extend(_as_float(f.to_ndarray()) for f in resampler.resample(None))
    samples = np.concatenate(chunks) if chunks else np.zeros(0, dtype=np.float32)
    return samples.astype(np.float32, copy=False), rate


def _wav_samples(data: bytes) -> tuple[Floats, int] | None:
    """Mono 16-bit PCM samples read straight from the WAVE bytes (what the API answers, and
    all that ``check_audio`` lets through): a FFmpeg decode costs a hundred times more. None
    for any other coding, which FFmpeg decodes."""
    try:
        info = read_wav_info(io.BytesIO(data), len(data))
    except AudioError:
        return None
    if info.format_tag != WAVE_FORMAT_PCM or info.channels != 1 or info.bits != 16:
        return None
    ints = np.frombuffer(data, dtype="<i2", count=info.frames, offset=info.data_offset)
    return _as_float(ints), info.sample_rate
