"""The offline commands: ``serve-local`` (the Coze-compatible local server) and ``check``
(the quality gate's measures over a finished output folder)."""

from __future__ import annotations

import argparse
import contextlib
import sys
from typing import TYPE_CHECKING

from pipeline.cliargs import TOKEN_VARIABLE
from pipeline.cliguard import checked_token, json_for_terminal
from pipeline.errors import UsageError
from pipeline.redact import escape_controls

if TYPE_CHECKING:
    from pipeline.cli import Environment


def cmd_serve_local(args: argparse.Namespace, env: Environment) -> int:
    import anyio

    from pipeline.localserver import ServerConfig, serve_forever

    config = ServerConfig(
        host=args.host,
        port=args.port,
        engine=args.engine,
        token=checked_token(env.token, TOKEN_VARIABLE),
        qps=args.qps,
        burst=args.burst,
        max_in_flight=args.max_in_flight,
        latency_ms=args.latency_ms,
        latency_per_byte_ms=args.latency_per_byte_ms,
        jitter=args.jitter,
        fault_rate=args.fault_rate,
        seed=args.seed,
        **({"fault_kinds": args.fault_kinds} if args.fault_kinds else {}),
    )

    def announce(url: str) -> None:
        auth = f"only the token in ${TOKEN_VARIABLE}" if env.token else "any bearer token"
        print(f"Coze-compatible local server on {url} ({args.engine} engine, accepts {auth})",
              flush=True)
        print(f"try: curl -X POST {url}/v1/audio/speech -H 'Authorization: Bearer x' "
              "-H 'Content-Type: application/json' "
              "-d '{\"input\": \"你好，世界。\", \"voice_id\": \"local-zh-female\"}' -o hi.mp3",
              flush=True)

    with contextlib.suppress(KeyboardInterrupt):
        anyio.run(serve_forever, config, announce)
    return 0


def cmd_check(args: argparse.Namespace, env: Environment) -> int:
    from pipeline.checkdir import check_output_dir

    del env
    if not args.out_dir.is_dir():
        raise UsageError(f"{args.out_dir}: not a folder; give the output folder of a run")
    result = check_output_dir(args.out_dir, pcm_rate=args.pcm_rate)
    if args.json:
        print(json_for_terminal(result.to_json()))
    else:
        for f in result.findings:
            # Subtitle text and file names come from outside: escaped before printing.
            text = f" {f.text!r}" if f.text else ""
            why = f": {f.message}" if f.message else ""
            where = f" ({f.source_file}:{f.file_line})" if f.file_line is not None else ""
            line = (
                f"{f.file} {f.start_s:.2f}-{f.end_s:.2f} s: {', '.join(f.rules)}{text}{where}{why}"
            )
            print(escape_controls(line))
        print(f"{len(result.findings)} flagged in {result.files} files, {result.segments} "
              "segments checked", file=sys.stderr)
    return 1 if result.findings else 0
