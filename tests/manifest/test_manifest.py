"""Manifest and job loading: the data model, inheritance, paragraphs, and every refusal."""

from __future__ import annotations

import csv
import io
import tempfile
import textwrap
from pathlib import Path

import pytest
import yaml
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from pipeline.errors import ConfigError, ManifestError, Problem
from pipeline.manifest import (
    CSV_COLUMNS,
    NO_OVERRIDES,
    Job,
    Overrides,
    load_job,
    split_paragraphs,
)
from pipeline.speech import SpeechParams

ROOT = Path(__file__).resolve().parents[2]


def write(folder: Path, name: str, text: str | bytes) -> Path:
    path = folder / name
    path.parent.mkdir(parents=True, exist_ok=True)
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(textwrap.dedent(text).lstrip("\n"), encoding="utf-8")
    return path


def problems(path: Path, overrides: Overrides = NO_OVERRIDES) -> list[Problem]:
    with pytest.raises(ManifestError) as caught:
        load_job(path, overrides)
    assert caught.value.problems, "a ManifestError always carries its problems"
    return list(caught.value.problems)


def only(path: Path, overrides: Overrides = NO_OVERRIDES) -> Problem:
    found = problems(path, overrides)
    assert len(found) == 1, found
    return found[0]


def yaml_file(tmp_path: Path, text: str, name: str = "book.yaml") -> Path:
    return write(tmp_path, name, text)


GOOD_CHAPTER = """
defaults: {voice_id: v1}
chapters:
  - id: ch01
    text: Hello.
"""


# ---------------------------------------------------------------- paragraphs


def test_blank_lines_separate_paragraphs_and_lines_inside_join_with_a_space() -> None:
    text = "The first line\nwraps here.\n\n  Second paragraph.  \n\n\n\nThird.\n"
    assert split_paragraphs(text) == [
        "The first line wraps here.",
        "Second paragraph.",
        "Third.",
    ]


def test_without_any_blank_line_every_non_empty_line_is_a_paragraph() -> None:
    assert split_paragraphs("One.\nTwo.\r\nThree.\n") == ["One.", "Two.", "Three."]


def test_leading_and_trailing_blank_lines_do_not_count_as_separators() -> None:
    assert split_paragraphs("\n\n  \nOne.\nTwo.\n\n\n") == ["One.", "Two."]


def test_whitespace_only_line_is_blank() -> None:
    assert split_paragraphs("a\nb\n \t\u3000\nc") == ["a b", "c"]


def test_cjk_lines_join_without_space_and_fullwidth_indent_is_stripped() -> None:
    text = "\u3000\u3000第一行，\n第二行。\n\nこんにちは\nせかい\n\n안녕\n하세요\n\n他说：“\n你好”"
    assert split_paragraphs(text) == [
        "第一行，第二行。",
        "こんにちはせかい",
        "안녕하세요",
        "他说：“你好”",
    ]


def test_latin_next_to_cjk_joins_without_space() -> None:
    assert split_paragraphs("我喜欢Python\n语言\n\nI said\n你好") == [
        "我喜欢Python语言",
        "I said你好",
    ]


def test_empty_and_blank_text_has_no_paragraph() -> None:
    assert split_paragraphs("") == []
    assert split_paragraphs(" \n\u3000\n\t") == []


# ---------------------------------------------------------------- YAML: shape and inheritance


def test_inheritance_line_beats_chapter_beats_defaults_beats_job_beats_voice_option(
    tmp_path: Path,
) -> None:
    write(
        tmp_path,
        "m/book.yaml",
        """
        defaults: {emotion: sad, speed: 1.5, pause_ms: 500}
        chapters:
          - id: c1
            emotion: angry
            lines:
              - {text: a, emotion: happy, pause_ms: 0}
              - {text: b}
          - id: c2
            text: c
        """,
    )
    job_file = write(
        tmp_path,
        "jobs/job.yaml",
        """
        manifest: ../m/book.yaml
        defaults: {voice_id: job-voice, speed: 2, loudness_rate: 10}
        """,
    )
    job = load_job(job_file, Overrides(voice_id="cli-voice"))
    a, b = job.chapters[0].lines
    (c,) = job.chapters[1].lines
    assert (a.params.emotion, a.pause_ms) == ("happy", 0)
    assert (b.params.emotion, b.pause_ms) == ("angry", 500)
    assert c.params.emotion == "sad"
    # the manifest's defaults beat the job file's; the job file's beat --voice
    assert {x.params.speed for x in (a, b, c)} == {1.5}
    assert {x.params.loudness_rate for x in (a, b, c)} == {10}
    assert {x.params.voice_id for x in (a, b, c)} == {"job-voice"}


