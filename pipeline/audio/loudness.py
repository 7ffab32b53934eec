"""EBU R128 / ITU-R BS.1770 integrated loudness: FFmpeg's meter and a NumPy reference.

:class:`LoudnessMeter` is what finishing uses: FFmpeg's ``ebur128`` filter, fed with blocks
of samples, measures at the audio's own rate (``loudnorm`` resamples to 192 kHz, which was
most of the old cost). :func:`integrated_loudness` is a second, independent implementation
(K-weighting applied by FFT convolution, its own gating) used to check
results: a test or benchmark that measured its output with the code that made it would
prove nothing.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from fractions import Fraction

import av
import av.filter
import numpy as np
import numpy.typing as npt

from pipeline.audio.avutil import av_errors

Block = npt.NDArray[np.float32]  # (channels, samples), planar float
SILENT_LUFS = -70.0  # BS.1770's absolute gate: below it there is no loudness to speak of


class GraphFeed(ABC):
    """Planar float blocks pushed through an FFmpeg filter graph, drained as they go."""

    _graph: av.filter.Graph

    def __init__(self, rate: int, layout: str) -> None:
        self._rate = rate
        self._layout = layout
        self._pts = 0

    def add(self, block: Block) -> None:
        frame = av.AudioFrame.from_ndarray(block, format="fltp", layout=self._layout)
        frame.sample_rate = self._rate
        frame.pts = self._pts
        frame.time_base = Fraction(1, self._rate)
        self._pts += block.shape[1]
        with av_errors("measuring loudness"):
            self._graph.push(frame)
            self._drain()

    @abstractmethod
    def _drain(self) -> None:
        """Take what the graph has for the caller after each push."""


class LoudnessMeter(GraphFeed):
    """FFmpeg ``ebur128`` over planar float blocks; :meth:`integrated` at the end."""

    def __init__(self, rate: int, layout: str) -> None:
        super().__init__(rate, layout)
        self._last: float | None = None
        with av_errors("measuring loudness"):
            self._graph = av.filter.Graph()
            source = self._graph.add_abuffer(
                format="fltp", sample_rate=rate, layout=layout, time_base=Fraction(1, rate)
            )
            meter = self._graph.add("ebur128", "metadata=1")
            source.link_to(meter)
            meter.link_to(self._graph.add("abuffersink"))
            self._graph.configure()

    def _drain(self) -> None:
        last = None
        while True:
            try:
                last = self._graph.pull()
            except (av.BlockingIOError, av.EOFError):
                break
        # Only the latest frame's running figure matters; reading every frame's would cost.
        if last is not None and (value := last.metadata.get("lavfi.r128.I")) is not None:
            self._last = float(value)

    def integrated(self) -> float:
        """Integrated loudness in LUFS; -inf for silence (nothing above the absolute gate)."""
        with av_errors("measuring loudness"):
            self._graph.push(None)
            self._drain()
        if self._last is None or self._last <= SILENT_LUFS:
            return -math.inf
        return self._last


# --- the reference -----------------------------------------------------------------------

_SHELF = (1681.974450955533, 3.999843853973347, 0.7071752369554196)  # f0, gain dB, Q
_SHELF_VB_EXPONENT = 0.4996667741545416
_HIGH_PASS = (38.13547087602444, 0.5003270373238773)  # f0, Q


Biquad = tuple[tuple[float, float, float], tuple[float, float, float]]  # (b, a)


def k_weighting_biquads(rate: int) -> tuple[Biquad, Biquad]:
    """The K-weighting at ``rate``: the shelf's and the high-pass's (b, a) coefficients.

    From the analog prototypes by bilinear transform (as libebur128 derives them), which
    give BS.1770's published 48 kHz coefficients exactly and any other rate.
    """
    f0, gain, q = _SHELF
    k = math.tan(math.pi * f0 / rate)
    vh = 10 ** (gain / 20)
    vb = vh**_SHELF_VB_EXPONENT
    shelf = (
        (vh + vb * k / q + k * k, 2 * (k * k - vh), vh - vb * k / q + k * k),
        (1 + k / q + k * k, 2 * (k * k - 1), 1 - k / q + k * k),
    )
    f0, q = _HIGH_PASS
    k = math.tan(math.pi * f0 / rate)
    a = (1 + k / q + k * k, 2 * (k * k - 1), 1 - k / q + k * k)
    return shelf, ((a[0], -2 * a[0], a[0]), a)


def _k_weighting(rate: int, n_fft: int) -> npt.NDArray[np.complex128]:
    """The K-weighting's frequency response on an rfft grid."""
    z = np.exp(-1j * 2 * np.pi * np.fft.rfftfreq(n_fft))  # z**-1 along the unit circle
    response: npt.NDArray[np.complex128] = np.ones(len(z), dtype=np.complex128)
    for b, a in k_weighting_biquads(rate):
        response *= (b[0] + b[1] * z + b[2] * z**2) / (a[0] + a[1] * z + a[2] * z**2)
    return response


