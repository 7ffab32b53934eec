"""The local server's quality faults: valid audio that is wrong, and the gate catches it.

Normal answers of the tone and espeak engines pass the gate; each quality fault, injected
after the gate has learnt the voice, is valid audio (``check_audio`` takes it) that breaks
one of the gate's rules.
"""

from __future__ import annotations

import json
import urllib.request
from collections.abc import Callable

import pytest

from pipeline.audio import check_audio
from pipeline.errors import ConfigError
from pipeline.localserver import LocalServer, ServerConfig, parse_fault
from pipeline.localserver.config import QUALITY_FAULT_KINDS
from pipeline.quality import QualityGate, Verdict, decode_answer

RATE = 24000
EN = [
    "The lighthouse keeper climbed the stairs each evening before the sun went down.",
    "Rain had fallen for three days, and the river was higher than anyone remembered.",
    "She folded the letter twice, put it in her pocket, and walked out into the street.",
    "Nobody in the village could say when the old mill had last turned its wheel.",
    "The train was late again, so the passengers stood on the platform and waited.",
    "He kept a small notebook in which he wrote the names of every bird he saw.",
    "At the end of the road there was a gate, and beyond the gate a field of barley.",
    "The children counted the boats in the harbour and argued about the biggest one.",
]
ZH = [
    "清晨的雾气还没有散去，渔船已经一只接一只地驶出了港口。",
    "老人坐在门口的石凳上，慢慢地给孙子讲起了从前的故事。",
    "这条街道两旁种满了梧桐树，夏天的时候非常凉快。",
    "她把信折好放进口袋，然后转身走进了下着小雨的街道。",
    "山脚下有一座小小的寺庙，每天傍晚都会传来钟声。",
    "火车又晚点了，站台上的旅客只好耐心地等待着。",
    "他有一个小本子，专门记录自己见过的每一种鸟。",
    "孩子们在海边数着港口里的船，争论哪一艘最大。",
]
CASES = [
    ("tone", "local-tone-1", "wav", EN),
    ("espeak", "local-en-female", "mp3", EN),
    ("espeak", "local-zh-male", "ogg_opus", ZH),
]
# The rule each fault must break, at the least.
EXPECTED = {
    "silent": "silent",
    "truncated": "duration_short",
    "padded": "gap",
    "clipped": "clipped",
    "quiet": "loudness_jump",
}


