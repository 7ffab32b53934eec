"""check_audio: every answer is checked before it is cached."""

from __future__ import annotations

import struct
from fractions import Fraction
from pathlib import Path

import av
import numpy as np
import pytest
from test_audio_support import tone, write_part

from pipeline.audio import AudioError, check_audio
from pipeline.audio.ogg import ogg_crc, packet_samples
from pipeline.errors import CODE_BAD_AUDIO, BadAudio
from pipeline.speech import opus_rate


def _answer(tmp_path: Path, fmt: str, rate: int, seconds: float = 1.0) -> Path:
    source_rate = opus_rate(rate) if fmt == "ogg_opus" else rate
    return write_part(tmp_path / f"a.{fmt}", fmt, rate, tone(440.0, seconds, source_rate))


def _bytes(tmp_path: Path, fmt: str, rate: int, seconds: float = 1.0) -> bytes:
    return _answer(tmp_path, fmt, rate, seconds).read_bytes()


@pytest.mark.parametrize("fmt", ["mp3", "wav", "pcm", "ogg_opus"])
@pytest.mark.parametrize("rate", [8000, 22050, 48000])
def test_good_answers_pass_with_their_duration(tmp_path: Path, fmt: str, rate: int) -> None:
    assert check_audio(_bytes(tmp_path, fmt, rate, 1.25), fmt, rate) == pytest.approx(
        1.25, abs=0.001
    )


@pytest.mark.parametrize("fmt", ["mp3", "wav"])
def test_wrong_rate_is_bad_audio(tmp_path: Path, fmt: str) -> None:
    data = _bytes(tmp_path, fmt, 16000)
    with pytest.raises(BadAudio, match="Hz") as caught:
        check_audio(data, fmt, 44100)
    assert caught.value.code == CODE_BAD_AUDIO


def test_opus_input_rate_is_not_held_against_an_answer(tmp_path: Path) -> None:
    # OpusHead's input rate is informational (RFC 7845); every retry would be billed again.
    data = _bytes(tmp_path, "ogg_opus", 16000, 1.25)
    assert check_audio(data, "ogg_opus", 44100) == pytest.approx(1.25, abs=0.001)


@pytest.mark.parametrize(
    ("fmt", "data"),
    [
        ("mp3", b""),
        ("mp3", b"\xff\xfb\x90\x00" + b"\x01" * 50),
        ("mp3", b'{"code": 5000, "msg": "oops"}'),
        ("wav", b"RIFF\x10\x00\x00\x00WAVEfmt "),
        ("pcm", b"\x00\x01\x02"),
        ("pcm", b"RIFF" + bytes(100)),
        ("ogg_opus", b"OggS" + bytes(60)),
        ("ogg_opus", bytes(range(256)) * 4),
    ],
)
def test_garbage_is_bad_audio(fmt: str, data: bytes) -> None:
    with pytest.raises(BadAudio):
        check_audio(data, fmt, 24000)


@pytest.mark.parametrize("fmt", ["mp3", "wav", "ogg_opus"])
def test_truncated_answers_are_bad_audio(tmp_path: Path, fmt: str) -> None:
    data = _bytes(tmp_path, fmt, 24000)
    with pytest.raises(BadAudio):
        check_audio(data[: len(data) - 37], fmt, 24000)


def test_a_format_that_was_not_asked_for_is_bad_audio(tmp_path: Path) -> None:
    with pytest.raises(BadAudio):
        check_audio(_bytes(tmp_path, "mp3", 24000), "wav", 24000)
    with pytest.raises(BadAudio):
        check_audio(_bytes(tmp_path, "wav", 24000), "mp3", 24000)


