"""Comparing a typed full name with the registry's, forgivingly but not loosely."""

from __future__ import annotations

import re
import unicodedata
from difflib import SequenceMatcher

_BRACKETS = re.compile(r"\([^)]*\)")
_NON_LETTERS = re.compile(r"[^a-z\s]")
MIN_SIMILARITY = 0.9
MAX_LETTERS, MAX_WORDS = 80, 8
# Besides letters (accented ones too) and spaces, a name may hold these: "Ma'ruf",
# "Siti Nur-Aini", "Moh. Yusuf" (apostrophes as phones type them: ' ’ ʼ `).
NAME_PUNCTUATION = frozenset("'’ʼ`-.")


def _fold(text: str) -> str:
    """Accents dropped ("José" -> "Jose"), compatibility forms folded, casefolded."""
    decomposed = unicodedata.normalize("NFKD", text)
    return "".join(ch for ch in decomposed if not unicodedata.combining(ch)).casefold()


def normalise(name: str) -> str:
    """Lowercase letters and single spaces; bracketed notes such as "(FIKTIF)" dropped."""
    text = _NON_LETTERS.sub(" ", _fold(_BRACKETS.sub(" ", name)))
    return " ".join(text.split())


def _name_char(ch: str) -> bool:
    """A letter (any script, with its accents), a space, or name punctuation."""
    return ch.isalpha() or ch.isspace() or ch in NAME_PUNCTUATION or (
        unicodedata.category(ch) in ("Mn", "Mc"))


def plausible(name: str) -> bool:
    """A full name: only letters, spaces, apostrophes, hyphens and dots; 2 to 80 letters;
    at most 8 words. Digits, emoji and other symbols are refused."""
    text = unicodedata.normalize("NFC", name)
    if not all(_name_char(ch) for ch in text):
        return False
    letters = sum(ch.isalpha() for ch in text)
    return 2 <= letters <= MAX_LETTERS and 1 <= len(text.split()) <= MAX_WORDS


def tidy(name: str) -> str:
    """A plausible name as it should be kept: NFC, single spaces."""
    return " ".join(unicodedata.normalize("NFC", name).split())


def same_person(typed: str, registered: str) -> bool:
    """Equal after normalising, or one small typo apart (similarity >= 0.9)."""
    a, b = normalise(typed), normalise(registered)
    return bool(a) and (a == b or SequenceMatcher(None, a, b).ratio() >= MIN_SIMILARITY)
