"""Mentoring sessions: reading the date and time a mentor types, and when reminders go out
(the day before and 2 hours before)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain.dates import _MONTH_WORDS, DateError
from domain.numbers import fold_digits

REMINDERS: dict[str, timedelta] = {"h-1": timedelta(days=1), "h-2j": timedelta(hours=2)}
MAX_AHEAD_DAYS = 366

_DATE_NUMERIC = re.compile(r"^([0-9]{1,2})[\s./-]+([0-9]{1,2})"
                           r"(?:[\s./-]+([0-9]{2}|[0-9]{4}))?$")
_DATE_WORDS = re.compile(r"^(?:[a-z]+,?\s+)?([0-9]{1,2})\s+([a-z]+)(?:\s+([0-9]{4}))?$")
_TIME = re.compile(r"^(?:jam\s+|pukul\s+|pkl\.?\s*)?([0-9]{1,2})(?:[.:]([0-9]{2}))?"
                   r"(?:\s*(pagi|siang|sore|malam))?(?:\s*(wib|wita|wit))?$")
ZONE_NAMES = ("WIB", "WITA", "WIT")

# Days said relative to today, as mentors type them.
_RELATIVE = {"hari ini": 0, "hr ini": 0, "besok": 1, "bsk": 1, "besuk": 1, "esok": 1,
             "besok hari": 1, "lusa": 2, "kemarin": -1, "kemaren": -1, "kmrn": -1}
# Weekday names (weeks run Monday to Sunday), with common short forms.
_WEEKDAYS = {"senin": 0, "sen": 0, "selasa": 1, "sel": 1, "rabu": 2, "rab": 2, "kamis": 3,
             "kam": 3, "jumat": 4, "jum": 4, "jumaat": 4, "sabtu": 5, "sab": 5, "minggu": 6,
             "min": 6, "ahad": 6}
_WEEK = r"(?:minggu|pekan|mgg)"
_WEEKDAY = re.compile(rf"^(?:(hari|hr)\s+)?({'|'.join(_WEEKDAYS)})"
                      rf"(?:\s+(depan|besok|ini|{_WEEK}\s+depan|{_WEEK}\s+ini))?$")
# "minggu depan" alone means next week more often than next Sunday: ask for the day.
_WHICH_WEEK = re.compile(rf"^{_WEEK}\s+(?:depan|ini|besok)$")
# "hari sabtu tgl 5 des": the weekday and "tgl" before a date carry nothing.
_DATE_PREFIX = re.compile(rf"^(?:(?:hari|hr)\s+)?(?:(?:{'|'.join(_WEEKDAYS)})\s+)?"
                          r"(?:(tanggal|tgl|tg)\.?\s*)?")
_DAY_ONLY = re.compile(r"^[0-9]{1,2}$")


@dataclass(frozen=True)
class SessionTime:
    """A clock time and, when the mentor wrote one ("09.00 WIB"), its zone name."""

    at: time
    zone: str | None = None


def _clean(text: str) -> str:
    """Casefolded, single-spaced, with digits of any script as ASCII."""
    return " ".join(fold_digits(text).casefold().replace(",", " ").split())


def _hour_of_day(hour: int, part: str | None) -> int | None:
    """A 24-hour hour from "jam 7 malam", "jam 12 malam" (midnight), "jam 10 siang", "jam
    3 sore"; None when the words contradict each other ("jam 15 pagi")."""
    if part is None or hour > 12:
        return None if part == "pagi" and hour > 12 else hour
    if part == "pagi":
        return hour
    if part == "siang":
        return hour + 12 if hour <= 6 else hour  # 10-12 siang stay, 1-6 siang are 13-18
    if part == "sore":
        return hour + 12 if hour < 12 else hour
    # malam: 12 is midnight, 1-4 are the small hours, 5-11 the evening
    if hour == 12:
        return 0
    return hour if hour <= 4 else hour + 12


def _after(today: date, weekday: int, include_today: bool = False) -> date:
    """The next `weekday` (0 = Monday) after today, or from today on."""
    ahead = (weekday - today.weekday()) % 7
    return today + timedelta(days=ahead if ahead or include_today else 7)


