"""YAML with line numbers: composed nodes become ``Node`` trees that remember their lines.

PyYAML's ``safe_load`` forgets where a value was written and keeps the last of two equal
keys; a manifest problem must name its line and a duplicate key is a mistake to report.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from pipeline.manifest.readers import ProblemSink
from pipeline.manifest.text import read_text
from pipeline.settings import MAX_YAML_NODES

# libyaml's parser when PyYAML was built with it: the pure-Python one took 3 ms a line of a
# big manifest (issue 18). A file it refuses is read again by the Python parser, whose
# messages the problem reports are written for.
_FAST_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_MERGE_TAG = "tag:yaml.org,2002:merge"
_TIMESTAMP_TAG = "tag:yaml.org,2002:timestamp"


class TooLarge(Exception):
    """The document expands past ``MAX_YAML_NODES`` values (or into itself): refused."""

    def __init__(self, line: int | None, message: str) -> None:
        super().__init__(message)
        self.line = line
        self.message = message


def _amplified(line: int | None) -> TooLarge:
    return TooLarge(
        line,
        f"YAML aliases here expand to more than {MAX_YAML_NODES:,} values (an alias "
        "amplification, a \"billion laughs\"); write the values out or use fewer aliases",
    )


class _CountingLoader(yaml.SafeLoader):
    """SafeLoader that stops composing after ``MAX_YAML_NODES`` nodes and alias uses: the
    memory a document may cost is bounded while it is read, not after."""

    def __init__(self, stream: str) -> None:
        super().__init__(stream)
        self.nodes = 0

    def compose_node(self, parent: yaml.Node | None, index: int) -> yaml.Node | None:
        self.nodes += 1
        if self.nodes > MAX_YAML_NODES:
            mark = self.get_mark()
            raise _amplified(mark.line + 1)
        return super().compose_node(parent, index)


@dataclass(slots=True)
class Node:
    """A YAML value with its 1-based line; mappings hold ``dict[str, Node]``."""

    value: Any
    line: int
    key_line: int
    raw: str | None = None  # a plain scalar's source text: `id: 01` is "01", not 1
    style: str | None = None

    @property
    def is_map(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_list(self) -> bool:
        return isinstance(self.value, list)

    def kind(self) -> str:
        if self.is_map:
            return "a mapping"
        if self.is_list:
            return "a list"
        if self.value is None:
            return "empty"
        return f"{type(self.value).__name__} {self.value!r}"

    def text(self) -> str | None:
        """The scalar as text; numbers and booleans as written; None for null or a collection."""
        if isinstance(self.value, str):
            return self.value
        if self.value is None or self.is_map or self.is_list:
            return None
        return self.raw if self.raw is not None else str(self.value)


class YamlTree:
    """Turns composed YAML nodes into ``Node`` trees, reporting duplicate keys on the way."""

    def __init__(self, file: str, problem: ProblemSink) -> None:
        self.file = file
        self.report = problem
        self.constructor = yaml.constructor.SafeConstructor()
        self.seen: dict[int, Node] = {}  # aliases share nodes: convert each once
        # Each node's size with its aliases expanded: what a reader walking the tree visits.
        self.sizes: dict[int, int] = {}
        self.active: set[int] = set()  # nodes being converted: an alias to one is a loop

    def problem(self, line: int | None, message: str) -> None:
        self.report(self.file, line, message)

    def convert(self, node: yaml.Node, key_line: int) -> Node:
        done = self.seen.get(id(node))
        line = node.start_mark.line + 1
        if done is not None:
            if id(node) in self.active:
                raise TooLarge(line, "a YAML alias refers to the value that holds it (a loop); "
                               "write the values out")
            return done
        out = Node(None, line, key_line)
        self.seen[id(node)] = out
        self.active.add(id(node))
        if isinstance(node, yaml.MappingNode):
            out.value = self._mapping(node)
        elif isinstance(node, yaml.SequenceNode):
            out.value = [self.convert(item, item.start_mark.line + 1) for item in node.value]
        else:
            assert isinstance(node, yaml.ScalarNode)
            out.value = self._scalar(node, line)
            out.style = node.style or None  # libyaml says "" where PyYAML says None: plain
            if out.style is None and not isinstance(out.value, str):
                out.raw = node.value
        self.active.discard(id(node))
        self._count(node, line)
        return out

    def _count(self, node: yaml.Node, line: int) -> None:
        if isinstance(node, yaml.MappingNode):
            children = [child for pair in node.value for child in pair]
        elif isinstance(node, yaml.SequenceNode):
            children = node.value
        else:
            children = []
        size = 1 + sum(self.sizes.get(id(child), 1) for child in children)
        if size > MAX_YAML_NODES:
            raise _amplified(line)
        self.sizes[id(node)] = size

    def _scalar(self, node: yaml.ScalarNode, line: int) -> Any:
        try:
            return self.constructor.construct_object(node, deep=True)
        except (yaml.YAMLError, ValueError, TypeError, OverflowError) as e:
            if not node.style and node.tag == _TIMESTAMP_TAG:
                return node.value  # `id: 2024-13-45` only looks like a date: it is a name

            problem = getattr(e, "problem", None) or str(e)
            self.problem(line, f"cannot read the value {node.value!r}: {problem}")
            return node.value

    def _mapping(self, node: yaml.MappingNode) -> dict[str, Node]:
        own: dict[str, Node] = {}
        merged: dict[str, Node] = {}
        for key_node, value_node in node.value:
            key_line = key_node.start_mark.line + 1
            if key_node.tag == _MERGE_TAG:
                self._merge(merged, self.convert(value_node, key_line))
                continue
            if not isinstance(key_node, yaml.ScalarNode):
                self.problem(key_line, "a key must be a plain name, not a list or mapping")
                continue
            key = str(key_node.value)
            if key in own:
                self.problem(
                    key_line,
                    f"{key}: duplicate key (first at line {own[key].key_line}); "
                    "YAML would keep only the last one: remove one of them",
                )
                continue
            own[key] = self.convert(value_node, key_line)
        return {**merged, **own} if merged else own

    def _merge(self, into: dict[str, Node], source: Node) -> None:
        # `<<: *base` or `<<: [*a, *b]`; the earlier source wins, the mapping's own keys win.
        sources = source.value if source.is_list else [source]
        for item in sources:
            if not isinstance(item, Node) or not item.is_map:
                self.problem(source.key_line, "<<: can only merge mappings (`<<: *anchor`)")
                return
            for key, value in item.value.items():
                into.setdefault(key, value)


def yaml_error(text: str, error: yaml.YAMLError) -> tuple[int | None, str]:
    """The line and message for a YAML syntax error."""
    if isinstance(error, yaml.reader.ReaderError):
        line = text.count("\n", 0, error.position) + 1
        char = error.character if isinstance(error.character, int) else ord(error.character)
        return (
            line,
            f"YAML syntax error: character U+{char:04X} is not allowed in YAML; "
            "remove it or write it as an escape in a double-quoted string",
        )
    mark = getattr(error, "problem_mark", None) or getattr(error, "context_mark", None)
    where: int | None = mark.line + 1 if mark is not None else None
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    context_mark = getattr(error, "context_mark", None)
    detail = f"{problem}"
    if context and context_mark is not None and context_mark is not mark:
        detail += f" ({context} at line {context_mark.line + 1})"
    return where, f"YAML syntax error: {detail}; check the indentation and quotes"


def parse(path: Path, file: str, problem: ProblemSink) -> Node | None:
    """The file as a ``Node`` mapping, or None after reporting why it is not one."""
    text, bad_line, message = read_text(path)
    if text is None:
        problem(file, bad_line, f"{message}; save the file as UTF-8" if bad_line else message)
        return None
    try:
        # Without a '*' there is no alias, so nothing to amplify: libyaml's fast parser is
        # safe there. A file it refuses is read again by the counting Python parser, whose
        # messages the problem reports are written for.
        fast = "*" not in text
        try:
            root = yaml.compose(text, Loader=_FAST_LOADER if fast else _CountingLoader)
        except yaml.YAMLError:
            if not fast:
                raise
            root = yaml.compose(text, Loader=_CountingLoader)
    except TooLarge as e:
        problem(file, e.line, e.message)
        return None
    except yaml.YAMLError as e:
        problem(file, *yaml_error(text, e))
        return None
    except RecursionError:
        problem(file, None, "YAML nested too deeply to read")
        return None
    if root is None:
        problem(file, None, "the file is empty: a manifest needs a 'chapters' list")
        return None
    try:
        tree = YamlTree(file, problem).convert(root, 1)
    except TooLarge as e:
        problem(file, e.line, e.message)
        return None
    except RecursionError:
        problem(file, None, "YAML nested too deeply to read")
        return None
    if not tree.is_map:
        problem(
            file,
            tree.line,
            f"the top level must be a mapping with 'chapters' (or 'manifest'), not {tree.kind()}",
        )
        return None
    return tree
