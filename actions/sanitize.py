"""Clean incoming text and recognise input the NLU should never see."""

from __future__ import annotations

import re
import unicodedata
from enum import Enum

MAX_CHARS = 4096  # Telegram's own limit for one message


class Problem(Enum):
    EMPTY = "empty_message"
    TOO_LONG = "too_long"
    NO_WORDS = "no_words"


_SPACES = re.compile(r"\s+")


def clean(text: str) -> str:
    """Drop control and format characters (keep line breaks as spaces), squeeze spaces."""
    kept = []
    for ch in text:
        category = unicodedata.category(ch)
        if ch in "\n\r\t":
            kept.append(" ")
        elif category in ("Cc", "Cs", "Co", "Cn") or (category == "Cf" and ch != "\u200d"):
            continue
        else:
            kept.append(ch)
    return _SPACES.sub(" ", "".join(kept)).strip()


def check(raw: str | None) -> tuple[str, Problem | None]:
    """Return the cleaned text and what is wrong with it, if anything."""
    if raw is None:
        return "", Problem.EMPTY
    if len(raw) > MAX_CHARS:
        return "", Problem.TOO_LONG
    text = clean(raw)
    if not text:
        return "", Problem.EMPTY
    if not any(ch.isalnum() for ch in text):
        return text, Problem.NO_WORDS
    return text, None
