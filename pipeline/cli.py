"""Command line: argument parsing and printing only. The one module that reads the environment."""

from __future__ import annotations

import sys


def main(argv: list[str] | None = None) -> int:
    del argv
    print("tts-pipeline: not wired yet", file=sys.stderr)
    return 2
