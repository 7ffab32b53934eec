"""Subtitle files become timed lines with speakers; markup is not spoken; errors name lines."""

from __future__ import annotations

from pathlib import Path

import pytest

from pipeline.books.subtitles import SubtitleOptions, plain_text, read_subtitles, speaker_prefix
from pipeline.books.timecode import TimecodeError, parse_timecode
from pipeline.errors import ManifestError

SRT = """1
00:00:01,000 --> 00:00:02,500
JOHN: <i>Hello</i> there.

2
00:00:03,000 --> 00:00:04,000
走吧！

3
00:00:05,000 --> 00:00:06,000
<b></b>

4
00:00:07,000 --> 00:00:08,200
Two lines
joined here.
"""

VTT = """WEBVTT

00:01.000 --> 00:02.000
<v Roger Bingham>We are in <c.loud>New York</c> City</v>

00:00:03.000 --> 00:00:04.000 align:start
<00:00:03.500>Time tag &amp; entity

NOTE a comment

00:05.000 --> 00:06.000
Mary: Fine.
"""

ASS = """[Script Info]
ScriptType: v4.00+

[V4+ Styles]
Format: Name, Fontname, Fontsize
Style: Default,Arial,20
Style: Narrator,Arial,20

[Events]
Format: Layer, Start, End, Style, Name, MarginL, MarginR, MarginV, Effect, Text
Dialogue: 0,0:00:01.00,0:00:02.00,Default,Alice,0,0,0,,{\\i1}Hi,{\\i0} Bob.\\NHow are you?
Comment: 0,0:00:02.00,0:00:03.00,Default,,0,0,0,,a translator's note
Dialogue: 0,0:00:03.00,0:00:04.50,Narrator,,0,0,0,,Long ago.
Dialogue: 0,0:00:05.00,0:00:06.00,Default,,0,0,0,,{\\p1}m 0 0 l 100 0 100 100{\\p0}
Dialogue: 0,0:00:07.00,0:00:08.00,Default,,0,0,0,,{\\an8}
"""


def write(tmp_path: Path, name: str, text: str) -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def cues(path: Path, options: SubtitleOptions | None = None) -> list[tuple[object, ...]]:
    book = read_subtitles(path, options)
    return [(x.line, x.start_s, x.end_s, x.speaker, x.text) for c in book.chapters for x in c.lines]


def test_srt(tmp_path: Path) -> None:
    path = write(tmp_path, "ep1.srt", SRT)
    assert cues(path) == [
        (2, 1.0, 2.5, "JOHN", "Hello there."),
        (6, 3.0, 4.0, None, "走吧！"),
        (14, 7.0, 8.2, None, "Two lines joined here."),
    ]
    book = read_subtitles(path)
    assert book.chapters[0].id == "ep1"
    assert [(s.line, s.reason) for s in book.skipped] == [(10, "empty cue")]
    no_prefix = cues(path, SubtitleOptions(speaker_prefix=False))
    assert no_prefix[0][3:] == (None, "JOHN: Hello there.")


def test_vtt(tmp_path: Path) -> None:
    assert cues(write(tmp_path, "a.vtt", VTT)) == [
        (3, 1.0, 2.0, "Roger Bingham", "We are in New York City"),
        (6, 3.0, 4.0, None, "Time tag & entity"),
        (11, 5.0, 6.0, "Mary", "Fine."),
    ]
    skipped = read_subtitles(tmp_path / "a.vtt").skipped
    assert [(s.line, s.text, s.reason) for s in skipped] == [
        (9, "a comment", "WebVTT comment (NOTE)")
    ]


def test_ass(tmp_path: Path) -> None:
    path = write(tmp_path, "show.ass", ASS)
    assert cues(path) == [
        (11, 1.0, 2.0, "Alice", "Hi, Bob. How are you?"),
        (13, 3.0, 4.5, "Narrator", "Long ago."),
    ]
    book = read_subtitles(path)
    assert [(s.line, s.reason) for s in book.skipped] == [
        (12, "ASS comment line"),
        (14, "ASS drawing"),
        (15, "empty cue"),
    ]
    assert book.chapters[0].lines[1].fields == {"index": 3, "style": "Narrator"}
    styled = cues(path, SubtitleOptions(speaker_from_style=False))
    assert styled[1][3] is None


@pytest.mark.parametrize(
    ("name", "text", "message"),
    [
        ("bad.srt", "1\n00:00:01,000 --> 00:00:0x,000\nHi\n", r"bad\.srt:2: bad cue timing"),
        ("bad.srt", "1\n00:00:05,000 --> 00:00:01,000\nHi\n", r"bad\.srt:2: cue ends"),
        ("bad.vtt", "WEBVTT\n\n00:01,000 --> 00:02.000\nHi\n", r"bad\.vtt:3: bad cue timing"),
        ("bad.ass", "[Events]\nDialogue: 0,0:00:0x.00,0:00:02.00,Default,,0,0,0,,Hi\n",
         r"bad\.ass:2: bad event"),
        ("bad.txt", "x", r"bad\.txt: not a subtitle file"),
    ],
)
def test_bad_files_name_the_line(tmp_path: Path, name: str, text: str, message: str) -> None:
    with pytest.raises(ManifestError, match=message):
        read_subtitles(write(tmp_path, name, text))


def test_markup_and_prefix_helpers() -> None:
    assert plain_text("{\\an8}<i>Hi</i>\\Nthere\\hnow") == "Hi there now"
    assert plain_text("你好\\N世界") == "你好世界"
    assert speaker_prefix("老王：走吧") == ("老王", "走吧")
    assert speaker_prefix("- Mary Ann: Hello") == ("Mary Ann", "Hello")
    assert speaker_prefix("At 10:30 we go") == (None, "At 10:30 we go")
    assert speaker_prefix("Guard 2: Halt!") == ("Guard 2", "Halt!")
    assert speaker_prefix("Meet at 5: 30 people") == (None, "Meet at 5: 30 people")
    lowercase = "note: lowercase is not a name"
    assert speaker_prefix(lowercase) == (None, lowercase)


@pytest.mark.parametrize(
    ("value", "seconds"),
    [
        ("00:01:02,500", 62.5),
        ("01:00:00.25", 3600.25),
        ("1:02.5", 62.5),
        ("12.5", 12.5),
        ("7", 7.0),
        (3, 3.0),
        ("00:00:01", 1.0),
    ],
)
def test_timecodes(value: str | int, seconds: float) -> None:
    assert parse_timecode(value) == pytest.approx(seconds)


@pytest.mark.parametrize("value", ["", "1:75:00", "abc", "-1", "00:00:01;000", float("nan"), -2])
def test_bad_timecodes(value: str | float) -> None:
    with pytest.raises(TimecodeError, match="bad time"):
        parse_timecode(value)
