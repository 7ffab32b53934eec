"""The quality gate's parts: text units, measures, decoding, config, rules and verdicts."""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
import pytest

from pipeline.audio import AudioError
from pipeline.localserver import encode
from pipeline.quality import (
    OFF,
    QualityConfig,
    QualityGate,
    decode_answer,
    measure,
    measures,
    parse_quality,
    text_units,
)

RATE = 16000
Floats = npt.NDArray[np.float32]


def burst(seconds: float, level_db: float = -20.0, freq: float = 440.0) -> Floats:
    """A tone at ``level_db`` RMS: stands in for speech in the measures."""
    t = np.arange(round(seconds * RATE)) / RATE
    amplitude = math.sqrt(2) * 10 ** (level_db / 20)
    return (amplitude * np.sin(2 * np.pi * freq * t)).astype(np.float32)


def quiet(seconds: float) -> Floats:
    return np.zeros(round(seconds * RATE), dtype=np.float32)


def speech(syllables: float, pace: float = 0.2, level_db: float = -20.0) -> Floats:
    """Bursts of 0.15 s with 0.05 s between them: ``syllables * pace`` seconds."""
    piece = np.concatenate((burst(pace * 0.75, level_db), quiet(pace * 0.25)))
    whole = np.tile(piece, max(1, round(syllables)))
    return np.concatenate((quiet(0.1), whole[: -round(pace * 0.25 * RATE)], quiet(0.1)))


# -- units ---------------------------------------------------------------------------------


def test_units_count_cjk_characters_latin_syllables_and_pauses() -> None:
    zh = text_units("“滚滚长江东逝水，浪花淘尽英雄。是非成败转头空。”")
    assert (zh.cjk, zh.latin, zh.script) == (20, 0, "cjk")
    # A comma and a sentence end inside; the last full stop and quote are not a pause.
    assert zh.pauses == 3.0
    en = text_units("Make the whole beautiful table, 42 times!")
    # make(1) the(1) whole(1) beautiful(3: eau, i, u) table(2) times(1); digits 2
    assert (en.latin, en.digits, en.script) == (9, 2, "latin")
    assert en.total == en.spoken + en.pauses == 11 + 1.0


def test_units_of_mixed_text_follow_the_larger_script() -> None:
    assert text_units("他说 hello 世界").script == "cjk"
    assert text_units("The word 世 is one character").script == "latin"
    assert text_units("...").spoken == 0


# -- measures ------------------------------------------------------------------------------


def test_measures_of_speech_with_silences() -> None:
    x = np.concatenate((quiet(0.5), burst(1.0), quiet(1.2), burst(1.0, -26.0), quiet(0.3)))
    m = measure(x, RATE)
    assert m.duration_s == pytest.approx(4.0)
    assert m.leading_silence_s == pytest.approx(0.5, abs=0.021)
    assert m.trailing_silence_s == pytest.approx(0.3, abs=0.021)
    assert m.longest_gap_s == pytest.approx(1.2, abs=0.041)
    assert m.active_s == pytest.approx(2.0, abs=0.041)
    assert m.speech_s == pytest.approx(3.2, abs=0.041)
    assert m.peak_dbfs == pytest.approx(-17.0, abs=0.1)
    assert m.clipped_share == 0


def test_loudness_is_bs1770_for_a_full_scale_997_hz_sine() -> None:
    # BS.1770's own check: a 0 dBFS 997 Hz sine in one channel reads -3.01 LKFS.
    t = np.arange(48000) / 48000
    m = measure(np.sin(2 * np.pi * 997 * t).astype(np.float32), 48000)
    assert m.loudness_lufs == pytest.approx(-3.01, abs=0.05)
    assert m.rms_dbfs == pytest.approx(-3.01, abs=0.01)


def test_loudness_ignores_silence_and_follows_gain() -> None:
    speech_only = measure(burst(2.0, -20.0, 1000.0), RATE).loudness_lufs
    with_pause = measure(np.concatenate((burst(2.0, -20.0, 1000.0), quiet(2.0))), RATE)
    assert with_pause.loudness_lufs == pytest.approx(speech_only, abs=0.1)
    assert measure(burst(2.0, -32.0, 1000.0), RATE).loudness_lufs == pytest.approx(
        speech_only - 12.0, abs=0.1
    )


def test_clipping_and_digital_silence_are_measured() -> None:
    clipped = np.clip(burst(1.0, 0.0) * 4, -1.0, 1.0)
    assert measure(clipped, RATE).clipped_share > 0.5
    silent = measure(quiet(2.0), RATE)
    assert silent.active_s == 0 and silent.rms_dbfs == -120.0
    assert silent.leading_silence_s == pytest.approx(2.0)
    tiny = measure(np.full(5, 0.5, dtype=np.float32), RATE)  # under one 20 ms frame
    assert tiny.active_s == pytest.approx(5 / RATE)
    assert tiny.peak_dbfs == pytest.approx(-6.02, abs=0.01)
    empty = measure(np.zeros(0, dtype=np.int16), RATE)
    assert empty.duration_s == 0 and empty.active_s == 0


