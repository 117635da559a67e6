"""The durable outbox: every proactive message (status notice, reminder, broadcast) is
written here first, one row per recipient, and sent later by the worker."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime

from sqlalchemy import insert
from sqlalchemy.orm import Session

from db.models import OutboxItem, OutboxMessage, utcnow

PENDING = "pending"


def enqueue(session: Session, kind: str, text: str, user_ids: Iterable[int], created_by: str,
            reference: str | None = None, due_at: datetime | None = None,
            expires_at: datetime | None = None, report_to: int | None = None) -> OutboxMessage:
    """Record `text` for each recipient in the caller's transaction; nothing is sent here,
    so a crash after commit loses nothing and a rollback sends nothing. A row is never sent
    at or after `expires_at`; `report_to` gets a delivery report when all are done."""
    message = OutboxMessage(kind=kind, text=text, reference=reference, created_by=created_by,
                            created_at=utcnow(), report_to=report_to)
    session.add(message)
    session.flush()
    add_recipients(session, message.id, user_ids, due_at or utcnow(), expires_at)
    return message


def add_recipients(session: Session, message_id: int, user_ids: Iterable[int],
                   due_at: datetime, expires_at: datetime | None = None) -> None:
    """More recipients for a message (a mentee assigned after the session was made)."""
    rows = [{"message_id": message_id, "user_id": uid, "state": PENDING, "due_at": due_at,
             "attempts": 0, "expires_at": expires_at} for uid in dict.fromkeys(user_ids)]
    if rows:
        session.execute(insert(OutboxItem), rows)
