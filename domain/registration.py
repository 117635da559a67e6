"""Registration rules without I/O: statuses and their allowed changes, numbers, and the
checks on the free-text answers (places, business description, months running)."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date

from domain.dates import month_number
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
# Withdrawn by the applicant (/hapus_data, issue 16): only from a registration still being
# processed, never set by an operator (so not in STATUSES, the operators' lifecycle, nor a
# target in TRANSITIONS); final. Like a rejection it no longer blocks the NIK.
WITHDRAWN = "ditarik"
WITHDRAWABLE = frozenset({SUBMITTED, VERIFIED})
TRANSITIONS[WITHDRAWN] = frozenset()
ALL_STATUSES = (*STATUSES, WITHDRAWN)


def can_withdraw(current: str) -> bool:
    """Whether the applicant may still withdraw a registration in status `current`."""
    return current in WITHDRAWABLE


REASON_MAX = 300  # registrations.alasan

NUMBER_RE = re.compile(r"^PRK-([0-9]{4})-([0-9]{6})$")

PLACE_MIN, PLACE_MAX = 3, 60
DESCRIPTION_MIN, DESCRIPTION_MAX = 10, 300
MONTHS_MAX = 600
AMOUNT_DIGITS = 4  # "9999 bulan" is still read (and refused as too many); longer is not

_PLACE = re.compile(r"^[A-Za-z][A-Za-z .'\-/()]*$")
# Number words in durations ("dua tahun", "satu setengah tahun", "dua belas bulan").
_NUMBER_WORDS = {"nol": 0, "satu": 1, "dua": 2, "tiga": 3, "empat": 4, "lima": 5, "enam": 6,
                 "tujuh": 7, "delapan": 8, "sembilan": 9, "sepuluh": 10, "sebelas": 11}
# Units; "setahun", "sebulan", "seminggu" are one of a unit.
_UNITS = {"tahun": "y", "taun": "y", "thn": "y", "th": "y", "thun": "y", "tahunan": "y",
          "thnan": "y", "taunan": "y", "taon": "y", "taonan": "y", "year": "y", "years": "y",
          "bulan": "m", "bln": "m", "bl": "m", "bulanan": "m", "blnan": "m", "bulan an": "m",
          "month": "m", "months": "m",
          "minggu": "w", "mgg": "w", "mg": "w", "mingguan": "w", "pekan": "w",
          "hari": "d", "hr": "d"}
_ONE_OF = {"setahun": "y", "setaun": "y", "setaon": "y", "sethn": "y", "sebulan": "m",
           "sebln": "m", "seminggu": "w", "sehari": "d", "sepekan": "w"}
_MONTHS_PER = {"y": 12.0, "m": 1.0}
# Words around a duration that do not change it ("sudah", "baru", "setahun lebih").
_FILLERS = {"sudah", "udah", "udh", "sdh", "dah", "baru", "sekitar", "kurang", "lebih", "kira",
            "kira-kira", "kira2", "kurleb", "hampir", "lalu", "yang", "yg", "ini", "jalan",
            "berjalan", "usaha", "usahanya", "saya", "sy", "dan", "an", "±", "+", "lamanya",
            "selama", "sampai", "skrg", "sekarang", "kurang-lebih", "kl", "lbh", "lbih", "sktr",
            "ada", "kak", "bu", "pak", "dari", "lbh dari"}
_SINCE = re.compile(r"^(?:sudah\s+|udah\s+|sdh\s+)?(?:sejak|dari|mulai|semenjak|dr)\s+"
                    r"(?:(?:tahun|thn|th)\s+)?(?:([a-z]+)\s+)?([0-9]{4})$")
_YEAR_ONLY = re.compile(r"^(?:19|20)[0-9]{2}$")
_UNDER_A_MONTH = re.compile(r"^(?:kurang dari|belum(?: ada)?|blm(?: ada)?)\s+"
                            r"(?:sebulan|1 bulan|satu bulan|1 bln)$")

class StatusChangeError(ValueError):
    """A refused status change. `code` says why, for callers that explain it in their own
    words (the console): unknown_status, same_status, not_allowed, reason_required,
    not_found, stale; `current` is the registration's status when it is known."""

    def __init__(self, message: str, code: str = "not_allowed",
                 current: str | None = None) -> None:
        super().__init__(message)
        self.code = code
        self.current = current


def number(year: int, sequence: int) -> str:
    """PRK-2026-000123."""
    return f"PRK-{year}-{sequence:06d}"


def check_transition(current: str, new: str, reason: str | None) -> None:
    """Raise StatusChangeError with an English message for the operator CLI."""
    if new not in STATUSES:
        raise StatusChangeError(f"unknown status {new!r}; use one of {', '.join(STATUSES)}",
                                "unknown_status", current)
    if new == current:
        raise StatusChangeError(f"the registration is already {current!r}", "same_status",
                                current)
    if new not in TRANSITIONS[current]:
        allowed = ", ".join(sorted(TRANSITIONS[current])) or "none (final status)"
        raise StatusChangeError(f"cannot go from {current!r} to {new!r}; allowed: {allowed}",
                                "not_allowed", current)
    if new == REJECTED and not (reason and reason.strip()):
        raise StatusChangeError("a rejection needs --reason (it is shown to the applicant)",
                                "reason_required", current)
    if new == REJECTED and len(reason.strip()) > REASON_MAX:  # type: ignore[union-attr]
        raise StatusChangeError(f"the reason may have at most {REASON_MAX} characters",
                                "reason_too_long", current)


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
    values: dict[str, str] = field(default_factory=dict)  # what fills the hint