def test_int16_samples_are_read_at_full_scale() -> None:
    ints = np.rint(burst(1.0, -20.0) * 32767).astype(np.int16)
    assert measure(ints, RATE).rms_dbfs == pytest.approx(-20.0, abs=0.05)


@pytest.mark.parametrize("fmt", ["mp3", "wav", "pcm", "ogg_opus"])
def test_decode_answer_gives_mono_floats_of_every_format(fmt: str) -> None:
    ints = np.rint(speech(20) * 32767).astype(np.int16)
    samples, rate = decode_answer(encode(ints, RATE, fmt), fmt, RATE)
    assert rate == (48000 if fmt == "ogg_opus" else RATE)
    assert samples.dtype == np.float32 and samples.ndim == 1
    assert samples.size / rate == pytest.approx(ints.size / RATE, abs=0.08)
    assert measure(samples, rate).rms_dbfs == pytest.approx(measure(ints, RATE).rms_dbfs, abs=0.5)


def test_a_wav_answer_is_read_from_its_bytes_as_ffmpeg_would_decode_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    ints = np.rint(speech(5) * 32767).astype(np.int16)
    data = encode(ints, RATE, "wav")
    fast, rate = decode_answer(data, "wav", RATE)
    monkeypatch.setattr(measures, "_wav_samples", lambda data: None)  # FFmpeg's decode
    slow, slow_rate = decode_answer(data, "wav", RATE)
    assert rate == slow_rate == RATE and fast.dtype == np.float32
    assert np.array_equal(fast, slow)
    assert np.array_equal(fast, ints.astype(np.float32) / 32768)


def test_decode_answer_refuses_what_is_not_audio() -> None:
    with pytest.raises(AudioError):
        decode_answer(b"not audio at all", "mp3", RATE)
    with pytest.raises(AudioError, match="16-bit"):
        decode_answer(b"\x00\x01\x02", "pcm", RATE)


# -- config --------------------------------------------------------------------------------


def test_quality_off_on_and_a_mapping() -> None:
    assert parse_quality("off", "job.yaml", 3) == (OFF, [])
    assert parse_quality(False, "job.yaml", 3) == (OFF, [])
    assert parse_quality("on", "job.yaml", 3) == (QualityConfig(), [])
    config, problems = parse_quality({"retries": 2, "max_gap_s": 4, "strict": True}, "job.yaml", 3)
    assert problems == []
    assert (config.retries, config.max_gap_s, config.strict) == (2, 4.0, True)
    assert isinstance(config.max_gap_s, float)


def test_quality_problems_name_the_file_and_line_of_each_bad_key() -> None:
    config, problems = parse_quality(
        {"retries": -1, "loudness_jump": 3, "max_gap_s": "long", "strict": 1, "enabled": "no"},
        "job.yaml",
        10,
        {"retries": 11, "loudness_jump": 12, "max_gap_s": 13, "strict": 14},
    )
    text = [str(p) for p in problems]
    assert text[0] == "job.yaml:11: quality.retries must be a whole number from 0 to 5, not -1"
    assert text[1].startswith("job.yaml:12: quality has no setting 'loudness_jump'; known:")
    assert text[2] == "job.yaml:13: quality.max_gap_s must be a number above 0, not 'long'"
    assert text[3] == "job.yaml:14: quality.strict must be true or false, not 1"
    assert text[4] == "job.yaml:10: quality.enabled must be true or false, not 'no'"
    assert config == QualityConfig()  # nothing bad was applied
    _, problems = parse_quality([1, 2], "job.yaml", 5)
    assert [p.line for p in problems] == [5]
    _, problems = parse_quality({"max_gap_s": math.nan}, "job.yaml", 5)
    assert "not nan" in str(problems[0])


def test_quality_settings_that_contradict_each_other() -> None:
    _, problems = parse_quality({"duration_low": 0.1}, "j.yaml", 2)
    assert ["prior_low/prior_high" in p.message for p in problems] == [True]
    _, problems = parse_quality({"min_loudness_lufs": -3}, "j.yaml", 2)
    assert "min_loudness_lufs must be under" in problems[0].message


# -- the gate ------------------------------------------------------------------------------

EN = "The quick brown fox jumps over the lazy dog, and then it runs away."


def _warm(gate: QualityGate, chapter: str = "c1", voice: str = "v", pace: float = 0.2) -> None:
    for i in range(6):
        text = f"{EN} Number {i}."
        x = speech(text_units(text).total, pace)
        verdict = gate.assess(text, voice, 1.0, chapter, x, RATE)
        assert verdict.ok, verdict.to_json()
        assert gate.accept(text, voice, 1.0, chapter, verdict, i) == []


