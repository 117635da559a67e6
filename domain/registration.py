"""Registration rules without I/O: statuses and their allowed changes, numbers, and the
checks on the free-text answers (places, business description, months running)."""

from __future__ import annotations

import re
from dataclasses import dataclass

from domain.numbers import fold_digits, is_ascii_digits

# Status lifecycle: an operator verifies the data, then accepts or rejects.
SUBMITTED, VERIFIED, ACCEPTED, REJECTED = "diajukan", "diverifikasi", "diterima", "ditolak"
STATUSES = (SUBMITTED, VERIFIED, ACCEPTED, REJECTED)
TRANSITIONS: dict[str, frozenset[str]] = {
    SUBMITTED: frozenset({VERIFIED, REJECTED}),
    VERIFIED: frozenset({ACCEPTED, REJECTED}),
    ACCEPTED: frozenset(),
    REJECTED: frozenset(),
}
# A rejected registration no longer blocks a new one for the same NIK.
ACTIVE = frozenset({SUBMITTED, VERIFIED, ACCEPTED})

NUMBER_RE = re.compile(r"^PRK-([0-9]{4})-([0-9]{6})$")

PLACE_MIN, PLACE_MAX = 3, 60
DESCRIPTION_MIN, DESCRIPTION_MAX = 10, 300
MONTHS_MAX = 600
AMOUNT_DIGITS = 4  # "9999 bulan" is still read (and refused as too many); longer is not

_PLACE = re.compile(r"^[A-Za-z][A-Za-z .'\-/()]*$")
_MONTH_WORDS = {"sebulan": 1, "setahun": 12, "satu": 1, "dua": 2, "tiga": 3, "empat": 4,
                "lima": 5, "enam": 6, "tujuh": 7, "delapan": 8, "sembilan": 9, "sepuluh": 10,
                "sebelas": 11, "dua belas": 12, "setengah": 0.5}
_DURATION = re.compile(r"^(?:sudah\s+|udah\s+|sdh\s+|kurang lebih\s+|sekitar\s+|±\s*)?"
                       r"([0-9]+(?:[.,][0-9]+)?|[a-z]+(?: belas)?)?\s*"
                       r"(bulan|bln|bl|tahun|thn|th|minggu|mgg)?(?:an)?(?:\s+lalu)?$")
_YEARS_AND_MONTHS = re.compile(r"^(?:sudah\s+|udah\s+|sdh\s+)?([0-9]+)\s*(?:tahun|thn|th)\s*"
                               r"(?:dan\s+|lebih\s+)?([0-9]+)\s*(?:bulan|bln|bl)$")


class StatusChangeError(ValueError):
    pass


def number(year: int, sequence: int) -> str:
    """PRK-2026-000123."""
    return f"PRK-{year}-{sequence:06d}"


def check_transition(current: str, new: str, reason: str | None) -> None:
    """Raise StatusChangeError with an English message for the operator CLI."""
    if new not in STATUSES:
        raise StatusChangeError(f"unknown status {new!r}; use one of {', '.join(STATUSES)}")
    if new == current:
        raise StatusChangeError(f"the registration is already {current!r}")
    if new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (final status)"
        raise StatusChangeError(f"cannot go from {current!r} to {new!r}; allowed: {allowed}")
    if new == REJECTED and not (reason and reason.strip()):
        raise StatusChangeError("a rejection needs --reason (it is shown to the applicant)")


def clean_place(text: str) -> str | None:
    """A kabupaten/kota, kecamatan or desa name, tidied ("kab. bogor" -> "Kab. Bogor"),
    or None when it cannot be a place name (digits, symbols, too short or long)."""
    value = " ".join(text.split())
    if not PLACE_MIN <= len(value) <= PLACE_MAX or not _PLACE.match(value):
        return None
    return " ".join(w if w.isupper() and len(w) > 1 else w[:1].upper() + w[1:].lower()
                    for w in value.split())


def clean_description(text: str) -> str | None:
    """A short description of the business: 10-300 characters, mostly words."""
    value = " ".join(text.split())
    letters = sum(ch.isalpha() for ch in value)
    if not DESCRIPTION_MIN <= len(value) <= DESCRIPTION_MAX or letters < 0.5 * len(value):
        return None
    return value


@dataclass(frozen=True)
class Duration:
    months: int | None
    key: str | None = None  # the hint when months is None


def _amount(text: str) -> float | None:
    """A number of units: ASCII digits with an optional decimal part ("1,5"), at most
    AMOUNT_DIGITS digits before the comma (so no "NaN", "inf" or 400 nines)."""
    whole, _, fraction = text.replace(",", ".").partition(".")
    if not is_ascii_digits(whole) or len(whole) > AMOUNT_DIGITS:
        return None
    if fraction and (not is_ascii_digits(fraction) or len(fraction) > 2):
        return None
    return float(f"{whole}.{fraction or 0}")


def parse_months(text: str) -> Duration:
    """How long the business has run, in months: "8", "8 bulan", "2 tahun", "1,5 thn",
    "setahun", "dua tahun", "3 minggu" (under a month -> 0)."""
    value = " ".join(fold_digits(text).casefold().strip(" .!").split())
    both = _YEARS_AND_MONTHS.match(value)
    if both:
        if len(both[1]) > AMOUNT_DIGITS or len(both[2]) > AMOUNT_DIGITS:
            return Duration(None, "months_too_many")
        months = int(both[1]) * 12 + int(both[2])
        return Duration(months) if months <= MONTHS_MAX else Duration(None, "months_too_many")
    match = _DURATION.match(value)
    if not match or not match[1]:
        return Duration(None, "months_unreadable")
    amount_text, unit = match[1], match[2] or "bulan"
    if amount_text in ("sebulan", "setahun"):
        amount, unit = 1.0, ("bulan" if amount_text == "sebulan" else "tahun")
    elif amount_text in _MONTH_WORDS:
        amount = float(_MONTH_WORDS[amount_text])
    elif amount_text[:1].isalpha():
        return Duration(None, "months_unreadable")
    else:
        read = _amount(amount_text)
        if read is None:
            whole = amount_text.replace(",", ".").partition(".")[0]
            return Duration(None, "months_too_many" if len(whole) > AMOUNT_DIGITS
                            else "months_unreadable")
        amount = read
    if unit.startswith("t"):
        months = round(amount * 12)
    elif unit.startswith("m"):
        months = int(amount // 4)
    else:
        months = round(amount)
    if months > MONTHS_MAX:
        return Duration(None, "months_too_many")
    return Duration(months)
