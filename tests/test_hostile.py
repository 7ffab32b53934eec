"""Issue 12: a server that echoes the token in every way it can, answers giant bodies, gzip
bombs, slow drips and hostile Retry-After values. The canary token must be nowhere: not in
an exception (str, repr, traceback), a voice, stdout, stderr, report.json, JUnit, the summary
or any file; no answer may be read past its bound or wait past its time."""

from __future__ import annotations

import base64
import secrets
import subprocess
import time
import traceback
import tracemalloc
from collections.abc import Iterator
from pathlib import Path

import anyio
import helpers
import pytest
from hostile_server import (
    CONTROL,
    LEAKING_MODES,
    MALFORMED,
    HostileServer,
    gzip_bomb,
    hostile_server,
    malformed_server,
)

from pipeline.bounds import ERROR_BODY_LIMIT, MAX_RETRY_AFTER_S, audio_body_limit
from pipeline.coze.client import ClientConfig, SpeechClient
from pipeline.errors import (
    CODE_BAD_AUDIO,
    CODE_TIMEOUT,
    ApiError,
    BadAudio,
    RateLimited,
    RequestRejected,
    TransientApiError,
)
from pipeline.speech import SpeechParams, SpeechRequest

RAW_CONTROLS = tuple(c for c in CONTROL if not c.isprintable())
# What each leaking answer must still say once the token is gone: the error stays useful.
STILL_SAYS = {
    "json_msg": "invalid parameter near",
    "json_200": "model busy for",
    "json_escaped": "***",
    "html_502": "Bad gateway",
    "text_200": "hello",
    "redirect": "redirected to https://evil.example/steal",
    "control": "\\x1b[2J",
    "header_echo": "HTTP 503",
}


@pytest.fixture(scope="module")
def server() -> Iterator[HostileServer]:
    with hostile_server() as s:
        yield s


@pytest.fixture
def canary() -> str:
    return f"pat_CANARY{secrets.token_hex(12)}"


def speech(text: str = "hello there", **params: object) -> SpeechRequest:
    return SpeechRequest(text, SpeechParams(voice_id="v1", **params))  # type: ignore[arg-type]


def views(error: BaseException) -> list[str]:
    """Every text an exception can show: str, repr, attributes, its whole traceback."""
    return [str(error), repr(error), repr(vars(error)), *traceback.format_exception(error)]


def assert_clean(texts: list[str], canary: str) -> None:
    for text in texts:
        assert canary not in text
        assert canary.lower() not in text.lower()
        assert not [c for c in RAW_CONTROLS if c in text], repr(text[:300])


def exchange(server: HostileServer, canary: str, mode: str, req: SpeechRequest | None = None,
             **config: float) -> ApiError:
    server.mode = mode
    settings: dict[str, float] = {"read_timeout": 5.0, **config}

    async def go() -> ApiError:
        client_config = ClientConfig(server.base_url, canary, **settings)  # type: ignore[arg-type]
        async with SpeechClient(client_config) as client:
            with pytest.raises(ApiError) as caught:
                await client.synthesize(req or speech())
        return caught.value

    return anyio.run(go)


# -- the token never comes back ---------------------------------------------------------


@pytest.mark.parametrize("mode", LEAKING_MODES)
def test_echoed_token_is_removed_from_every_error(
    server: HostileServer, canary: str, mode: str
) -> None:
    error = exchange(server, canary, mode)
    assert server.authorizations[-1] == f"Bearer {canary}"  # it was echoed: the test bites
    assert_clean(views(error), canary)
    assert STILL_SAYS[mode] in str(error)
    if mode == "html_502":  # entity- and base64-encoded echoes are gone too
        assert base64.b64encode(f"Bearer {canary}".encode()).decode() not in str(error)


@pytest.mark.parametrize("variant", list(MALFORMED))
def test_parser_errors_quoting_the_token_are_cleaned(canary: str, variant: str) -> None:
    with malformed_server() as server:
        error = exchange(server, canary, variant)
    assert isinstance(error, TransientApiError)
    assert "***" in error.message  # the parser quoted the echo; it is gone
    assert error.__cause__ is None and error.__suppress_context__
    assert_clean(views(error), canary)


def test_voice_list_fields_are_cleaned(server: HostileServer, canary: str) -> None:
    async def go() -> list[str]:
        async with SpeechClient(ClientConfig(server.base_url, canary)) as client:
            voices = await client.list_voices()
        assert len(voices) == 1
        return [repr(v) for v in voices] + [str(f) for v in voices for f in vars(v).values()]

    texts = anyio.run(go)
    assert_clean(texts, canary)
    assert "v-***" in texts[0] and "\\x1b[2J" in texts[0]