def test_voice_option_is_the_last_fallback(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        """
        chapters:
          - id: c1
            lines: [{text: a}, {text: b, voice_id: mine}]
        """,
    )
    a, b = load_job(path, Overrides(voice_id="cli")).chapters[0].lines
    assert (a.params.voice_id, b.params.voice_id) == ("cli", "mine")


def test_format_and_rate_options_apply_to_every_line(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        """
        defaults: {voice_id: v, response_format: mp3, sample_rate: 16000}
        chapters:
          - id: c1
            lines:
              - {text: a, response_format: wav, sample_rate: 48000}
              - {text: b}
        """,
    )
    lines = load_job(path, Overrides(response_format="pcm", sample_rate=8000)).chapters[0].lines
    assert [(x.params.response_format, x.params.sample_rate) for x in lines] == [
        ("pcm", 8000),
        ("pcm", 8000),
    ]


def test_unset_fields_resolve_to_api_defaults_for_audio_and_none_for_the_rest(
    tmp_path: Path,
) -> None:
    line = load_job(yaml_file(tmp_path, GOOD_CHAPTER)).chapters[0].lines[0]
    assert line.params == SpeechParams(voice_id="v1", response_format="mp3", sample_rate=24000)
    assert (line.id, line.pause_ms, line.text) == ("1", 300, "Hello.")


def test_line_ids_default_to_position_and_explicit_ids_are_kept(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        """
        defaults: {voice_id: v}
        chapters:
          - id: c1
            lines: [{text: a}, {text: b, id: x7}, "c"]
        """,
    )
    assert [line.id for line in load_job(path).chapters[0].lines] == ["1", "x7", "3"]


def test_unquoted_numbers_keep_their_source_text_in_ids_and_voice(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        """
        chapters:
          - id: 01
            voice_id: 7426720361733144585
            lines: [{text: 42, id: 007}]
        """,
    )
    chapter = load_job(path).chapters[0]
    line = chapter.lines[0]
    assert (chapter.id, line.id, line.text) == ("01", "007", "42")
    assert line.params.voice_id == "7426720361733144585"


def test_literal_block_paragraphs_carry_their_file_lines(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        """
        defaults: {voice_id: v}
        chapters:
          - id: c1
            title: "第一回"
            text: |
              First paragraph
              goes on.

              Second.
        """,
    )
    chapter = load_job(path).chapters[0]
    assert chapter.title == "第一回"
    assert [(x.text, x.lineno) for x in chapter.lines] == [
        ("First paragraph goes on.", 6),
        ("Second.", 9),
    ]


def test_yaml_merge_keys_work_and_own_keys_win(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        """
        voices:
        defaults: {voice_id: v}
        chapters:
          - &base {id: c1, emotion: sad, speed: 1.2, text: a}
          - <<: *base
            id: c2
            emotion: happy
        """,
    )
    # `voices` is an unknown key: the merge itself must not add problems
    assert only(path).message.startswith("voices: unknown key")
    path.write_text(path.read_text().replace("voices:\n", ""))
    c1, c2 = load_job(path).chapters
    assert (c2.lines[0].params.emotion, c2.lines[0].params.speed) == ("happy", 1.2)
    assert c1.lines[0].params.emotion == "sad"


def test_speech_params_are_shared_between_lines(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        """
        defaults: {voice_id: v}
        chapters:
          - {id: c1, text: "a\\nb\\nc"}
          - {id: c2, lines: [{text: d}, {text: e, voice_id: w}]}
        """,
    )
    lines = [line for c in load_job(path).chapters for line in c.lines]
    assert len({id(line.params) for line in lines}) == 2


# ---------------------------------------------------------------- job files and paths


def test_job_file_with_inline_chapters_output_and_run(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        """
        defaults: {voice_id: v}
        chapters: [{id: c1, text: hi}]
        output:
          dir: out/book
          format: m4a
          book: book.m4b
          subtitles: [srt, vtt, srt]
          loudness_lufs: -18
        run: {backend: local, base_url: "http://127.0.0.1:1", qps: 2, concurrency: 3,
              retries: 0, max_chunk_bytes: 300}
        """,
        name="jobs/x.yaml",
    )
    job = load_job(path)
    assert job.source == path
    assert job.output.dir == tmp_path / "jobs" / "out" / "book"
    assert (job.output.format, job.output.book, job.output.loudness_lufs) == (
        "m4a",
        "book.m4b",
        -18.0,
    )
    assert job.output.subtitles == ("srt", "vtt")
    assert (job.run.backend, job.run.base_url, job.run.qps) == ("local", "http://127.0.0.1:1", 2.0)
    assert (job.run.concurrency, job.run.retries, job.run.max_chunk_bytes) == (3, 0, 300)


