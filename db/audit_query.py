"""Reading the audit log for the console's `/audit` page: filters (who, what, when, subject),
newest first, one page at a time with the total count.

Subjects are masked when they are written (db.repo.audit), but a page that shows personal
data must not depend on every writer having done it: on the way out, any run of 16 digits
(a NIK, also written with spaces, dots or dashes between the digits) in the subject, the
outcome or the detail is masked again with the project's rule (domain.nik.mask).
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, func, select
from sqlalchemy.orm import Session

from db.dashboard import WIB, wib_midnight
from db.models import AuditLog
from domain.nik import mask

DEFAULT_PER_PAGE = 50
MAX_PER_PAGE = 200
# Counting every matching row of a log that only grows gets slower with it; past this many
# the page says "more than" (narrow the filter to see further), and paging stops there.
COUNT_LIMIT = 10_000
MAX_FILTER_LENGTH = 64  # the subject and actor columns are 64 characters

# 16 digits (any script), optionally with one space, dot or dash between two of them.
_NIK_LIKE = re.compile(r"(?<!\d)\d(?:[ .\-]?\d){15}(?!\d)")

# Indonesian names of the actions written today; an unknown action is shown as it is.
ACTION_LABELS: dict[str, str] = {
    "nik_lookup": "Cek NIK",
    "nik_lookup_retry": "Cek NIK (ulang nama)",
    "nik_carry_over": "NIK dibawa ke pendaftaran",
    "registration_submit": "Pendaftaran dikirim",
    "registration_status": "Status pendaftaran diubah",
    "registration_skip": "Perubahan status dilewati",
    "nlu_label": "Label pesan NLU",
    "nlu_discard": "Buang pesan NLU",
    "registrations_export": "Ekspor pendaftaran",
    "mentor_add": "Pendamping ditambahkan",
    "mentor_assign": "Pendamping ditugaskan",
    "mentor_denied": "Akses pendamping ditolak",
    "broadcast_queued": "Siaran diantrekan",
    "not_understood": "Pesan tidak dipahami",
    "login": "Masuk konsol",
    "login_locked": "Akun dikunci (salah kata sandi)",
    "logout": "Keluar konsol",
    "operator_add": "Operator ditambahkan",
    "operator_disable": "Operator dinonaktifkan",
    "operator_password": "Kata sandi operator diubah",
    "kpm_upload": "Unggah data KPM",
    "kpm_import": "Impor data KPM",
    "kpm_rejects_download": "Unduh baris KPM ditolak",
    "data_viewed": "Pengguna melihat datanya (/data_saya)",
    "data_erased": "Pengguna menghapus datanya (/hapus_data)",
    "contact_check": "Cek kontak Telegram dengan data PKH",
    "nik_many_accounts": "NIK dicoba dari banyak akun",
}


def action_label(action: str) -> str:
    return ACTION_LABELS.get(action, action)


def mask_text(text: str | None) -> str | None:
    """`text` with every 16-digit run masked (3201********0001); None stays None."""
    if text is None:
        return None
    return _NIK_LIKE.sub(lambda m: mask(m.group()), text)


def mask_value(value: Any) -> Any:
    """A JSON value (the audit detail) with every string masked, keys included."""
    if isinstance(value, str):
        return mask_text(value)
    if isinstance(value, dict):
        return {mask_text(str(k)): mask_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [mask_value(v) for v in value]
    if isinstance(value, int) and not isinstance(value, bool) and len(str(abs(value))) == 16:
        return mask(str(abs(value)))  # a NIK stored as a JSON number
    return value


@dataclass(frozen=True)
class AuditFilter:
    """What the operator asked for; every field optional. `since`/`until` are WIB days
    (inclusive) or aware instants ([since, until))."""

    actor: str | None = None  # exact ("operator:dinsos-bogor", "user:12")
    actions: Sequence[str] = ()  # any of these
    since: date | datetime | None = None
    until: date | datetime | None = None
    subject_contains: str | None = None  # case-insensitive substring of the masked subject
    outcome: str | None = None  # exact


@dataclass(frozen=True)
class AuditRow:
    id: int
    at: datetime  # UTC
    actor: str
    action: str
    subject: str | None  # masked
    outcome: str
    detail: dict[str, Any] | None  # masked

    @property
    def at_wib(self) -> datetime:
        return self.at.astimezone(WIB)

    @property
    def action_label(self) -> str:
        return action_label(self.action)


@dataclass(frozen=True)
class AuditPage:
    rows: list[AuditRow]
    total: int  # rows matching the filter, all pages (at most the count limit)
    page: int  # 1-based
    per_page: int
    total_is_lower_bound: bool = False  # True: more than `total` rows match

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // self.per_page))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages

    @property
    def has_previous(self) -> bool:
        return self.page > 1


def _start(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        if value.tzinfo is None:
            raise ValueError("since/until must be aware datetimes or dates")
        return value
    return wib_midnight(value)


def _end(value: date | datetime) -> datetime:
    if isinstance(value, datetime):
        return _start(value)
    return wib_midnight(value + timedelta(days=1))  # the whole WIB day is included


def _like_escape(text: str) -> str:
    return text.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")


def conditions(f: AuditFilter) -> list[ColumnElement[bool]]:
    """The WHERE clauses for a filter (blank text fields are ignored)."""
    where: list[ColumnElement[bool]] = []
    actor = (f.actor or "").strip()
    if actor:
        where.append(AuditLog.actor == actor[:MAX_FILTER_LENGTH])
    actions = [a.strip() for a in f.actions if a and a.strip()]
    if actions:
        where.append(AuditLog.action.in_(actions))
    if f.since is not None:
        where.append(AuditLog.at >= _start(f.since))
    if f.until is not None:
        where.append(AuditLog.at < _end(f.until))
    outcome = (f.outcome or "").strip()
    if outcome:
        where.append(AuditLog.outcome == outcome)
    # Subjects are stored masked (db.models.AuditLog): a full NIK typed here is looked for
    # in its masked form, which is how it was written.
    needle = mask_text((f.subject_contains or "").strip()[:MAX_FILTER_LENGTH]) or ""
    if needle:
        # lower() on both sides: portable (SQLite's LIKE ignores ASCII case, PostgreSQL's
        # does not), with the wildcards the operator typed taken literally.
        where.append(func.lower(AuditLog.subject).like(
            f"%{_like_escape(needle.lower())}%", escape="\\"))
    return where


def _row(r: AuditLog) -> AuditRow:
    detail = mask_value(r.detail) if r.detail is not None else None
    return AuditRow(r.id, r.at, mask_text(r.actor) or "", r.action, mask_text(r.subject),
                    mask_text(r.outcome) or "", detail if isinstance(detail, dict) else
                    ({"value": detail} if detail is not None else None))


def count(session: Session, where: list[ColumnElement[bool]],
          limit: int | None = COUNT_LIMIT) -> tuple[int, bool]:
    """(matching rows, whether there are more): exact up to `limit` (None: no limit), so a
    page never counts a whole log that only grows."""
    if limit is None:
        total = session.scalar(select(func.count()).select_from(AuditLog).where(*where))
        return total or 0, False
    capped = select(AuditLog.id).where(*where).limit(limit + 1).subquery()
    found = session.scalar(select(func.count()).select_from(capped)) or 0
    return min(found, limit), found > limit


def search(session: Session, f: AuditFilter | None = None, page: int = 1,
           per_page: int = DEFAULT_PER_PAGE, count_limit: int | None = COUNT_LIMIT) -> AuditPage:
    """One page of the matching audit rows, newest first, and how many match (counted up
    to `count_limit`). A page past the end is answered with the last page."""
    f = f or AuditFilter()
    per_page = min(max(1, per_page), MAX_PER_PAGE)
    where = conditions(f)
    total, more = count(session, where, count_limit)
    pages = max(1, -(-total // per_page))
    page = min(max(1, page), pages)
    records = session.scalars(
        select(AuditLog).where(*where)
        .order_by(AuditLog.at.desc(), AuditLog.id.desc())
        .offset((page - 1) * per_page).limit(per_page)).all()
    return AuditPage([_row(r) for r in records], int(total), page, per_page, more)


def stored_actions(session: Session) -> list[str]:
    """The distinct actions in the log, by a loose index scan (one index probe per action,
    with an index leading on `action`; a recursive CTE, on SQLite as on PostgreSQL)."""
    action = AuditLog.action
    first = select(func.min(action).label("action")).cte("actions", recursive=True)
    following = select(
        select(func.min(action)).where(action > first.c.action).scalar_subquery()
    ).where(first.c.action.is_not(None))
    walk = first.union_all(following)
    return [a for a in session.scalars(select(walk.c.action)) if a is not None]


def known_actions(session: Session | None = None) -> list[tuple[str, str]]:
    """(action, Indonesian label) for the "what" filter, sorted by label: the known ones,
    plus (with a session) any other the log holds."""
    actions = set(ACTION_LABELS) | (set(stored_actions(session)) if session else set())
    return sorted(((a, action_label(a)) for a in actions), key=lambda p: p[1].casefold())