def test_token_in_the_request_text_is_refused_before_sending(
    server: HostileServer, canary: str
) -> None:
    before = server.requests
    b64 = base64.b64encode(f"COZE_API_TOKEN={canary}\0PATH=/bin".encode()).decode()
    for req in (
        speech(f"PATH=/bin\0COZE_API_TOKEN={canary}\0HOME=/root"),
        speech(f"my secret is {b64}"),
        speech("fine", context_texts=f"whisper {canary}"),
    ):
        error = exchange(server, canary, "ok", req)
        assert isinstance(error, RequestRejected) and "contains the API token" in error.message
        assert_clean(views(error), canary)
    assert server.requests == before


# -- bounded in size and time -------------------------------------------------------------


def test_giant_audio_body_is_cut_at_its_bound(server: HostileServer, canary: str) -> None:
    req = speech()
    started, sent_before = time.monotonic(), server.bytes_sent
    error = exchange(server, canary, "giant", req)
    assert isinstance(error, BadAudio) and error.code == CODE_BAD_AUDIO
    assert f"larger than {audio_body_limit(req)} bytes" in error.message
    assert server.bytes_sent - sent_before < 64 * 1024 * 1024  # 700 MB never went out
    assert time.monotonic() - started < 20


def test_declared_giant_body_is_refused_before_reading(
    server: HostileServer, canary: str
) -> None:
    sent_before = server.bytes_sent
    error = exchange(server, canary, "giant_declared")
    assert isinstance(error, BadAudio) and "the rest was not read" in error.message
    assert server.bytes_sent - sent_before < 32 * 1024 * 1024


@pytest.mark.parametrize("mode", ["gzip_bomb", "gzip_error_bomb"])
def test_gzip_bomb_is_capped_on_its_decoded_size(
    server: HostileServer, canary: str, mode: str
) -> None:
    gzip_bomb()  # made (and cached) before measuring: the server's work is not the client's
    tracemalloc.start()
    try:
        error = exchange(server, canary, mode)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    # 256 MiB decoded; the audio bound of a short text is a few MiB, an error's 64 KiB.
    assert peak < 48 * 1024 * 1024, f"peak {peak} bytes"
    if mode == "gzip_bomb":
        assert isinstance(error, BadAudio) and "larger than" in error.message
    else:
        assert isinstance(error, TransientApiError) and error.http_status == 500


def test_huge_error_page_is_read_only_to_its_bound(server: HostileServer, canary: str) -> None:
    sent_before = server.bytes_sent
    error = exchange(server, canary, "huge_error")
    assert isinstance(error, TransientApiError) and error.http_status == 500
    assert_clean(views(error), canary)
    assert len(error.message) <= 500
    assert server.bytes_sent - sent_before < 32 * 1024 * 1024 + ERROR_BODY_LIMIT


def test_deeply_nested_json_error_is_an_error_not_a_recursion(
    server: HostileServer, canary: str
) -> None:
    error = exchange(server, canary, "deep_json")
    assert isinstance(error, TransientApiError) and error.http_status == 500


def test_dripped_body_ends_within_the_exchange_bound(server: HostileServer, canary: str) -> None:
    # A byte every 50 ms never trips a 0.5 s read timeout; the exchange bound
    # (connect + 10 x read when no total is set) stops it.
    config = ClientConfig(server.base_url, canary, connect_timeout=0.2, read_timeout=0.2)
    assert config.exchange_timeout == pytest.approx(2.2)
    started = time.monotonic()
    error = exchange(server, canary, "drip", connect_timeout=0.2, read_timeout=0.2)
    elapsed = time.monotonic() - started
    assert error.code == CODE_TIMEOUT and isinstance(error, TransientApiError)
    assert 1.5 < elapsed < 6


@pytest.mark.parametrize(
    ("value", "expected"),
    [("99999", MAX_RETRY_AFTER_S), ("inf", MAX_RETRY_AFTER_S), ("1e400", MAX_RETRY_AFTER_S),
     ("nan", None), ("-5", 0.0), ("Thu, 01 Jan 2099 00:00:00 GMT", MAX_RETRY_AFTER_S),
     ("Thu, 01 Jan 1998 00:00:00 GMT", 0.0), ("soon", None), ("3", 3.0)],
)
def test_hostile_retry_after_reaches_the_error_capped(
    server: HostileServer, canary: str, value: str, expected: float | None
) -> None:
    server.retry_after = value
    error = exchange(server, canary, "retry_after")
    assert isinstance(error, RateLimited)
    assert error.retry_after == expected


# -- the CLI against the hostile server ---------------------------------------------------


def _files_holding(folder: Path, needle: str) -> list[str]:
    data = needle.encode()
    return [str(p) for p in folder.rglob("*")
            if p.is_file() and data.lower() in p.read_bytes().lower()]


def _cli(args: list[str], canary: str, summary: Path) -> subprocess.CompletedProcess[str]:
    env = helpers.cli_env(COZE_API_TOKEN=f"{canary}\n", GITHUB_STEP_SUMMARY=str(summary))
    return subprocess.run(helpers.cli_command(*args), env=env, capture_output=True, text=True,
                          timeout=120, check=False, cwd=helpers.REPO)


