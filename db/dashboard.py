"""Figures for the operators' dashboard (`/`): counts grouped in SQL, returned as plain
dataclasses, on SQLite and on PostgreSQL alike.

Days are calendar days in Jakarta (WIB, UTC+7 all year: Indonesia keeps no daylight saving),
although every timestamp is stored in UTC. The bucket is computed in SQL by `wib_day`
(SQLite: `date(substr(at, 1, 19), '+7 hours')`; PostgreSQL: `CAST((at AT TIME ZONE 'UTC')
+ INTERVAL '7 hours' AS DATE)`), and the rows are first narrowed to the window's UTC
instants, so an index on the timestamp serves the range. Missing days are filled with
zeros in Python (a few hundred small rows at most: the grouping is done by the database).

Region rule (`region_prefix`): a registration's region is the one its NIK was issued in,
i.e. the NIK's first digits: 2 = province, 4 = kabupaten/kota ("32.01" -> NIKs starting
with "3201"), 6 = kecamatan. A NIK holds no desa, so a prefix longer than 6 digits is
refused (ValueError). The masked NIK in the audit log keeps only 4 digits, so audit-based
figures (eligibility checks) are narrowed to the kabupaten at most (a 6-digit prefix counts
its whole kabupaten there). Figures that have no region (broadcasts, misunderstood turns)
take no prefix; `overview` leaves them out of a region-scoped dashboard.
"""

from __future__ import annotations

import threading
import time as _time
from collections import Counter
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time, timedelta
from typing import Any, Generic, TypeVar
from zoneinfo import ZoneInfo

from sqlalchemy import ColumnElement, Date, and_, distinct, func, select
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.orm import Session
from sqlalchemy.sql.functions import FunctionElement

from db.models import (
    AuditLog,
    HandoffTicket,
    NluMiss,
    OutboxItem,
    OutboxMessage,
    Registration,
)
from db.registrations import in_region
from domain import eligibility
from domain import registration as rules
from domain.nik import PROVINCES
from domain.numbers import is_ascii_digits

WIB = ZoneInfo("Asia/Jakarta")
WIB_OFFSET_HOURS = 7  # fixed since 1964; `wib_day` relies on it (SQLite knows no zones)
DEFAULT_DAYS = 90
MAX_DAYS = 3660
NIK_REGION_DIGITS = 6  # province + kabupaten/kota + kecamatan
MASKED_NIK_DIGITS = 4  # what domain.nik.mask keeps at the front

# Kode wilayah of the 38 provinces (Kepmendagri; names as in idn-area-data, ODbL).
PROVINCE_NAMES: dict[str, str] = {
    "11": "Aceh", "12": "Sumatera Utara", "13": "Sumatera Barat", "14": "Riau",
    "15": "Jambi", "16": "Sumatera Selatan", "17": "Bengkulu", "18": "Lampung",
    "19": "Kepulauan Bangka Belitung", "21": "Kepulauan Riau", "31": "DKI Jakarta",
    "32": "Jawa Barat", "33": "Jawa Tengah", "34": "DI Yogyakarta", "35": "Jawa Timur",
    "36": "Banten", "51": "Bali", "52": "Nusa Tenggara Barat", "53": "Nusa Tenggara Timur",
    "61": "Kalimantan Barat", "62": "Kalimantan Tengah", "63": "Kalimantan Selatan",
    "64": "Kalimantan Timur", "65": "Kalimantan Utara", "71": "Sulawesi Utara",
    "72": "Sulawesi Tengah", "73": "Sulawesi Selatan", "74": "Sulawesi Tenggara",
    "75": "Gorontalo", "76": "Sulawesi Barat", "81": "Maluku", "82": "Maluku Utara",
    "91": "Papua", "92": "Papua Barat", "93": "Papua Selatan", "94": "Papua Tengah",
    "95": "Papua Pegunungan", "96": "Papua Barat Daya",
}
STATUS_LABELS = {rules.SUBMITTED: "Diajukan", rules.VERIFIED: "Diverifikasi",
                 rules.ACCEPTED: "Diterima", rules.REJECTED: "Ditolak",
                 rules.WITHDRAWN: "Ditarik pemohon"}

