"""Book and subtitle sources, and the text transforms that decide what is said.

Parsers return the neutral ``model`` classes (``SourceBook`` of ``SourceChapter`` of
``SourceLine``, plus ``Skipped`` notes); a reader module adapts them to the manifest's chapters:
- ``epub.read_epub`` (EPUB), ``text.read_text_book`` (.txt), ``subtitles.read_subtitles``
  (.srt, .vtt, .ass, .ssa), ``timecode.parse_timecode`` (CSV start/end cells);
- ``normalize.normalize`` -> ``lexicon.Lexicon.apply`` -> chunking, in that order;
- ``cast.load_cast`` and ``cast.split_dialogue`` for speakers and ``dialogue:``.
Nothing is imported here: each module loads its own (heavy) library when it is used.
"""
