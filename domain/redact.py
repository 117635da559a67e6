"""Masking personal numbers in free text: every NIK and Indonesian mobile number however it
is spaced ("3201 0512 0390 0001", "+62 812-3456-7890"), and Telegram bot tokens.

Used by the logs (bot/logging.py) and wherever a user's words are kept for people to read
(not-understood messages, handoff transcripts). Dates, amounts, years and codes stay.
"""

from __future__ import annotations

import re

from domain import nik as nik_rules
from domain import phone as phone_rules

__all__ = ["NIK_DIGITS", "redact", "redact_message"]

# A run of digit groups joined by one space, dot or dash ("3201 0512 0390 0001",
# "+62 812-3456-7890", "12-03-1990"); a leading "+" belongs to the run.
_RUN = re.compile(r"(?<![\d+])\+?\d+(?:(?:[ \u00a0]?[.\-][ \u00a0]?|[ \u00a0])\d+)*")
_GROUP = re.compile(r"\d+")
NIK_DIGITS = 16
# Telegram bot tokens look like 123456789:AA...35 chars.
_TOKEN = re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b")


def _phone_shaped(groups: list[str], plus: bool) -> bool:
    """Whether digit groups start like a mobile number: 08.., 628.., or 62 / +62 then 8.."""
    first = groups[0]
    if first.startswith("08") and len(first) > 2:
        return not plus
    if first.startswith("628"):
        return True
    return first == "62" and len(groups) > 1 and groups[1].startswith("8")


def _window_mask(text: str, groups: list[str], plus: bool) -> tuple[str, str] | None:
    """("nik" or "phone", masked form) if `text`, consecutive digit groups, is a NIK or a
    mobile number, else None."""
    digits = "".join(groups)
    if len(digits) == NIK_DIGITS:
        return "nik", nik_rules.mask(digits)
    if _phone_shaped(groups, plus) and (number := phone_rules.normalise(text)) is not None:
        return "phone", phone_rules.mask(number)
    return None


def _longest_window(run: str, spans: list[tuple[int, int]], first: int):
    """The longest NIK or phone starting at group `first`: (last group, start, kind, mask)."""
    start = 0 if first == 0 else spans[first][0]  # a leading "+" goes with the first group
    for last in range(len(spans) - 1, first - 1, -1):
        groups = [run[a:b] for a, b in spans[first:last + 1]]
        found = _window_mask(run[start:spans[last][1]], groups, plus=run[start] == "+")
        if found is not None:
            return last, start, *found
    return None


def _redact_run(match: re.Match[str]) -> str:
    """Mask the NIKs and phone numbers in one run of digit groups, longest first; the other
    groups of a run that held a NIK are starred too, so no NIK digit is left beside it."""
    run = match.group(0)
    spans = [m.span() for m in _GROUP.finditer(run)]
    edits: list[tuple[int, int, str]] = []
    covered: set[int] = set()
    kinds: set[str] = set()
    index = 0
    while index < len(spans):
        found = _longest_window(run, spans, index)
        if found is None:
            index += 1
            continue
        last, start, kind, masked = found
        edits.append((start, spans[last][1], masked))
        covered.update(range(index, last + 1))
        kinds.add(kind)
        index = last + 1
    if "nik" in kinds:
        edits += [(a, b, "*" * (b - a)) for i, (a, b) in enumerate(spans) if i not in covered]
    out, position = [], 0
    for start, end, replacement in sorted(edits):
        out += [run[position:start], replacement]
        position = end
    return "".join(out) + run[position:]


def redact(text: str) -> str:
    """Mask every NIK, mobile number and bot token in `text`, however the digits are
    spaced ("3201 0512 0390 0001", "+62 812-3456-7890"); dates, amounts and years stay."""
    text = _TOKEN.sub("<bot-token>", text)
    return _RUN.sub(_redact_run, text)


# What is kept of a user's words for people to read (not-understood messages): also any
# other long number (a NIK with a digit missing or extra, a KK or bank account number).
LONG_NUMBER_DIGITS = 10
# 1.500.000.000: an amount written with thousands dots stays readable.
_AMOUNT = re.compile(r"\d{1,3}(?:\.\d{3})+")
_DIGIT = re.compile(r"\d")


def _mask_long_run(match: re.Match[str]) -> str:
    run = match.group(0)
    if len(_DIGIT.findall(run)) < LONG_NUMBER_DIGITS or _AMOUNT.fullmatch(run):
        return run
    return _DIGIT.sub("*", run)


def redact_message(text: str) -> str:
    """`redact`, and then every other run of 10 or more digits (however spaced) starred
    whole, except an amount with thousands dots: what a stored user message may keep."""
    return _RUN.sub(_mask_long_run, redact(text))