# Eligibility checks: each NIK lookup made by the eligibility form (actions/identity.py
# audits it as "nik_lookup" with detail {"purpose": "eligibility"}; a name retry on the same
# NIK is "nik_lookup_retry" and is part of the same check, so it is not counted).
LOOKUP_ACTION = "nik_lookup"
ELIGIBILITY_PURPOSE = "eligibility"

# Turns the bot did not understand. Nothing writes this yet: see NOT_UNDERSTOOD_ACTION's
# proposal in the report of issue 13 (actions/dialogue.py would audit one row per such turn,
# actor "user:<id>", outcome = the intent: nlu_fallback, other, unknown_command, bad_input,
# nlu_unavailable). An NLU outage is not a misunderstanding, so it is left out by default.
NOT_UNDERSTOOD_ACTION = "not_understood"
NOT_UNDERSTOOD_OUTCOMES = ("nlu_fallback", "other", "unknown_command", "bad_input")

BROADCAST = "broadcast"
# Outbox states grouped for people (outbox/store.py has the full life cycle).
DELIVERY_GROUPS: dict[str, tuple[str, ...]] = {
    "sent": ("sent",),
    "pending": ("pending", "claimed", "sending"),
    "failed": ("failed", "blocked"),
    "uncertain": ("uncertain",),
    "cancelled": ("cancelled", "expired"),
}
DELIVERY_LABELS = {"sent": "Terkirim", "pending": "Menunggu", "failed": "Gagal",
                   "uncertain": "Tidak pasti", "cancelled": "Dibatalkan/kedaluwarsa"}


# ---------------------------------------------------------------------- results
@dataclass(frozen=True)
class DayCount:
    day: date  # a calendar day in WIB
    count: int


@dataclass(frozen=True)
class Category:
    key: str  # status, bidang_usaha or 2-digit province code
    label: str  # Indonesian, for the chart
    count: int


@dataclass(frozen=True)
class MissDay:
    day: date
    turns: int  # turns not understood
    conversations: int  # distinct users with at least one such turn that day


class _States:
    """Outbox rows per raw state (`states`), their total and their DELIVERY_GROUPS."""

    states: dict[str, int]

    @property
    def total(self) -> int:
        return sum(self.states.values())

    @property
    def groups(self) -> dict[str, int]:
        """Counts per DELIVERY_GROUPS key (sent, pending, failed, uncertain, cancelled)."""
        return {group: sum(self.states.get(s, 0) for s in members)
                for group, members in DELIVERY_GROUPS.items()}


@dataclass(frozen=True)
class BroadcastDelivery(_States):
    """One broadcast and where its deliveries stand."""

    message_id: int
    created_at: datetime  # UTC
    created_by: str
    reference: str | None  # the audience ("registrants:diterima", "mentor:3", ...)
    states: dict[str, int]  # raw outbox states -> rows


@dataclass(frozen=True)
class DeliveryDay(_States):
    day: date
    states: dict[str, int] = field(default_factory=dict)  # raw outbox states -> rows


@dataclass(frozen=True)
class Dashboard:
    """Everything the dashboard page shows, from one call."""

    days: int
    region_prefix: str | None
    registrations_per_day: list[DayCount]
    per_status: list[Category]
    per_field: list[Category]
    per_province: list[Category]
    eligibility_checks_per_day: list[DayCount]
    broadcasts: list[BroadcastDelivery]
    deliveries_per_day: list[DeliveryDay]
    not_understood_per_day: list[MissDay]
    handoff: HandoffFigures | None = None       # talking to a person (issue 14)
    nlu_review: ReviewCounts | None = None      # not-understood messages and their review


