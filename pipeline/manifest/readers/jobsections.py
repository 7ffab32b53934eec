"""A job file's ``output`` and ``run`` sections: each setting checked, None when not set."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pipeline.formats import BOOK_SUFFIX, JOB_OUTPUT_FORMATS, SUBTITLE_FORMATS
from pipeline.manifest.model import (
    BACKENDS,
    LOUDNESS_LUFS_RANGE,
    OUTPUT_KEYS,
    RUN_KEYS,
    OutputSettings,
    RunSettings,
)
from pipeline.manifest.readers import ProblemSink
from pipeline.manifest.readers.yamltree import Node
from pipeline.manifest.text import is_number, is_whole, unknown
from pipeline.settings import CONCURRENCY_RANGE, QPS_RANGE, RETRIES_RANGE, range_problem
from pipeline.speech import MAX_INPUT_BYTES

if TYPE_CHECKING:
    from pipeline.quality.config import QualityConfig


def output_settings(
    node: Node | None, file: str, folder: Path, problem: ProblemSink
) -> OutputSettings:
    return _Sections(problem).output_settings(node, file, folder)


def run_settings(node: Node | None, file: str, problem: ProblemSink) -> RunSettings:
    return _Sections(problem).run_settings(node, file)


def quality_settings(node: Node | None, file: str, problem: ProblemSink) -> QualityConfig | None:
    """The job's ``quality:`` (off, on, or a mapping of settings); None when it is not set."""
    if node is None:
        return None
    # Imported here: pipeline.quality loads numpy and PyAV, only jobs that set quality pay.
    from pipeline.quality.config import parse_quality

    if node.is_map:
        value: Any = {key: child.value for key, child in node.value.items()}
        key_lines = {key: child.key_line for key, child in node.value.items()}
    else:
        value, key_lines = node.value, {}
    config, problems = parse_quality(value, file, node.key_line or node.line, key_lines)
    for p in problems:
        problem(p.file, p.line, p.message)
    return config


class _Sections:
    def __init__(self, problem: ProblemSink) -> None:
        self.report = problem

    def section(self, node: Node | None, file: str, name: str, keys: Sequence[str]) -> Node:
        if node is None or node.value is None:
            return Node({}, 0, 0)
        if not node.is_map:
            self.report(file, node.line, f"{name} must be a mapping, not {node.kind()}")
            return Node({}, 0, 0)
        for key, child in node.value.items():
            if key not in keys:
                self.report(file, child.key_line, unknown(key, "key", keys))
        return node

    def output_settings(self, node: Node | None, file: str, folder: Path) -> OutputSettings:
        m = self.section(node, file, "output", OUTPUT_KEYS).value
        out_dir = self.setting(
            m,
            file,
            "dir",
            lambda v: isinstance(v, str) and v.strip() != "" and "\x00" not in v,
            "output.dir must be a folder path",
        )
        fmt = self.setting(
            m,
            file,
            "format",
            lambda v: v in JOB_OUTPUT_FORMATS,
            f"output.format must be one of {', '.join(JOB_OUTPUT_FORMATS)}",
        )
        book = self.setting(
            m,
            file,
            "book",
            lambda v: (
                isinstance(v, str)
                and v.lower().endswith(BOOK_SUFFIX)
                and len(v) > 4
                and "/" not in v
                and "\\" not in v
                and v.isprintable()
            ),
            "output.book must be a file name ending in .m4b (written in the output folder)",
        )
        subtitles = self.setting(
            m,
            file,
            "subtitles",
            lambda v: isinstance(v, list) and all(s in SUBTITLE_FORMATS for s in v),
            "output.subtitles must be a list of srt and/or vtt, such as [srt, vtt]",
            plain=False,
        )
        lufs = self.setting(
            m,
            file,
            "loudness_lufs",
            lambda v: is_number(v) and LOUDNESS_LUFS_RANGE[0] <= v <= LOUDNESS_LUFS_RANGE[1],
            "output.loudness_lufs must be a number from -70 to -5 (LUFS; -18 is common for "
            "audiobooks)",
        )
        clips, fit_strict = (
            self.setting(m, file, key, lambda v: isinstance(v, bool), f"output.{key} must be "
                         "true or false")
            for key in ("clips", "fit_strict")
        )
        return OutputSettings(
            dir=folder / out_dir if out_dir is not None else None,
            format=fmt,
            book=book,
            subtitles=tuple(dict.fromkeys(subtitles or ())),
            loudness_lufs=float(lufs) if lufs is not None else None,
            clips=bool(clips),
            fit_strict=bool(fit_strict),
        )

    def run_settings(self, node: Node | None, file: str) -> RunSettings:
        m = self.section(node, file, "run", RUN_KEYS).value
        return RunSettings(
            backend=self.setting(
                m, file, "backend", lambda v: v in BACKENDS, "run.backend must be coze or local"
            ),
            base_url=self.setting(
                m,
                file,
                "base_url",
                lambda v: isinstance(v, str) and v.startswith(("http://", "https://")),
                "run.base_url must be an http:// or https:// URL",
            ),
            qps=self.setting(
                m,
                file,
                "qps",
                lambda v: is_number(v) and range_problem("qps", v) is None,
                f"run.qps must be a number {QPS_RANGE.describe()}",
                float,
            ),
            concurrency=self.setting(
                m,
                file,
                "concurrency",
                lambda v: is_whole(v) and range_problem("concurrency", v) is None,
                f"run.concurrency must be a whole number {CONCURRENCY_RANGE.describe()}",
            ),
            retries=self.setting(
                m,
                file,
                "retries",
                lambda v: is_whole(v) and range_problem("retries", v) is None,
                f"run.retries must be a whole number {RETRIES_RANGE.describe()}",
            ),
            max_chunk_bytes=self.setting(
                m,
                file,
                "max_chunk_bytes",
                lambda v: is_whole(v) and 1 <= v <= MAX_INPUT_BYTES,
                f"run.max_chunk_bytes must be a whole number from 1 to {MAX_INPUT_BYTES}",
            ),
        )

    def setting(
        self,
        m: Mapping[str, Node],
        file: str,
        key: str,
        ok: Callable[[Any], bool],
        message: str,
        convert: Callable[[Any], Any] | None = None,
        *,
        plain: bool = True,
    ) -> Any:
        """The value of ``key`` if ``ok(value)``; else report ``message`` and return None."""
        node = m.get(key)
        if node is None or node.value is None:
            return None
        value = node.value
        if not plain and isinstance(value, list):
            value = [item.value for item in value]
        elif isinstance(value, dict | list):
            value = None
        if value is None or not ok(value):
            shown = node.kind() if isinstance(node.value, dict | list) else repr(value)
            self.report(file, node.line, f"{message}, not {shown}")
            return None
        return convert(value) if convert is not None else value
