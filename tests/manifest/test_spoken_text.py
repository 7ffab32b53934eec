"""Cast, dialogue, normalisation and the lexicon change exactly the request bodies they should
(checked on the local server's counts of the bodies it answered), and a lexicon edit re-sends
only the chunks it touches."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from helpers import REPO, make_plan, run_plan

from pipeline.errors import ManifestError
from pipeline.localserver import LocalServer, body_key
from pipeline.manifest import DEFAULT_PAUSE_MS, load_job

pytestmark = pytest.mark.anyio

JOB = """\
defaults: {voice_id: local-tone-1, response_format: wav, sample_rate: 16000}
language: en
lexicon:
  Hermione: Her-my-oh-nee
  /\\bDr\\.(?= [A-Z])/: Doctor
cast:
  Ann: {voice_id: local-tone-2, speed: 1.2}
  Bob: {voice_id: local-tone-3, language: zh}
chapters:
  - id: a
    lines:
      - Hermione met Dr. Who.
      - {text: "I paid $12.50 on 3 May.", normalize: true}
      - {text: Hello there., speaker: Ann}
      - {text: 第2名, speaker: Bob, normalize: true}
      - {text: Plain line., speaker: ann, speed: 0.8}
  - id: b
    dialogue: Ann
    text: |
      “Run,” said Hermione. “Now!”
"""


def body(text: str, voice: str = "local-tone-1", **more: Any) -> dict[str, Any]:
    return {"input": text, "voice_id": voice, "response_format": "wav", "sample_rate": 16000,
            **more}


EXPECTED = [
    body("Her-my-oh-nee met Doctor Who."),  # lexicon: literal and regex
    body("I paid twelve dollars and fifty cents on three May."),  # normalised, in English
    body("Hello there.", "local-tone-2", speed=1.2),  # the cast entry of its speaker
    body("第二名", "local-tone-3"),  # the speaker's language: normalised in Chinese
    body("Plain line.", "local-tone-2", speed=0.8),  # the line beats the cast entry
    body("“Run,”", "local-tone-2", speed=1.2),  # dialogue: Ann speaks the quotes
    body("said Her-my-oh-nee.", "local-tone-1"),  # ... the narrator the rest
    body("“Now!”", "local-tone-2", speed=1.2),
]


def write(tmp_path: Path, text: str, name: str = "job.yaml") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def answered(server: LocalServer) -> set[str]:
    return set(server.stats.snapshot()["by_input"])


async def test_cast_dialogue_normalisation_and_lexicon_shape_every_body(
    tmp_path: Path, local_server: LocalServer
) -> None:
    plan = make_plan(write(tmp_path, JOB))
    assert [c.line_id for c in plan.chunks()] == ["1", "2", "3", "4", "5", "1.1", "1.2", "1.3"]
    # The parts of one paragraph follow each other; the paragraph's pause comes after the last.
    assert [c.pause_after_ms for c in plan.chunks()][5:] == [0, 0, DEFAULT_PAUSE_MS]
    report = await run_plan(plan, local_server, tmp_path / "out")
    assert report.status == "ok"
    assert local_server.stats.snapshot()["requests"] == len(EXPECTED)
    assert answered(local_server) == {body_key(b) for b in EXPECTED}


LEXICON_JOB = """\
defaults: {{voice_id: local-tone-1, response_format: wav, sample_rate: 16000}}
lexicon: names.tsv
chapters:
  - id: a
    text: |
      Hermione opened the door.

      Ron stayed outside.

      Then Hermione laughed.

      Nobody else came.
"""


async def test_a_lexicon_edit_resends_only_the_chunks_it_touches(
    tmp_path: Path, local_server: LocalServer
) -> None:
    write(tmp_path, "Hermione\tHer-my-oh-nee\n# a comment\nRon\tRonn\n", "names.tsv")
    job = write(tmp_path, LEXICON_JOB.format())
    out = tmp_path / "out"
    assert (await run_plan(make_plan(job), local_server, out)).status == "ok"
    assert local_server.stats.snapshot()["requests"] == 4
    local_server.reset()
    write(tmp_path, "Hermione\tHermy-own-ee\nRon\tRonn\n", "names.tsv")
    assert (await run_plan(make_plan(job), local_server, out)).status == "ok"
    assert local_server.stats.snapshot()["requests"] == 2
    assert answered(local_server) == {
        body_key(body("Hermy-own-ee opened the door.")),
        body_key(body("Then Hermy-own-ee laughed.")),
    }


def problems(path: Path) -> list[str]:
    with pytest.raises(ManifestError) as e:
        load_job(path)
    return [str(p) for p in e.value.problems]


def test_layered_language_and_inline_lexicon_list(tmp_path: Path) -> None:
    path = write(tmp_path, """\