def _amount(text: str) -> float | None:
    """A number of units: ASCII digits with an optional decimal part ("1,5"), at most
    AMOUNT_DIGITS digits before the comma (so no "NaN", "inf" or 400 nines)."""
    whole, _, fraction = text.replace(",", ".").partition(".")
    if not is_ascii_digits(whole) or len(whole) > AMOUNT_DIGITS:
        return None
    if fraction and (not is_ascii_digits(fraction) or len(fraction) > 2):
        return None
    return float(f"{whole}.{fraction or 0}")


def _too_long(token: str) -> bool:
    whole = token.replace(",", ".").partition(".")[0]
    return is_ascii_digits(whole) and len(whole) > AMOUNT_DIGITS


def _since(match: re.Match[str], today: date | None) -> Duration:
    """"sejak 2020", "dari maret 2024": whole months from then until today."""
    if today is None:
        return Duration(None, "months_unreadable")
    year = int(match[2])
    month = month_number(match[1]) if match[1] else today.month
    if month is None or year > today.year or (year, month) > (today.year, today.month):
        return Duration(None, "months_unreadable")
    months = (today.year - year) * 12 + today.month - month
    return Duration(months) if months <= MONTHS_MAX else Duration(None, "months_too_many")


def _tokens(value: str) -> list[str]:
    """Words, with numbers split from units written together ("3thn", "1,5tahun")."""
    value = re.sub(r"([0-9])([a-z])", r"\1 \2", value)
    value = re.sub(r"([a-z±])([0-9])", r"\1 \2", value)
    words = value.replace("-an", " an").split()
    out: list[str] = []
    for word in words:
        if word == "belas" and out and out[-1] in _NUMBER_WORDS:
            out[-1] = str(_NUMBER_WORDS[out[-1]] + 10)
        elif word == "puluh" and out and out[-1] in _NUMBER_WORDS:
            out[-1] = str(_NUMBER_WORDS[out[-1]] * 10)
        else:
            out.append(word)
    return out


def parse_months(text: str, today: date | None = None) -> Duration:
    """How long the business has run, in months: "8 bulan", "2 tahun", "1,5 thn", "3 taun",
    "setahun lebih", "baru 3 bln", "satu setengah tahun", "1 tahun 3 bulan", "3 minggu"
    (under a month -> 0), "sejak 2020" (needs `today`). A bare number other than 0 ("3")
    asks for the unit: key "months_unit" with the number."""
    value = " ".join(fold_digits(text).casefold().strip(" .!").split())
    if _UNDER_A_MONTH.match(value):
        return Duration(0)
    since = _SINCE.match(value)
    if since:
        return _since(since, today)
    if today is not None and _YEAR_ONLY.match(value) and int(value) <= today.year:
        return _since(_SINCE.match(f"sejak {value}"), today)  # type: ignore[arg-type]
    total, pending, units, last_unit = 0.0, None, 0, None
    for token in _tokens(value):
        if token in _FILLERS:
            continue
        if token in _ONE_OF:
            if pending is not None:
                return Duration(None, "months_unreadable")
            pending, token = 1.0, {"y": "tahun", "m": "bulan", "w": "minggu",
                                   "d": "hari"}[_ONE_OF[token]]
        if token in _UNITS:
            if pending is None:
                return Duration(None, "months_unreadable")
            unit = _UNITS[token]
            if unit in _MONTHS_PER:
                total += pending * _MONTHS_PER[unit]
            elif unit == "w":
                total += pending // 4
            else:
                total += pending // 30
            pending, units, last_unit = None, units + 1, unit
            continue
        if token in ("setengah", "½"):
            if pending is None and last_unit in _MONTHS_PER:  # "2 tahun setengah"
                total += 0.5 * _MONTHS_PER[last_unit]
                last_unit = None
            else:
                pending = (pending or 0.0) + 0.5
            continue
        if pending is not None:
            return Duration(None, "months_unreadable")
        if token in _NUMBER_WORDS:
            pending = float(_NUMBER_WORDS[token])
            continue
        amount = _amount(token)
        if amount is None:
            return Duration(None, "months_too_many" if _too_long(token)
                            else "months_unreadable")
        pending = amount
    if pending is not None:
        if units:  # "1 tahun 3": the rest is months
            total += pending
        elif pending == 0:
            return Duration(0)
        else:
            shown = f"{pending:g}".replace(".", ",")
            return Duration(None, "months_unit", {"n": shown})
    elif not units:
        return Duration(None, "months_unreadable")
    months = round(total)
    if months > MONTHS_MAX:
        return Duration(None, "months_too_many")
    return Duration(months)