def test_paths_are_relative_to_the_folder_of_the_file_that_names_them(tmp_path: Path) -> None:
    write(tmp_path, "data/texts/one.txt", "Uno.\n\nDos.\n")
    write(
        tmp_path,
        "data/book.yaml",
        """
        defaults: {voice_id: v}
        chapters: [{id: c1, text_file: texts/one.txt}]
        """,
    )
    job_file = write(
        tmp_path,
        "jobs/deep/job.yaml",
        "manifest: ../../data/book.yaml\noutput: {dir: ../../out}\n",
    )
    job = load_job(job_file)
    lines = job.chapters[0].lines
    assert [x.text for x in lines] == ["Uno.", "Dos."]
    assert lines[1].file.endswith(str(Path("data/texts/one.txt")))
    assert lines[1].lineno == 3
    assert job.output.dir is not None
    assert job.output.dir.resolve() == (tmp_path / "out").resolve()


def test_job_file_pointing_at_csv_applies_its_defaults(tmp_path: Path) -> None:
    write(tmp_path, "lines.csv", "chapter,text,voice_id\nc1,Hi,\nc1,There,own\n")
    job_file = write(tmp_path, "job.yml", "manifest: lines.csv\ndefaults: {voice_id: jv}\n")
    lines = load_job(job_file).chapters[0].lines
    assert [x.params.voice_id for x in lines] == ["jv", "own"]


SUFFIXES = ".yaml, .yml, .csv, .srt, .vtt, .ass, .ssa, .epub or .txt"


@pytest.mark.parametrize(
    ("job", "line", "message"),
    [
        ("manifest: nothere.csv\n", 1, "manifest nothere.csv: no such file"),
        ("manifest: sub\n", 1, f"manifest sub: must end in {SUFFIXES}"),
        ("manifest: [a]\n", 1, f"manifest must be the path of a {SUFFIXES}"),
        (
            "manifest: m.yaml\nchapters: []\n",
            2,
            "chapters: a job file with 'manifest' takes its chapters from that file",
        ),
    ],
)
def test_bad_manifest_reference(tmp_path: Path, job: str, line: int, message: str) -> None:
    (tmp_path / "sub").mkdir()
    write(tmp_path, "m.yaml", GOOD_CHAPTER)
    problem = only(write(tmp_path, "job.yaml", job))
    assert (problem.line, problem.message[: len(message)]) == (line, message)


def test_named_manifest_cannot_hold_job_settings(tmp_path: Path) -> None:
    write(tmp_path, "m.yaml", GOOD_CHAPTER + "output: {format: mp3}\nmanifest: other.yaml\n")
    found = problems(write(tmp_path, "job.yaml", "manifest: m.yaml\n"))
    assert [(Path(p.file).name, p.line) for p in found] == [("m.yaml", 5), ("m.yaml", 6)]
    assert found[0].message.startswith("output: belongs in the job file")
    assert found[1].message.startswith("manifest: belongs in the job file")


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ("output: {format: aac}", "output.format must be one of mp3, opus, flac, m4a, wav"),
        ("output: {subtitles: srt}", "output.subtitles must be a list of srt and/or vtt"),
        ("output: {subtitles: [srt, ass]}", "output.subtitles must be a list of srt and/or vtt"),
        ("output: {book: book.mp3}", "output.book must be a file name ending in .m4b"),
        ("output: {book: ../book.m4b}", "output.book must be a file name ending in .m4b"),
        ("output: {loudness_lufs: -90}", "output.loudness_lufs must be a number from -70 to -5"),
        ("output: {loudness_lufs: loud}", "output.loudness_lufs must be a number from -70 to -5"),
        ("output: {dir: ''}", "output.dir must be a folder path"),
        ("output: [mp3]", "output must be a mapping, not a list"),
        ("output: {fromat: mp3}", "fromat: unknown key; did you mean format?"),
        ("run: {backend: cloud}", "run.backend must be coze or local"),
        ("run: {base_url: ftp://x}", "run.base_url must be an http:// or https:// URL"),
        ("run: {qps: 0}", "run.qps must be a number from 0.01 to 10000"),
        ("run: {qps: .nan}", "run.qps must be a number from 0.01 to 10000"),
        ("run: {concurrency: 0}", "run.concurrency must be a whole number from 1 to 256"),
        ("run: {concurrency: 2.5}", "run.concurrency must be a whole number from 1 to 256"),
        ("run: {retries: -1}", "run.retries must be a whole number from 0 to 100"),
        ("run: {qps: 1.0e-300}", "run.qps must be a number from 0.01 to 10000"),
        ("run: {concurrency: 1000000}", "run.concurrency must be a whole number from 1 to 256"),
        ("run: {retries: 101}", "run.retries must be a whole number from 0 to 100"),
        ("run: {max_chunk_bytes: 1025}", "run.max_chunk_bytes must be a whole number from 1 to"),
        ("run: {max_chunk_bytes: true}", "run.max_chunk_bytes must be a whole number from 1 to"),
        ("run: {qsp: 1}", "qsp: unknown key; did you mean qps?"),
    ],
)
def test_bad_output_and_run_settings(tmp_path: Path, section: str, message: str) -> None:
    problem = only(yaml_file(tmp_path, GOOD_CHAPTER + section + "\n"))
    assert problem.line == 5
    assert problem.message.startswith(message), problem.message


