"""Registrations: atomic submission (one active registration per NIK, numbers per year),
lookups for the status command, and operator status changes with audit and a notice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from sqlalchemy import and_, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session
from sqlalchemy.orm.attributes import set_committed_value

from db import crypto, outbox, repo
from db.models import Registration, RegistrationCounter, utcnow
from domain import registration as rules
from domain.nik import mask


@dataclass(frozen=True)
class Submission:
    registration: Registration
    created: bool  # False: an active registration for this NIK already existed


def _lock_numbers(session: Session, year: int) -> None:
    """Serialise submissions: the year's counter row is the lock. On PostgreSQL a row lock
    (FOR UPDATE); on SQLite the INSERT takes the database's single write lock."""
    dialect = session.get_bind().dialect.name
    insert = pg_insert if dialect == "postgresql" else sqlite_insert
    session.execute(insert(RegistrationCounter).values(year=year, last=0)
                    .on_conflict_do_nothing(index_elements=["year"]))
    session.execute(select(RegistrationCounter.last)
                    .where(RegistrationCounter.year == year).with_for_update())


def active_for_nik(session: Session, nik: str) -> Registration | None:
    stmt = select(Registration).where(Registration.nik_hash.in_(crypto.blinds(nik)),
                                      Registration.status.in_(rules.ACTIVE))
    return session.scalars(stmt).first()


def submit(session: Session, fields: dict[str, Any], user_id: int | None,
           year: int) -> Submission:
    """Create the registration unless the NIK already has an active one. Two identical
    submissions at once make one registration: the second waits for the lock, then finds
    the first."""
    _lock_numbers(session, year)
    existing = active_for_nik(session, fields["nik"])
    if existing is not None:
        return Submission(existing, created=False)
    sequence = session.execute(
        update(RegistrationCounter).where(RegistrationCounter.year == year)
        .values(last=RegistrationCounter.last + 1).returning(RegistrationCounter.last)
    ).scalar_one()
    now = utcnow()
    # `fields` may carry the address codes (kode_kabupaten/kecamatan/desa, wilayah_status)
    # and `kode_wilayah` (the most precise matched code); without them the NIK's first six
    # digits are the region, as before addresses were matched.
    registration = Registration(number=rules.number(year, sequence), user_id=user_id,
                                status=rules.SUBMITTED, created_at=now, updated_at=now,
                                **{"kode_wilayah": fields["nik"][:6], **fields})
    session.add(registration)
    session.flush()
    return Submission(registration, created=True)


def for_user(session: Session, user_id: int) -> list[Registration]:
    stmt = select(Registration).where(Registration.user_id == user_id).order_by(Registration.id)
    return list(session.scalars(stmt))


def for_nik(session: Session, nik: str) -> list[Registration]:
    stmt = (select(Registration).where(Registration.nik_hash.in_(crypto.blinds(nik)))
            .order_by(Registration.id))
    return list(session.scalars(stmt))


def by_number(session: Session, number: str) -> Registration | None:
    return session.scalars(select(Registration).where(Registration.number == number)).first()


def query(session: Session, status: str | None = None) -> Iterator[Registration]:
    """All registrations (optionally of one status), oldest first, streamed."""
    stmt = select(Registration).order_by(Registration.id).execution_options(yield_per=1000)
    if status:
        stmt = stmt.where(Registration.status == status)
    yield from session.scalars(stmt)


def in_region(region: str | None):
    """SQL condition: the registration's kode_wilayah starts with `region` (digits), as a
    range an ordinary index can use; None: every registration."""
    if not region:
        return true()
    return and_(Registration.kode_wilayah >= region,
                Registration.kode_wilayah < _next_prefix(region),
                Registration.kode_wilayah.like(f"{region}%"))


def _next_prefix(prefix: str) -> str:
    """The smallest digit string greater than every string starting with `prefix`
    ("3201" -> "3202", "3299" -> "33", "99" -> ":")."""
    digits = prefix.rstrip("9")
    if not digits:
        return ":"  # the character after "9"
    return digits[:-1] + chr(ord(digits[-1]) + 1)


def set_status(session: Session, number: str, status: str, reason: str | None, actor: str,
               notice: Callable[[Registration], str], *, expected: str | None = None,
               region: str | None = None, at: datetime | None = None,
               audit_detail: dict[str, Any] | None = None) -> Registration:
    """Change a registration's status (allowed steps only), audit it, and record the
    notice for the applicant in the outbox, all in the caller's transaction.

    Compare-and-set: with `expected` (the status the operator saw) the change is refused
    with code "stale" when the registration has changed since. The row is locked (SELECT
    ... FOR UPDATE on PostgreSQL) and the UPDATE repeats the condition (`AND status =
    :seen`), so of two operators acting at once one wins and the other is refused, never
    a lost update (on SQLite the UPDATE waits for the database's write lock).
    `region` (kode wilayah digits): a registration outside it counts as not found.
    `audit_detail` is added to the audit row (the console's `via` and `ip`)."""
    stmt = (select(Registration).where(Registration.number == number, in_region(region))
            .with_for_update().execution_options(populate_existing=True))
    registration = session.scalars(stmt).first()
    if registration is None:
        raise rules.StatusChangeError(f"no registration {number!r}", "not_found")
    previous = registration.status
    if expected is not None and previous != expected:
        raise rules.StatusChangeError(
            f"{number} changed from {expected!r} to {previous!r} in the meantime", "stale",
            previous)
    rules.check_transition(previous, status, reason)
    moment = at or utcnow()
    values = {"status": status, "updated_at": moment,
              "alasan": reason.strip() if status == rules.REJECTED and reason else None}
    changed = session.execute(
        update(Registration)
        .where(Registration.id == registration.id, Registration.status == previous)
        .values(**values).execution_options(synchronize_session=False)).rowcount
    if changed != 1:  # only without a row lock (SQLite read outside the write lock)
        session.expire(registration)
        raise rules.StatusChangeError(
            f"{number} changed from {previous!r} in the meantime", "stale",
            session.scalar(select(Registration.status).where(Registration.id == registration.id)))
    for key, value in values.items():  # what the row holds now, without another query
        set_committed_value(registration, key, value)
    recipient = registration.user_id
    if recipient is not None:
        outbox.enqueue(session, "status", notice(registration), [recipient], created_by=actor,
                       reference=number)
    repo.audit(session, actor, "registration_status", status, subject=number,
               detail={"from": previous, "reason": reason, "nik": mask(registration.nik),
                       "notice": "queued" if recipient is not None else "no_recipient",
                       **(audit_detail or {})}, at=moment)
    return registration
