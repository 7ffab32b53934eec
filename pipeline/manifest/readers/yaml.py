"""YAML manifests and job files (``.yaml``, ``.yml``).

A job file is a YAML manifest that may also hold ``output`` and ``run`` settings, or point at
another manifest (any registered format) with ``manifest:``, one level deep. Lines come from
the parser's node marks, so every problem names the line it is on.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

from pipeline.manifest.fields import check_value, normalise
from pipeline.manifest.model import (
    CHAPTER_KEYS,
    EMPTY_LAYER,
    JOB_ONLY_KEYS,
    LAYER_KEYS,
    LINE_KEYS,
    TEXT_KEYS,
    TEXT_SOURCES,
    TOP_KEYS,
    BookOptions,
    Layer,
    Source,
    SourceChapter,
    SourceLine,
)
from pipeline.manifest.readers import ReadContext, reader_for, suffix_list
from pipeline.manifest.readers.booksection import book_options, book_section
from pipeline.manifest.readers.jobsections import output_settings, quality_settings, run_settings
from pipeline.manifest.readers.textrules import text_rules
from pipeline.manifest.readers.yamltree import Node, parse
from pipeline.manifest.text import display, one_line, paragraphs, read_text, unknown


def read(path: Path, context: ReadContext) -> Source:
    """A job file, or (``context.named_by`` set) a YAML manifest a job file names."""
    reader = _YamlReader(context)
    root = parse(path, context.display, context.problem)
    if root is None:
        return Source(())
    if context.named_by is not None:
        return reader.named_manifest(root, path)
    file, folder = context.display, path.parent
    reader.check_keys(root, file, TOP_KEYS)
    output = output_settings(root.value.get("output"), file, folder, reader.problem)
    run = run_settings(root.value.get("run"), file, reader.problem)
    quality = quality_settings(root.value.get("quality"), file, reader.problem)
    outer = context.outer.then(reader.defaults(root.value.get("defaults"), file))
    outer = outer.then(reader.layer(root, file, TEXT_KEYS))
    rules = text_rules(root, file, folder, reader.problem, reader.layer)
    book = book_section(root.value.get("book"), file, folder, reader.problem)
    target = root.value.get("manifest")
    options = book_options(root, file, reader.problem, target)
    source = Source(())
    if target is None:
        source = Source(reader.chapters(root, file, folder, outer))
    elif "chapters" in root.value:
        reader.problem(
            file,
            root.value["chapters"].key_line,
            "chapters: a job file with "
            "'manifest' takes its chapters from that file; remove one of the two",
        )
    else:
        source = reader.indirect(target, file, folder, outer, options)
    dialogue = reader.optional_text(root.value.get("dialogue"), "dialogue", file)
    return replace(
        source,
        chapters=_with_dialogue(source.chapters, dialogue),
        output=output,
        run=run,
        cast=rules.cast if rules.cast is not None else source.cast,
        lexicon=rules.lexicon if rules.lexicon is not None else source.lexicon,
        book=book.over(source.book) if book is not None else source.book,
        quality=quality,
    )


def _with_dialogue(
    chapters: Iterable[SourceChapter], dialogue: str | None
) -> Iterable[SourceChapter]:
    """The job's ``dialogue`` for every chapter that names none (a book's chapters, say)."""
    if dialogue is None:
        return chapters
    return (c if c.dialogue is not None else replace(c, dialogue=dialogue) for c in chapters)


class _YamlReader:
    def __init__(self, context: ReadContext) -> None:
        self.context = context
        self.problem = context.problem

    def check_keys(
        self, node: Node, file: str, allowed: Sequence[str], report: Sequence[str] | None = None
    ) -> None:
        """Report keys not in ``allowed``; suggestions come from ``report`` (default: allowed)."""
        for key, child in node.value.items():
            if key not in allowed:
                self.problem(file, child.key_line, unknown(key, "key", report or allowed))

    def indirect(
        self, node: Node, file: str, folder: Path, outer: Layer, options: BookOptions
    ) -> Source:
        name = node.text()
        if not isinstance(node.value, str) or not name or not name.strip():
            self.problem(file, node.line, f"manifest must be the path of a {suffix_list()} file")
            return Source(())
        path = folder / name
        reader = reader_for(path)
        if reader is None:
            self.problem(file, node.line, f"manifest {name}: must end in {suffix_list()}")
        elif not path.is_file():
            what = "is a directory" if path.is_dir() else "no such file"
            self.problem(file, node.line, f"manifest {name}: {what} ({display(path)})")
        else:
            nested = replace(self.context.nested(path, outer, file), book=options)
            return reader(path, nested)
        return Source(())

    def named_manifest(self, root: Node, path: Path) -> Source:
        file = self.context.display
        for key in JOB_ONLY_KEYS:
            if key in root.value:
                self.problem(
                    file,
                    root.value[key].key_line,
                    f"{key}: belongs in the job file "
                    f"({self.context.named_by}), not in the manifest it names (one level of "
                    "indirection)",
                )
        allowed = [k for k in TOP_KEYS if k not in JOB_ONLY_KEYS]
        self.check_keys(root, file, TOP_KEYS, report=allowed)
        own = self.defaults(root.value.get("defaults"), file)
        own = own.then(self.layer(root, file, TEXT_KEYS))
        rules = text_rules(root, file, path.parent, self.problem, self.layer)
        chapters = self.chapters(root, file, path.parent, self.context.outer.then(own))
        return Source(chapters, cast=rules.cast, lexicon=rules.lexicon)

    def layer(
        self, node: Node, file: str, names: Sequence[str] = (*LAYER_KEYS, *TEXT_KEYS)
    ) -> Layer:
        values: dict[str, Any] = {}
        invalid: set[str] = set()
        for name in names:
            child = node.value.get(name)
            if child is None:
                continue
            value = child.value
            if name in ("voice_id", "context_texts", "language") and not isinstance(value, str):
                value = child.text()  # voice_id: 7426720361733144585 is text to Coze
            if isinstance(child.value, dict | list):
                message: str | None = f"{name} must be a single value, not {child.kind()}"
            elif value is None:
                continue  # `emotion:` with nothing after it: not set
            else:
                message = check_value(name, value)
            if message is not None:
                self.problem(file, child.line, message)
                invalid.add(name)
                continue
            normal = normalise(name, value)
            if normal is not None:
                values[name] = normal
        return Layer(values, frozenset(invalid)) if values or invalid else EMPTY_LAYER

    def defaults(self, node: Node | None, file: str) -> Layer:
        if node is None or node.value is None:
            return EMPTY_LAYER
        if not node.is_map:
            self.problem(
                file, node.line, f"defaults must be a mapping of field: value, not {node.kind()}"
            )
            return EMPTY_LAYER
        self.check_keys(node, file, LAYER_KEYS)
        return self.layer(node, file)

    def chapters(
        self, root: Node, file: str, folder: Path, outer: Layer
    ) -> Iterator[SourceChapter]:
        node = root.value.get("chapters")
        if node is None:
            self.problem(
                file,
                None,
                "no chapters: add a 'chapters' list, or point 'manifest' at a manifest file",
            )
        elif not node.is_list:
            self.problem(
                file,
                node.line,
                f"chapters must be a list (each item starting with '- id:'), not {node.kind()}",
            )
        elif not node.value:
            self.problem(file, node.line, "chapters is empty: a manifest needs one chapter or more")
        else:
            for item in node.value:
                chapter = self.chapter(item, file, folder, outer)
                if chapter is not None:
                    yield chapter

    def chapter(self, node: Node, file: str, folder: Path, outer: Layer) -> SourceChapter | None:
        if not node.is_map:
            self.problem(
                file,
                node.line,
                f"a chapter must be a mapping starting with 'id:', not {node.kind()}",
            )
            return None
        self.check_keys(node, file, CHAPTER_KEYS)
        cid = self.chapter_id(node, file)
        title = self.optional_text(node.value.get("title"), "title", file)
        fields = outer.then(self.layer(node, file))
        dialogue = self.optional_text(node.value.get("dialogue"), "dialogue", file)
        lines = self.chapter_lines(node, cid or "?", file, folder)  # lazy: read when resolved
        return SourceChapter(cid, title, file, node.line, lines, fields, dialogue=dialogue)

    def chapter_lines(self, node: Node, cid: str, file: str, folder: Path) -> Iterator[SourceLine]:
        m = node.value
        sources = [k for k in TEXT_SOURCES if k in m]
        if not sources:
            self.problem(
                file,
                node.line,
                f"chapter {cid!r} has no text: give one of text, text_file or lines",
            )
        elif len(sources) > 1:
            self.problem(
                file,
                m[sources[1]].key_line,
                f"chapter {cid!r} has both {sources[0]} and "
                f"{sources[1]}: give only one of text, text_file or lines",
            )
        elif sources[0] == "text":
            yield from self.text_lines(m["text"], file)
        elif sources[0] == "text_file":
            yield from self.text_file_lines(m["text_file"], file, folder)
        else:
            yield from self.list_lines(m["lines"], cid, file)

    def chapter_id(self, node: Node, file: str) -> str | None:
        id_node: Node | None = node.value.get("id")
        if id_node is None:
            self.problem(
                file, node.line, "chapter has no id: add 'id: ch01' (ids become file names)"
            )
            return None
        cid = id_node.text()
        if cid is None:
            self.problem(file, id_node.line, f"chapter id must be a name, not {id_node.kind()}")
            return None
        return cid

    def optional_text(self, node: Node | None, name: str, file: str) -> str | None:
        if node is None or node.value is None:
            return None
        text = node.text()
        if text is None:
            self.problem(file, node.line, f"{name} must be text, not {node.kind()}")
            return None
        return text.strip() or None

    def required_text(self, node: Node, what: str, file: str) -> str | None:
        text = node.text()
        if text is None and node.value is not None:
            self.problem(file, node.line, f"{what} must be text, not {node.kind()}")
            return None
        if text is None or not text.strip():
            self.problem(file, node.line, f"{what} is empty")
            return None
        return text

    def text_lines(self, node: Node, file: str) -> Iterator[SourceLine]:
        text = self.required_text(node, "text", file)
        if text is None:
            return
        # A literal block (`text: |`) starts on the next line, so its lines map to the file's.
        first = node.line + 1 if node.style == "|" else None
        for offset, paragraph in paragraphs(text):
            lineno = first + offset if first is not None else node.line
            yield SourceLine(paragraph, file, lineno)

    def text_file_lines(self, node: Node, file: str, folder: Path) -> Iterator[SourceLine]:
        name = self.required_text(node, "text_file", file)
        if name is None:
            return
        path = folder / name
        shown = display(path)
        text, bad_line, message = read_text(path)
        if text is None and bad_line is None:
            self.problem(file, node.line, f"text_file {name}: {message} ({shown})")
            return
        if text is None:
            self.problem(
                file,
                node.line,
                f"text_file {name} is {message} (its line {bad_line}); save it as UTF-8",
            )
            return
        found = paragraphs(text)
        if not found:
            self.problem(file, node.line, f"text_file {name} has no text ({shown})")
        for offset, paragraph in found:
            yield SourceLine(paragraph, shown, offset + 1)

    def list_lines(self, node: Node, cid: str, file: str) -> Iterator[SourceLine]:
        if not node.is_list:
            self.problem(
                file,
                node.line,
                f"lines must be a list (each item starting with '- text:'), not {node.kind()}",
            )
            return
        if not node.value:
            self.problem(file, node.line, f"lines of chapter {cid!r} is empty")
            return
        for item in node.value:
            line = self.list_line(item, file)
            if line is not None:
                yield line

    def list_line(self, node: Node, file: str) -> SourceLine | None:
        speaker = None
        if isinstance(node.value, str):  # `- "Hello"`: a line with nothing but its text
            text_node, lid, layer = node, None, EMPTY_LAYER
        elif node.is_map:
            self.check_keys(node, file, LINE_KEYS)
            text_node = node.value.get("text")
            lid = self.line_id(node, file)
            layer = self.layer(node, file)
            speaker = self.optional_text(node.value.get("speaker"), "speaker", file)
            if text_node is None:
                self.problem(file, node.line, "line has no text: add 'text: ...'")
                return None
        else:
            self.problem(
                file, node.line, f"a line must be a mapping with 'text:', not {node.kind()}"
            )
            return None
        text = self.required_text(text_node, "text", file)
        if text is None:
            return None
        return SourceLine(one_line(text), file, node.line, id=lid, speaker=speaker, fields=layer)

    def line_id(self, node: Node, file: str) -> str | None:
        id_node: Node | None = node.value.get("id")
        if id_node is None or id_node.value is None:
            return None
        lid = id_node.text()
        if lid is None or not lid.strip() or "\n" in lid:
            self.problem(file, id_node.line, "line id must be a non-empty single-line name")
            return None
        return lid.strip()
