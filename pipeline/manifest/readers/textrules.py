"""A YAML file's ``cast:`` (speaker -> speech fields) and ``lexicon:`` (inline or a file).

Both are checked where they are written: a cast member's fields by the same check as any
speech field (so a bad ``voice_id`` reads the same everywhere), a lexicon's entries by the
lexicon's own rules, every problem as ``FILE:LINE``.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

from pipeline.books.cast import CAST_KEYS
from pipeline.books.lexicon import ENTRY_KEYS, Lexicon, LexiconEntry, build, load_lexicon
from pipeline.errors import ManifestError
from pipeline.manifest.model import Layer
from pipeline.manifest.readers import ProblemSink
from pipeline.manifest.readers.yamltree import Node
from pipeline.manifest.text import display, unknown

# What a cast member may set: the voice and its manner, and the language of its lines. The
# format and rate belong to the chapter (one file, one format).
CAST_MEMBER_KEYS = CAST_KEYS
_CHAPTER_ONLY = ("response_format", "sample_rate", "pause_ms")

LayerReader = Callable[[Node, str, Sequence[str]], Layer]


@dataclass(frozen=True)
class TextRules:
    cast: Mapping[str, Layer] | None = None
    lexicon: Lexicon | None = None


def text_rules(
    root: Node, file: str, folder: Path, problem: ProblemSink, layer: LayerReader
) -> TextRules:
    return TextRules(
        cast=_cast(root.value.get("cast"), file, problem, layer),
        lexicon=_lexicon(root.value.get("lexicon"), file, folder, problem),
    )


def _cast(
    node: Node | None, file: str, problem: ProblemSink, layer: LayerReader
) -> Mapping[str, Layer] | None:
    if node is None or node.value is None:
        return None
    if not node.is_map:
        problem(file, node.line, f"cast must be a mapping of speaker: fields, not {node.kind()}")
        return None
    members: dict[str, Layer] = {}
    for name, member in node.value.items():
        if not name.strip():
            problem(file, member.key_line, "a cast name must not be empty")
            continue
        if not member.is_map:
            problem(
                file,
                member.line,
                f"cast {name!r}: want a mapping of speech fields such as "
                f"voice_id, not {member.kind()}",
            )
            continue
        for key, child in member.value.items():
            if key in _CHAPTER_ONLY:
                problem(
                    file,
                    child.key_line,
                    f"cast {name!r}: {key} is set per chapter or job, "
                    "not per speaker (one chapter file, one format)",
                )
            elif key not in CAST_MEMBER_KEYS:
                problem(
                    file, child.key_line, f"cast {name!r}: {unknown(key, 'key', CAST_MEMBER_KEYS)}"
                )
        members[name] = layer(member, file, CAST_MEMBER_KEYS)
    return members


def _lexicon(node: Node | None, file: str, folder: Path, problem: ProblemSink) -> Lexicon | None:
    if node is None or node.value is None:
        return None
    try:
        if isinstance(node.value, str):
            path = folder / node.value
            if not path.is_file():
                what = "is a directory" if path.is_dir() else "no such file"
                problem(file, node.line, f"lexicon {node.value}: {what} ({display(path)})")
                return None
            return load_lexicon(Path(display(path)))
        return build(_entries(node, file, problem))
    except ManifestError as e:
        for p in e.problems:
            problem(p.file, p.line, p.message)
        return None


def _entries(node: Node, file: str, problem: ProblemSink) -> list[LexiconEntry]:
    out: list[LexiconEntry] = []
    if node.is_map:
        for term, say in node.value.items():
            text = say.text()
            if text is None:
                problem(file, say.line, f"lexicon {term!r}: want TERM: SAY, not {say.kind()}")
                continue
            is_regex = len(term) > 2 and term.startswith("/") and term.endswith("/")
            out.append(
                LexiconEntry(
                    term[1:-1] if is_regex else term, text, is_regex, file=file, line=say.key_line
                )
            )
    elif node.is_list:
        for item in node.value:
            entry = _entry(item, file, problem)
            if entry is not None:
                out.append(entry)
    else:
        problem(
            file,
            node.line,
            "lexicon must be a mapping TERM: SAY, a list of "
            "{term, say, ...} or the path of a .tsv/.yaml file",
        )
    return out


def _entry(item: Node, file: str, problem: ProblemSink) -> LexiconEntry | None:
    if not item.is_map:
        problem(file, item.line, f"a lexicon entry is {{term: ..., say: ...}}, not {item.kind()}")
        return None
    m = item.value
    bad = [k for k in m if k not in ENTRY_KEYS]
    for key in bad:
        problem(file, m[key].key_line, unknown(key, "key", ENTRY_KEYS))
    term = m["term"].text() if "term" in m else None
    say = m["say"].text() if "say" in m else None
    flag = m["regex"].value if "regex" in m else False
    scope = [m[k].text() if k in m else None for k in ("voice", "language")]
    if term is None or say is None:
        problem(file, item.line, "a lexicon entry needs term and say, both text")
    elif not isinstance(flag, bool):
        problem(file, m["regex"].line, "regex must be true or false")
    elif not bad:
        return LexiconEntry(term, say, flag, scope[0], scope[1], file=file, line=item.line)
    return None
