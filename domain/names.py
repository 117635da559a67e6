"""Comparing a typed full name with the registry's, forgivingly but not loosely."""

from __future__ import annotations

import re
from difflib import SequenceMatcher

_BRACKETS = re.compile(r"\([^)]*\)")
_NON_LETTERS = re.compile(r"[^a-z\s]")
MIN_SIMILARITY = 0.9


def normalise(name: str) -> str:
    """Lowercase letters and single spaces; bracketed notes such as "(FIKTIF)" dropped."""
    text = _NON_LETTERS.sub(" ", _BRACKETS.sub(" ", name).casefold())
    return " ".join(text.split())


def plausible(name: str) -> bool:
    """A full name: 2 to 80 letters, at most 8 words, mostly letters."""
    clean = normalise(name)
    letters = clean.replace(" ", "")
    return 2 <= len(letters) <= 80 and len(clean.split()) <= 8 and len(letters) >= 0.8 * len(
        re.sub(r"\s", "", name))


def same_person(typed: str, registered: str) -> bool:
    """Equal after normalising, or one small typo apart (similarity >= 0.9)."""
    a, b = normalise(typed), normalise(registered)
    return bool(a) and (a == b or SequenceMatcher(None, a, b).ratio() >= MIN_SIMILARITY)