# ---------------------------------------------------------------- YAML refusals


def test_yaml_syntax_error_names_its_line(tmp_path: Path) -> None:
    problem = only(yaml_file(tmp_path, "chapters:\n  - id: a\n    text: [unclosed\n"))
    assert problem.line == 4
    assert problem.message.startswith("YAML syntax error:")


def test_yaml_syntax_error_bad_indentation(tmp_path: Path) -> None:
    problem = only(yaml_file(tmp_path, "chapters:\n  - id: a\n   text: b\n"))
    assert (problem.line, problem.message.startswith("YAML syntax error")) == (3, True)


def test_control_character_in_yaml_names_its_line(tmp_path: Path) -> None:
    problem = only(
        yaml_file(tmp_path, "defaults: {voice_id: v}\nchapters: [{id: a, text: \x07}]\n")
    )
    assert (problem.line, problem.message[:45]) == (
        2,
        "YAML syntax error: character U+0007 is not al",
    )


def test_a_name_that_only_looks_like_a_date_is_a_name(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, "defaults: {voice_id: v}\nchapters: [{id: 2024-13-45, text: x}]\n")
    assert load_job(path).chapters[0].id == "2024-13-45"


def test_unknown_key_suggests_the_close_match(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        """
        defaults: {voice_id: v}
        chapters:
          - id: c1
            lines:
              - text: hi
                voice_ld: x
        """,
    )
    assert str(only(path)) == f"{path}:6: voice_ld: unknown key; did you mean voice_id?"


def test_unknown_key_without_a_close_match_lists_the_allowed_ones(tmp_path: Path) -> None:
    problem = only(yaml_file(tmp_path, GOOD_CHAPTER + "zzz: 1\n"))
    assert problem.line == 5
    assert problem.message == (
        "zzz: unknown key; allowed: manifest, defaults, chapters, output, run, quality, book, "
        "lexicon, cast, dialogue, normalize, language, include, exclude, heading, preface"
    )


def test_duplicate_yaml_key_is_refused_with_both_lines(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        """
        defaults:
          voice_id: a
          voice_id: b
        chapters: [{id: c1, text: hi}]
        """,
    )
    problem = only(path)
    assert problem.line == 3
    assert problem.message.startswith("voice_id: duplicate key (first at line 2)")


@pytest.mark.parametrize(
    ("text", "line", "message"),
    [
        ("- a\n- b\n", 1, "the top level must be a mapping with 'chapters'"),
        ("just text\n", 1, "the top level must be a mapping with 'chapters'"),
        ("# only a comment\n", None, "the file is empty"),
        ("defaults: {voice_id: v}\n", None, "no chapters: add a 'chapters' list"),
        ("chapters: []\n", 1, "chapters is empty"),
        ("chapters: {id: a}\n", 1, "chapters must be a list"),
        ("chapters: [hello]\n", 1, "a chapter must be a mapping starting with 'id:'"),
        ("defaults: [v]\nchapters: [{id: a, text: b, voice_id: v}]\n", 1, "defaults must be a"),
    ],
)
def test_bad_top_level(tmp_path: Path, text: str, line: int | None, message: str) -> None:
    problem = only(yaml_file(tmp_path, text))
    assert (problem.line, problem.message[: len(message)]) == (line, message)


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("speed", "9", "speed 9 is out of range 0.2 to 3"),
        ("speed", "fast", "speed must be a number from 0.2 to 3"),
        ("emotion_scale", "0.5", "emotion_scale 0.5 is out of range 1 to 5"),
        ("loudness_rate", "101", "loudness_rate 101 is out of range -50 to 100"),
        ("loudness_rate", "1.5", "loudness_rate must be a whole number from -50 to 100"),
        ("sample_rate", "44000", "sample_rate 44000 is not one of 8000, 16000"),
        ("emotion", "joyful", "emotion 'joyful' is not one of happy, sad"),
        ("response_format", "mp4", "response_format 'mp4' is not one of mp3, wav, pcm, ogg_opus"),
        ("voice_id", "'  '", "voice_id is empty"),
        ("voice_id", "[a, b]", "voice_id must be a single value, not a list"),
        ("pause_ms", "-1", "pause_ms must be a whole number of milliseconds from 0 to 60000"),
        ("pause_ms", "0.5", "pause_ms must be a whole number of milliseconds"),
    ],
)
def test_bad_speech_values_use_the_shared_messages(
    tmp_path: Path, field: str, value: str, message: str
) -> None:
    path = yaml_file(
        tmp_path,
        f"""
        defaults: {{voice_id: v}}
        chapters:
          - id: c1
            lines:
              - text: hi
                {field}: {value}
        """,
    )
    problem = only(path)
    assert problem.line == 6
    assert problem.message.startswith(message), problem.message


