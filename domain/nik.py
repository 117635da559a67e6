"""The Indonesian NIK: 16 digits = province (2) + kabupaten/kota (2) + kecamatan (2) of first
registration + birth date DDMMYY (women: day + 40) + serial (4, from 0001).

A NIK never changes, even when its embedded date is wrong, so a mismatch with a stated
birth date is a warning, never a rejection.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date

from domain.numbers import fold_digits, is_ascii_digits

PROVINCES = frozenset(
    [11, 12, 13, 14, 15, 16, 17, 18, 19, 21, 31, 32, 33, 34, 35, 36, 51, 52, 53,
     61, 62, 63, 64, 65, 71, 72, 73, 74, 75, 76, 81, 82, 91, 92, 93, 94, 95, 96]
)
_SEPARATORS = re.compile(r"[\s.\-]")
# Words people put before a NIK: "nik sy 3201...", "NIK: 3201...", "no ktp saya 3201...".
_LEAD_IN = re.compile(
    r"^(?:(?:ini|itu)\s+)?(?:(?:no|nomor|nomer|nmr)\b\.?\s*)?"
    r"(?:(?:nik|ktp|e-?ktp|nik\s+ktp|nomor\s+induk\s+kependudukan)(?:nya)?\b\.?\s*)"
    r"(?:(?:sy|saya|aku|ku|gw|gue)\b\s*)?(?:(?:adalah|yaitu|yakni)\b)?\s*[:=]?\s*",
    re.IGNORECASE)


class NikError(ValueError):
    """A NIK that cannot be right; `key` names the Indonesian hint, `values` fill it."""

    def __init__(self, key: str, **values: object) -> None:
        super().__init__(key)
        self.key = key
        self.values = values


@dataclass(frozen=True)
class Nik:
    value: str
    province: int
    female: bool
    day: int
    month: int
    yy: int

    def birth_dates(self) -> list[date]:
        """Possible birth dates (the century is not encoded): 19YY and/or 20YY."""
        out = []
        for century in (1900, 2000):
            try:
                out.append(date(century + self.yy, self.month, self.day))
            except ValueError:
                continue
        return out

    def matches_birth_date(self, born: date) -> bool:
        return (born.day, born.month, born.year % 100) == (self.day, self.month, self.yy)

    @property
    def masked(self) -> str:
        return f"{self.value[:4]}********{self.value[-4:]}"


def strip_lead_in(text: str) -> str:
    """The text without a lead-in such as "nik sy", "NIK:" or "no ktp saya" before it."""
    value = text.strip()
    rest = _LEAD_IN.sub("", value, count=1)
    return rest if rest[:1].isdigit() else value


def clean(text: str) -> str:
    """Drop a lead-in ("nik saya"), then the spaces, dots and dashes people type inside a
    NIK; digits of any script become ASCII (see domain.numbers)."""
    return _SEPARATORS.sub("", strip_lead_in(fold_digits(text.strip())))


def parse(text: str) -> Nik:
    """Check a NIK and return its parts; raise NikError with a precise hint."""
    value = clean(text)
    if not is_ascii_digits(value):
        raise NikError("nik_not_digits")
    if len(value) != 16:
        raise NikError("nik_length", got=len(value))
    province = int(value[0:2])
    if province not in PROVINCES:
        raise NikError("nik_province", code=value[0:2])
    if value[2:4] == "00" or value[4:6] == "00":
        raise NikError("nik_region")
    raw_day, month, yy = int(value[6:8]), int(value[8:10]), int(value[10:12])
    female = raw_day > 40
    day = raw_day - 40 if female else raw_day
    if not 1 <= month <= 12 or not 1 <= day <= 31 or 31 < raw_day < 41 or raw_day > 71:
        raise NikError("nik_date")
    nik = Nik(value, province, female, day, month, yy)
    if not nik.birth_dates():  # e.g. 30 February, or 29 February in no leap year
        raise NikError("nik_date")
    if value[12:16] == "0000":
        raise NikError("nik_serial")
    return nik


def mask(value: str) -> str:
    digits = clean(value)
    return f"{digits[:4]}********{digits[-4:]}" if len(digits) == 16 else "*" * len(digits)
