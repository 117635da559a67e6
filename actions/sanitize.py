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
_BLANK_LINES = re.compile(r"\n{3,}")
_LINE_BREAKS = re.compile(r"\r\n|[\r\x0b\x0c\x1c-\x1e\x85\u2028\u2029]")


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


def clean_message(text: str) -> str:
    """Like `clean`, but line breaks stay (for a message that will be sent on): every kind of
    line break becomes "\\n", each line is cleaned, at most one blank line in a row."""
    lines = [clean(line) for line in _LINE_BREAKS.sub("\n", text).split("\n")]
    return _BLANK_LINES.sub("\n\n", "\n".join(lines)).strip("\n")


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