@pytest.mark.parametrize(
    ("cid", "message"),
    [
        ("'../x'", "must not start with '.'"),
        ("a/b", "may only hold ASCII letters, digits"),
        ("'.'", "must not start with '.'"),
        ("'..'", "must not start with '.'"),
        ("''", "chapter id is empty"),
        (".hidden", "must not start with '.'"),
        ("ch 1", "may only hold ASCII letters, digits"),
        ("第一回", "may only hold ASCII letters, digits"),
        ("report", "chapter id 'report' is reserved: its files would collide with report.json"),
        ("REPORT", "is reserved"),
        ("nul", "reserved device name on Windows"),
        ("a" * 101, "chapter id is 101 characters long"),
        ("[x]", "chapter id must be a name, not a list"),
    ],
)
def test_ill_formed_chapter_ids(tmp_path: Path, cid: str, message: str) -> None:
    path = yaml_file(
        tmp_path, f"defaults: {{voice_id: v}}\nchapters:\n  - text: hi\n    id: {cid}\n"
    )
    problem = only(path)
    assert problem.line in (3, 4)
    assert message in problem.message, problem.message


def test_missing_and_duplicate_chapter_ids(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        """
        defaults: {voice_id: v}
        chapters:
          - {id: c1, text: a}
          - {text: b}
          - {id: c1, text: c}
          - {id: C1, text: d}
        """,
    )
    found = problems(path)
    assert [p.line for p in found] == [4, 5, 6]
    assert found[0].message == "chapter has no id: add 'id: ch01' (ids become file names)"
    assert found[1].message == (
        f"duplicate chapter id 'c1' (first at {path}:3): ids must be unique, they become file names"
    )
    assert found[2].message.startswith(f"chapter id 'C1' differs from 'c1' ({path}:3) only by")


@pytest.mark.parametrize(
    ("body", "line", "message"),
    [
        ("text: a\n    lines: [{text: b}]", 5, "chapter 'c1' has both text and lines"),
        ("text: a\n    text_file: x.txt", 5, "chapter 'c1' has both text and text_file"),
        ("title: t", 3, "chapter 'c1' has no text: give one of text, text_file or lines"),
        ("text: '   '", 4, "text is empty"),
        ("text:", 4, "text is empty"),
        ("text: {a: b}", 4, "text must be text, not a mapping"),
        ("lines: []", 4, "lines of chapter 'c1' is empty"),
        ("lines: hello", 4, "lines must be a list"),
        ("lines: [{id: x}]", 4, "line has no text"),
        ("lines: [{text: '  '}]", 4, "text is empty"),
        ("lines: [[a]]", 4, "a line must be a mapping with 'text:'"),
        ("lines: [{text: a, id: ''}]", 4, "line id must be a non-empty single-line name"),
        ("lines: [{text: a, id: x}, {text: b, id: x}]", 4, "duplicate line id 'x'"),
        ("title: [t]\n    text: a", 4, "title must be text, not a list"),
    ],
)
def test_bad_chapter_text(tmp_path: Path, body: str, line: int, message: str) -> None:
    path = yaml_file(tmp_path, f"defaults: {{voice_id: v}}\nchapters:\n  - id: c1\n    {body}\n")
    problem = only(path)
    assert (problem.line, problem.message[: len(message)]) == (line, message)


