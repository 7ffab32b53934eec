"""Is an API answer the audio that was asked for? Cheap enough to run on every answer.

pcm and wav are checked from their bytes and headers alone. mp3 is checked frame by frame
(headers, lengths, one rate) and Ogg Opus page by page (CRC, OpusHead, packet TOCs); then
the first few packets of either are decoded by FFmpeg, which proves the codec data itself
without paying for a whole decode.

An answer must also be what the chapter join can use with every other part: the API's
documented coding (mono, and for wav 16-bit integer PCM) at the rate asked for. A stereo or
float answer that passed would be cached and then fail its chapter's join on every re-run;
refused here, it is retried like any other bad answer and never cached.
"""

from __future__ import annotations

import io

import av

from pipeline.audio.avutil import av_errors
from pipeline.audio.model import OPUS_GRANULE_RATE, AudioError
from pipeline.audio.mp3 import read_mp3
from pipeline.audio.ogg import read_opus
from pipeline.audio.wav import WAVE_FORMAT_EXTENSIBLE, WAVE_FORMAT_PCM, WavInfo, read_wav_info
from pipeline.errors import CODE_BAD_AUDIO, BadAudio

_DECODE_PACKETS = 4
_CONTAINER_MAGIC = (b"RIFF", b"OggS", b"ID3", b"fLaC", b'{"')
# What every part of a chapter must share for the join: the API's documented coding.
_CHANNELS = 1
_WAV_BITS = 16
# WAVE_FORMAT_EXTENSIBLE names its coding by a GUID; this one is integer PCM.
_KSDATAFORMAT_SUBTYPE_PCM = bytes.fromhex("0100000000001000800000aa00389b71")


def check_audio(data: bytes, response_format: str, sample_rate: int) -> float:
    """The duration in seconds of an answer; BadAudio when it is not the audio asked for."""
    try:
        seconds = _duration(data, response_format, sample_rate)
    except AudioError as e:
        raise BadAudio(CODE_BAD_AUDIO, f"{response_format} answer: {e}") from e
    if seconds <= 0:
        raise BadAudio(CODE_BAD_AUDIO, f"{response_format} answer holds no audio")
    return seconds


def _duration(data: bytes, response_format: str, sample_rate: int) -> float:
    if not data:
        raise AudioError("empty body")
    if response_format == "pcm":
        return _pcm_seconds(data, sample_rate)
    if response_format == "wav":
        return _wav_seconds(data, sample_rate)
    if response_format == "mp3":
        return _mp3_seconds(data, sample_rate)
    if response_format == "ogg_opus":
        return _opus_seconds(data, sample_rate)
    raise AudioError(f"unknown response format {response_format!r}")


def _pcm_seconds(data: bytes, sample_rate: int) -> float:
    if data.startswith(_CONTAINER_MAGIC):
        raise AudioError(f"a container or JSON ({data[:4]!r}), not raw samples")
    if len(data) % 2:
        raise AudioError(f"{len(data)} bytes is not whole 16-bit samples")
    return len(data) / 2 / sample_rate


def _wav_seconds(data: bytes, sample_rate: int) -> float:
    info = read_wav_info(io.BytesIO(data), len(data))
    if info.sample_rate != sample_rate:
        raise AudioError(f"{info.sample_rate} Hz, asked for {sample_rate} Hz")
    _check_channels(info.channels)
    if info.bits != _WAV_BITS or not _is_integer_pcm(info):
        raise AudioError(
            f"WAVE format {info.format_tag:#x} with {info.bits}-bit samples; "
            f"the chapter join needs {_WAV_BITS}-bit integer PCM"
        )
    return info.frames / info.sample_rate


def _is_integer_pcm(info: WavInfo) -> bool:
    if info.format_tag == WAVE_FORMAT_PCM:
        return True
    # cbSize(2) validBits(2) channelMask(4) then the sub-format GUID at byte 24 of fmt.
    return (
        info.format_tag == WAVE_FORMAT_EXTENSIBLE
        and info.fmt_chunk[24:40] == _KSDATAFORMAT_SUBTYPE_PCM
    )


def _check_channels(channels: int) -> None:
    if channels != _CHANNELS:
        raise AudioError(f"{channels} channels; the chapter join needs mono")


def _mp3_seconds(data: bytes, sample_rate: int) -> float:
    audio = read_mp3(data)
    if audio.sample_rate != sample_rate:
        raise AudioError(f"{audio.sample_rate} Hz, asked for {sample_rate} Hz")
    _check_channels(audio.first.channels)
    _decode_start(data)
    return audio.decoded_samples / audio.sample_rate


def _opus_seconds(data: bytes, sample_rate: int) -> float:
    # OpusHead's input rate is informational (RFC 7845 5.1): Opus always decodes at 48 kHz,
    # and what a server writes there is undocumented. Refusing on it would make every answer
    # "bad", and each retry is billed again, so it is not checked.
    del sample_rate
    links = read_opus(data)
    if not any(link.packets for link in links):
        raise AudioError("no Opus audio packets")
    for link in links:
        _check_channels(link.channels)
    _decode_start(data)
    return sum(link.decoded_samples for link in links) / OPUS_GRANULE_RATE


def _decode_start(data: bytes) -> None:
    """Decode the first few packets: FFmpeg must accept the codec data, not just framing."""
    with av_errors("decoding"), av.open(io.BytesIO(data), "r") as container:
        if not container.streams.audio:
            raise AudioError("no audio stream")
        decoded = packets = 0
        for packet in container.demux(audio=0):
            if packet.size:
                packets += 1
            decoded += sum(frame.samples for frame in packet.decode())
            if packets >= _DECODE_PACKETS and decoded:
                return
        if not decoded:
            raise AudioError("the audio decodes to nothing")
