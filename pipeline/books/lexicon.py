"""A pronunciation lexicon: what to send instead of a term, literal or regex, maybe per voice
or language. Applied after normalisation and before chunking, so the cache (keyed on what is
sent) re-synthesizes exactly the chunks an edit touches.

Order, deterministic: all literal terms in one pass, longest first (so ``New York City`` wins
over ``New York``, and a replacement is never rewritten by another literal), then each regex
in file order on the result. A literal that starts or ends with a letter or digit of a script
that writes spaces (Latin, Cyrillic, Greek ...) only matches as a whole word there; Chinese,
Japanese and Korean terms match anywhere. Where a term has entries for several scopes, the
most specific one for the line wins (voice and language, then voice, then language, then all).

Forms (inline in a job, or in a ``.yaml``/``.yml`` file)::

    lexicon:
      Hermione: Her-my-oh-nee              # literal
      /\\bDr\\.(?= [A-Z])/: Doctor            # /regex/
    lexicon:
      - {term: 重庆, say: 崇庆, language: zh}
      - {term: "(\\d+)km", say: "\\1 kilometres", regex: true, voice: en-male}

or a ``.tsv`` file: ``TERM<TAB>SAY[<TAB>OPTIONS]`` with OPTIONS a comma list of ``regex``,
``voice=ID``, ``language=CODE``; ``#`` starts a comment line.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import regex
import yaml

from pipeline.books.files import decode, problem, read_capped
from pipeline.errors import ManifestError, Problem

MAX_LEXICON_BYTES = 16 * 1024 * 1024
ENTRY_KEYS = ("term", "say", "regex", "voice", "language")
# No word boundaries next to these: they are written without spaces between words.
_NO_SPACES = regex.compile(r"[\p{Han}\p{Hiragana}\p{Katakana}\p{Hangul}]")
_WORD = regex.compile(r"\w")
_GROUP_REF = re.compile(r"\\(\d+)|\\g<([^>]*)>")


@dataclass(frozen=True, slots=True)
class LexiconEntry:
    term: str
    say: str
    regex: bool = False
    voice: str | None = None
    language: str | None = None
    file: str = ""
    line: int | None = None

    @property
    def specificity(self) -> int:
        return (2 if self.voice else 0) + (1 if self.language else 0)


def _language_matches(want: str | None, have: str | None) -> bool:
    if want is None:
        return True
    if have is None:
        return False
    return have.lower().replace("_", "-").split("-")[0] == want.lower().split("-")[0]


def _spaced(char: str) -> bool:
    """A letter or digit of a script that writes spaces: terms get word boundaries there."""
    return _WORD.match(char) is not None and _NO_SPACES.match(char) is None


class _Trie:
    """Literal terms as one regex that tries a position's longer terms first.

    One alternation of thousands of terms is tried term by term at every position (0.4 s for a
    1,000-character line with 5,000 names); a trie tries only the terms that begin there.
    """

    def __init__(self) -> None:
        self.children: dict[str, _Trie] = {}
        self.end = False

    def add(self, term: str) -> None:
        node = self
        for char in term:
            node = node.children.setdefault(char, _Trie())
        node.end = True

    def pattern(self, last: str = "") -> str:
        alternatives = [re.escape(c) + child.pattern(c) for c, child in self.children.items()]
        if self.end:  # tried last, so that a longer term wins
            alternatives.append(r"(?!\w)" if _spaced(last) else "")
        if len(alternatives) == 1:
            return alternatives[0]
        return "(?:" + "|".join(alternatives) + ")"

    def regex(self) -> re.Pattern[str]:
        firsts = [
            (r"(?<!\w)" if _spaced(c) else "") + re.escape(c) + child.pattern(c)
            for c, child in self.children.items()
        ]
        return re.compile("|".join(firsts))


@dataclass(frozen=True)
class Lexicon:
    entries: tuple[LexiconEntry, ...] = ()
    _cache: dict[tuple[str | None, str | None], Any] = field(
        default_factory=dict, compare=False, repr=False
    )

    def _scope(self, voice: str | None, language: str | None) -> Any:
        key = (voice, language)
        if key not in self._cache:
            live = [e for e in self.entries if e.voice in (None, voice)
                    and _language_matches(e.language, language)]
            literal: dict[str, str] = {}
            for e in sorted((e for e in live if not e.regex), key=lambda e: e.specificity):
                literal[e.term] = e.say  # more specific entries come later and win
            trie = _Trie()
            for term in literal:
                trie.add(term)
            joined = trie.regex() if literal else None
            patterns = [(re.compile(e.term), e.say) for e in live if e.regex]
            self._cache[key] = (joined, literal, patterns)
        return self._cache[key]

    def apply(self, text: str, *, voice: str | None = None, language: str | None = None) -> str:
        """``text`` with every entry for this voice and language applied (see the module)."""
        joined, literal, patterns = self._scope(voice, language)
        if joined is not None:
            text = joined.sub(lambda m: literal[m.group(0)], text)
        for pattern, say in patterns:
            text = pattern.sub(lambda m, say=say: m.expand(say), text)
        return text


def apply_lexicon(
    lexicon: Lexicon, text: str, voice: str | None = None, language: str | None = None
) -> str:
    return lexicon.apply(text, voice=voice, language=language)


def _check(entry: LexiconEntry) -> str | None:
    if not entry.term:
        return "empty term"
    if not entry.regex:
        return None
    try:
        compiled = re.compile(entry.term)
    except re.error as error:
        return f"bad regex {entry.term!r}: {error}"
    if compiled.fullmatch(""):
        return f"regex {entry.term!r} matches the empty string"
    for number, name in _GROUP_REF.findall(entry.say):
        if number and int(number) > compiled.groups or name and (
            name not in compiled.groupindex and not (name.isdigit()
                                                     and int(name) <= compiled.groups)):
            return f"{entry.say!r} refers to a group {entry.term!r} does not have"
    return None


def build(entries: list[LexiconEntry]) -> Lexicon:
    """A lexicon from checked entries; every problem at once, as FILE:LINE."""
    problems: list[Problem] = []
    seen: dict[tuple[str, bool, str | None, str | None], LexiconEntry] = {}
    for e in entries:
        message = _check(e)
        key = (e.term, e.regex, e.voice, e.language)
        if message is None and key in seen:
            message = f"{e.term!r} is given twice (first at line {seen[key].line})"
        seen.setdefault(key, e)
        if message:
            problems.append(Problem(e.file, e.line, message))
    if problems:
        raise ManifestError(problems)
    return Lexicon(tuple(entries))


def _yaml_value(node: Any) -> Any:
    return yaml.SafeLoader("").construct_document(node)


def _entry_from_mapping(node: Any, file: str) -> LexiconEntry | Problem:
    line = node.start_mark.line + 1
    data = _yaml_value(node)
    unknown = [k for k in data if k not in ENTRY_KEYS]
    if unknown:
        return Problem(file, line, f"unknown key {unknown[0]!r}: use {', '.join(ENTRY_KEYS)}")
    if not isinstance(data.get("term"), str) or not isinstance(data.get("say"), str):
        return Problem(file, line, "an entry needs term and say, both text")
    scope = [data.get(k) for k in ("voice", "language")]
    if any(v is not None and not isinstance(v, str) for v in scope):
        return Problem(file, line, "voice and language must be text")
    if not isinstance(data.get("regex", False), bool):
        return Problem(file, line, "regex must be true or false")
    return LexiconEntry(data["term"], data["say"], data.get("regex", False), scope[0], scope[1],
                        file, line)


def entries_from_node(node: Any, file: str) -> list[LexiconEntry]:
    """Entries of a composed YAML node (a mapping or a list), with their lines."""
    out: list[LexiconEntry | Problem] = []
    if isinstance(node, yaml.MappingNode):
        for key, value in node.value:
            line = key.start_mark.line + 1
            term, say = _yaml_value(key), _yaml_value(value)
            if not isinstance(term, str) or not isinstance(say, str):
                out.append(Problem(file, line, "want TERM: SAY, both text"))
                continue
            is_regex = len(term) > 2 and term.startswith("/") and term.endswith("/")
            out.append(LexiconEntry(term[1:-1] if is_regex else term, say, is_regex,
                                    file=file, line=line))
    elif isinstance(node, yaml.SequenceNode):
        for item in node.value:
            if isinstance(item, yaml.MappingNode):
                out.append(_entry_from_mapping(item, file))
            else:
                out.append(Problem(file, item.start_mark.line + 1, "want {term: ..., say: ...}"))
    else:
        line = node.start_mark.line + 1 if node is not None else None
        out.append(Problem(file, line, "a lexicon is a mapping TERM: SAY or a list of entries"))
    problems = [p for p in out if isinstance(p, Problem)]
    if problems:
        raise ManifestError(problems)
    return [e for e in out if isinstance(e, LexiconEntry)]


def _tsv_entry(fields: list[str], file: str, line: int) -> LexiconEntry | Problem:
    if len(fields) not in (2, 3):
        return Problem(file, line, "want TERM<TAB>SAY[<TAB>OPTIONS]")
    options: dict[str, Any] = {"regex": False, "voice": None, "language": None}
    for option in (fields[2].split(",") if len(fields) == 3 else []):
        name, _, value = option.strip().partition("=")
        if name == "regex" and not value:
            options["regex"] = True
        elif name in ("voice", "language") and value:
            options[name] = value
        elif name:
            return Problem(file, line, f"unknown option {option.strip()!r}: use regex, "
                           "voice=ID, language=CODE")
    return LexiconEntry(fields[0], fields[1], file=file, line=line, **options)


def entries_from_tsv(text: str, file: str) -> list[LexiconEntry]:
    out: list[LexiconEntry | Problem] = []
    for number, raw in enumerate(text.splitlines(), 1):
        if not raw.strip() or raw.lstrip().startswith("#"):
            continue
        out.append(_tsv_entry(raw.split("\t"), file, number))
    problems = [p for p in out if isinstance(p, Problem)]
    if problems:
        raise ManifestError(problems)
    return [e for e in out if isinstance(e, LexiconEntry)]


def load_lexicon(path: Path) -> Lexicon:
    """A lexicon file (``.tsv``, ``.yaml``, ``.yml``); ``ManifestError`` with FILE:LINE."""
    display = str(path)
    text = decode(read_capped(Path(path), display, MAX_LEXICON_BYTES), display)
    suffix = Path(path).suffix.lower()
    if suffix == ".tsv":
        return build(entries_from_tsv(text, display))
    if suffix not in (".yaml", ".yml"):
        raise problem(display, None, "a lexicon file is .tsv, .yaml or .yml")
    return lexicon_from_yaml(text, display)


def lexicon_from_yaml(text: str, file: str) -> Lexicon:
    """A lexicon given as YAML text (lines count from the text's first line)."""
    try:
        node = yaml.compose(text, Loader=yaml.SafeLoader)
    except yaml.YAMLError as error:
        mark = getattr(error, "problem_mark", None)
        raise problem(file, mark.line + 1 if mark else None, f"bad YAML: "
                      f"{getattr(error, 'problem', None) or error}") from None
    return build(entries_from_node(node, file))