def test_text_file_missing_directory_and_not_utf8(tmp_path: Path) -> None:
    (tmp_path / "folder").mkdir()
    write(tmp_path, "latin1.txt", "Line one.\nCaf\xe9 au lait.\n".encode("latin-1"))
    write(tmp_path, "empty.txt", "\n \n")
    path = yaml_file(
        tmp_path,
        """
        defaults: {voice_id: v}
        chapters:
          - {id: a, text_file: missing.txt}
          - {id: b, text_file: folder}
          - {id: c, text_file: latin1.txt}
          - {id: d, text_file: empty.txt}
        """,
    )
    found = problems(path)
    assert [p.line for p in found] == [3, 4, 5, 6]
    assert found[0].message.startswith("text_file missing.txt: no such file")
    assert found[1].message.startswith("text_file folder: is a directory")
    assert found[2].message == (
        "text_file latin1.txt is not UTF-8: byte 0xe9 at byte offset 13 (its line 2); "
        "save it as UTF-8"
    )
    assert found[3].message.startswith("text_file empty.txt has no text")


def test_yaml_file_not_utf8_names_line_and_offset(tmp_path: Path) -> None:
    path = write(tmp_path, "b.yaml", b"chapters:\n  - id: a\n    text: \xff\n")
    problem = only(path)
    assert (problem.line, problem.message) == (
        3,
        "not UTF-8: byte 0xff at byte offset 30; save the file as UTF-8",
    )


def test_no_voice_is_reported_once_per_chapter(tmp_path: Path) -> None:
    path = yaml_file(tmp_path, 'chapters:\n  - id: c1\n    text: "a\\nb\\nc"\n')
    problem = only(path)
    assert problem.line == 3
    assert problem.message == (
        "no voice_id for line '1' of chapter 'c1' (and 2 more of its lines): set it in "
        "defaults, the chapter or the line, or pass --voice"
    )


def test_mixed_format_in_a_chapter_names_the_line(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        """
        defaults: {voice_id: v}
        chapters:
          - id: c1
            lines:
              - {text: a, id: first}
              - {text: b, id: odd, response_format: wav}
              - {text: c, sample_rate: 16000}
        """,
    )
    found = problems(path)
    assert [p.line for p in found] == [6, 7]
    assert found[0].message.startswith("line 'odd' has response_format wav, unlike")
    assert found[1].message.startswith("line '3' has sample_rate 16000, unlike")
    assert "unlike line 'first' (mp3, 24000 Hz) of chapter 'c1'" in found[0].message
    # the --format option makes every line agree
    assert load_job(path, Overrides(response_format="wav", sample_rate=16000)).chapters


def test_every_problem_is_found_in_one_pass_in_line_order(tmp_path: Path) -> None:
    path = yaml_file(
        tmp_path,
        """
        defaults: {voice_id: v, speed: 7}
        chapters:
          - {id: ../a, text: hi}
          - {id: b, text: '', emotoin: sad}
        run: {qps: -1}
        """,
    )
    found = problems(path)
    assert [p.line for p in found] == [1, 3, 4, 4, 5]
    assert found[2].message == "emotoin: unknown key; did you mean emotion?"


def test_unknown_source_type_and_missing_source(tmp_path: Path) -> None:
    assert only(write(tmp_path, "book.docx", "x")).message.startswith("unknown file type")
    assert only(tmp_path / "none.yaml").message == "no such file"
    assert only(tmp_path / "none.csv").message == "no such file"


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        (Overrides(response_format="mp4"), "--format: response_format 'mp4' is not one of"),
        (Overrides(sample_rate=44000), "--sample-rate: sample_rate 44000 is not one of"),
        (Overrides(voice_id=" "), "--voice: voice_id is empty"),
    ],
)
def test_bad_overrides_are_config_errors(
    tmp_path: Path, overrides: Overrides, message: str
) -> None:
    with pytest.raises(ConfigError, match=f"^{message[:20]}"):
        load_job(yaml_file(tmp_path, GOOD_CHAPTER), overrides)


# ---------------------------------------------------------------- CSV


def test_csv_with_bom_quoted_multiline_cell_and_empty_cells(tmp_path: Path) -> None:
    data = (
        "\ufeffchapter,id,title,voice_id,speed,sample_rate,text\r\n"
        'c1,,,v,,,"first line\r\nsecond line"\r\n'
        "c1,x,Title Late,v,1.5,24000.0,plain\r\n"
        'c2,,Two,w,,,"他说，\n你好"\r\n'
    )
    path = write(tmp_path, "m.csv", data.encode("utf-8"))
    c1, c2 = load_job(path).chapters
    assert (c1.id, c1.title, c1.lineno, c2.title) == ("c1", "Title Late", 2, "Two")
    assert [(x.id, x.text, x.lineno) for x in c1.lines] == [
        ("1", "first line second line", 2),
        ("x", "plain", 4),
    ]
    assert c1.lines[0].params.speed is None
    assert (c1.lines[1].params.speed, c1.lines[1].params.sample_rate) == (1.5, 24000)
    assert c2.lines[0].text == "他说，你好"


