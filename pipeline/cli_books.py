"""The command line's book commands: ``import BOOK -o job.yaml`` and what ``plan`` prints of
what a book source leaves out. Kept apart from cli.py so that the book features stay one
module (the parser registers ``add_import_parser``; ``cli.COMMANDS`` runs ``cmd_import``)."""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.errors import UsageError

if TYPE_CHECKING:
    from pipeline.manifest import Job

SKIPPED_SHOWN = 10  # plan prints this many left-out pieces; --json has them all


def print_skipped(job: Job) -> None:
    """What a book source leaves out, counted by reason, with the first few pieces."""
    for note in job.notes:
        print(f"note: {note}")
    if not job.skipped:
        return
    chars = sum(len(s.text) for s in job.skipped)
    print(f"not spoken: {len(job.skipped)} pieces, {chars} characters:")
    for reason, count in Counter(s.reason for s in job.skipped).most_common():
        print(f"  {count} x {reason}")
    for s in job.skipped[:SKIPPED_SHOWN]:
        print(f"  {s}")
    if len(job.skipped) > SKIPPED_SHOWN:
        print(f"  ... and {len(job.skipped) - SKIPPED_SHOWN} more (plan --json lists them all)")


def _selector(text: str) -> str | int:
    """A chapter title glob, re:REGEX, or a 1-based position (negative from the end)."""
    stripped = text.strip()
    if stripped.lstrip("-").isdigit() and stripped not in ("0", "-0"):
        return int(stripped)
    return text


def add_import_parser(sub: Any) -> None:
    p = sub.add_parser("import", help="write a book (.epub, .txt) as an editable job file")
    p.add_argument("source", type=Path, metavar="BOOK")
    p.add_argument("-o", "--out", type=Path, required=True, metavar="FILE",
                   help="the job file to write (.yaml)")
    p.add_argument("--force", action="store_true", help="overwrite FILE (and its cover image)")
    p.add_argument("--voice", help="voice_id for the job's defaults")
    p.add_argument("--include", type=_selector, action="append", default=[], metavar="CHAPTER",
                   help="keep only these chapters: a title glob, re:REGEX or a position "
                   "(repeatable)")
    p.add_argument("--exclude", type=_selector, action="append", default=[], metavar="CHAPTER",
                   help="leave these chapters out (same forms; repeatable)")
    p.add_argument("--heading", metavar="REGEX",
                   help="a .txt book's chapter heading: a regex a whole line matches")
    p.add_argument("--preface", choices=("chapter", "skip"), default="chapter",
                   help="a .txt book's text before the first heading")


def cmd_import(args: argparse.Namespace, env: object) -> int:
    """``import BOOK -o FILE``: the book as an editable job file (see books.importing)."""
    from pipeline import api

    del env  # no token, no network: a book is read and a file written

    if args.out.suffix.lower() not in (".yaml", ".yml"):
        raise UsageError(f"{args.out}: the job file must end in .yaml or .yml")
    done = api.import_book(
        args.source, args.out, force=args.force, voice_id=args.voice, include=args.include,
        exclude=args.exclude, heading=args.heading, preface=args.preface,
    )  # fmt: skip
    book = done.book
    lines = sum(len(c.lines) for c in book.chapters)
    print(f"{done.job}: {len(book.chapters)} chapters, {lines} lines, "
          f"{len(book.skipped)} pieces not spoken")
    if done.cover is not None:
        print(f"{done.cover}: the book's cover")
    return 0


def local_voice_languages(args: argparse.Namespace) -> dict[str, str] | None:
    """voice_id -> language_code of the local server's voices with ``--local`` (or
    ``--backend local``): a line that sets no ``language`` takes its voice's. None otherwise:
    a Coze voice list needs the network, which loading a job never uses."""
    if not (getattr(args, "local", False) or getattr(args, "backend", None) == "local"):
        return None
    from pipeline.localserver import make_engine

    voices = make_engine(args.engine).voices()
    return {str(v["voice_id"]): str(v["language_code"]) for v in voices if v.get("language_code")}
