"""The lexicon: literal and regex entries, scopes, order, and FILE:LINE errors."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
import yaml
from hypothesis import given
from hypothesis import strategies as st

from pipeline.books.lexicon import (
    Lexicon,
    LexiconEntry,
    build,
    entries_from_node,
    lexicon_from_yaml,
    load_lexicon,
)
from pipeline.errors import ManifestError


def lex(*entries: LexiconEntry) -> Lexicon:
    return build(list(entries))


def test_literals_longest_first_in_one_pass() -> None:
    lexicon = lex(
        LexiconEntry("New York", "NY"),
        LexiconEntry("New York City", "the Big Apple"),
        LexiconEntry("NY", "never applied to a replacement"),
    )
    assert lexicon.apply("New York City and New York.") == "the Big Apple and NY."


def test_latin_terms_are_whole_words_and_cjk_terms_are_not() -> None:
    lexicon = lex(LexiconEntry("Li", "Lee"), LexiconEntry("重庆", "崇庆"),
                  LexiconEntry("Dr.", "Doctor"))
    assert lexicon.apply("Li met Lisa and Dr. Li in 重庆市.") == (
        "Lee met Lisa and Doctor Lee in 崇庆市."
    )
    assert lexicon.apply("DLi Li2 Li's") == "DLi Li2 Lee's"


def test_regexes_run_after_literals_in_file_order() -> None:
    lexicon = lex(
        LexiconEntry(r"(\d+)km", r"\1 kilometres", regex=True),
        LexiconEntry(r"kilometres", "km!", regex=True),
        LexiconEntry("5", "five"),
    )
    # the literal "5" is whole-word only, so "5km" keeps its digit for the regex
    assert lexicon.apply("5km, 5 km") == "5 km!, five km"


def test_scopes_voice_and_language_most_specific_wins() -> None:
    lexicon = lex(
        LexiconEntry("GIF", "jif"),
        LexiconEntry("GIF", "gif", language="en"),
        LexiconEntry("GIF", "G-I-F", voice="bob"),
        LexiconEntry("GIF", "ghif", voice="bob", language="en"),
        LexiconEntry("SQL", "sequel", voice="ann"),
    )
    assert lexicon.apply("GIF SQL") == "jif SQL"
    assert lexicon.apply("GIF SQL", language="en-US") == "gif SQL"
    assert lexicon.apply("GIF SQL", voice="bob") == "G-I-F SQL"
    assert lexicon.apply("GIF SQL", voice="bob", language="en") == "ghif SQL"
    assert lexicon.apply("GIF SQL", voice="ann", language="zh") == "jif sequel"


def test_inline_yaml_forms() -> None:
    mapping = lexicon_from_yaml("Hermione: Her-my-oh-nee\n/\\bcolour\\b/: color\n", "job.yaml")
    assert mapping.apply("Hermione's colour") == "Her-my-oh-nee's color"
    listed = lexicon_from_yaml(
        "- {term: 重庆, say: 崇庆, language: zh}\n- {term: 'x(\\d)', say: 'y\\1', regex: true}\n",
        "job.yaml",
    )
    assert listed.apply("重庆x1", language="zh") == "崇庆y1"
    assert listed.apply("重庆x1", language="en") == "重庆y1"


def test_node_entries_keep_lines_of_the_job_file() -> None:
    node = yaml.compose("voice: x\nlexicon:\n  A: b\n  C: 7\n", Loader=yaml.SafeLoader)
    lexicon_node = node.value[1][1]
    with pytest.raises(ManifestError, match=r"^job\.yaml:4: want TERM: SAY, both text$"):
        entries_from_node(lexicon_node, "job.yaml")


def test_tsv_file(tmp_path: Path) -> None:
    path = tmp_path / "names.tsv"
    path.write_text(
        "# names\nHermione\tHer-my-oh-nee\n\n(\\d+)%\t\\1 percent\tregex,language=en\n"
        "Anne\tAhn\tvoice=fr-female\n",
        encoding="utf-8",
    )
    lexicon = load_lexicon(path)
    assert [e.line for e in lexicon.entries] == [2, 4, 5]
    assert lexicon.apply("Hermione 5% Anne", language="en") == "Her-my-oh-nee 5 percent Anne"
    assert lexicon.apply("Anne", voice="fr-female") == "Ahn"


def test_every_problem_at_once_with_lines(tmp_path: Path) -> None:
    path = tmp_path / "bad.tsv"
    path.write_text(
        "ok\tfine\nno tab here\n([\tx\tregex\na*\tx\tregex\nok\tagain\n(a)\t\\2\tregex\n"
        "t\ts\tloud\n",
        encoding="utf-8",
    )
    with pytest.raises(ManifestError) as info:
        load_lexicon(path)
    assert [str(p) for p in info.value.problems] == [
        f"{path}:2: want TERM<TAB>SAY[<TAB>OPTIONS]",
        f"{path}:7: unknown option 'loud': use regex, voice=ID, language=CODE",
    ]
    path.write_text("ok\tfine\n([\tx\tregex\na*\tx\tregex\nok\tagain\n(a)\t\\2\tregex\n")
    with pytest.raises(ManifestError) as info:
        load_lexicon(path)
    messages = [str(p) for p in info.value.problems]
    assert messages[0].startswith(f"{path}:2: bad regex '(['")
    assert messages[1:] == [
        f"{path}:3: regex 'a*' matches the empty string",
        f"{path}:4: 'ok' is given twice (first at line 1)",
        f"{path}:5: '\\\\2' refers to a group '(a)' does not have",
    ]


def test_yaml_file_errors(tmp_path: Path) -> None:
    path = tmp_path / "lex.yaml"
    path.write_text("- {term: a, say: b, colour: red}\n- just text\n", encoding="utf-8")
    with pytest.raises(ManifestError) as info:
        load_lexicon(path)
    assert [p.line for p in info.value.problems] == [1, 2]
    path.write_text("a: [b\n", encoding="utf-8")
    with pytest.raises(ManifestError, match=r"lex\.yaml:2: bad YAML"):
        load_lexicon(path)


def _reference(terms: dict[str, str], text: str) -> str:
    """The plain definition: one alternation, longest term first, word boundaries by hand."""

    def bounded(term: str) -> str:
        pattern = re.escape(term)
        if re.match(r"[A-Za-z0-9]", term[0]):
            pattern = r"(?<!\w)" + pattern
        if re.match(r"[A-Za-z0-9]", term[-1]):
            pattern += r"(?!\w)"
        return pattern

    ordered = sorted(terms, key=lambda t: -len(t))
    joined = re.compile("|".join(bounded(t) for t in ordered))
    return joined.sub(lambda m: terms[m.group(0)], text)


@given(
    st.dictionaries(st.text(alphabet="ab 重庆.", min_size=1, max_size=4), st.text("XY", max_size=2),
                    max_size=6),
    st.text(alphabet="ab 重庆.c", max_size=30),
)
def test_trie_matches_the_plain_definition(terms: dict[str, str], text: str) -> None:
    terms = {t: s for t, s in terms.items() if t.strip() == t and t}
    lexicon = build([LexiconEntry(t, s) for t, s in terms.items()])
    assert lexicon.apply(text) == (_reference(terms, text) if terms else text)