# Outcomes of a closed handoff: db.handoff_inbox.OUTCOMES (operators pick one) and the
# chat side's (db.handoff: the user ended it, cancelled or never wrote the question, or no
# operator answered within 3 working days).
HANDOFF_OUTCOME_LABELS = {
    "selesai": "Selesai", "dirujuk": "Dirujuk", "tidak_ada_respons": "Tidak ada respons",
    "spam": "Spam", "ended_by_user": "Diakhiri pengguna", "cancelled": "Dibatalkan pengguna",
    "abandoned": "Tanpa pertanyaan", "no_answer": "Tak terjawab (3 hari kerja)",
}


@dataclass(frozen=True)
class HandoffFigures:
    """Handoff tickets: open now, the median time to an operator's first answer (tickets
    created in the window) and the closed tickets of the window per outcome."""

    waiting: int
    assigned: int
    median_first_response: timedelta | None
    answered: int                      # tickets of the window with a first answer
    per_outcome: list[Category]

    @property
    def open(self) -> int:
        return self.waiting + self.assigned


@dataclass(frozen=True)
class ReviewCounts:
    """Messages kept for review (table nlu_misses) per review status."""

    new: int
    labelled: int
    discarded: int

    @property
    def total(self) -> int:
        return self.new + self.labelled + self.discarded

    @property
    def reviewed(self) -> int:
        return self.labelled + self.discarded

    @property
    def share_reviewed(self) -> float | None:
        return self.reviewed / self.total if self.total else None


# ---------------------------------------------------------------------- SQL helpers
class wib_day(FunctionElement):  # noqa: N801 - reads as a SQL function
    """The WIB calendar day of a UTC timestamp column, as a DATE."""

    type = Date()
    inherit_cache = True
    name = "wib_day"


@compiles(wib_day)
def _wib_day_default(element, compiler, **kw) -> str:  # PostgreSQL and other servers
    column = compiler.process(element.clauses, **kw)
    return (f"CAST(({column} AT TIME ZONE 'UTC') + INTERVAL '{WIB_OFFSET_HOURS} hours' "
            "AS DATE)")


@compiles(wib_day, "sqlite")
def _wib_day_sqlite(element, compiler, **kw) -> str:
    column = compiler.process(element.clauses, **kw)
    # Whole seconds: SQLite rounds fractions to milliseconds, so 16:59:59.9999 UTC would
    # otherwise fall on the next WIB day.
    return f"date(substr({column}, 1, 19), '+{WIB_OFFSET_HOURS} hours')"


def _as_date(value: Any) -> date:
    """A day from the database: a date (PostgreSQL, SQLite through the Date type) or text."""
    if isinstance(value, datetime):
        return value.date()
    if isinstance(value, date):
        return value
    return date.fromisoformat(str(value)[:10])


def today_wib(now: datetime | None = None) -> date:
    """The calendar day in Jakarta at `now` (default: the current instant)."""
    return (now or datetime.now(UTC)).astimezone(WIB).date()


def wib_midnight(day: date) -> datetime:
    """The UTC instant at which `day` begins in Jakarta."""
    return datetime.combine(day, time(0), WIB).astimezone(UTC)


def window(days: int, today: date | None = None) -> tuple[list[date], datetime, datetime]:
    """The last `days` WIB days ending with `today`, and their UTC bounds [start, end)."""
    if not 1 <= days <= MAX_DAYS:
        raise ValueError(f"days must be 1..{MAX_DAYS}, not {days}")
    last = today or today_wib()
    first = last - timedelta(days=days - 1)
    dates = [first + timedelta(days=i) for i in range(days)]
    return dates, wib_midnight(first), wib_midnight(last + timedelta(days=1))


def region_digits(region_prefix: str | None) -> str | None:
    """"32.01" -> "3201"; None or "" -> None. Raises ValueError for anything that is not a
    2..6-digit region code with a known province (see the module's region rule)."""
    if region_prefix is None or not region_prefix.strip():
        return None
    digits = region_prefix.strip().replace(".", "")
    if not is_ascii_digits(digits) or not 2 <= len(digits) <= NIK_REGION_DIGITS \
            or int(digits[:2]) not in PROVINCES:
        raise ValueError(f"region prefix must be 2-{NIK_REGION_DIGITS} digits of a known "
                         f"province (e.g. 32.01), not {region_prefix!r}")
    return digits


