"""Silence in a part's own coding, made once and reused for every pause."""

from __future__ import annotations

import functools

import av
import numpy as np

from pipeline.audio.avutil import av_errors
from pipeline.audio.model import OPUS_GRANULE_RATE, AudioError
from pipeline.audio.mp3 import FrameHeader, make_frame
from pipeline.audio.ogg import packet_samples


def mp3_silent_frame(template: FrameHeader, bitrate_index: int) -> bytes:
    """A silent frame that fits between the template's frames.

    Built, not encoded: a frame with zero side information has no main data and no
    bit-reservoir back-reference, so it is silent after any frame, at any bitrate, which an
    encoder's frame (main_data_begin > 0 in the middle of a stream) is not.
    """
    return make_frame(template, bitrate_index)


@functools.lru_cache(maxsize=8)
def opus_silent_packet(channels: int) -> bytes:
    """One 20 ms Opus packet of digital silence, from libopus in its steady state."""
    with av_errors("encoding Opus silence"):
        codec = av.CodecContext.create("libopus", "w")
        assert isinstance(codec, av.AudioCodecContext)
        codec.sample_rate = OPUS_GRANULE_RATE
        codec.layout = "mono" if channels == 1 else "stereo"
        codec.format = "flt"
        codec.open()
        zeros = np.zeros((1, OPUS_GRANULE_RATE * channels // 5), dtype=np.float32)
        frame = av.AudioFrame.from_ndarray(zeros, format="flt", layout=codec.layout.name)
        frame.sample_rate = OPUS_GRANULE_RATE
        frame.pts = 0
        packets = [bytes(p) for p in codec.encode(frame)] + [bytes(p) for p in codec.encode(None)]
    # The first packets carry the encoder's start-up; one from the middle is plain silence.
    steady = [p for p in packets[2:-2] if packet_samples(p) == 960]
    if not steady:
        raise AudioError("libopus gave no 20 ms packet of silence")
    return steady[len(steady) // 2]