def _weighted_energy(samples: npt.NDArray[np.floating], rate: int, step: int) -> list[float]:
    """Sum of squared K-weighted samples per ``step`` samples, one channel, streaming."""
    taps = rate  # the impulse response has died out (< -120 dB) well within a second
    block = 1 << max(16, (4 * taps - 1).bit_length())
    impulse = np.fft.irfft(_k_weighting(rate, block), block)[:taps]
    kernel = np.fft.rfft(impulse, block)
    hop = block - taps + 1
    out = np.zeros(len(samples) + taps, dtype=np.float64)
    for start in range(0, len(samples), hop):
        piece = np.asarray(samples[start : start + hop], dtype=np.float64)
        filtered = np.fft.irfft(np.fft.rfft(piece, block) * kernel, block)
        out[start : start + len(piece) + taps - 1] += filtered[: len(piece) + taps - 1]
    squared = out[: len(samples)] ** 2
    whole = len(squared) // step
    return list(squared[: whole * step].reshape(whole, step).sum(axis=1))


def integrated_loudness(samples: npt.NDArray[np.floating], rate: int) -> float:
    """BS.1770-4 integrated loudness of ``samples`` ((channels, n) or (n,)), in LUFS.

    -inf when every 400 ms block is under the absolute gate.
    """
    planar = samples.reshape(1, -1) if samples.ndim == 1 else samples
    step = rate // 10  # 100 ms: blocks of 400 ms overlap by 75 %
    energy = np.sum([_weighted_energy(channel, rate, step) for channel in planar], axis=0)
    if len(energy) < 4:
        return -math.inf
    blocks = (energy[:-3] + energy[1:-2] + energy[2:-1] + energy[3:]) / (4 * step)
    with np.errstate(divide="ignore"):
        levels = -0.691 + 10 * np.log10(blocks)
    gated = blocks[levels > SILENT_LUFS]
    if not len(gated):
        return -math.inf
    relative = -0.691 + 10 * math.log10(float(gated.mean())) - 10
    kept = blocks[(levels > SILENT_LUFS) & (levels > relative)]
    return -0.691 + 10 * math.log10(float(kept.mean()))


def true_peak_dbtp(samples: npt.NDArray[np.floating], oversample: int = 8) -> float:
    """The highest inter-sample peak in dBTP, by FFT oversampling in overlapping pieces."""
    planar = samples.reshape(1, -1) if samples.ndim == 1 else samples
    piece, margin = 1 << 15, 256
    peak = 0.0
    for channel in planar:
        for start in range(0, channel.shape[0], piece):
            lo = max(0, start - margin)
            chunk = np.asarray(channel[lo : start + piece + margin], dtype=np.float64)
            # A Hann taper on the margins keeps the FFT's wrap-around from making peaks.
            taper = np.ones(len(chunk))
            ramp = np.hanning(2 * margin)
            if lo > 0:
                taper[:margin] = ramp[:margin]
            if start + piece + margin < channel.shape[0]:
                taper[-margin:] = ramp[margin:]
            up = np.fft.irfft(np.fft.rfft(chunk * taper), len(chunk) * oversample) * oversample
            inner = up[(start - lo) * oversample : (start - lo + piece) * oversample]
            if len(inner):
                peak = max(peak, float(np.abs(inner).max()))
    return 20 * math.log10(peak) if peak > 0 else -math.inf