def region_clause(region_prefix: str | None) -> ColumnElement[bool] | None:
    """The WHERE clause limiting registrations to a region (by the registration's region
    code, a range the kode_wilayah index serves), or None."""
    digits = region_digits(region_prefix)
    if digits is None:
        return None
    return in_region(digits)


def _registrations(region_prefix: str | None, *extra: ColumnElement[bool]) -> list:
    clause = region_clause(region_prefix)
    return [*extra] + ([clause] if clause is not None else [])


def _fill(dates: list[date], counts: dict[date, int]) -> list[DayCount]:
    return [DayCount(d, int(counts.get(d, 0))) for d in dates]


# ---------------------------------------------------------------------- registrations
def registrations_per_day(session: Session, days: int = DEFAULT_DAYS, *,
                          region_prefix: str | None = None,
                          today: date | None = None) -> list[DayCount]:
    """Registrations submitted per WIB day over the last `days` days, zero-filled."""
    dates, start, end = window(days, today)
    bucket = wib_day(Registration.created_at)
    stmt = (select(bucket, func.count())
            .where(*_registrations(region_prefix, Registration.created_at >= start,
                                   Registration.created_at < end))
            .group_by(bucket))
    return _fill(dates, {_as_date(d): n for d, n in session.execute(stmt)})


def _since(days: int | None, today: date | None) -> list[ColumnElement[bool]]:
    if days is None:
        return []
    _, start, end = window(days, today)
    return [Registration.created_at >= start, Registration.created_at < end]


def _status_categories(counts: dict[str, int]) -> list[Category]:
    counts = dict(counts)
    known = [Category(s, STATUS_LABELS[s], int(counts.pop(s, 0))) for s in rules.STATUSES]
    return known + [Category(s, STATUS_LABELS.get(s, s), int(n)) for s, n in sorted(counts.items())]


def field_label(key: str) -> str:
    """A default Indonesian label for a bidang_usaha key ("budi_daya_pertanian" ->
    "Budi daya pertanian"); the console may pass its own (the texts' `sector/<key>`)."""
    return key.replace("_", " ").strip().capitalize() or "-"


def _field_categories(counts: dict[str, int], label: Callable[[str], str]) -> list[Category]:
    keys = list(eligibility.SECTORS) + sorted(k for k in counts if k not in eligibility.SECTORS)
    rows = [Category(k, label(k), int(counts.get(k, 0))) for k in keys]
    return sorted(rows, key=lambda c: -c.count)  # stable: ties keep the fields' order


def province_name(code: str) -> str:
    return PROVINCE_NAMES.get(code, f"Kode {code}")


def _province_categories(counts: dict[str, int]) -> list[Category]:
    rows = [Category(c, province_name(c), int(n)) for c, n in counts.items() if n]
    return sorted(rows, key=lambda c: (-c.count, c.key))


def _province_code():
    return func.substr(Registration.kode_wilayah, 1, 2)


def _count_by(session: Session, column, where: list) -> dict[str, int]:
    stmt = select(column, func.count()).where(*where).group_by(column)
    return {str(key): int(n) for key, n in session.execute(stmt)}


def registrations_per_status(session: Session, *, region_prefix: str | None = None,
                             days: int | None = None,
                             today: date | None = None) -> list[Category]:
    """Registrations per status in life-cycle order, every status present (zero-filled);
    all time, or those submitted in the last `days` days."""
    where = _registrations(region_prefix, *_since(days, today))
    return _status_categories(_count_by(session, Registration.status, where))


def registrations_per_field(session: Session, *, region_prefix: str | None = None,
                            days: int | None = None, today: date | None = None,
                            label: Callable[[str], str] = field_label) -> list[Category]:
    """Registrations per business field (bidang_usaha): the seven fields always (zero-filled),
    then any other stored value (e.g. "perlu_dinilai"); largest first."""
    where = _registrations(region_prefix, *_since(days, today))
    return _field_categories(_count_by(session, Registration.bidang_usaha, where), label)


