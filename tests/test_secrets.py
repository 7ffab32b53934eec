"""Issue 7.5: secrets and reach. The token appears nowhere but in the Authorization header;
the local server binds loopback and enforces its token; no chapter id or output name writes
outside the output directory."""

from __future__ import annotations

import base64
import contextlib
import io
import logging
import re
import secrets
import traceback
from collections.abc import Callable
from pathlib import Path
from urllib.parse import quote, quote_plus

import aiohttp
import anyio
import psutil
import pytest
from torture.harness import (
    chapter_files,
    cli_env,
    load_plan,
    run_args,
    run_cli,
    run_in_process,
    write_job,
)

from pipeline.cli import build_parser, main
from pipeline.coze.client import ClientConfig, SpeechClient
from pipeline.errors import ApiError
from pipeline.localserver import FAULT_KINDS, LocalServer, ServerConfig
from pipeline.redact import MIN_SECRET_LENGTH, Redactor, escape_controls
from pipeline.speech import SpeechParams, SpeechRequest

MakeServer = Callable[..., LocalServer]


@pytest.fixture
def token() -> str:
    return f"tok-SECRET-{secrets.token_hex(8)}"


def _validate(path: Path) -> tuple[int, str]:
    err = io.StringIO()
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        status = main(["validate", str(path)], environ={})
    return status, err.getvalue()


def _files_holding(folder: Path, needle: str) -> list[str]:
    data = needle.encode()
    return [str(p) for p in folder.rglob("*") if p.is_file() and data in p.read_bytes()]


# -- the token appears nowhere ---------------------------------------------------------


