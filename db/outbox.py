"""The durable outbox: every proactive message (status notice, reminder, broadcast) is
written here first, one row per recipient, and sent later by the worker."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import UTC, datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from db.models import OutboxItem, OutboxMessage, utcnow

PENDING = "pending"


def enqueue(session: Session, kind: str, text: str, user_ids: Iterable[int], created_by: str,
            reference: str | None = None, due_at: datetime | None = None) -> OutboxMessage:
    """Record `text` for each recipient in the caller's transaction; nothing is sent here,
    so a crash after commit loses nothing and a rollback sends nothing."""
    message = OutboxMessage(kind=kind, text=text, reference=reference, created_by=created_by,
                            created_at=utcnow())
    session.add(message)
    session.flush()
    due = (due_at or utcnow()).astimezone(UTC)
    rows = [{"message_id": message.id, "user_id": uid, "state": PENDING, "due_at": due,
             "attempts": 0} for uid in dict.fromkeys(user_ids)]
    if rows:
        session.execute(insert(OutboxItem), rows)
    return message
