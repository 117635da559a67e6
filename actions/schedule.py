"""Mentoring sessions and their messages: creating, changing and cancelling a session tells
the mentees through the outbox and keeps its reminders (the day before, 2 hours before)
in step. Shared by the mentor's Telegram commands and the operator CLI."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from actions.responses import Responses
from db import mentoring
from db.models import Mentor, MentoringSession, OutboxItem, OutboxMessage, utcnow
from db.outbox import add_recipients, enqueue
from domain import dates, regions, schedule
from outbox import store


def when_text(texts: Responses, start: datetime, region: str) -> str:
    """"Sabtu, 5 Desember 2026, pukul 09.00 WITA" in the mentor's region's time."""
    local = start.astimezone(regions.zone(region))
    return texts("session_when", date=dates.indonesian(local.date(), weekday=True),
                 time=local.strftime("%H.%M"), zone=regions.zone_name(region))


def session_text(texts: Responses, item: MentoringSession, region: str) -> str:
    return texts("session_line", when=when_text(texts, item.starts_at, region),
                 place=item.tempat, topic=item.topik)


def _reference(item: MentoringSession, kind: str) -> str:
    return f"session:{item.id}:{kind}"


def _queue_reminders(session: Session, texts: Responses, mentor: Mentor,
                     item: MentoringSession, user_ids: list[int], actor: str,
                     now: datetime) -> None:
    """One reminder message per kind; one row per mentee, due at its time, never sent once
    the session has begun. Times already past when the session is made are skipped."""
    start = item.starts_at
    for kind, due in schedule.reminder_times(start).items():
        if due <= now:
            continue
        text = texts(f"reminder/{kind}", session=session_text(texts, item, mentor.kode_wilayah))
        enqueue(session, "reminder", text, user_ids, created_by=actor,
                reference=_reference(item, kind), due_at=due, expires_at=start)


def _reminder_messages(session: Session, item: MentoringSession) -> list[int]:
    refs = [_reference(item, kind) for kind in schedule.REMINDERS]
    return list(session.scalars(select(OutboxMessage.id).where(
        OutboxMessage.reference.in_(refs))))


def create(session: Session, texts: Responses, mentor: Mentor, start: datetime, place: str,
           topic: str, actor: str, now: datetime | None = None) -> tuple[MentoringSession, int]:
    """A new session for all of the mentor's mentees: they are told, reminders queued.
    Returns the session and the number of mentees told."""
    now = now or utcnow()
    item = MentoringSession(mentor_id=mentor.id, starts_at=start, tempat=place,
                            topik=topic, status=mentoring.SCHEDULED, created_at=now,
                            updated_at=now)
    session.add(item)
    session.flush()
    users = mentoring.mentee_user_ids(session, mentor.id)
    if users:
        enqueue(session, "session", texts("session_new_notice", mentor=mentor.nama,
                                          session=session_text(texts, item, mentor.kode_wilayah)),
                users, created_by=actor, reference=_reference(item, "new"))
    # Reminder messages exist even without mentees yet: mentees assigned later join them.
    _queue_reminders(session, texts, mentor, item, users, actor, now)
    return item, len(users)


def change(session: Session, texts: Responses, mentor: Mentor, item: MentoringSession,
           actor: str, now: datetime | None = None, **fields) -> int:
    """Change date/time, place or topic: mentees are told, old reminders cancelled and new
    ones queued. Returns the number of mentees told."""
    now = now or utcnow()
    before = session_text(texts, item, mentor.kode_wilayah)
    for name, value in fields.items():
        setattr(item, name, value)
    item.updated_at = now
    session.flush()
    old = _reminder_messages(session, item)
    store.cancel_pending(session, old, "session changed")
    # The new reminders take the references: retire the old messages' ones.
    for message in session.scalars(select(OutboxMessage).where(OutboxMessage.id.in_(old))):
        message.reference = f"{message.reference}:old:{message.id}"
    users = mentoring.mentee_user_ids(session, mentor.id)
    if users:
        enqueue(session, "session", texts("session_changed_notice", mentor=mentor.nama,
                                          before=before,
                                          session=session_text(texts, item, mentor.kode_wilayah)),
                users, created_by=actor,
                reference=_reference(item, f"change:{int(now.timestamp())}"))
    _queue_reminders(session, texts, mentor, item, users, actor, now)
    return len(users)


def cancel(session: Session, texts: Responses, mentor: Mentor, item: MentoringSession,
           actor: str, now: datetime | None = None) -> int:
    """Cancel a session: pending reminders cancelled, mentees told."""
    now = now or utcnow()
    item.status, item.updated_at = mentoring.CANCELLED, now
    store.cancel_pending(session, _reminder_messages(session, item), "session cancelled")
    users = mentoring.mentee_user_ids(session, mentor.id)
    if users:
        enqueue(session, "session", texts("session_cancelled_notice", mentor=mentor.nama,
                                          session=session_text(texts, item, mentor.kode_wilayah)),
                users, created_by=actor, reference=_reference(item, "cancel"))
    return len(users)


def add_mentee_to_upcoming(session: Session, mentor: Mentor, user_id: int,
                           now: datetime | None = None) -> int:
    """A newly assigned mentee also gets the reminders of the mentor's coming sessions."""
    now = now or utcnow()
    added = 0
    for item in mentoring.upcoming(session, mentor.id, now, limit=100):
        start = item.starts_at
        for kind, due in schedule.reminder_times(start).items():
            message_id = session.scalar(select(OutboxMessage.id).where(
                OutboxMessage.reference == _reference(item, kind)))
            if message_id is None or due <= now:
                continue
            exists = session.scalar(select(OutboxItem.id).where(
                OutboxItem.message_id == message_id, OutboxItem.user_id == user_id))
            if exists is None:
                add_recipients(session, message_id, [user_id], due, expires_at=start)
                added += 1
    return added


def remove_mentee_from_upcoming(session: Session, mentor_id: int, user_id: int) -> int:
    """A mentee moved to another mentor no longer gets the old mentor's reminders."""
    refs = [_reference(item, kind)
            for item in mentoring.upcoming(session, mentor_id, utcnow(), limit=100)
            for kind in schedule.REMINDERS]
    if not refs:
        return 0
    messages = select(OutboxMessage.id).where(OutboxMessage.reference.in_(refs))
    return session.execute(update(OutboxItem).where(
        OutboxItem.message_id.in_(messages), OutboxItem.user_id == user_id,
        OutboxItem.state == store.PENDING).values(state=store.CANCELLED,
                                                  error="mentee moved to another mentor")
    ).rowcount