def test_a_good_answer_is_ok_and_its_prediction_learnt() -> None:
    gate = QualityGate()
    _warm(gate, pace=0.3)  # slower than the prior: the model follows the voice
    verdict = gate.assess(EN, "v", 1.0, "c1", speech(text_units(EN).total, 0.3), RATE)
    assert verdict.ok and verdict.rules == () and verdict.score == 0
    assert verdict.predicted_s == pytest.approx(
        measure(speech(text_units(EN).total, 0.3), RATE).speech_s, rel=0.1
    )
    assert verdict.speech_rate is not None and verdict.loudness_diff_lu is not None
    assert not verdict.provisional
    # Speed 2 predicts half the time from the pace at speed 1, but only as loosely as the
    # prior: the voice may not follow speed exactly, until its own chunks at speed 2 say so.
    fast = gate.assess(EN, "v", 2.0, "c1", speech(text_units(EN).total, 0.15), RATE)
    assert fast.ok and fast.provisional
    assert fast.predicted_s == pytest.approx(verdict.predicted_s / 2)
    capped = gate.assess(EN, "v", 2.0, "c1", speech(text_units(EN).total, 0.24), RATE)
    assert capped.ok  # a voice that reads speed 2 as 1.25 is not flagged during warm-up


@pytest.mark.parametrize(
    ("name", "audio", "rule"),
    [
        ("silent", lambda n: quiet(n * 0.2), "silent"),
        ("truncated", lambda n: speech(n / 2), "duration_short"),
        ("slow", lambda n: speech(n, 0.5), "duration_long"),
        ("gap", lambda n: np.concatenate((speech(n / 2), quiet(4.0), speech(n / 2))), "gap"),
        ("edge", lambda n: np.concatenate((speech(n), quiet(3.0))), "edge_silence"),
        ("clipped", lambda n: np.clip(speech(n, level_db=-3) * 6, -1, 1), "clipped"),
        ("quiet", lambda n: speech(n, level_db=-30), "loudness_jump"),
        ("very quiet", lambda n: speech(n, level_db=-45), "too_quiet"),
    ],
)
def test_each_fault_breaks_its_rule(name: str, audio: object, rule: str) -> None:
    gate = QualityGate()
    _warm(gate)
    assert callable(audio)
    verdict = gate.assess(EN, "v", 1.0, "c1", audio(text_units(EN).total), RATE)
    assert rule in verdict.rules, (name, verdict.to_json())
    assert not verdict.ok and verdict.score > 1
    assert verdict.to_json()["rules"] == list(verdict.rules)


def test_better_than_prefers_fewer_and_smaller_faults() -> None:
    gate = QualityGate()
    _warm(gate)
    n = text_units(EN).total
    good = gate.assess(EN, "v", 1.0, "c1", speech(n), RATE)
    gap = gate.assess(EN, "v", 1.0, "c1", np.concatenate((speech(n), quiet(3.5))), RATE)
    longer_gap = gate.assess(EN, "v", 1.0, "c1", np.concatenate((speech(n), quiet(6))), RATE)
    silent = gate.assess(EN, "v", 1.0, "c1", quiet(5), RATE)
    assert good.better_than(gap) and not gap.better_than(good)
    assert gap.better_than(longer_gap) and not longer_gap.better_than(gap)
    assert gap.better_than(silent)
    assert not good.better_than(good)


def test_loudness_reference_is_the_chapters_median_then_the_voices() -> None:
    gate = QualityGate()
    _warm(gate, chapter="c1")
    # A new chapter has no median yet: the voice's stands in, and the verdict is provisional.
    first = gate.assess(EN, "v", 1.0, "c2", speech(text_units(EN).total, level_db=-30), RATE)
    assert "loudness_jump" in first.rules
    ok = gate.assess(EN, "v", 1.0, "c2", speech(text_units(EN).total), RATE)
    assert ok.ok and ok.provisional


def test_short_texts_are_not_timed() -> None:
    gate = QualityGate()
    verdict = gate.assess("Yes.", "v", 1.0, "c", speech(1, 1.5), RATE)
    assert verdict.ok and verdict.predicted_s is None


def test_a_fault_during_warm_up_is_found_once_the_voice_is_learnt() -> None:
    gate = QualityGate()
    text = f"{EN} Truncated."
    n = text_units(text).total
    # Half the speech is within the prior's wide range: accepted, but provisionally.
    early = gate.assess(text, "v", 1.0, "c1", speech(n / 2), RATE)
    assert early.ok and early.provisional
    late = gate.accept(text, "v", 1.0, "c1", early, "the truncated one")
    for i in range(6):
        t = f"{EN} Number {i}."
        v = gate.assess(t, "v", 1.0, "c1", speech(text_units(t).total), RATE)
        late += gate.accept(t, "v", 1.0, "c1", v, i)
    assert late == ["the truncated one"]


def test_quiet_first_chunks_of_a_run_are_found_when_the_median_forms() -> None:
    gate = QualityGate()
    refs = []
    for i, level in enumerate([-34.0, -20.0, -20.0, -20.0]):
        t = f"{EN} Number {i}."
        v = gate.assess(t, "v", 1.0, "c1", speech(text_units(t).total, level_db=level), RATE)
        assert v.ok
        refs += gate.accept(t, "v", 1.0, "c1", v, i)
    assert refs == [0]
