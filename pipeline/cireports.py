"""The CI reports a command writes after its work: JUnit XML, the Markdown summary (printed,
and appended to ``$GITHUB_STEP_SUMMARY``).

Their paths are checked before anything is sent (``check``), and a failure to write one
after a paid run is a message, not a lost run (``write_or_why``): report.json is written by
the run itself, before these.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pipeline.cliguard import check_writable
from pipeline.errors import StorageError


@dataclass(frozen=True)
class CiReports:
    junit: Path | None = None
    print_summary: bool = False
    step_summary: Path | None = None
    step_summary_name: str = "$GITHUB_STEP_SUMMARY"
    # stdout carries the JSON lines of --progress jsonl: the summary goes to stderr then.
    summary_to_stderr: bool = False

    def check(self) -> None:
        """UsageError before anything is sent when a report cannot be written where asked."""
        if self.junit is not None:
            check_writable(self.junit, "--junit")
        if self.step_summary is not None:
            check_writable(self.step_summary, self.step_summary_name)

    def write(self, data: dict[str, Any]) -> None:
        if self.junit is not None:
            from pipeline.junit import write_junit

            write_junit(self.junit, data)
        if self.print_summary or self.step_summary is not None:
            from pipeline.summary import append_summary, markdown_summary

            text = markdown_summary(data)
            if self.print_summary:
                print(text, file=sys.stderr if self.summary_to_stderr else sys.stdout)
            if self.step_summary is not None:
                append_summary(self.step_summary, text)

    def write_or_why(self, data: dict[str, Any]) -> str | None:
        """Write the reports; why one could not be written (one line), or None."""
        try:
            self.write(data)
        except StorageError as e:
            return str(e)
        return None
