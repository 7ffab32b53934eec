"""What each line sends: its fields with the cast applied, split at quotes for ``dialogue:``,
then normalised and put through the lexicon (the order of docs/manifest.md, "Precedence").

Layers, most specific first: the line, the cast entry of its speaker, the chapter (which
already holds the job's defaults and the command line's voice). A chapter's ``dialogue:``
speaker voices its lines' quoted speech; a line that names its own ``speaker`` is not split.
The text is transformed only here, before chunking, so the cache (keyed on what is sent)
re-sends exactly the chunks an edit touches.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from pipeline.books.lexicon import Lexicon
from pipeline.manifest.model import Layer, SourceChapter, SourceLine
from pipeline.manifest.readers import ProblemSink


@dataclass(frozen=True, slots=True)
class Piece:
    """One line to add: all of a source line, or one part of it cut at a quote."""

    text: str
    fields: Layer
    part: int | None  # 1-based part number when the line was cut, else None
    last: bool


class Speaking:
    def __init__(
        self,
        cast: Mapping[str, Layer] | None,
        lexicon: Lexicon | None,
        voice_languages: Mapping[str, str],
        problem: ProblemSink,
    ) -> None:
        self.cast = cast or {}
        self.lexicon = lexicon
        self.voice_languages = voice_languages
        self.problem = problem
        self.reported: set[str] = set()  # a job-wide dialogue speaker is reported once

    def member(self, name: str) -> Layer | None:
        """The cast entry of ``name``: exact, else the one that differs only by case."""
        if name in self.cast:
            return self.cast[name]
        folded = [k for k in self.cast if k.casefold() == name.casefold()]
        return self.cast[folded[0]] if len(folded) == 1 else None

    def check_dialogue(self, chapter: SourceChapter) -> Layer | None:
        if chapter.dialogue is None:
            return None
        found = self.member(chapter.dialogue)
        if found is None and chapter.dialogue not in self.reported:
            self.reported.add(chapter.dialogue)
            self.problem(chapter.file, chapter.line, self._unknown("dialogue", chapter.dialogue))
        return found

    def _unknown(self, what: str, name: str) -> str:
        names = ", ".join(sorted(self.cast)) or "none: add a 'cast:' section"
        return f"{what} {name!r} is not in the cast (cast: {names})"

    def pieces(
        self, chapter: SourceChapter, line: SourceLine, dialogue: Layer | None
    ) -> list[Piece]:
        outer = chapter.fields
        if line.speaker is not None:
            found = self.member(line.speaker)
            if found is not None:
                outer = outer.then(found)
            elif self.cast:
                self.problem(line.file, line.line, self._unknown("speaker", line.speaker))
        if dialogue is None or line.speaker is not None:
            return [Piece(line.text, outer.then(line.fields), None, True)]
        from pipeline.books.cast import split_dialogue

        parts = split_dialogue(line.text)
        if len(parts) <= 1:
            said = outer.then(dialogue) if parts and parts[0].dialogue else outer
            return [Piece(line.text, said.then(line.fields), None, True)]
        return [
            Piece(
                p.text,
                (outer.then(dialogue) if p.dialogue else outer).then(line.fields),
                n,
                n == len(parts),
            )
            for n, p in enumerate(parts, 1)
        ]

    def text(self, text: str, values: Mapping[str, object], file: str, line: int | None) -> str:
        """``text`` normalised (when asked) and put through the lexicon; problems reported."""
        voice = values.get("voice_id")
        voice = voice if isinstance(voice, str) else None
        language = values.get("language")
        if not isinstance(language, str):
            language = self.voice_languages.get(voice) if voice else None
        if values.get("normalize"):
            text = self._normalised(text, language, file, line)
        if self.lexicon is not None:
            text = self.lexicon.apply(text, voice=voice, language=language)
            if not text.strip():
                self.problem(file, line, "the lexicon leaves this line empty")
        return text

    def _normalised(self, text: str, language: str | None, file: str, line: int | None) -> str:
        from pipeline.books.normalize import NormalizeError, language_of, normalize

        if language is None or language_of(language) is None:
            have = f"its language is {language!r}" if language else "it has no language"
            self.problem(
                file,
                line,
                f"normalize is on but {have}: set language: zh, en or ja "
                "on the job, chapter or line",
            )
            return text
        try:
            return normalize(text, language)
        except NormalizeError as e:
            self.problem(file, line, str(e))
            return text