defaults: {voice_id: v}
language: zh
lexicon:
  - {term: 重庆, say: 崇庆}
  - {term: "(\\\\d+)km", say: "\\\\1 kilometres", regex: true, language: en}
chapters:
  - id: a
    lines:
      - 重庆 5km
      - {text: 重庆 5km, language: en}
  - id: b
    language: en
    normalize: true
    lines: [Chapter 2 of 3]
""")
    job = load_job(path)
    assert [x.text for c in job.chapters for x in c.lines] == [
        "崇庆 5km", "崇庆 5 kilometres", "Chapter two of three"]


def test_text_rule_problems_name_their_lines(tmp_path: Path) -> None:
    path = write(tmp_path, """\
defaults: {voice_id: v}
cast:
  Ann: {voice_id: v2, sample_rate: 8000, hat: red}
  Bob: {speed: fast}
lexicon: {"/(/": x}
chapters:
  - id: a
    dialogue: Eve
    lines:
      - {text: Hi., speaker: Zed}
      - {text: 12, normalize: true}
      - {text: x, normalize: maybe, language: 1.5}
""")
    shown = str(path)
    assert problems(path) == [
        f"{shown}:3: cast 'Ann': sample_rate is set per chapter or job, not per speaker (one "
        "chapter file, one format)",
        f"{shown}:3: cast 'Ann': hat: unknown key; allowed: voice_id, emotion, emotion_scale, "
        "speed, loudness_rate, context_texts, language",
        f"{shown}:4: speed must be a number from 0.2 to 3",
        f"{shown}:5: bad regex '(': missing ), unterminated subpattern at position 0",
        f"{shown}:7: dialogue 'Eve' is not in the cast (cast: Ann, Bob)",
        f"{shown}:10: speaker 'Zed' is not in the cast (cast: Ann, Bob)",
        f"{shown}:11: normalize is on but it has no language: set language: zh, en or ja on "
        "the job, chapter or line",
        f"{shown}:12: normalize must be true or false",
        f"{shown}:12: language must be a language code such as zh, en or en-US",
    ]


def test_csv_speaker_normalize_and_language_columns(tmp_path: Path) -> None:
    write(tmp_path, "chapter,text,speaker,normalize,language\n"
                    "a,Chapter 3,,yes,en\n"
                    "a,Hi Hermione,Ann,,\n", "m.csv")
    path = write(tmp_path, "manifest: m.csv\ndefaults: {voice_id: v}\n"
                           "cast: {Ann: {voice_id: v2}}\nlexicon: {Hermione: Her-my-oh-nee}\n")
    lines = load_job(path).chapters[0].lines
    assert [(x.text, x.params.voice_id) for x in lines] == [
        ("Chapter three", "v"), ("Hi Her-my-oh-nee", "v2")]


def test_the_sample_book_job_voices_quotes_with_the_job_wide_dialogue_speaker() -> None:
    job = load_job(REPO / "jobs" / "book-txt.yaml")
    assert [c.title for c in job.chapters] == ["CHAPTER I.", "CHAPTER II."]
    said = [(x.id, x.text, x.params.voice_id) for x in job.chapters[0].lines[2:]]
    assert said == [
        ("3.1", "“Is the glass clean?”", "local-en-male"),
        ("3.2", "asked Mah-rah from the door.", "local-en-female"),
        ("3.3", "“Clean as the sky,”", "local-en-male"),
        ("3.4", "he said.", "local-en-female"),
    ]
    assert job.book is not None and job.book.narrator == "eSpeak"
    assert [s.line for s in job.skipped] == [1, 2]
