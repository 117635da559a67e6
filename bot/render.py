"""Channel-neutral rendering helpers: split a long reply into parts a channel can send.

Telegram (and other chat APIs) limit a message's length in UTF-16 code units, so an emoji
outside the Basic Multilingual Plane counts twice. `split_text` cuts at line boundaries,
then at spaces, then anywhere (never inside a character, nor before a combining mark or a
zero-width joiner); it drops the newline or space it cut at and never returns a blank part.
"""

from __future__ import annotations

import unicodedata

_ZWJ = "\u200d"
_JOINERS = frozenset("\u200c\u200d\ufe0e\ufe0f")  # ZWNJ, ZWJ, text/emoji variation selectors

TEXT_LIMIT = 4096  # Telegram: UTF-16 code units in one message


def utf16_len(text: str) -> int:
    """Length of `text` in UTF-16 code units (how Telegram counts)."""
    return len(text) + sum(1 for char in text if ord(char) > 0xFFFF)


def _fitting_end(text: str, start: int, limit: int) -> int:
    """Index where the longest part of `text` from `start` within `limit` units ends."""
    units = 0
    for index in range(start, len(text)):
        units += 2 if ord(text[index]) > 0xFFFF else 1
        if units > limit:
            return index
    return len(text)


def _attached(char: str) -> bool:
    """Whether `char` belongs to the character before it (combining mark, joiner, variation
    selector, emoji skin tone)."""
    return (char in _JOINERS or unicodedata.combining(char) != 0
            or "\U0001f3fb" <= char <= "\U0001f3ff")


def _hard_cut(text: str, start: int, end: int) -> int:
    """Move a cut at `end` back so it does not separate a mark from its base character,
    nor the parts of an emoji joined by a zero-width joiner."""
    cut = end
    while start < cut and (_attached(text[cut]) or text[cut - 1] == _ZWJ):
        cut -= 1
    return cut if cut > start else end  # a whole part of marks: cut where it fits


def _cut(text: str, start: int, end: int) -> tuple[int, int]:
    """Where the part from `start` ends and the next begins (skipping the separator cut at),
    given that `text[end]` is the first character that does not fit."""
    newline = text.rfind("\n", start, end + 1)
    if newline >= 0:
        return newline, newline + 1
    space = max(text.rfind(" ", start, end + 1), text.rfind("\t", start, end + 1))
    if space >= 0:
        return space, space + 1
    cut = _hard_cut(text, start, end)
    return cut, cut


def split_text(text: str, limit: int) -> list[str]:
    """Split `text` into non-blank parts of at most `limit` UTF-16 units, cut at lines
    first, then words, then characters."""
    if limit < 2:
        raise ValueError("limit must be at least 2 (an astral character takes 2 units)")
    parts: list[str] = []
    start = 0
    while (end := _fitting_end(text, start, limit)) < len(text):
        cut, start_next = _cut(text, start, end)
        parts.append(text[start:cut])
        start = start_next
    parts.append(text[start:])
    return [part for part in parts if part.strip()]
