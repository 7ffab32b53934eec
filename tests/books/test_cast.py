"""The cast is checked with the speech contract; paragraphs split at quotes, nothing empty."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.books.cast import Cast, load_cast, split_dialogue
from pipeline.errors import ManifestError


def parts(text: str) -> list[tuple[str, bool]]:
    return [(p.text, p.dialogue) for p in split_dialogue(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("“Hi,” she said. “Come in.”",
         [("“Hi,”", True), ("she said.", False), ("“Come in.”", True)]),
        ("他说：“走吧！”然后走了。",
         [("他说：", False), ("“走吧！”", True), ("然后走了。", False)]),
        ("「行こう」と彼は言った。「『本』を持って」",
         [("「行こう」", True), ("と彼は言った。", False), ("「『本』を持って」", True)]),
        ('He said "yes" twice.', [("He said", False), ('"yes"', True), ("twice.", False)]),
        ("‘Don’t go,’ Ann said.", [("‘Don’t go,’", True), ("Ann said.", False)]),
        ("“One.” — “Two.”", [("“One.” — “Two.”", True)]),
        ("“Unclosed quote goes on", [("“Unclosed quote goes on", True)]),
        ("— “Hey.”", [("— “Hey.”", True)]),
        ("No quotes at all.", [("No quotes at all.", False)]),
        ("……", [("……", False)]),
        ("   ", []),
        ("It’s fine.", [("It’s fine.", False)]),
    ],
)
def test_split_dialogue(text: str, expected: list[tuple[str, bool]]) -> None:
    assert parts(text) == expected


@given(st.text(alphabet="ab “”「」\"‘’,。 ", max_size=40))
def test_split_keeps_every_character_and_no_part_is_empty(text: str) -> None:
    result = split_dialogue(text)
    assert all(p.text and p.text == p.text.strip() for p in result)
    assert "".join(p.text for p in result).replace(" ", "") == text.replace(" ", "")
    assert all(a.dialogue != b.dialogue for a, b in zip(result, result[1:], strict=False))


def test_cast_is_checked_by_the_speech_validator() -> None:
    cast = load_cast({"Narrator": {"voice_id": "v1"}, "Alice": {"voice_id": "v2",
                      "emotion": "happy", "speed": 1.2, "language": "en"}}, "job.yaml")
    assert cast.lookup("Alice") == {"voice_id": "v2", "emotion": "happy", "speed": 1.2,
                                    "language": "en"}
    assert cast.lookup("ALICE") is not None and cast.lookup("Bob") is None
    with pytest.raises(ManifestError) as info:
        load_cast(
            {"Bob": {"voice_id": "", "speed": 9}, "Eve": {"sample_rate": 8000, "pitch": 2},
             "Max": "v3"},
            "job.yaml",
            lines={"Bob": 3, "Eve": 4},
            line=2,
        )
    assert [str(p) for p in info.value.problems] == [
        "job.yaml:3: cast 'Bob': voice_id is empty",
        "job.yaml:3: cast 'Bob': speed 9 is out of range 0.2 to 3",
        "job.yaml:4: cast 'Eve': sample_rate is set per chapter or job, not per speaker "
        "(one file, one format)",
        "job.yaml:4: cast 'Eve': unknown field 'pitch': use voice_id, emotion, emotion_scale, "
        "speed, loudness_rate, context_texts, language",
        "job.yaml:2: cast 'Max': want a mapping of speech fields",
    ]
    with pytest.raises(ManifestError, match="job.yaml:1: cast: want a mapping"):
        load_cast(["x"], "job.yaml", line=1)
    assert Cast().lookup(None) is None
