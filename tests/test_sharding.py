"""--shard K/N: exact cover, balance, stability when chapters are appended."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from pipeline.errors import ConfigError
from pipeline.sharding import (
    SHARD_HELP,
    Shard,
    original_position,
    parse_shard,
    per_shard_qps,
    select_shard,
)


def _ids(count: int) -> list[str]:
    return [f"ch{i:03d}" for i in range(1, count + 1)]


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("chapters", [0, 1, 2, 3, 4, 5, 7, 12, 31])
def test_the_shards_cover_every_chapter_exactly_once(n: int, chapters: int) -> None:
    ids = _ids(chapters)
    picked = [i for k in range(1, n + 1) for i in select_shard(ids, Shard(k, n))]
    assert sorted(picked) == list(range(chapters))


@pytest.mark.parametrize("n", [1, 2, 3, 4, 5])
@pytest.mark.parametrize("chapters", [1, 2, 3, 4, 5, 7, 12, 31])
def test_the_shards_are_balanced(n: int, chapters: int) -> None:
    sizes = [len(select_shard(_ids(chapters), Shard(k, n))) for k in range(1, n + 1)]
    assert max(sizes) - min(sizes) <= 1
    assert sum(sizes) == chapters


@given(
    st.integers(min_value=1, max_value=5),
    st.integers(min_value=0, max_value=40),
    st.integers(min_value=0, max_value=20),
)
def test_appending_never_moves_a_chapter(n: int, before: int, added: int) -> None:
    old, new = _ids(before), _ids(before + added)

    def owner(ids: list[str]) -> dict[str, int]:
        return {ids[i]: k for k in range(1, n + 1) for i in select_shard(ids, Shard(k, n))}

    old_owner, new_owner = owner(old), owner(new)
    assert all(new_owner[c] == k for c, k in old_owner.items())


def test_each_shard_keeps_job_order_and_maps_back() -> None:
    ids = _ids(10)
    for k in (1, 2, 3):
        shard = Shard(k, 3)
        picked = select_shard(ids, shard)
        assert picked == sorted(picked)
        assert [original_position(shard, j) for j in range(len(picked))] == picked
    assert select_shard(ids, Shard(2, 3)) == [1, 4, 7]


def test_the_split_is_deterministic_and_positional() -> None:
    # Same positions for any ids: a renamed chapter stays where it was.
    assert select_shard(["b", "a", "c", "d"], Shard(1, 2)) == [0, 2]
    assert select_shard(["x", "y", "z", "w"], Shard(1, 2)) == [0, 2]


def test_more_shards_than_chapters_leaves_some_empty() -> None:
    assert select_shard(_ids(2), Shard(3, 5)) == []
    assert select_shard(_ids(2), Shard(2, 5)) == [1]


def test_duplicate_ids_are_refused() -> None:
    with pytest.raises(ConfigError, match="duplicate chapter ids: a, b"):
        select_shard(["a", "b", "a", "c", "b"], Shard(1, 2))


@pytest.mark.parametrize(
    ("text", "shard"),
    [
        ("1/1", Shard(1, 1)),
        ("2/3", Shard(2, 3)),
        (" 3 / 3 ", Shard(3, 3)),
        ("10/12", Shard(10, 12)),
    ],
)
def test_parse_shard(text: str, shard: Shard) -> None:
    assert parse_shard(text) == shard
    assert str(parse_shard(text)) == f"{shard.k}/{shard.n}"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("0/3", "K must be 1 to 3"),
        ("4/3", "K must be 1 to 3"),
        ("1/0", "N must be 1 or more"),
        ("2", "must look like K/N"),
        ("a/b", "must look like K/N"),
        ("-1/3", "must look like K/N"),
        ("1/3/5", "must look like K/N"),
        ("", "must look like K/N"),
    ],
)
def test_parse_shard_explains_bad_input(text: str, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        parse_shard(text)


def test_shard_json_round_trip_and_validation() -> None:
    assert Shard.from_json(Shard(2, 3).to_json()) == Shard(2, 3)
    for bad in ({"k": 4, "n": 3}, {"k": True, "n": 3}, {"k": "1", "n": 3}, [1, 3], None):
        with pytest.raises(ConfigError, match="shard"):
            Shard.from_json(bad)


def test_per_shard_qps_and_help() -> None:
    assert per_shard_qps(6.0, 3) == 2.0
    with pytest.raises(ConfigError, match="qps must be more than 0"):
        per_shard_qps(0, 3)
    with pytest.raises(ConfigError, match="shard count must be 1 or more"):
        per_shard_qps(5, 0)
    assert "divided by N" in SHARD_HELP and "--qps" in SHARD_HELP
