"""Registrations: atomic submission (one active registration per NIK, numbers per year),
lookups for the status command, and operator status changes with audit and a notice."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from db import outbox, repo
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
    stmt = select(Registration).where(Registration.nik == nik,
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
    registration = Registration(number=rules.number(year, sequence), user_id=user_id,
                                status=rules.SUBMITTED, created_at=now, updated_at=now, **fields)
    session.add(registration)
    session.flush()
    return Submission(registration, created=True)


def for_user(session: Session, user_id: int) -> list[Registration]:
    stmt = select(Registration).where(Registration.user_id == user_id).order_by(Registration.id)
    return list(session.scalars(stmt))


def for_nik(session: Session, nik: str) -> list[Registration]:
    stmt = select(Registration).where(Registration.nik == nik).order_by(Registration.id)
    return list(session.scalars(stmt))


def by_number(session: Session, number: str) -> Registration | None:
    return session.scalars(select(Registration).where(Registration.number == number)).first()


def query(session: Session, status: str | None = None) -> Iterator[Registration]:
    """All registrations (optionally of one status), oldest first, streamed."""
    stmt = select(Registration).order_by(Registration.id).execution_options(yield_per=1000)
    if status:
        stmt = stmt.where(Registration.status == status)
    yield from session.scalars(stmt)


def set_status(session: Session, number: str, status: str, reason: str | None, actor: str,
               notice: Callable[[Registration], str]) -> Registration:
    """Change a registration's status (allowed steps only), audit it, and record the
    notice for the applicant in the outbox, all in the caller's transaction."""
    registration = session.scalars(
        select(Registration).where(Registration.number == number).with_for_update()).first()
    if registration is None:
        raise rules.StatusChangeError(f"no registration {number!r}")
    rules.check_transition(registration.status, status, reason)
    previous = registration.status
    registration.status = status
    registration.alasan = reason.strip() if status == rules.REJECTED and reason else None
    registration.updated_at = utcnow()
    recipient = registration.user_id
    if recipient is not None:
        outbox.enqueue(session, "status", notice(registration), [recipient], created_by=actor,
                       reference=number)
    repo.audit(session, actor, "registration_status", status, subject=number,
               detail={"from": previous, "reason": reason, "nik": mask(registration.nik),
                       "notice": "queued" if recipient is not None else "no_recipient"})
    return registration