def test_corrupt_opus_page_fails_its_crc(tmp_path: Path) -> None:
    data = bytearray(_bytes(tmp_path, "ogg_opus", 24000))
    data[len(data) // 2] ^= 0x55
    with pytest.raises(BadAudio, match="CRC"):
        check_audio(bytes(data), "ogg_opus", 24000)


def test_chained_opus_answer_counts_every_link(tmp_path: Path) -> None:
    one = _bytes(tmp_path, "ogg_opus", 24000, 1.0)
    two = write_part(tmp_path / "b.opus", "ogg_opus", 24000, tone(880.0, 0.5, 24000))
    serial = struct.unpack("<I", one[14:18])[0] ^ 0x5A5A
    chained = one + _with_serial(two.read_bytes(), serial)
    assert check_audio(chained, "ogg_opus", 24000) == pytest.approx(1.5, abs=0.001)
    with pytest.raises(BadAudio, match="begins twice"):
        check_audio(one + one, "ogg_opus", 24000)


def _with_serial(data: bytes, serial: int) -> bytes:
    """The same Ogg pages under another serial (links of a chain need their own)."""
    out = bytearray(data)
    at = 0
    while at < len(out):
        body_at = at + 27 + out[at + 26]
        end = body_at + sum(out[at + 27 : body_at])
        out[at + 14 : at + 18] = struct.pack("<I", serial)
        out[at + 22 : at + 26] = bytes(4)
        out[at + 22 : at + 26] = struct.pack("<I", ogg_crc(bytes(out[at:end])))
        at = end
    return bytes(out)


def test_ogg_crc_matches_the_bitwise_definition() -> None:
    def reference(data: bytes) -> int:
        crc = 0
        for byte in data:
            crc ^= byte << 24
            for _ in range(8):
                crc = ((crc << 1) ^ 0x04C11DB7 if crc & 0x80000000 else crc << 1) & 0xFFFFFFFF
        return crc

    for data in (b"", b"\x00", b"OggS", bytes(range(256)) * 3):
        assert ogg_crc(data) == reference(data)


@pytest.mark.parametrize(
    ("packet", "samples"),
    [
        (bytes([0xF8]), 960),  # CELT FB 20 ms, one frame
        (bytes([0xF9, 0]), 1920),  # two frames
        (bytes([0x1B, 2]), 2 * 2880),  # SILK NB 60 ms, code 3 with two frames
        (bytes([0xE0 | 0, 0]), 120),  # CELT 2.5 ms
        (struct.pack("B", 0x60), 480),  # hybrid SWB 10 ms
        (struct.pack("B", 0x78), 960),  # hybrid FB 20 ms
    ],
)
def test_opus_packet_durations(packet: bytes, samples: int) -> None:
    assert packet_samples(packet) == samples


def test_opus_packet_over_120_ms_is_refused() -> None:
    with pytest.raises(AudioError, match="5760|8640"):
        packet_samples(bytes([0x1B, 3]))


# --- answers the chapter join cannot use ---------------------------------------------------


def _stereo(path: Path, fmt: str, rate: int, seconds: float = 0.5) -> bytes:
    """A well-formed answer with two channels: valid audio, but not what the API promises."""
    container, codec = {
        "wav": ("wav", "pcm_s16le"),
        "mp3": ("mp3", "libmp3lame"),
        "ogg_opus": ("ogg", "libopus"),
    }[fmt]
    codec_rate = opus_rate(rate) if fmt == "ogg_opus" else rate
    left = tone(440.0, seconds, codec_rate)
    samples = np.ascontiguousarray(np.stack([left, left[::-1]]).T.reshape(1, -1))
    with av.open(str(path), "w", format=container) as out:
        stream = out.add_stream(codec, rate=codec_rate, layout="stereo")
        assert isinstance(stream, av.AudioStream)
        frame = av.AudioFrame.from_ndarray(samples, format="flt", layout="stereo")
        frame.sample_rate = codec_rate
        frame.pts = 0
        frame.time_base = Fraction(1, codec_rate)
        out.mux(stream.encode(frame))
        out.mux(stream.encode(None))
    return path.read_bytes()


@pytest.mark.parametrize("fmt", ["wav", "mp3", "ogg_opus"])
def test_a_stereo_answer_is_bad_audio(tmp_path: Path, fmt: str) -> None:
    data = _stereo(tmp_path / f"stereo.{fmt}", fmt, 24000)
    with pytest.raises(BadAudio, match="2 channels; the chapter join needs mono") as caught:
        check_audio(data, fmt, 24000)
    assert caught.value.code == CODE_BAD_AUDIO


def _wav(tag: int, channels: int, rate: int, bits: int, extra: bytes = b"") -> bytes:
    align = channels * bits // 8
    fmt = struct.pack("<HHIIHH", tag, channels, rate, rate * align, align, bits) + extra
    data = bytes(align * rate // 10)
    body = b"WAVE" + b"fmt " + struct.pack("<I", len(fmt)) + fmt
    body += b"data" + struct.pack("<I", len(data)) + data
    return b"RIFF" + struct.pack("<I", len(body)) + body


def _extensible(bits: int, subformat: bytes) -> bytes:
    # cbSize 22, valid bits, channel mask (front centre), sub-format GUID.
    return _wav(0xFFFE, 1, 24000, bits, struct.pack("<HHI", 22, bits, 4) + subformat)


PCM_GUID = bytes.fromhex("0100000000001000800000aa00389b71")
FLOAT_GUID = bytes.fromhex("0300000000001000800000aa00389b71")


@pytest.mark.parametrize(
    ("data", "reason"),
    [
        (_wav(1, 1, 24000, 8), "8-bit"),
        (_wav(1, 1, 24000, 24), "24-bit"),
        (_wav(3, 1, 24000, 32), "WAVE format 0x3"),  # IEEE float
        (_extensible(32, FLOAT_GUID), "0xfffe with 32-bit"),
        (_extensible(16, FLOAT_GUID[:15] + b"\x72"), "0xfffe with 16-bit"),
        (_wav(1, 2, 24000, 16), "2 channels"),
    ],
)
def test_a_wav_answer_in_another_coding_is_bad_audio(data: bytes, reason: str) -> None:
    with pytest.raises(BadAudio, match=reason):
        check_audio(data, "wav", 24000)


def test_wav_answers_in_the_api_coding_pass_whatever_their_header_style() -> None:
    assert check_audio(_wav(1, 1, 24000, 16), "wav", 24000) == pytest.approx(0.1)
    assert check_audio(_extensible(16, PCM_GUID), "wav", 24000) == pytest.approx(0.1)


def test_a_wav_answer_at_another_rate_is_bad_audio() -> None:
    with pytest.raises(BadAudio, match="16000 Hz, asked for 24000 Hz"):
        check_audio(_wav(1, 1, 16000, 16), "wav", 24000)