def registrations_per_province(session: Session, *, region_prefix: str | None = None,
                               days: int | None = None,
                               today: date | None = None) -> list[Category]:
    """Registrations per province (the NIK's first two digits), largest first; provinces
    without registrations are left out (38 mostly-empty bars help nobody)."""
    where = _registrations(region_prefix, *_since(days, today))
    return _province_categories(_count_by(session, _province_code(), where))


@dataclass(frozen=True)
class Breakdown:
    per_status: list[Category]
    per_field: list[Category]
    per_province: list[Category]


def registration_breakdown(session: Session, *, region_prefix: str | None = None,
                           days: int | None = None, today: date | None = None,
                           label: Callable[[str], str] = field_label) -> Breakdown:
    """The three breakdowns above from one scan: the database groups by (status, field,
    province), at most a few thousand rows, which are then summed per dimension."""
    code = _province_code()
    stmt = (select(Registration.status, Registration.bidang_usaha, code, func.count())
            .where(*_registrations(region_prefix, *_since(days, today)))
            .group_by(Registration.status, Registration.bidang_usaha, code))
    statuses: Counter[str] = Counter()
    fields: Counter[str] = Counter()
    provinces: Counter[str] = Counter()
    for status, field_key, province, n in session.execute(stmt):
        statuses[str(status)] += n
        fields[str(field_key)] += n
        provinces[str(province)] += n
    return Breakdown(_status_categories(statuses), _field_categories(fields, label),
                     _province_categories(provinces))


# ---------------------------------------------------------------------- audit-based
def _audit_day_counts(session: Session, action: str, dates: list[date], start: datetime,
                      end: datetime, *where: ColumnElement[bool],
                      distinct_actor: bool = False) -> dict[date, tuple[int, int]]:
    bucket = wib_day(AuditLog.at)
    actors = func.count(distinct(AuditLog.actor)) if distinct_actor else func.count()
    stmt = (select(bucket, func.count(), actors)
            .where(AuditLog.action == action, AuditLog.at >= start, AuditLog.at < end, *where)
            .group_by(bucket))
    return {_as_date(d): (int(n), int(a)) for d, n, a in session.execute(stmt)}


def eligibility_checks_per_day(session: Session, days: int = DEFAULT_DAYS, *,
                               region_prefix: str | None = None,
                               today: date | None = None) -> list[DayCount]:
    """Eligibility checks per WIB day (each NIK looked up by the check form), zero-filled.
    A region narrows by the masked NIK's first digits (4 at most, see the module doc)."""
    dates, start, end = window(days, today)
    where = [AuditLog.detail["purpose"].as_string() == ELIGIBILITY_PURPOSE]
    digits = region_digits(region_prefix)
    if digits is not None:
        where.append(AuditLog.subject.startswith(digits[:MASKED_NIK_DIGITS], autoescape=True))
    counts = _audit_day_counts(session, LOOKUP_ACTION, dates, start, end, *where)
    return [DayCount(d, counts.get(d, (0, 0))[0]) for d in dates]


def not_understood_per_day(session: Session, days: int = DEFAULT_DAYS, *,
                           today: date | None = None,
                           outcomes: Iterable[str] = NOT_UNDERSTOOD_OUTCOMES) -> list[MissDay]:
    """Turns the bot did not understand per WIB day, and how many users had one, from the
    audit rows NOT_UNDERSTOOD_ACTION (all zeros until the dialogue writes them)."""
    dates, start, end = window(days, today)
    counts = _audit_day_counts(session, NOT_UNDERSTOOD_ACTION, dates, start, end,
                               AuditLog.outcome.in_(list(outcomes)), distinct_actor=True)
    return [MissDay(d, *counts.get(d, (0, 0))) for d in dates]


