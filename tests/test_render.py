"""Splitting long replies into parts a channel accepts (bot/render.py)."""

from __future__ import annotations

import random
import re

import pytest

from bot.render import split_text, utf16_len

LIMIT = 4096
_WORDS = ["Budi", "warung", "PRK-2026-000001", "Sabtu,", "pukul", "09.00", "🙏", "👨‍👩‍👧",
          "e\u0301", "👍🏽", "Balai", "Desa", "x" * 300]


def _check(text: str, parts: list[str], limit: int) -> None:
    """The properties every split must have."""
    assert all(part.strip() for part in parts), "no blank parts"
    assert all(utf16_len(part) <= limit for part in parts), "every part fits"
    squeeze = re.compile(r"\s+")
    assert squeeze.sub("", "".join(parts)) == squeeze.sub("", text), "nothing lost or added"
    position = 0
    for part in parts:  # the parts are the text's pieces, in order
        found = text.find(part, position)
        assert found >= position, f"part out of order: {part[:40]!r}"
        position = found + len(part)


def _random_text(rng: random.Random, size: int) -> str:
    """Lines of random words, sometimes blank lines, sometimes a huge single line."""
    lines = []
    while sum(len(line) for line in lines) < size:
        count = rng.choice([0, 1, 5, 12, 40, 900])
        lines.append(" ".join(rng.choice(_WORDS) for _ in range(count)))
    return "\n".join(lines)


def test_utf16_len_counts_astral_characters_twice():
    assert utf16_len("abc") == 3
    assert utf16_len("🙏") == 2 and len("🙏") == 1
    assert utf16_len("é") == 1


def test_short_text_is_one_part_and_blank_text_none():
    assert split_text("Halo!\nApa kabar?", LIMIT) == ["Halo!\nApa kabar?"]
    assert split_text("x" * LIMIT, LIMIT) == ["x" * LIMIT]
    assert split_text("", LIMIT) == [] and split_text(" \n ", LIMIT) == []


def test_cuts_at_the_last_line_boundary_that_fits():
    lines = [f"{n}. Peserta nomor {n}: Contoh Nama Peserta Dampingan" for n in range(1, 121)]
    text = "\n".join(lines)
    parts = split_text(text, LIMIT)
    assert len(parts) == 2
    assert [line for part in parts for line in part.split("\n")] == lines, "whole lines kept"
    assert utf16_len(parts[0]) + len(lines[len(parts[0].split("\n"))]) + 1 > LIMIT, "filled"
    _check(text, parts, LIMIT)


def test_emoji_lines_are_measured_in_utf16_units():
    line = "🙏" * 100  # 100 characters, 200 UTF-16 units
    text = "\n".join([line] * 30)  # 3,029 characters, 6,029 units
    assert len(text) <= LIMIT < utf16_len(text)
    parts = split_text(text, LIMIT)
    assert len(parts) == 2 and parts[0].count("\n") == 19  # 20 lines = 4,019 units
    _check(text, parts, LIMIT)


def test_a_huge_line_is_cut_between_words_then_anywhere():
    words = " ".join(f"kata{n}" for n in range(1500))  # 13,389 characters, no newline
    parts = split_text(words, LIMIT)
    assert len(parts) == 4 and " ".join(parts) == words, "cut at spaces, words kept whole"
    _check(words, parts, LIMIT)
    blob = "🙏" * 5000  # one "word" of astral characters: cut between characters
    parts = split_text(blob, LIMIT)
    assert [len(p) for p in parts] == [2048, 2048, 904]
    _check(blob, parts, LIMIT)


def test_a_hard_cut_keeps_marks_and_joined_emoji_whole():
    accented = "e\u0301" * 3000  # e + combining acute, 6,000 code points
    for part in split_text(accented, LIMIT):
        assert not part.startswith("\u0301")
    family = "👨\u200d👩\u200d👧" * 1000  # ZWJ sequences of 8 units each
    parts = split_text(family, LIMIT)
    assert all(p.startswith("👨") and p.endswith("👧") for p in parts)
    _check(family, parts, LIMIT)


@pytest.mark.parametrize("seed", range(40))
def test_random_texts_keep_every_property(seed):
    rng = random.Random(seed)
    limit = rng.choice([LIMIT, 50, 7, 2])
    text = _random_text(rng, rng.choice([100, 5000, 14000]))
    _check(text, split_text(text, limit), limit)


def test_a_limit_below_two_units_is_refused():
    with pytest.raises(ValueError):
        split_text("abc", 1)
