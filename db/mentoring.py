"""Mentors, their mentees and their sessions: queries and changes taking the caller's session."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import repo
from db.models import Assignment, Mentor, MentoringSession, Registration, User, utcnow
from domain import registration as rules

MENTOR_ROLE = "mentor"
SCHEDULED, CANCELLED = "terjadwal", "dibatalkan"


class MentoringError(ValueError):
    """An operator mistake, with an English message for the CLI."""


def add_mentor(session: Session, telegram_id: str, name: str, phone: str,
               region: str) -> Mentor:
    user = repo.get_or_create_user(session, "telegram", telegram_id)
    existing = session.scalars(select(Mentor).where(Mentor.user_id == user.id)).first()
    if existing is not None:
        raise MentoringError(f"Telegram user {telegram_id} is already mentor {existing.id}")
    user.role = MENTOR_ROLE
    mentor = Mentor(user_id=user.id, nama=name, no_hp=phone, kode_wilayah=region,
                    created_at=utcnow())
    session.add(mentor)
    session.flush()
    return mentor


def mentor_by_id(session: Session, mentor_id: int) -> Mentor:
    mentor = session.get(Mentor, mentor_id)
    if mentor is None:
        raise MentoringError(f"no mentor {mentor_id}")
    return mentor


def mentor_for_user(session: Session, user: User) -> Mentor | None:
    """The mentor record of a user with the mentor role (both must agree)."""
    if user.role != MENTOR_ROLE:
        return None
    return session.scalars(select(Mentor).where(Mentor.user_id == user.id)).first()


def mentors_with_counts(session: Session) -> list[tuple[Mentor, str, int]]:
    """(mentor, Telegram id, number of mentees), by id."""
    counts = (select(Assignment.mentor_id, func.count().label("n"))
              .group_by(Assignment.mentor_id).subquery())
    rows = session.execute(
        select(Mentor, User.external_id, func.coalesce(counts.c.n, 0))
        .join(User, User.id == Mentor.user_id)
        .outerjoin(counts, counts.c.mentor_id == Mentor.id).order_by(Mentor.id)).all()
    return [(m, ext, n) for m, ext, n in rows]


def assign(session: Session, mentor_id: int, number: str) -> tuple[Registration, int | None]:
    """Assign registration `number` to a mentor; returns it and the previous mentor id."""
    mentor_by_id(session, mentor_id)
    registration = session.scalars(select(Registration).where(
        Registration.number == number)).first()
    if registration is None:
        raise MentoringError(f"no registration {number!r}")
    if registration.status != rules.ACCEPTED:
        raise MentoringError(f"{number} is {registration.status!r}; only accepted "
                             f"('{rules.ACCEPTED}') registrations get a mentor")
    current = session.get(Assignment, registration.id)
    previous = current.mentor_id if current else None
    if previous == mentor_id:
        raise MentoringError(f"{number} is already assigned to mentor {mentor_id}")
    if current is None:
        session.add(Assignment(registration_id=registration.id, mentor_id=mentor_id,
                               assigned_at=utcnow()))
    else:
        current.mentor_id, current.assigned_at = mentor_id, utcnow()
    session.flush()
    return registration, previous


def mentees(session: Session, mentor_id: int) -> list[Registration]:
    stmt = (select(Registration).join(Assignment, Assignment.registration_id == Registration.id)
            .where(Assignment.mentor_id == mentor_id).order_by(Registration.nama))
    return list(session.scalars(stmt))


def mentee_user_ids(session: Session, mentor_id: int) -> list[int]:
    """The chat accounts of a mentor's mentees (those who registered through the bot)."""
    stmt = (select(Registration.user_id)
            .join(Assignment, Assignment.registration_id == Registration.id)
            .where(Assignment.mentor_id == mentor_id, Registration.user_id.is_not(None))
            .order_by(Registration.user_id))
    return list(dict.fromkeys(session.scalars(stmt)))


def mentor_of_user(session: Session, user_id: int) -> tuple[Registration | None, Mentor | None]:
    """The user's newest active registration and its mentor (either may be None)."""
    registration = session.scalars(
        select(Registration).where(Registration.user_id == user_id,
                                   Registration.status.in_(rules.ACTIVE))
        .order_by(Registration.id.desc())).first()
    if registration is None:
        return None, None
    assignment = session.get(Assignment, registration.id)
    return registration, (session.get(Mentor, assignment.mentor_id) if assignment else None)


def upcoming(session: Session, mentor_id: int, now: datetime,
             limit: int = 10) -> Sequence[MentoringSession]:
    stmt = (select(MentoringSession).where(MentoringSession.mentor_id == mentor_id,
                                           MentoringSession.status == SCHEDULED,
                                           MentoringSession.starts_at > now)
            .order_by(MentoringSession.starts_at).limit(limit))
    return session.scalars(stmt).all()