# ---------------------------------------------------------------------- handoff, review
def median(values: list[timedelta]) -> timedelta | None:
    if not values:
        return None
    ordered = sorted(values)
    middle = len(ordered) // 2
    if len(ordered) % 2:
        return ordered[middle]
    return (ordered[middle - 1] + ordered[middle]) / 2


def handoff_figures(session: Session, days: int = DEFAULT_DAYS, *,
                    region_prefix: str | None = None,
                    today: date | None = None) -> HandoffFigures:
    """Open tickets now, the median first response of the window's tickets, and the
    window's closed tickets per outcome; a region narrows by the ticket's kode_wilayah."""
    _, start, end = window(days, today)
    digits = region_digits(region_prefix)
    where = ([HandoffTicket.kode_wilayah.startswith(digits, autoescape=True)]
             if digits else [])
    open_counts = dict(session.execute(
        select(HandoffTicket.status, func.count())
        .where(HandoffTicket.status.in_(("waiting", "assigned")), *where)
        .group_by(HandoffTicket.status)).all())
    waits = [first - created for created, first in session.execute(
        select(HandoffTicket.created_at, HandoffTicket.first_response_at)
        .where(HandoffTicket.first_response_at.is_not(None),
               HandoffTicket.created_at >= start, HandoffTicket.created_at < end, *where))]
    outcomes = _count_by(session, func.coalesce(HandoffTicket.outcome, "lainnya"), [
        HandoffTicket.status == "closed", HandoffTicket.closed_at >= start,
        HandoffTicket.closed_at < end, *where])
    per_outcome = sorted((Category(key, HANDOFF_OUTCOME_LABELS.get(key, key), count)
                          for key, count in outcomes.items()),
                         key=lambda c: (-c.count, c.key))
    return HandoffFigures(int(open_counts.get("waiting", 0)),
                          int(open_counts.get("assigned", 0)), median(waits), len(waits),
                          per_outcome)


def review_counts(session: Session) -> ReviewCounts:
    """Not-understood messages kept for review, per status (new, labelled, discarded)."""
    counts = dict(session.execute(select(NluMiss.status, func.count())
                                  .group_by(NluMiss.status)).all())
    return ReviewCounts(int(counts.get("new", 0)), int(counts.get("labelled", 0)),
                        int(counts.get("discarded", 0)))


# ---------------------------------------------------------------------- broadcasts
def broadcast_deliveries(session: Session, limit: int = 10) -> list[BroadcastDelivery]:
    """The latest `limit` broadcasts, newest first, with their deliveries per outbox state."""
    latest = (select(OutboxMessage.id).where(OutboxMessage.kind == BROADCAST)
              .order_by(OutboxMessage.id.desc()).limit(max(1, limit)).subquery())
    messages = session.execute(
        select(OutboxMessage.id, OutboxMessage.created_at, OutboxMessage.created_by,
               OutboxMessage.reference)
        .where(OutboxMessage.id.in_(select(latest.c.id)))
        .order_by(OutboxMessage.id.desc())).all()
    if not messages:
        return []
    states: dict[int, dict[str, int]] = {m.id: {} for m in messages}
    for message_id, state, count in session.execute(
            select(OutboxItem.message_id, OutboxItem.state, func.count())
            .where(OutboxItem.message_id.in_(list(states)))
            .group_by(OutboxItem.message_id, OutboxItem.state)):
        states[message_id][state] = int(count)
    return [BroadcastDelivery(m.id, m.created_at, m.created_by, m.reference, states[m.id])
            for m in messages]


def deliveries_per_day(session: Session, days: int = 30, *, today: date | None = None,
                       kinds: Iterable[str] = (BROADCAST,)) -> list[DeliveryDay]:
    """Outbox rows of the given message kinds per WIB day and state, zero-filled. The day
    is when the row was last attempted, or, never attempted, when it was (or is) due."""
    dates, start, end = window(days, today)
    moment = func.coalesce(OutboxItem.attempted_at, OutboxItem.due_at)
    bucket = wib_day(moment)
    stmt = (select(bucket, OutboxItem.state, func.count())
            .join(OutboxMessage, OutboxMessage.id == OutboxItem.message_id)
            .where(OutboxMessage.kind.in_(list(kinds)),
                   and_(moment >= start, moment < end))
            .group_by(bucket, OutboxItem.state))
    per_day: dict[date, dict[str, int]] = {}
    for day, state, count in session.execute(stmt):
        per_day.setdefault(_as_date(day), {})[state] = int(count)
    return [DeliveryDay(d, per_day.get(d, {})) for d in dates]