def _speak(server: LocalServer, text: str, voice: str, fmt: str) -> bytes:
    body = {"input": text, "voice_id": voice, "response_format": fmt, "sample_rate": RATE}
    request = urllib.request.Request(
        server.base_url + "/v1/audio/speech",
        data=json.dumps(body).encode(),
        headers={"Authorization": "Bearer t", "Content-Type": "application/json"},
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        assert response.status == 200
        data: bytes = response.read()
    # Valid audio of the format asked for, whatever the fault: only the sound is wrong.
    assert check_audio(data, fmt, RATE) > 0
    return data


def _judge(gate: QualityGate, data: bytes, text: str, voice: str, fmt: str) -> Verdict:
    samples, rate = decode_answer(data, fmt, RATE)
    return gate.assess(text, voice, 1.0, "chapter", samples, rate)


def _learnt_gate(server: LocalServer, voice: str, fmt: str, texts: list[str]) -> QualityGate:
    gate = QualityGate()
    for index, text in enumerate(texts[:6]):
        verdict = _judge(gate, _speak(server, text, voice, fmt), text, voice, fmt)
        assert verdict.ok, (text, verdict.to_json())
        assert gate.accept(text, voice, 1.0, "chapter", verdict, index) == []
    return gate


@pytest.mark.parametrize(("engine", "voice", "fmt", "texts"), CASES)
def test_each_quality_fault_is_valid_audio_that_the_gate_flags(
    make_server: Callable[..., LocalServer],
    engine: str,
    voice: str,
    fmt: str,
    texts: list[str],
) -> None:
    server = make_server(engine=engine)
    gate = _learnt_gate(server, voice, fmt, texts)
    text = texts[6]
    server.queue_faults(list(QUALITY_FAULT_KINDS))
    for kind in QUALITY_FAULT_KINDS:
        verdict = _judge(gate, _speak(server, text, voice, fmt), text, voice, fmt)
        assert EXPECTED[kind] in verdict.rules, (kind, verdict.to_json())
    assert server.stats.faults == {kind: 1 for kind in QUALITY_FAULT_KINDS}
    # The same request without a fault passes, and beats every faulty answer.
    clean = _judge(gate, _speak(server, text, voice, fmt), text, voice, fmt)
    assert clean.ok, clean.to_json()


@pytest.mark.parametrize(("engine", "voice", "fmt", "texts"), CASES)
def test_normal_answers_are_not_flagged(
    make_server: Callable[..., LocalServer],
    engine: str,
    voice: str,
    fmt: str,
    texts: list[str],
) -> None:
    server = make_server(engine=engine)
    gate = _learnt_gate(server, voice, fmt, texts)
    for text in texts[6:]:
        verdict = _judge(gate, _speak(server, text, voice, fmt), text, voice, fmt)
        assert verdict.ok and not verdict.provisional, (text, verdict.to_json())


def test_the_best_of_several_answers_is_the_clean_one(
    make_server: Callable[..., LocalServer],
) -> None:
    server = make_server(engine="espeak")
    gate = _learnt_gate(server, "local-en-male", "wav", EN)
    text = EN[7]
    server.queue_faults(["padded", "quiet"])
    answers = [
        _judge(gate, _speak(server, text, "local-en-male", "wav"), text, "local-en-male", "wav")
        for _ in range(3)
    ]
    best = answers[0]
    for verdict in answers[1:]:
        if verdict.better_than(best):
            best = verdict
    assert [v.ok for v in answers] == [False, False, True]
    assert best is answers[2]


def test_quality_faults_are_drawn_only_when_asked_for(
    make_server: Callable[..., LocalServer],
) -> None:
    server = make_server(fault_rate=1.0, fault_kinds=("quiet",))
    gate = QualityGate()
    data = _speak(server, EN[0], "local-tone-1", "wav")
    verdict = _judge(gate, data, EN[0], "local-tone-1", "wav")
    assert verdict.measures.loudness_lufs < -25  # the tone is at about -12 LUFS
    assert server.stats.faults == {"quiet": 1}
    assert "quiet" not in ServerConfig().fault_kinds  # the default draw stays as it was


def test_quality_fault_names_are_checked() -> None:
    assert parse_fault("truncated").spoils_audio
    assert not parse_fault("http500").spoils_audio
    with pytest.raises(ConfigError, match="known: .*silent, truncated, padded, clipped, quiet"):
        parse_fault("muffled")
    with pytest.raises(ConfigError, match="unknown \\['muffled'\\]"):
        ServerConfig(fault_rate=0.1, fault_kinds=("muffled",))


def test_a_run_with_quality_faults_keeps_only_clean_answers(
    make_server: Callable[..., LocalServer],
) -> None:
    """The runner's loop in small: 5 % faults, one request more per flag, late finds too."""
    kinds = QUALITY_FAULT_KINDS
    faulty = make_server(fault_rate=0.05, fault_kinds=kinds, seed=11)
    clean = make_server()
    texts = [" ".join(EN[(i + k) % 8] for k in range(1 + i % 3)) + f" {i}." for i in range(120)]
    gate = QualityGate()
    kept: dict[int, bytes] = {}
    requests = 0

    def settle(index: int) -> list[object]:
        nonlocal requests
        text = texts[index]
        best: tuple[Verdict, bytes] | None = None
        for _ in range(1 + gate.config.retries + 1):  # a fault may land on the retry too
            data = _speak(faulty, text, "local-tone-1", "wav")
            requests += 1
            verdict = _judge(gate, data, text, "local-tone-1", "wav")
            if best is None or verdict.better_than(best[0]):
                best = (verdict, data)
            if verdict.ok:
                break
        assert best is not None and best[0].ok, (index, best[0].to_json())
        kept[index] = best[1]
        return list(gate.accept(text, "local-tone-1", 1.0, "chapter", best[0], index))

    late = [ref for index in range(len(texts)) for ref in settle(index)]
    for ref in late:
        assert isinstance(ref, int)
        settle(ref)
    injected = sum(faulty.stats.faults.values())
    assert injected >= 5
    # Every kept answer is the clean one: the tone engine answers a text the same each time.
    for index, data in kept.items():
        assert data == _speak(clean, texts[index], "local-tone-1", "wav"), index
    assert requests - len(texts) <= injected
