"""Repositories: small functions taking the caller's session."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import crypto
from db.models import AuditLog, Conversation, Kpm, User, utcnow

SEALED_KPM = ("nik", "nama", "tanggal_lahir", "no_hp")


# last_seen_at is written at most this often (a conversation's turns come seconds apart).
SEEN_EVERY = timedelta(minutes=1)


def _aware(at: datetime) -> datetime:
    return at if at.tzinfo is not None else at.replace(tzinfo=UTC)


# Built once (every turn runs it): building the statement each time costs CPU.
_USER_BY_KEY = select(User).where(User.channel == bindparam("channel"),
                                  User.external_id == bindparam("external_id"))


def get_or_create_user(session: Session, channel: str, external_id: str) -> User:
    """Return the user for (channel, external_id), creating it on first contact."""
    key = {"channel": channel, "external_id": external_id}
    user = session.scalars(_USER_BY_KEY, key).one_or_none()
    if user is None:
        try:
            with session.begin_nested():
                user = User(channel=channel, external_id=external_id)
                session.add(user)
        except IntegrityError:  # another process created it at the same moment
            user = session.scalars(_USER_BY_KEY, key).one()
    now = utcnow()
    if user.last_seen_at is None or now - _aware(user.last_seen_at) >= SEEN_EVERY:
        user.last_seen_at = now  # (not every turn: one UPDATE less per message)
    if not user.is_active:  # they blocked the bot once and came back: deliver again
        user.is_active = True
    return user


def load_state(session: Session, user: User) -> dict[str, Any]:
    """Return a copy of the user's conversation state (empty for a new user)."""
    conversation = session.get(Conversation, user.id)
    if conversation is None or crypto.is_unreadable(conversation.state):
        return {}  # an unreadable state was reported by db.crypto: start afresh
    return dict(conversation.state)


def save_state(session: Session, user: User, state: dict[str, Any]) -> None:
    """Store the user's conversation state."""
    conversation = session.get(Conversation, user.id)
    if conversation is None:
        session.add(Conversation(user_id=user.id, state=dict(state), updated_at=utcnow()))
    else:
        conversation.state = dict(state)
        conversation.updated_at = utcnow()


def find_kpm(session: Session, nik: str) -> Kpm | None:
    """The registry record for a NIK: a primary-key lookup by its blind index (under every
    configured key, for rows a key rotation has not reached yet). A record that does not
    decrypt is reported (db.crypto logs it) and treated as absent."""
    kpm = session.scalars(select(Kpm).where(Kpm.nik_hash.in_(crypto.blinds(nik)))).first()
    if kpm is not None and crypto.unreadable_fields(kpm, SEALED_KPM):
        return None
    return kpm


def audit(session: Session, actor: str, action: str, outcome: str,
          subject: str | None = None, detail: dict[str, Any] | None = None,
          at: datetime | None = None) -> None:
    """Append one audit record; `subject` must already be masked. Times are stored in UTC
    (SQLite keeps no zone, so every timestamp we write is UTC)."""
    session.add(AuditLog(actor=actor, action=action, subject=subject, outcome=outcome,
                         detail=detail, at=(at or utcnow()).astimezone(UTC)))


def count_recent(session: Session, actor: str, action: str, since: datetime) -> int:
    """How many times `actor` did `action` since `since` (for rate limits)."""
    stmt = select(func.count()).select_from(AuditLog).where(
        AuditLog.actor == actor, AuditLog.action == action,
        AuditLog.at >= since.astimezone(UTC),
    )
    return session.scalar(stmt) or 0