# ---------------------------------------------------------------------- all at once
def overview(session: Session, days: int = DEFAULT_DAYS, *, region_prefix: str | None = None,
             today: date | None = None, broadcasts: int = 10, delivery_days: int = 30,
             field_labels: Callable[[str], str] = field_label) -> Dashboard:
    """Every figure of the dashboard. With a region (a verifier's scope) the registration
    and eligibility figures are narrowed, and the figures that have no region (broadcasts,
    misunderstood turns) are left empty rather than shown for the whole country."""
    today = today or today_wib()
    region_digits(region_prefix)  # refuse a bad prefix before any query
    scoped = region_prefix is not None and bool(region_prefix.strip())
    breakdown = registration_breakdown(session, region_prefix=region_prefix, label=field_labels)
    return Dashboard(
        days=days,
        region_prefix=region_prefix,
        registrations_per_day=registrations_per_day(session, days, region_prefix=region_prefix,
                                                    today=today),
        per_status=breakdown.per_status,
        per_field=breakdown.per_field,
        per_province=breakdown.per_province,
        eligibility_checks_per_day=eligibility_checks_per_day(
            session, days, region_prefix=region_prefix, today=today),
        broadcasts=[] if scoped else broadcast_deliveries(session, broadcasts),
        deliveries_per_day=[] if scoped else deliveries_per_day(session, delivery_days,
                                                                 today=today),
        not_understood_per_day=[] if scoped else not_understood_per_day(session, days,
                                                                         today=today),
        handoff=handoff_figures(session, days, region_prefix=region_prefix, today=today),
        nlu_review=None if scoped else review_counts(session),
    )


# ---------------------------------------------------------------------- cache
T = TypeVar("T")


class TTLCache(Generic[T]):
    """Recently computed figures, kept `ttl` seconds per key (for the dashboard: (days,
    region, WIB day)). The figures move slowly, and when many operators open `/` at once
    the first computes and the others wait for its result (one computation per key, not
    one per request). Thread-safe; call it from worker threads, as the blocking database
    code runs there anyway."""

    def __init__(self, ttl: float = 60.0, max_entries: int = 256,
                 clock: Callable[[], float] = _time.monotonic) -> None:
        self.ttl, self.max_entries, self.clock = ttl, max_entries, clock
        self._lock = threading.Lock()
        self._entries: dict[Hashable, tuple[float, T]] = {}
        self._computing: dict[Hashable, threading.Lock] = {}

    def _fresh(self, key: Hashable) -> tuple[float, T] | None:
        entry = self._entries.get(key)
        return entry if entry is not None and entry[0] > self.clock() else None

    def get(self, key: Hashable, compute: Callable[[], T]) -> T:
        """The cached value for `key`, or `compute()`'s (stored; an exception is not)."""
        with self._lock:
            entry = self._fresh(key)
            if entry is not None:
                return entry[1]
            key_lock = self._computing.setdefault(key, threading.Lock())
        with key_lock:
            with self._lock:
                entry = self._fresh(key)
                if entry is not None:
                    return entry[1]
            value = compute()
            with self._lock:
                if len(self._entries) >= self.max_entries:
                    now = self.clock()
                    for old in [k for k, (until, _) in self._entries.items() if until <= now]:
                        del self._entries[old]
                    while len(self._entries) >= self.max_entries:
                        del self._entries[next(iter(self._entries))]  # the oldest
                self._entries[key] = (self.clock() + self.ttl, value)
                self._computing.pop(key, None)
            return value

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()
