"""Dates as Indonesians write them: "12-03-1990", "12/3/90", "12 Maret 1990", "12 mar 1990",
"1990-03-12", "120390", "tgl 12 bln 3 thn 1990"; and dates written back in Indonesian
("12 Maret 1990", "Sabtu, 28 November 2026")."""

from __future__ import annotations

import re
from datetime import date

from domain.numbers import fold_digits

MONTHS = ("Januari", "Februari", "Maret", "April", "Mei", "Juni", "Juli", "Agustus",
          "September", "Oktober", "November", "Desember")
DAYS = ("Senin", "Selasa", "Rabu", "Kamis", "Jumat", "Sabtu", "Minggu")

# Month words people type, including short forms and English/Javanese habits.
_MONTH_WORDS = {
    **{name.casefold(): i for i, name in enumerate(MONTHS, start=1)},
    **{name.casefold()[:3]: i for i, name in enumerate(MONTHS, start=1)},
    "agt": 8, "agu": 8, "sept": 9, "des": 12, "nop": 11, "nopember": 11, "pebruari": 2,
    "peb": 2, "feb": 2, "okt": 10, "may": 5, "aug": 8, "oct": 10, "dec": 12, "jun": 6,
    "jul": 7, "juli": 7,
}
_NUMERIC = re.compile(r"^([0-9]{1,2})[\s./-]+([0-9]{1,2})[\s./-]+([0-9]{2}|[0-9]{4})$")
_WORDS = re.compile(r"^([0-9]{1,2})[\s./-]*([a-z]+)[\s./-]*([0-9]{2}|[0-9]{4})$")
_COMPACT = re.compile(r"^([0-9]{2})([0-9]{2})([0-9]{4}|[0-9]{2})$")  # 12031990, 120390
_ISO = re.compile(r"^([0-9]{4})[./-]([0-9]{1,2})[./-]([0-9]{1,2})$")  # 1990-03-12
# Words around or inside a date that carry nothing: "tgl lahir sy 12 bln 3 thn 1990".
_FILLERS = re.compile(r"\b(?:tanggal|tgl|tg|lahir|lhr|ttl|saya|sy|aku|pada|bulan|bln|bl|tahun|"
                      r"thn|th)\b\.?")


class DateError(ValueError):
    """A date we cannot read: `key` names the Indonesian hint."""

    def __init__(self, key: str) -> None:
        super().__init__(key)
        self.key = key


def month_number(word: str) -> int | None:
    """1-12 for a month word people type ("maret", "mar", "agt"), else None."""
    return _MONTH_WORDS.get(word.casefold())


def _year(text: str, today: date) -> int:
    year = int(text)
    if len(text) == 2:  # 90 -> 1990, 05 -> 2005 (never in the future)
        year += 2000 if 2000 + year <= today.year else 1900
    return year


def parse_birth_date(text: str, today: date) -> date:
    """Read a birth date; it must be a real date, in the past, and not absurdly old."""
    value = fold_digits(text).casefold().replace(",", " ").replace(":", " ")
    value = " ".join(_FILLERS.sub(" ", value).split()).strip(" .")
    match = _NUMERIC.match(value) or _COMPACT.match(value)
    iso = _ISO.match(value)
    if iso:
        day, month, year = int(iso[3]), int(iso[2]), int(iso[1])
    elif match:
        day, month, year = int(match[1]), int(match[2]), _year(match[3], today)
    else:
        match = _WORDS.match(value)
        if not match or match[2] not in _MONTH_WORDS:
            raise DateError("date_unreadable")
        day, month, year = int(match[1]), _MONTH_WORDS[match[2]], _year(match[3], today)
    try:
        born = date(year, month, day)
    except ValueError as exc:
        raise DateError("date_impossible") from exc
    if born >= today:
        raise DateError("date_future")
    if today.year - born.year > 100:
        raise DateError("date_too_old")
    return born


def indonesian(day: date, weekday: bool = False) -> str:
    """"12 Maret 1990", or with weekday "Kamis, 12 Maret 1990"."""
    text = f"{day.day} {MONTHS[day.month - 1]} {day.year}"
    return f"{DAYS[day.weekday()]}, {text}" if weekday else text