def _day_of_month(day: int, today: date) -> date:
    """"tgl 5": the 5th of this month if still to come, else of the next month that has it."""
    if not 1 <= day <= 31:
        raise DateError("date_impossible")
    year, month = today.year, today.month
    for _ in range(13):
        try:
            result = date(year, month, day)
        except ValueError:
            result = None
        if result is not None and result >= today:
            return result
        year, month = (year + 1, 1) if month == 12 else (year, month + 1)
    raise DateError("date_impossible")  # pragma: no cover (every day 1-31 comes in a year)


def _weekday_date(match: re.Match[str], today: date) -> date:
    """"sabtu", "sabtu depan": the coming Saturday (never today: that is "hari ini");
    "sabtu ini": this Saturday, today included; "sabtu minggu depan": the Saturday of next
    week (weeks run Monday to Sunday); "sabtu minggu ini": the Saturday of this week."""
    weekday, when = _WEEKDAYS[match[2]], match[3] or ""
    if when.endswith(" depan") or when.endswith(" ini"):
        monday = today - timedelta(days=today.weekday())
        return monday + timedelta(days=weekday + (7 if when.endswith(" depan") else 0))
    return _after(today, weekday, include_today=when == "ini")


def _calendar_date(value: str, today: date) -> date:
    """"5-12-2026", "5/12", "5 Desember", "tgl 5", "Sabtu, 5 Desember 2026"."""
    prefix = _DATE_PREFIX.match(value)
    rest = value[prefix.end():] if prefix else value
    if prefix and prefix[1] and _DAY_ONLY.match(rest):
        return _day_of_month(int(rest), today)
    match = _DATE_NUMERIC.match(rest)
    if match:
        day, month, year_text = int(match[1]), int(match[2]), match[3]
    else:
        match = _DATE_WORDS.match(rest)
        if not match or match[2] not in _MONTH_WORDS:
            raise DateError("session_date_unclear")
        day, month, year_text = int(match[1]), _MONTH_WORDS[match[2]], match[3]
    year = (int(year_text) + (2000 if len(year_text) == 2 else 0)) if year_text else today.year
    try:
        result = date(year, month, day)
        if not year_text and result < today:
            result = date(year + 1, month, day)
    except ValueError as exc:
        raise DateError("date_impossible") from exc
    return result


def parse_session_date(text: str, today: date) -> date:
    """A session date as mentors write it, from their local `today`: "besok", "lusa",
    "hari ini", "sabtu" / "sabtu depan" (the coming Saturday), "sabtu minggu depan" (the
    Saturday of next week), "tgl 5", "5 Des", "5/12", "5-12-2026", "Sabtu, 5 Desember 2026".
    Today or later, at most a year ahead; a date without a year means the next such day.
    "minggu depan" alone (next week, or next Sunday?) asks for the day."""
    value = _clean(text).replace("'", "").replace("\u2019", "").strip(" .!?")
    if value in _RELATIVE:
        result = today + timedelta(days=_RELATIVE[value])
    elif _WHICH_WEEK.match(value):
        raise DateError("session_date_week")
    elif match := _WEEKDAY.match(value):
        result = _weekday_date(match, today)
    else:
        result = _calendar_date(value, today)
    if result < today:
        raise DateError("session_date_past")
    if (result - today).days > MAX_AHEAD_DAYS:
        raise DateError("session_date_far")
    return result


def read_session_time(text: str) -> SessionTime:
    """"09.00", "9:30", "jam 9", "pukul 14.00", "jam 2 siang", "7 malam", "12 malam"
    (00.00), "09.00 WIB": the clock time and the zone written, if any."""
    match = _TIME.match(_clean(text))
    if not match:
        raise DateError("session_time_unreadable")
    hour = _hour_of_day(int(match[1]), match[3])
    minute = int(match[2] or 0)
    if hour is None or not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise DateError("session_time_unreadable")
    return SessionTime(time(hour, minute), match[4].upper() if match[4] else None)


def parse_session_time(text: str) -> time:
    """The clock time of `read_session_time` (the zone, if written, is not applied)."""
    return read_session_time(text).at


def starts_at(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone)


def reminder_times(start: datetime) -> dict[str, datetime]:
    """When each reminder is due (aware datetimes)."""
    return {kind: start - before for kind, before in REMINDERS.items()}
