"""Mentoring sessions: reading the date and time a mentor types, and when reminders go out
(the day before and 2 hours before)."""

from __future__ import annotations

import re
from datetime import date, datetime, time, timedelta
from zoneinfo import ZoneInfo

from domain.dates import _MONTH_WORDS, DateError

REMINDERS: dict[str, timedelta] = {"h-1": timedelta(days=1), "h-2j": timedelta(hours=2)}
MAX_AHEAD_DAYS = 366

_DATE_NUMERIC = re.compile(r"^(\d{1,2})[\s./-]+(\d{1,2})(?:[\s./-]+(\d{2}|\d{4}))?$")
_DATE_WORDS = re.compile(r"^(?:[a-z]+,?\s+)?(\d{1,2})\s+([a-z]+)(?:\s+(\d{4}))?$")
_TIME = re.compile(r"^(?:jam\s+|pukul\s+|pkl\.?\s*)?(\d{1,2})(?:[.:](\d{2}))?"
                   r"(?:\s*(pagi|siang|sore|malam))?(?:\s*(wib|wita|wit))?$")


def parse_session_date(text: str, today: date) -> date:
    """"5-12-2026", "5/12", "5 Desember", "Sabtu, 5 Desember 2026"; today or later, at most a
    year ahead. A date without a year means the next such day."""
    value = " ".join(text.casefold().replace(",", " ").split())
    match = _DATE_NUMERIC.match(value)
    if match:
        day, month, year_text = int(match[1]), int(match[2]), match[3]
    else:
        match = _DATE_WORDS.match(value)
        if not match or match[2] not in _MONTH_WORDS:
            raise DateError("session_date_unreadable")
        day, month, year_text = int(match[1]), _MONTH_WORDS[match[2]], match[3]
    year = (int(year_text) + (2000 if len(year_text) == 2 else 0)) if year_text else today.year
    try:
        result = date(year, month, day)
        if not year_text and result < today:
            result = date(year + 1, month, day)
    except ValueError as exc:
        raise DateError("date_impossible") from exc
    if result < today:
        raise DateError("session_date_past")
    if (result - today).days > MAX_AHEAD_DAYS:
        raise DateError("session_date_far")
    return result


def parse_session_time(text: str) -> time:
    """"09.00", "9:30", "jam 9", "pukul 14.00", "jam 2 siang", "7 malam" (local time)."""
    match = _TIME.match(" ".join(text.casefold().split()))
    if not match:
        raise DateError("session_time_unreadable")
    hour, minute, part = int(match[1]), int(match[2] or 0), match[3]
    if part in ("siang", "sore", "malam") and hour < 12 and not (part == "siang" and hour >= 11):
        hour += 12
    if not (0 <= hour <= 23 and 0 <= minute <= 59):
        raise DateError("session_time_unreadable")
    return time(hour, minute)


def starts_at(day: date, at: time, zone: ZoneInfo) -> datetime:
    return datetime.combine(day, at, tzinfo=zone)


def reminder_times(start: datetime) -> dict[str, datetime]:
    """When each reminder is due (aware datetimes)."""
    return {kind: start - before for kind, before in REMINDERS.items()}
