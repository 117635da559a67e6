"""Mentors, their mentees and their sessions: queries and changes taking the caller's session.

A mentor is *active* while their Telegram account has the mentor role. Disabling a mentor
(`disable_mentor`, `prokus mentors disable`, the console's /mentors) takes the role away
(their /jadwal_baru, /peserta and /kirim stop), cancels their coming sessions (mentees are
told, reminders cancelled) and unassigns their mentees, who then wait in the list of
accepted registrations without a mentor. A disabled mentor gets no new assignments; adding
the same Telegram account again (`add_mentor`) makes the mentor active again.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from db import regions as region_table
from db import repo
from db.models import Assignment, Mentor, MentoringSession, Registration, User, utcnow
from domain import phone as phone_rules
from domain import regions
from domain import registration as rules
from domain.numbers import is_ascii_digits

MENTOR_ROLE = "mentor"
FORMER_ROLE = "kpm"  # the role a disabled mentor's account goes back to (the default)
SCHEDULED, CANCELLED = "terjadwal", "dibatalkan"
NAME_MAX = 120
REGION_LEVELS = (10, 6, 4, 2)  # desa, kecamatan, kabupaten/kota, province


class MentoringError(ValueError):
    """An operator mistake, with an English message for the CLI and a `code` the console
    turns into Indonesian."""

    def __init__(self, message: str, code: str = "invalid") -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class MentorFields:
    """A new mentor's details, checked and normalised (see `check_mentor`)."""

    telegram_id: str
    name: str
    phone: str      # +62...
    region: str     # kode wilayah digits


def check_mentor(telegram_id: str, name: str, phone: str, region: str) -> MentorFields:
    """Check and normalise what an operator typed for a new mentor (CLI and console)."""
    telegram_id = telegram_id.strip()
    if not is_ascii_digits(telegram_id) or len(telegram_id) > 15:
        raise MentoringError("a numeric Telegram user id", "telegram_id")
    clean_name = " ".join(name.split())
    if not 1 <= len(clean_name) <= NAME_MAX:
        raise MentoringError(f"a name of 1-{NAME_MAX} characters", "name")
    number = phone_rules.normalise(phone)
    if number is None:
        raise MentoringError("an Indonesian mobile number such as 081234567890", "phone")
    region = region.strip()
    if not regions.valid_region(region):
        raise MentoringError("2-10 digits starting with a province code, e.g. 3201", "region")
    return MentorFields(telegram_id, clean_name, number, region.replace(".", ""))


def add_mentor(session: Session, telegram_id: str, name: str, phone: str,
               region: str) -> Mentor:
    """Give a Telegram account the mentor role (again, for a disabled mentor: their record
    is made active with the new details). The region (digits) must be in the regions
    table once `prokus regions load` has filled it: MentoringError (field "region")."""
    try:
        region_table.check_code(session, region)
    except region_table.UnknownRegion as exc:
        raise MentoringError(f"{exc} (not in the regions table)", "region") from None
    user = repo.get_or_create_user(session, "telegram", telegram_id)
    existing = session.scalars(select(Mentor).where(Mentor.user_id == user.id)).first()
    if existing is not None and user.role == MENTOR_ROLE:
        raise MentoringError(f"Telegram user {telegram_id} is already mentor {existing.id}",
                             "exists")
    user.role = MENTOR_ROLE
    if existing is not None:
        existing.nama, existing.no_hp, existing.kode_wilayah = name, phone, region
        session.flush()
        return existing
    mentor = Mentor(user_id=user.id, nama=name, no_hp=phone, kode_wilayah=region,
                    created_at=utcnow())
    session.add(mentor)
    session.flush()
    return mentor


def is_active(session: Session, mentor: Mentor) -> bool:
    user = session.get(User, mentor.user_id)
    return user is not None and user.role == MENTOR_ROLE


@dataclass
class Disabled:
    """What disabling a mentor did."""

    mentor: Mentor
    unassigned: list[str] = field(default_factory=list)   # registration numbers
    sessions_cancelled: int = 0
    mentees_told: int = 0


def disable_mentor(session: Session, mentor_id: int, actor: str,
                   now: datetime | None = None) -> Disabled:
    """Disable a mentor: their account loses the mentor role, their coming sessions are
    cancelled (mentees told through the outbox, reminders cancelled) and their mentees are
    unassigned (they wait for a new mentor). Raises MentoringError for an unknown or
    already disabled mentor."""
    from actions import schedule
    from actions.responses import Responses

    now = now or utcnow()
    mentor = mentor_by_id(session, mentor_id)
    user = session.get(User, mentor.user_id)
    if user is None or user.role != MENTOR_ROLE:
        raise MentoringError(f"mentor {mentor_id} is already disabled", "already_disabled")
    result = Disabled(mentor)
    coming = upcoming(session, mentor.id, now, limit=1000)
    if coming:
        texts = Responses.load()
        for item in coming:
            result.mentees_told = max(result.mentees_told,
                                      schedule.cancel(session, texts, mentor, item, actor, now))
            result.sessions_cancelled += 1
    result.unassigned = [r.number for r in mentees(session, mentor.id)]
    session.execute(delete(Assignment).where(Assignment.mentor_id == mentor.id))
    user.role = FORMER_ROLE
    session.flush()
    return result


