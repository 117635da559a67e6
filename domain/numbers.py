"""Reading numbers people type, one rule everywhere.

The rule: a decimal digit of any script (Unicode category Nd: ASCII, full-width "１２",
Arabic-Indic "١٢", Extended Arabic-Indic "۱۲", Devanagari "१२"...) is a real digit that a
phone keyboard in another script produces, so it is folded to its ASCII digit. Characters
that only look like digits (superscripts "²", circled "①", fractions "½", Roman numerals)
are not digits: they are left alone and every number reader rejects them with its usual
hint. After folding, a number is read from ASCII 0-9 only (Python's `\\d`, `isdigit()` and
`int()` all accept more than that), and its length is bounded before `int()` so a huge
number is a polite "too long", never an exception.
"""

from __future__ import annotations

import unicodedata

ASCII_DIGITS = frozenset("0123456789")


def _ascii(ch: str) -> str:
    """The ASCII digit for a decimal digit of any script; any other character unchanged."""
    if ch in ASCII_DIGITS or ch.isascii():
        return ch
    value = unicodedata.decimal(ch, None)
    return ch if value is None else str(value)


def fold_digits(text: str) -> str:
    """Replace every decimal digit (any script) by its ASCII digit; keep everything else."""
    return "".join(_ascii(ch) for ch in text)


def is_ascii_digits(text: str) -> bool:
    """True for a non-empty string of ASCII 0-9 only."""
    return bool(text) and all(ch in ASCII_DIGITS for ch in text)


def read_int(text: str, max_digits: int, low: int = 0, high: int | None = None) -> int | None:
    """A whole number typed by a user (any script's digits, surrounding spaces allowed), or
    None when it is not one, has more than `max_digits` digits, or is outside low..high."""
    value = fold_digits(text.strip())
    if not is_ascii_digits(value) or len(value) > max_digits:
        return None
    number = int(value)
    if number < low or (high is not None and number > high):
        return None
    return number