def test_csv_chapters_in_order_of_first_appearance(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "chapter,text,voice_id\nb,1,v\na,2,v\nb,3,v\n\n,,\nc,4,v\n")
    job = load_job(path)
    assert [(c.id, [x.text for x in c.lines]) for c in job.chapters] == [
        ("b", ["1", "3"]),
        ("a", ["2"]),
        ("c", ["4"]),
    ]


@pytest.mark.parametrize(
    ("data", "line", "message"),
    [
        ("c1,hello,v\n", 1, "no header row: the first row must name the columns"),
        ("chapter,voice_id\nc1,v\n", 1, "the header has no text column"),
        ("", None, "the file is empty"),
        ("chapter,text\n", None, "no rows"),
        (
            "chapter,text,voice_id,voice_ld\nc,t,v,v\n",
            1,
            "voice_ld: unknown column; did you mean voice_id?",
        ),
        ("chapter,text,text,voice_id\nc,t,t,v\n", 1, "text: duplicate column"),
        ("chapter,text,voice_id,\nc,t,v,\n", 1, "column 4 has no name"),
        ("chapter,text,voice_id\nc,a,v\nc,b,v,extra\n", 3, "row has 4 cells but the header"),
        ("chapter,text,voice_id,speed\nc,a,v,fast\n", 2, "speed 'fast' is not a number"),
        ("chapter,text,voice_id,speed\nc,a,v,9\n", 2, "speed 9 is out of range 0.2 to 3"),
        ("chapter,text,voice_id,sample_rate\nc,a,v,1.5\n", 2, "sample_rate 1.5 is not one of"),
        ("chapter,text,voice_id,emotion\nc,a,v,glad\n", 2, "emotion 'glad' is not one of"),
        ("chapter,text,voice_id,pause_ms\nc,a,v,-5\n", 2, "pause_ms must be a whole number"),
        ("chapter,text,voice_id\n,a,v\n", 2, "chapter is empty"),
        ("chapter,text,voice_id\nc,  ,v\n", 2, "text is empty"),
        ('chapter,text,voice_id\nc,a,v\nc,"b\nb",v\nc,"oops,v\n', 5, "CSV syntax error"),
        ("chapter,text\nc,a\nc,b\n", 2, "no voice_id for line '1' of chapter 'c' (and 1 more"),
        (
            "chapter,text,voice_id,response_format\nc,a,v,mp3\nc,b,v,wav\n",
            3,
            "line '2' has response_format wav, unlike line '1'",
        ),
        ("chapter,text,voice_id,id\nc,a,v,k\nc,b,v,k\n", 3, "duplicate line id 'k'"),
    ],
)
def test_bad_csv(tmp_path: Path, data: str, line: int | None, message: str) -> None:
    problem = only(write(tmp_path, "m.csv", data.encode("utf-8")))
    assert (problem.line, problem.message[: len(message)]) == (line, message)


def test_csv_with_lone_carriage_returns_gets_a_plain_hint(tmp_path: Path) -> None:
    problem = only(write(tmp_path, "m.csv", b"chapter,text,voice_id\rc,a,v\r"))
    assert problem.line == 1
    assert "a lone carriage return (CR) line break" in problem.message


def test_csv_bad_chapter_id_is_reported_once(tmp_path: Path) -> None:
    path = write(tmp_path, "m.csv", "chapter,text,voice_id\n../x,a,v\n../x,b,v\nok,c,v\n")
    problem = only(path)
    assert (problem.line, "must not start with '.'" in problem.message) == (2, True)


def test_csv_not_utf8_names_the_row_and_byte_offset(tmp_path: Path) -> None:
    data = "chapter,text,voice_id\nc,ok,v\nc,caf\xe9,v\nc,na\xefve,v\n".encode("cp1252")
    problem = only(write(tmp_path, "m.csv", data))
    assert problem.line == 3
    assert problem.message == (
        "not UTF-8: byte 0xe9 at byte offset 34 (1 more lines are not UTF-8 either); "
        "save the file as UTF-8 (in Excel: CSV UTF-8)"
    )


def test_csv_problems_come_in_row_order_with_the_voice_problem_last_of_its_chapter(
    tmp_path: Path,
) -> None:
    path = write(tmp_path, "m.csv", "chapter,text,speed\nc,a,9\nc,b,\nc,c,x\n")
    assert [p.line for p in problems(path)] == [2, 2, 4]


# ---------------------------------------------------------------- the shipped samples


@pytest.mark.parametrize(
    "source",
    [
        "jobs/sample.yaml",
        "jobs/dubbing.yaml",
        "sample_inputs/book.yaml",
        "sample_inputs/dubbing.csv",
    ],
)
def test_samples_load_without_problems(source: str) -> None:
    job = load_job(ROOT / source)
    assert job.chapters
    for chapter in job.chapters:
        assert chapter.lines
        assert all(line.params.voice_id.startswith("local-") for line in chapter.lines)


