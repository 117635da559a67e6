"""The verification queue's queries: filters, region scope, keyset pages, counts per status,
the detail (registry record, status history) and the streamed export rows.

Everything takes a `Filter` whose `scope` is the operator's region (kode wilayah digits, or
None for all): a verifier limited to 3201 never gets a row, a count, a detail or an export
line outside it, whatever else is asked. Pages are keyset pages over (created_at, id), so
page 500 costs what page 1 costs; the counts use the same conditions except the status.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Iterator
from dataclasses import dataclass, replace
from datetime import UTC, date, datetime, time, timedelta
from time import monotonic
from typing import Any

from sqlalchemy import ColumnElement, Select, false, func, select, tuple_
from sqlalchemy.orm import Session

from db import crypto, repo
from db.models import AuditLog, Kpm, Registration
from db.registrations import in_region
from domain import registration as rules
from domain.nik import mask as mask_nik
from domain.phone import mask as mask_phone
from domain.regions import ZONES

PAGE_SIZE = 50
WIB = ZONES["WIB"]
_DIGITS = re.compile(r"[0-9]{1,10}")
_CURSOR = re.compile(r"([0-9]{20})\.([0-9]{1,12})")


@dataclass(frozen=True)
class Filter:
    """What the queue shows. `region` is the prefix asked for, `scope` the operator's own
    region (both kode wilayah digits); `date_from`/`date_to` are WIB days, both included;
    `number` and `nik` are exact matches."""

    status: str | None = None
    region: str | None = None
    field: str | None = None
    date_from: date | None = None
    date_to: date | None = None
    number: str | None = None
    nik: str | None = None
    scope: str | None = None

    def without_status(self) -> Filter:
        return replace(self, status=None)


def region_prefix(wanted: str | None, scope: str | None) -> str | None | bool:
    """The one prefix to apply: the narrower of the asked region and the operator's scope,
    or False when they do not overlap (nothing may be shown)."""
    if not scope:
        return wanted
    if not wanted or wanted.startswith(scope):
        return wanted or scope
    if scope.startswith(wanted):
        return scope
    return False


def wib_start(day: date) -> datetime:
    """The first moment of a WIB day, in UTC."""
    return datetime.combine(day, time(0), WIB).astimezone(UTC)


def conditions(f: Filter) -> list[ColumnElement[bool]]:
    """The WHERE conditions of a filter (scope included)."""
    where: list[ColumnElement[bool]] = []
    prefix = region_prefix(f.region, f.scope)
    if prefix is False:
        return [false()]
    if prefix:
        where.append(in_region(str(prefix)))
    if f.status:
        where.append(Registration.status == f.status)
    if f.field:
        where.append(Registration.bidang_usaha == f.field)
    if f.date_from:
        where.append(Registration.created_at >= wib_start(f.date_from))
    if f.date_to:
        where.append(Registration.created_at < wib_start(f.date_to + timedelta(days=1)))
    if f.number:
        where.append(Registration.number == f.number)
    if f.nik:
        where.append(Registration.nik_hash.in_(crypto.blinds(f.nik)))
    return where


# ---------------------------------------------------------------------- pages
@dataclass(frozen=True)
class Page:
    rows: list[Registration]
    next: str | None     # cursor of the page after this one
    previous: str | None  # cursor of the page before


def cursor_of(registration: Registration) -> str:
    """A position in the queue: created_at (UTC, microseconds) and id."""
    moment = registration.created_at.astimezone(UTC)
    return f"{moment:%Y%m%d%H%M%S%f}.{registration.id}"


def parse_cursor(text: str | None) -> tuple[datetime, int] | None:
    if not text:
        return None
    found = _CURSOR.fullmatch(text)
    if not found:
        return None
    try:
        moment = datetime.strptime(found[1], "%Y%m%d%H%M%S%f").replace(tzinfo=UTC)
    except ValueError:
        return None
    return moment, int(found[2])


def page(session: Session, f: Filter, *, after: str | None = None, before: str | None = None,
         oldest_first: bool = False, size: int = PAGE_SIZE) -> Page:
    """One page of the queue, newest first (or oldest first). `after`: the page following
    that cursor; `before`: the page preceding it (in display order)."""
    position = parse_cursor(before) or parse_cursor(after)
    backward = parse_cursor(before) is not None
    ascending = oldest_first != backward  # the direction this query reads in
    key = tuple_(Registration.created_at, Registration.id)
    stmt = select(Registration).where(*conditions(f))
    if position is not None:
        stmt = stmt.where(key > tuple_(*position) if ascending else key < tuple_(*position))
    order = ((Registration.created_at.asc(), Registration.id.asc()) if ascending
             else (Registration.created_at.desc(), Registration.id.desc()))
    rows = list(session.scalars(stmt.order_by(*order).limit(size + 1)))
    more = len(rows) > size
    rows = rows[:size]
    if backward:
        rows.reverse()
        has_previous, has_next = more, True
    else:
        has_previous, has_next = position is not None, more
    return Page(rows, cursor_of(rows[-1]) if rows and has_next else None,
                cursor_of(rows[0]) if rows and has_previous else None)


def counts(session: Session, f: Filter) -> dict[str, int]:
    """Registrations per status for the filter without its status (every status listed)."""
    stmt = (select(Registration.status, func.count())
            .where(*conditions(f.without_status())).group_by(Registration.status))
    found = {status: 0 for status in rules.ALL_STATUSES}
    for status, count in session.execute(stmt):
        found[status] = found.get(status, 0) + count
    return found


class CountCache:
    """Counts per status for recent filters, kept `ttl` seconds (the queue's tabs, paging
    and status switches reuse them: the counts do not depend on the status or the page).
    One per console process; `clear()` after a status change made through it."""

    def __init__(self, ttl: float = 5.0, size: int = 512) -> None:
        self.ttl, self.size = ttl, size
        self._found: dict[Filter, tuple[float, dict[str, int]]] = {}
        self._lock = threading.Lock()

    def get(self, session: Session, f: Filter) -> dict[str, int]:
        key = f.without_status()
        moment = monotonic()
        with self._lock:
            hit = self._found.get(key)
        if hit is not None and moment - hit[0] < self.ttl:
            return dict(hit[1])
        found = counts(session, key)
        with self._lock:
            if len(self._found) >= self.size:
                self._found.clear()
            self._found[key] = (moment, found)
        return dict(found)

    def clear(self) -> None:
        with self._lock:
            self._found.clear()


# ---------------------------------------------------------------------- one registration
def find(session: Session, number: str, scope: str | None) -> Registration | None:
    """The registration with this number, if it is in the operator's scope."""
    stmt = select(Registration).where(Registration.number == number, in_region(scope))
    return session.scalars(stmt).first()