def mentor_by_id(session: Session, mentor_id: int) -> Mentor:
    mentor = session.get(Mentor, mentor_id)
    if mentor is None:
        raise MentoringError(f"no mentor {mentor_id}", "no_mentor")
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
    """Assign registration `number` to a mentor; returns it and the previous mentor id.
    Only reminders are not touched here: see `assign_with_reminders`."""
    mentor = mentor_by_id(session, mentor_id)
    if not is_active(session, mentor):
        raise MentoringError(f"mentor {mentor_id} is disabled; disabled mentors get no new "
                             "mentees", "mentor_disabled")
    registration = session.scalars(select(Registration).where(
        Registration.number == number)).first()
    if registration is None:
        raise MentoringError(f"no registration {number!r}", "no_registration")
    if registration.status != rules.ACCEPTED:
        raise MentoringError(f"{number} is {registration.status!r}; only accepted "
                             f"('{rules.ACCEPTED}') registrations get a mentor", "not_accepted")
    current = session.get(Assignment, registration.id)
    previous = current.mentor_id if current else None
    if previous == mentor_id:
        raise MentoringError(f"{number} is already assigned to mentor {mentor_id}",
                             "already_assigned")
    if current is None:
        session.add(Assignment(registration_id=registration.id, mentor_id=mentor_id,
                               assigned_at=utcnow()))
    else:
        current.mentor_id, current.assigned_at = mentor_id, utcnow()
    session.flush()
    return registration, previous


def mentees(session: Session, mentor_id: int) -> list[Registration]:
    stmt = (select(Registration).join(Assignment, Assignment.registration_id == Registration.id)
            .where(Assignment.mentor_id == mentor_id))
    # Sorted here: the name is sealed (db.crypto), SQL cannot order by it.
    return sorted(session.scalars(stmt), key=lambda r: (str(r.nama).casefold(), r.id))


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


@dataclass(frozen=True)
class Assigned:
    registration: Registration
    mentor: Mentor
    previous: int | None      # the mentor before, if the registration moved
    reminders_added: int


def assign_with_reminders(session: Session, mentor_id: int, number: str,
                          now: datetime | None = None) -> Assigned:
    """Assign accepted registration `number` to a mentor (`prokus mentors assign` and the
    console): the mentee leaves the previous mentor's coming reminders and joins this
    mentor's."""
    from actions.schedule import add_mentee_to_upcoming, remove_mentee_from_upcoming

    registration, previous = assign(session, mentor_id, number.strip().upper())
    mentor = mentor_by_id(session, mentor_id)
    added = 0
    if registration.user_id:
        if previous:
            remove_mentee_from_upcoming(session, previous, registration.user_id)
        added = add_mentee_to_upcoming(session, mentor, registration.user_id, now)
    return Assigned(registration, mentor, previous, added)


# ---------------------------------------------------------------------- the console's views
@dataclass(frozen=True)
class MentorRow:
    """A mentor for the list: Telegram id, active or not, mentees and the next session."""

    mentor: Mentor
    telegram_id: str
    active: bool
    mentee_count: int
    upcoming_count: int
    next_session: datetime | None


def mentor_rows(session: Session, now: datetime) -> list[MentorRow]:
    """Every mentor with the counts the console lists (active ones first, then by name)."""
    mentees_n = (select(Assignment.mentor_id, func.count().label("n"))
                 .group_by(Assignment.mentor_id).subquery())
    coming = (select(MentoringSession.mentor_id, func.count().label("n"),
                     func.min(MentoringSession.starts_at).label("first"))
              .where(MentoringSession.status == SCHEDULED, MentoringSession.starts_at > now)
              .group_by(MentoringSession.mentor_id).subquery())
    rows = session.execute(
        select(Mentor, User.external_id, User.role, func.coalesce(mentees_n.c.n, 0),
               func.coalesce(coming.c.n, 0), coming.c.first)
        .join(User, User.id == Mentor.user_id)
        .outerjoin(mentees_n, mentees_n.c.mentor_id == Mentor.id)
        .outerjoin(coming, coming.c.mentor_id == Mentor.id)).all()
    result = [MentorRow(mentor, ext, role == MENTOR_ROLE, n, upcoming_n, first)
              for mentor, ext, role, n, upcoming_n, first in rows]
    result.sort(key=lambda r: (not r.active, r.mentor.nama.casefold(), r.mentor.id))
    return result


def region_match(mentor_region: str, registration_region: str | None) -> int:
    """How closely a mentor's region covers a registration's: the number of digits of the
    finest shared level (10 desa, 6 kecamatan, 4 kabupaten/kota, 2 province), 0 for none."""
    if not registration_region:
        return 0
    for level in REGION_LEVELS:
        if (len(mentor_region) >= level and len(registration_region) >= level
                and mentor_region[:level] == registration_region[:level]):
            return level
    return 0


def suggest(rows: Sequence[MentorRow], registration_region: str | None) -> list[MentorRow]:
    """Active mentors for a registration: those of the same region first (the closest
    region, then the fewest mentees), then the others (fewest mentees first)."""
    active = [r for r in rows if r.active]
    return sorted(active, key=lambda r: (-region_match(r.mentor.kode_wilayah,
                                                        registration_region),
                                         r.mentee_count, r.mentor.nama.casefold()))


def unassigned(session: Session, limit: int = 50,
               region: str | None = None) -> tuple[list[Registration], int]:
    """Accepted registrations without a mentor, oldest first (at most `limit`), and how
    many there are in all; `region` (kode wilayah digits) narrows by prefix."""
    stmt = (select(Registration).outerjoin(Assignment,
                                           Assignment.registration_id == Registration.id)
            .where(Registration.status == rules.ACCEPTED, Assignment.mentor_id.is_(None)))
    if region:
        stmt = stmt.where(Registration.kode_wilayah.startswith(region))
    total = session.scalar(select(func.count()).select_from(stmt.subquery())) or 0
    rows = session.scalars(stmt.order_by(Registration.updated_at, Registration.id)
                           .limit(limit)).all()
    return list(rows), total
