"""Readable subtitles: sentences and clauses, two lines, ~7 s, timed from the speech's pauses."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from test_audio_support import decode

from pipeline.audio import ChapterSpec, Cue, Part, assemble_chapter
from pipeline.audio.cuetext import LINE_WIDTH, clauses, sentences, width, words, wrap
from pipeline.audio.pauses import Pause, find_pauses
from pipeline.audio.readable import part_cues, timed
from pipeline.localserver.encode import encode
from pipeline.localserver.espeak import EspeakEngine

ENGLISH = (
    "To Sherlock Holmes she is always the woman. I have seldom heard him mention her under any "
    "other name. In his eyes she eclipses and predominates the whole of her sex. It was not that "
    "he felt any emotion akin to love for Irene Adler. All emotions, and that one particularly, "
    "were abhorrent to his cold, precise but admirably balanced mind. He was, I take it, the most "
    "perfect reasoning and observing machine that the world has seen, but as a lover he would "
    "have placed himself in a false position. He never spoke of the softer passions, save with a "
    "gibe and a sneer."
)
CHINESE = (
    "滚滚长江东逝水，浪花淘尽英雄。是非成败转头空。青山依旧在，几度夕阳红。白发渔樵江渚上，"
    "惯看秋月春风。一壶浊酒喜相逢。古今多少事，都付笑谈中。话说天下大势，分久必合，合久必分。"
    "周末七国分争，并入于秦。及秦灭之后，楚、汉分争，又并入于汉。汉朝自高祖斩白蛇而起义，"
    "一统天下，后来光武中兴，传至献帝，遂分为三国。"
)


def _bare(text: str) -> str:
    return re.sub(r"\s+", "", text)


def test_sentences_keep_every_character() -> None:
    text = 'Mr. Holmes came. "Really?" he said. J. Smith left! Then… 他来了。“好！”走吧'
    pieces = sentences(text)
    assert "".join(pieces) == text
    assert pieces == [
        "Mr. Holmes came. ",
        '"Really?" he said. ',
        "J. Smith left! ",
        "Then… ",
        "他来了。",
        "“好！”",
        "走吧",
    ]
    assert clauses("One, two; three: four") == ["One, ", "two; ", "three: ", "four"]
    assert clauses("一，二、三") == ["一，", "二、", "三"]


@given(st.text(alphabet="ab .,;!?。，的 \n“”", max_size=80))
def test_every_split_joins_back(text: str) -> None:
    for split in (sentences, clauses, words):
        assert "".join(split(text)) == text


def test_wrap_balances_two_lines_and_refuses_three() -> None:
    assert wrap("short one") == ["short one"]
    lines = wrap("In his eyes she eclipses and predominates the whole of her sex.")
    assert lines is not None and len(lines) == 2
    assert all(width(line) <= LINE_WIDTH for line in lines)
    assert wrap("word " * 30) is None
    assert width("青山依旧在") == pytest.approx(5 * LINE_WIDTH / 16)
    chinese = wrap("滚滚长江东逝水，浪花淘尽英雄。是非成败转头空。")
    assert chinese == ["滚滚长江东逝水，浪花淘尽英雄。", "是非成败转头空。"]


def test_sentences_fall_at_the_nearest_pauses() -> None:
    # Three sentences, four pauses (one at a comma): the two nearest the proportions win.
    pauses = [Pause(900, 1000), Pause(2000, 2300), Pause(3000, 3100), Pause(4100, 4400)]
    spans = timed(["aaaa bb, cc. ", "dddd eeee. ", "ffff."], 0, 6000, pauses)
    assert [(s, e) for _, s, e in spans] == [(0, 2000), (2300, 4100), (4400, 6000)]


def test_too_few_pauses_share_the_time_by_characters() -> None:
    spans = timed(["aaaa ", "bbbbbbbb ", "cccc"], 1000, 5000, [Pause(1500, 1700)])
    assert [(s, e) for _, s, e in spans] == [(1000, 2000), (2000, 4000), (4000, 5000)]


def test_a_slow_unbroken_clause_stays_whole() -> None:
    cues = part_cues(Cue(0, 10_000, "chunk 359", "l1"), [])
    assert [(c.start_ms, c.end_ms, c.text) for c in cues] == [(0, 10_000, "chunk 359")]


def test_find_pauses_ignores_the_edges() -> None:
    levels = np.full(300, -20.0)
    levels[:30] = -90  # leading silence: the chunk's edge
    levels[100:120] = -80  # 200 ms: a pause
    levels[200:205] = -80  # 50 ms: a breath, too short
    levels[280:] = -90  # trailing silence
    assert find_pauses(levels) == [Pause(1000, 1200)]


def _spoken(tmp_path: Path, text: str, voice: str, name: str) -> Part:
    samples = EspeakEngine().synthesize(text, voice, sample_rate=24000)
    path = tmp_path / f"{name}.mp3"
    path.write_bytes(encode(samples, 24000, "mp3"))
    return Part(path, text, "l1", True, 400)


def _check_cues(srt: str, text: str) -> list[tuple[float, float, str]]:
    cues = []
    for block in srt.strip().split("\n\n"):
        lines = block.split("\n")
        times = re.findall(r"(\d+):(\d+):(\d+),(\d+)", lines[1])
        start, end = (
            int(h) * 3600 + int(m) * 60 + int(s) + int(ms) / 1000 for h, m, s, ms in times
        )
        cues.append((start, end, "\n".join(lines[2:])))
    assert _bare("".join(c[2] for c in cues)) == _bare(text)
    for start, end, shown in cues:
        assert 0 <= start < end
        assert len(shown.split("\n")) <= 2
        assert all(width(line) <= LINE_WIDTH for line in shown.split("\n"))
        unbroken = len(sentences(shown)) == 1 and len(clauses(shown)) == 1
        assert end - start <= 8 or unbroken, shown
    assert all(a[1] <= b[0] for a, b in zip(cues, cues[1:], strict=False))
    return cues


@pytest.mark.parametrize(
    ("text", "voice", "out", "lufs"),
    [
        (ENGLISH, "local-en-male", "mp3", None),
        (CHINESE, "local-zh-female", "mp3", None),
        (ENGLISH, "local-en-female", "m4a", -18.0),
        (CHINESE, "local-zh-male", "opus", -20.0),
    ],
)
def test_espeak_paragraph_gets_readable_cues_at_its_pauses(
    tmp_path: Path, text: str, voice: str, out: str, lufs: float | None
) -> None:
    part = _spoken(tmp_path, text, voice, "para")
    spec = ChapterSpec(
        (part,),
        "mp3",
        24000,
        tmp_path / f"ch.{out}",
        output_format=out,
        loudness_lufs=lufs,
        subtitles=("srt",),
    )
    result = assemble_chapter(spec)
    cues = _check_cues((tmp_path / "ch.srt").read_text(), text)
    assert len(cues) >= len(sentences(text))
    samples, rate = decode(result.path)
    speech = float(np.sqrt(np.mean(samples**2)))
    # Where one cue ends before the next starts, the gap is a pause found in the audio.
    gaps = [(a[1], b[0]) for a, b in zip(cues, cues[1:], strict=False) if b[0] > a[1]]
    assert len(gaps) >= len(sentences(text)) // 2
    for start, end in gaps:
        quiet = samples[round(start * rate) + 10 : round(end * rate) - 10]
        assert float(np.sqrt(np.mean(quiet**2))) < speech / 20