def registry_record(session: Session, nik: str) -> Kpm | None:
    return repo.find_kpm(session, nik)


@dataclass(frozen=True)
class Change:
    at: datetime
    status: str
    previous: str | None
    actor: str | None
    reason: str | None


def history(session: Session, registration: Registration) -> list[Change]:
    """The status changes, oldest first: the submission, then each audited change."""
    stmt = (select(AuditLog).where(AuditLog.subject == registration.number,
                                   AuditLog.action == "registration_status",
                                   AuditLog.outcome.in_(rules.ALL_STATUSES))
            .order_by(AuditLog.at, AuditLog.id))
    changes = [Change(registration.created_at, rules.SUBMITTED, None, None, None)]
    for row in session.scalars(stmt):
        detail = row.detail or {}
        changes.append(Change(row.at, row.outcome, detail.get("from"), row.actor,
                              detail.get("reason") if row.outcome == rules.REJECTED else None))
    return changes


# ---------------------------------------------------------------------- export
EXPORT_COLUMNS = ("number", "status", "alasan", "created_at", "updated_at", "nik", "nama",
                  "tanggal_lahir", "no_hp", "kabupaten", "kecamatan", "desa", "bidang_usaha",
                  "deskripsi_usaha", "lama_usaha_bulan")
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
_PHONE = re.compile(r"\+628[0-9]{8,11}")


def spreadsheet_safe(value: object) -> object:
    """Prefix a text cell that a spreadsheet would read as a formula with `'` (OWASP)."""
    if isinstance(value, str) and value.lstrip(" \u00a0").startswith(FORMULA_START):
        return "'" + value
    return value


def spreadsheet_phone(phone: str | None) -> object:
    """+6281234567890 -> `0812 3456 7890`, text in any spreadsheet; anything else escaped."""
    if phone and _PHONE.fullmatch(phone):
        national = "0" + phone[3:]
        return " ".join(national[i:i + 4] for i in range(0, len(national), 4))
    return spreadsheet_safe(phone or "")


def csv_row(row: dict[str, object]) -> dict[str, object]:
    """A row ready for a CSV that may be opened in a spreadsheet."""
    return {key: spreadsheet_safe(value) for key, value in row.items()}


def row_of(registration: Registration, masked: bool) -> dict[str, Any]:
    """A registration as a flat row (NIK and phone masked, or in full)."""
    return {
        "number": registration.number, "status": registration.status,
        "alasan": registration.alasan or "",
        "created_at": registration.created_at.isoformat(timespec="seconds"),
        "created": registration.created_at.date().isoformat(),
        "updated_at": registration.updated_at.isoformat(timespec="seconds"),
        "nik": mask_nik(registration.nik) if masked else registration.nik,
        "nama": registration.nama, "tanggal_lahir": registration.tanggal_lahir.isoformat(),
        "no_hp": mask_phone(registration.no_hp) if masked else registration.no_hp,
        "kabupaten": registration.kabupaten, "kecamatan": registration.kecamatan,
        "desa": registration.desa, "bidang_usaha": registration.bidang_usaha,
        "deskripsi_usaha": registration.deskripsi_usaha,
        "lama_usaha_bulan": registration.lama_usaha_bulan,
    }


def export_row(registration: Registration, masked: bool) -> dict[str, object]:
    """One line of an export file, spreadsheet-safe (phone as `0812 3456 7890` in full)."""
    row = row_of(registration, masked)
    if not masked:
        row["no_hp"] = spreadsheet_phone(registration.no_hp)
    return csv_row(row)


def stream(session: Session, f: Filter, batch: int = 1000) -> Iterator[Registration]:
    """Every registration of the filter, oldest first, `batch` rows at a time (a
    server-side cursor on PostgreSQL: the whole result is never in memory)."""
    stmt: Select[tuple[Registration]] = (
        select(Registration).where(*conditions(f))
        .order_by(Registration.created_at, Registration.id)
        .execution_options(yield_per=batch))
    for registration in session.scalars(stmt):
        yield registration
        session.expunge(registration)


def digits(text: str | None) -> str | None:
    """A kode wilayah as typed (32.01 or 3201) -> digits, or None when it is not one."""
    value = (text or "").replace(".", "").replace(" ", "")
    return value if _DIGITS.fullmatch(value) else None