def _assert_outputs_clean(done: subprocess.CompletedProcess[str], folder: Path,
                          canary: str) -> None:
    output = done.stdout + done.stderr
    assert "Traceback" not in output, output
    assert canary.lower() not in output.lower()
    assert not [c for c in RAW_CONTROLS if c in output]
    assert _files_holding(folder, canary) == []


@pytest.mark.parametrize("mode", ["json_msg", "html_502", "redirect", "control"])
def test_cli_run_against_an_echoing_server_leaves_the_token_nowhere(
    server: HostileServer, canary: str, tmp_path: Path, mode: str
) -> None:
    server.mode = mode
    job = helpers.write_job(tmp_path, {"c1": ["first line.", "second line."]})
    out = tmp_path / "out"
    done = _cli(["run", str(job), "--out", str(out), "--base-url", server.base_url,
                 "--progress", "jsonl", "--retries", "0", "--qps", "1000",
                 "--junit", str(tmp_path / "junit.xml"), "--summary"],
                canary, tmp_path / "summary.md")
    assert done.returncode == 1, done.stderr
    assert (out / "report.json").is_file() and (tmp_path / "junit.xml").is_file()
    assert (tmp_path / "summary.md").is_file()
    assert "***" in done.stderr or "redirected" in done.stderr
    _assert_outputs_clean(done, tmp_path, canary)


def test_cli_run_that_succeeds_through_leaking_retries_stores_no_token(
    server: HostileServer, canary: str, tmp_path: Path
) -> None:
    server.mode, server.requests = "alternate", 0  # odd requests fail: 3 retries for 3 chunks
    job = helpers.write_job(tmp_path, {"c1": ["first line.", "second line."],
                                       "c2": ["third line."]})
    out = tmp_path / "out"
    done = _cli(["run", str(job), "--out", str(out), "--base-url", server.base_url,
                 "--progress", "jsonl", "--retries", "4", "--qps", "1000", "--concurrency", "1",
                 "--junit", str(tmp_path / "junit.xml"), "--summary"],
                canary, tmp_path / "summary.md")
    assert done.returncode == 0, done.stderr
    report = (out / "report.json").read_text()
    assert '"retries": 3' in report and "Bad gateway" in done.stdout + done.stderr
    assert len(list((out / ".cache").rglob("*.wav"))) == 3  # the answers were cached
    _assert_outputs_clean(done, tmp_path, canary)


def test_cli_run_refuses_a_line_holding_the_token(
    server: HostileServer, canary: str, tmp_path: Path
) -> None:
    server.mode = "ok"
    secret_file = tmp_path / "env.txt"
    secret_file.write_text(f"HOME=/root COZE_API_TOKEN={canary} SHELL=/bin/sh\n")
    job = tmp_path / "job.yaml"
    job.write_text(f"defaults: {{voice_id: v1, response_format: wav}}\n"
                   f"chapters:\n  - id: c1\n    text_file: {secret_file}\n")
    before = server.requests
    done = _cli(["run", str(job), "--out", str(tmp_path / "out"), "--base-url",
                 server.base_url, "--progress", "none", "--retries", "0"],
                canary, tmp_path / "summary.md")
    # Refused while the manifest is read (FILE:LINE, exit 2), before the client is even built.
    assert done.returncode == 2, done.stderr
    assert "holds the API token" in done.stderr
    assert f"{secret_file}:1:" in done.stderr
    assert server.requests == before
    secret_file.unlink()  # the one file that holds it on purpose
    _assert_outputs_clean(done, tmp_path, canary)


@pytest.mark.parametrize("json_flag", [[], ["--json"]])
def test_cli_voices_prints_no_token(
    server: HostileServer, canary: str, tmp_path: Path, json_flag: list[str]
) -> None:
    done = _cli(["voices", "--base-url", server.base_url, *json_flag], canary,
                tmp_path / "summary.md")
    assert done.returncode == 0, done.stderr
    assert "v-***" in done.stdout
    _assert_outputs_clean(done, tmp_path, canary)


def test_cli_say_against_a_text_answer_prints_no_token(
    server: HostileServer, canary: str, tmp_path: Path
) -> None:
    server.mode = "text_200"
    done = _cli(["say", "hello", "-o", str(tmp_path / "hi.wav"), "--voice", "v1",
                 "--base-url", server.base_url, "--retries", "0"], canary,
                tmp_path / "summary.md")
    assert done.returncode != 0
    assert "hello" in done.stderr
    _assert_outputs_clean(done, tmp_path, canary)


def test_the_canary_survives_where_it_should(server: HostileServer, canary: str) -> None:
    # The control for every test above: the server really sends the token back.
    server.mode = "text_200"

    async def go() -> bytes:
        import aiohttp

        async with aiohttp.ClientSession() as session, session.post(
            server.base_url + "/v1/audio/speech", headers={"Authorization": f"Bearer {canary}"}
        ) as response:
            return await response.read()

    assert canary.encode() in anyio.run(go)
