"""Indonesia's three time zones by province code (the first two digits of a kode wilayah):
WIB (UTC+7), WITA (UTC+8), WIT (UTC+9).

This module is the single source of the mapping. `prokus regions load` stores it on each
province of the regions table (`regions.zone`, read by db.regions.zone_of), and
tests/test_region_codes.py checks that every loaded province's stored zone equals
`zone_name` here, so the two always agree. Schedules and reminders call `zone` directly:
it is pure and needs no database (nor a loaded table)."""

from __future__ import annotations

from zoneinfo import ZoneInfo

from domain.numbers import ASCII_DIGITS, is_ascii_digits

# Bali, Nusa Tenggara, South/East/North Kalimantan, Sulawesi
_WITA = {51, 52, 53, 63, 64, 65, 71, 72, 73, 74, 75, 76}
_WIT = {81, 82, 91, 92, 93, 94, 95, 96}  # Maluku, Papua

ZONES = {"WIB": ZoneInfo("Asia/Jakarta"), "WITA": ZoneInfo("Asia/Makassar"),
         "WIT": ZoneInfo("Asia/Jayapura")}


def zone_name(region: str) -> str:
    """"WIB", "WITA" or "WIT" for a region code such as "3201" or "73.71"."""
    digits = "".join(ch for ch in region if ch in ASCII_DIGITS)
    province = int(digits[:2]) if len(digits) >= 2 else 0
    if province in _WIT:
        return "WIT"
    if province in _WITA:
        return "WITA"
    return "WIB"


def zone(region: str) -> ZoneInfo:
    return ZONES[zone_name(region)]


def valid_region(region: str) -> bool:
    """2 (province) to 10 (desa) digits, dots allowed, with a known province."""
    from domain.nik import PROVINCES

    digits = region.replace(".", "")
    return is_ascii_digits(digits) and 2 <= len(digits) <= 10 and int(digits[:2]) in PROVINCES