def test_sample_job_settings() -> None:
    job = load_job(ROOT / "jobs/sample.yaml")
    assert job.output.dir is not None
    assert job.output.dir.resolve() == (ROOT / "out/sample").resolve()
    assert (job.output.format, job.output.subtitles) == ("mp3", ("srt",))
    assert (job.run.backend, job.run.qps, job.run.concurrency) == ("local", 10.0, 4)
    assert [c.id for c in job.chapters] == ["ch01-lighthouse", "ch02-the-boat", "ch03-morning"]
    voices = {line.params.voice_id for c in job.chapters for line in c.lines}
    assert voices == {"local-zh-female", "local-zh-male", "local-en-female", "local-en-male"}
    dubbing = load_job(ROOT / "jobs/dubbing.yaml")
    assert {line.params.format for c in dubbing.chapters for line in c.lines} == {"wav"}


# ---------------------------------------------------------------- scale and fuzz


def test_csv_rows_share_params_and_keep_order(tmp_path: Path) -> None:
    buffer = io.StringIO()
    out = csv.writer(buffer)
    out.writerow(["chapter", "text", "voice_id", "emotion"])
    for i in range(3000):
        out.writerow([f"c{i // 1000}", f"line {i}", f"v{i % 3}", ("happy", "sad")[i % 2]])
    job = load_job(write(tmp_path, "big.csv", buffer.getvalue()))
    lines = [line for c in job.chapters for line in c.lines]
    assert [x.text for x in lines] == [f"line {i}" for i in range(3000)]
    assert len({id(x.params) for x in lines}) == 6


_YAML_KEYS = [
    "manifest",
    "defaults",
    "chapters",
    "output",
    "run",
    "id",
    "text",
    "lines",
    "text_file",
    "title",
    "dir",
    "format",
    "subtitles",
    *CSV_COLUMNS,
]
_scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-3, 50000),
    st.floats(allow_nan=True),
    st.text(max_size=12),
    st.sampled_from(["srt", "mp3", "wav", "local", "happy", "x.csv", "t.txt", "../a"]),
)
_yaml_values = st.recursive(
    _scalars,
    lambda inner: (
        st.lists(inner, max_size=4)
        | st.dictionaries(st.sampled_from(_YAML_KEYS), inner, max_size=5)
    ),
    max_leaves=25,
)
_csv_cells = st.text(alphabet=st.sampled_from(list('ab,"\n\r c1\u4e2d\ufeff')), max_size=8)


def _load(folder: Path, name: str, data: bytes) -> None:
    path = folder / name
    path.write_bytes(data)
    try:
        result = load_job(path)
    except ManifestError as e:
        assert e.problems and all(isinstance(p, Problem) for p in e.problems)
    else:
        assert isinstance(result, Job) and result.chapters


_FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])


@_FUZZ
@given(data=st.binary(max_size=300), suffix=st.sampled_from([".yaml", ".csv"]))
def test_fuzz_random_bytes_end_in_a_job_or_manifest_error(data: bytes, suffix: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _load(Path(folder), "f" + suffix, data)


@_FUZZ
@given(document=st.dictionaries(st.sampled_from(_YAML_KEYS), _yaml_values, max_size=6))
def test_fuzz_yaml_shaped_documents(document: dict[str, object]) -> None:
    with tempfile.TemporaryDirectory() as folder:
        (Path(folder) / "t.txt").write_text("Hello.\n\nWorld.", encoding="utf-8")
        _load(Path(folder), "f.yaml", yaml.safe_dump(document, allow_unicode=True).encode())


@_FUZZ
@given(
    text=st.text(
        alphabet=st.sampled_from(list("abc:- \n[]{}&*!|>'\"#%@`,?\t0.1\u4e2d")), max_size=120
    )
)
def test_fuzz_yaml_ish_text(text: str) -> None:
    with tempfile.TemporaryDirectory() as folder:
        _load(Path(folder), "f.yaml", ("chapters:\n" + text).encode())


@_FUZZ
@given(
    header=st.lists(st.sampled_from([*CSV_COLUMNS, "x", ""]), min_size=1, max_size=5),
    rows=st.lists(st.lists(_csv_cells, max_size=6), max_size=6),
)
def test_fuzz_csv_ish_text(header: list[str], rows: list[list[str]]) -> None:
    body = "\n".join(",".join(cells) for cells in [header, *rows])
    with tempfile.TemporaryDirectory() as folder:
        _load(Path(folder), "f.csv", body.encode())