def test_library_run_with_faults_and_debug_logs_never_shows_the_token(
    tmp_path: Path, make_server: MakeServer, token: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # every logger: ours, aiohttp's, asyncio's
    server = make_server(token=token, fault_rate=0.3, seed=7, stall_s=1.0)
    job = write_job(tmp_path, 30)
    out = tmp_path / "out"
    report = anyio.run(
        lambda: run_in_process(load_plan(job), out, server.base_url, token=token,
                               read_timeout=0.3)
    )
    assert report.status == "ok" and report.totals.retries > 0
    assert server.stats.faults.total() > 0 and caplog.records
    assert token not in caplog.text
    assert token not in repr(report.to_json())
    assert _files_holding(tmp_path, token) == []


def test_api_errors_and_reprs_never_show_the_token(make_server: MakeServer, token: str) -> None:
    server = make_server(token=token)
    server.queue_faults(["http500", "html502", "short_body", "reset_before",
                         {"code": 4100, "http_status": 401}])
    config = ClientConfig(base_url=server.base_url, token=token, read_timeout=0.5)
    request = SpeechRequest("hello", SpeechParams(voice_id="local-tone-1"))
    texts = [repr(config), str(config)]

    async def go() -> None:
        async with SpeechClient(config) as client:
            texts.append(repr(client))
            for _ in range(5):
                with pytest.raises(ApiError) as caught:
                    await client.synthesize(request)
                texts.extend(traceback.format_exception(caught.value))
                texts.extend([repr(caught.value), str(vars(caught.value))])

    anyio.run(go)
    assert texts and not [t for t in texts if token in t]
    assert any("4100" in t for t in texts)


def test_cli_run_never_prints_or_stores_the_token(
    tmp_path: Path, make_server: MakeServer, token: str
) -> None:
    # Stalls are left out: the CLI's read timeout and backoff are not for hurried tests.
    kinds = tuple(k for k in FAULT_KINDS if k != "stall")
    server = make_server(token=token, fault_rate=0.3, seed=3, fault_kinds=kinds)
    job = write_job(tmp_path, 30)
    out = tmp_path / "out"
    args = run_args(job, out, server.base_url, "--timeout", "1", "--junit",
                    str(tmp_path / "junit.xml"), "--summary")
    args[args.index("--progress") + 1] = "jsonl"  # the most verbose progress there is
    done = run_cli(args, cli_env(token))
    assert done.returncode == 0, done.stderr
    assert server.stats.faults.total() > 0
    assert "retry" in (done.stdout + done.stderr).lower(), "the progress shows no retry"
    assert token not in done.stdout + done.stderr
    assert _files_holding(tmp_path, token) == []
    assert len(chapter_files(out)) == 1


def test_wrong_token_exits_3_with_advice_and_is_not_echoed(
    tmp_path: Path, make_server: MakeServer, token: str
) -> None:
    server = make_server(token="tok-the-right-one")
    job = write_job(tmp_path, 5)
    done = run_cli(run_args(job, tmp_path / "out", server.base_url), cli_env(token))
    assert done.returncode == 3
    assert "COZE_API_TOKEN" in done.stderr and "4100" in done.stderr
    assert token not in done.stdout + done.stderr
    assert _files_holding(tmp_path, token) == []


# -- the local server's reach ---------------------------------------------------------------


def test_local_server_binds_loopback_unless_told_otherwise(make_server: MakeServer) -> None:
    assert ServerConfig().host == "127.0.0.1"
    assert build_parser().parse_args(["serve-local"]).host == "127.0.0.1"
    server = make_server()
    port = int(server.base_url.rsplit(":", 1)[1])
    listening = [
        c.laddr for c in psutil.Process().net_connections(kind="inet")
        if c.status == psutil.CONN_LISTEN and c.laddr.port == port
    ]
    assert listening and {a.ip for a in listening} == {"127.0.0.1"}


@pytest.mark.anyio
async def test_local_server_with_a_token_refuses_requests_without_it(
    make_server: MakeServer, token: str
) -> None:
    server = make_server(token=token)
    body = {"input": "hello", "voice_id": "local-tone-1"}
    url = server.base_url + "/v1/audio/speech"
    headers = {
        "none": {},
        "empty": {"Authorization": "Bearer "},
        "wrong": {"Authorization": "Bearer tok-wrong"},
        "prefix": {"Authorization": f"Bearer {token[:-1]}"},
        "basic": {"Authorization": f"Basic {token}"},
    }
    async with aiohttp.ClientSession() as session:
        for name, h in headers.items():
            async with session.post(url, json=body, headers=h) as response:
                answer = await response.json()
                assert (response.status, answer["code"]) == (401, 4100), name
                assert token not in await response.text()
        ok = {"Authorization": f"Bearer {token}"}
        async with session.post(url, json=body, headers=ok) as response:
            assert response.status == 200 and response.content_type.startswith("audio/")
    assert server.stats.audio_answers == 1 and server.stats.billed_characters == 5


# -- nothing written outside the output directory -----------------------------------------

BAD_IDS = ["../x", "a/b", "/abs", "..", ".", ".hidden", "a\\\\b", "x/../../y", "report",
           "c:evil", "a b", "ok\\u0000"]


@pytest.mark.parametrize("bad_id", BAD_IDS)
def test_a_chapter_id_that_is_not_a_plain_name_is_refused(tmp_path: Path, bad_id: str) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(
        f'defaults: {{voice_id: local-tone-1}}\nchapters:\n  - id: "{bad_id}"\n    text: hi.\n',
        encoding="utf-8",
    )
    status, stderr = _validate(job)
    assert status == 2 and f"{job}:3: chapter id" in stderr, stderr


@pytest.mark.parametrize("csv_id", ["../x", "a/b", "/abs"])
def test_a_csv_chapter_id_that_is_not_a_plain_name_is_refused(tmp_path: Path, csv_id: str) -> None:
    job = tmp_path / "lines.csv"
    job.write_text(f"chapter,text,voice_id\n{csv_id},hi,local-tone-1\n", encoding="utf-8")
    status, stderr = _validate(job)
    assert status == 2 and f"{job}:2: chapter id" in stderr, stderr


@pytest.mark.parametrize("book", ["../evil.m4b", "/tmp/evil.m4b", "sub/evil.m4b",
                                  "..\\\\evil.m4b", "a\\u0000b.m4b"])
def test_a_book_name_that_is_not_a_plain_name_is_refused(tmp_path: Path, book: str) -> None:
    job = tmp_path / "job.yaml"
    job.write_text(
        f'output: {{book: "{book}"}}\ndefaults: {{voice_id: local-tone-1}}\n'
        "chapters:\n  - id: c1\n    text: hi.\n",
        encoding="utf-8",
    )
    status, stderr = _validate(job)
    assert status == 2 and f"{job}:1: output.book" in stderr, stderr


def test_symlinks_under_final_names_are_refused_not_written_through(
    tmp_path: Path, make_server: MakeServer
) -> None:
    server = make_server()
    job = write_job(tmp_path / "job", 20, per_chapter=10)
    outside = tmp_path / "outside"
    outside.mkdir()
    victims = {name: outside / name for name in ("ch001.wav", "report.json", "ch002.wav")}
    for victim in victims.values():
        victim.write_text("precious")
    out = tmp_path / "out"
    out.mkdir()
    for name, victim in victims.items():
        (out / name).symlink_to(victim)
    # The output directory itself reached through a symlink is the user's choice: it works.
    link = tmp_path / "link-to-out"
    link.symlink_to(out, target_is_directory=True)
    done = run_cli(run_args(job, link, server.base_url), cli_env("t"))
    assert done.returncode == 1, done.stderr
    assert "Traceback" not in done.stderr
    assert f"refusing to write {link / 'report.json'}: it is a symbolic link" in done.stderr
    assert all(v.read_text() == "precious" for v in victims.values())
    assert sorted(p.name for p in outside.iterdir()) == sorted(victims)
    assert all((out / name).is_symlink() for name in victims), "a link was replaced"
    # With the links gone, the same command finishes from the cache.
    for name in victims:
        (out / name).unlink()
    requests = server.stats.requests
    done = run_cli(run_args(job, link, server.base_url), cli_env("t"))
    assert done.returncode == 0, done.stderr
    assert server.stats.requests == requests
    assert sorted(chapter_files(out)) == ["ch001.wav", "ch002.wav"]


# -- the redactor (issue 12): every form of the token, control characters escaped ------------

REDACT_TOKEN = "pat_Zq9xY7wVu5tS3rQ1pO0nM8lK6jI4hG2f"


def _b64_embedded(secret: str, before: str) -> str:
    """``secret`` base64-encoded inside a longer text, after ``before``: any alignment."""
    return base64.b64encode(f"{before}{secret};rest".encode()).decode()


@pytest.mark.parametrize(
    "text",
    [
        f"msg: {REDACT_TOKEN}",
        f"Authorization: Bearer {REDACT_TOKEN}",
        f"echo {REDACT_TOKEN.upper()} and {REDACT_TOKEN.lower()}",
        f"https://evil/?t={quote('ä' + REDACT_TOKEN + '/', safe='')}",
        f"Basic {base64.b64encode(f'user:{REDACT_TOKEN}'.encode()).decode()}",
        *(f"blob {_b64_embedded(REDACT_TOKEN, 'x' * n)}" for n in range(3)),
        *(f"blob {_b64_embedded('Bearer ' + REDACT_TOKEN, 'y' * n)}" for n in range(3)),
        f"urlsafe {base64.urlsafe_b64encode(('??>' + REDACT_TOKEN).encode()).decode()}",
    ],
)
def test_redactor_removes_every_form_of_the_token(text: str) -> None:
    redactor = Redactor(REDACT_TOKEN)
    assert redactor.found_in(text)
    cleaned = redactor.redact(text)
    assert "***" in cleaned and REDACT_TOKEN.lower() not in cleaned.lower()
    assert not redactor.found_in(cleaned)
    decoded = [_try_b64(w) for w in re.findall(r"[A-Za-z0-9+/_=-]{16,}", cleaned)]
    assert not [d for d in decoded if REDACT_TOKEN in d]


def _try_b64(word: str) -> str:
    try:
        return base64.b64decode(word + "==", altchars=b"-_" if "-" in word or "_" in word
                                else None).decode("latin-1")
    except ValueError:
        return ""


def test_redactor_leaves_other_text_alone_and_hides_itself() -> None:
    redactor = Redactor(REDACT_TOKEN)
    text = "voice local-tone-1 at 24000 Hz, logid 20241212abc"
    assert redactor.clean(text) == text and not redactor.found_in(text)
    assert REDACT_TOKEN not in repr(redactor) and REDACT_TOKEN not in str(redactor)
    # Short "tokens" (the local backend's is "local") are not secrets: nothing is hidden.
    assert Redactor("local").clean("local-tone-1") == "local-tone-1"
    assert MIN_SECRET_LENGTH > len("local")


@pytest.mark.parametrize(
    ("text", "expected", "keep_newlines"),
    [
        ("\x1b[2Jred\x07", "\\x1b[2Jred\\x07", False),
        ("a\r\nb\tc", "a\\x0d\\nb\\tc", False),
        ("line 1\nline 2", "line 1\nline 2", True),
        ("abc\u202etxt.exe", "abc\\u202etxt.exe", False),
        ("\x9b31m C1", "\\x9b31m C1", False),
        ("你好，世界。 ok", "你好，世界。 ok", False),
        ("a\u2028b\u2029c\u3000d", "a\\u2028b\\u2029c\u3000d", False),
    ],
)
def test_control_characters_are_escaped(text: str, expected: str, keep_newlines: bool) -> None:
    assert escape_controls(text, keep_newlines=keep_newlines) == expected


def test_clean_json_cleans_keys_and_values_and_stops_deep() -> None:
    redactor = Redactor(REDACT_TOKEN)
    value: object = {"a": [REDACT_TOKEN, {f"k{REDACT_TOKEN}": "\x1b"}], "n": 3}
    for _ in range(100):
        value = [value]
    cleaned = redactor.clean_json({"msg": f"x{REDACT_TOKEN}", "deep": value, "ok": True})
    assert cleaned["msg"] == "x***" and cleaned["ok"] is True
    assert REDACT_TOKEN not in repr(cleaned)
    shallow = redactor.clean_json({"a": [REDACT_TOKEN, {f"k{REDACT_TOKEN}": "\x1b"}]})
    assert shallow == {"a": ["***", {"k***": "\\x1b"}]}


def test_percent_encoded_token_is_found_in_either_hex_case() -> None:
    token = "tok/en+with=chars~and%more"
    redactor = Redactor(token)
    encoded = quote(token, safe="")
    for text in (f"?t={encoded}", f"?t={encoded.lower()}", f"?t={quote_plus(token)}"):
        assert redactor.redact(text) == "?t=***", text


def test_a_start_of_the_token_at_the_end_of_a_cut_text_is_removed() -> None:
    redactor = Redactor(REDACT_TOKEN)
    assert redactor.redact_cut(f"echo {REDACT_TOKEN[:20]}") == "echo ***"
    assert redactor.redact_cut(f"a {REDACT_TOKEN} b {REDACT_TOKEN[:9]}") == "a *** b ***"
    # Too short a start to be a secret's: ordinary text ends like that.
    assert redactor.redact_cut(f"echo {REDACT_TOKEN[:4]}") == f"echo {REDACT_TOKEN[:4]}"
