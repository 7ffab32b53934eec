"""Normalisation with wetext (offline FSTs in the wheel) and the fixes made around it."""

from __future__ import annotations

import pytest

from pipeline.books.normalize import NormalizeError, language_of, normalize


@pytest.mark.parametrize(
    ("language", "text", "spoken"),
    [
        ("zh", "今天是2024年3月5日，气温-3.5℃。", "今天是二零二四年三月五日，气温负三点五摄氏度。"),
        ("zh", "下午3:30开会，占比12%", "下午三点三十分开会，占比百分之十二"),
        ("zh", "我花了¥128买了3本书", "我花了一百二十八元买了三本书"),
        ("zh-CN", "第2名", "第二名"),  # wetext alone says 第两名
        ("zh", "约3/4的人", "约四分之三的人"),  # wetext alone says 四分之约三的人
        ("en", "I paid $12.50 on Jan. 5, 2024.",
         "I paid twelve dollars and fifty cents on the fifth of january, twenty twenty four."),
        ("en_US", "It costs £3.01 or $4.00.",
         "It costs three pounds and one penny or four dollars."),
        ("en", "the 21st time at 3pm, 25%",
         "the twenty first time at three PM, twenty five percent"),
        ("en", "It weighs 3 kg.", "It weighs three kilograms."),
        ("ja", "3月5日15時、1,200円", "三月五日十五時、千二百円"),
        ("ja", "第3章", "第三章"),
        ("en", "   ", ""),
        ("en", "No numbers here.", "No numbers here."),
    ],
)
def test_normalize(language: str, text: str, spoken: str) -> None:
    assert normalize(text, language) == spoken


def test_languages() -> None:
    assert [language_of(c) for c in ("zh-CN", "cmn", "EN_gb", "ja", "ko", None, "")] == [
        "zh", "zh", "en", "ja", None, None, None,
    ]
    with pytest.raises(NormalizeError, match="language 'ko': use one of zh, en, ja"):
        normalize("3", "ko")
