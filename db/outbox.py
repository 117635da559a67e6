"""The durable outbox: every proactive message (status notice, reminder, broadcast) is
written here first, one row per recipient, and sent later by the worker."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from contextvars import ContextVar
from datetime import datetime
from typing import Any

from sqlalchemy import insert
from sqlalchemy.orm import Session

from actions.types import Reply
from db.models import OutboxItem, OutboxMessage, utcnow

PENDING = "pending"
REPLY = "reply"
# Lower goes first in the shared send budget: replies to someone who just wrote, then
# notices, reminders and reports, then broadcasts.
PRIORITY = {REPLY: 0, "broadcast": 2}
DEFAULT_PRIORITY = 1

# The turn being run, if any (a bot.metrics.TurnRecord, set by the channel around the turn):
# the rows written here carry its `correlation_id`, and `enqueue_replies` notes the row ids
# on it (`outbox_ids`) for the turn's log line. Reminders and broadcasts made outside a
# turn leave correlation_id null.
current_turn: ContextVar[Any] = ContextVar("prokus_current_turn", default=None)


def current_correlation_id() -> str | None:
    """The correlation id of the turn being run, or None."""
    turn = current_turn.get()
    return getattr(turn, "correlation_id", None) if turn is not None else None


def enqueue(session: Session, kind: str, text: str, user_ids: Iterable[int], created_by: str,
            reference: str | None = None, due_at: datetime | None = None,
            expires_at: datetime | None = None, report_to: int | None = None,
            markup: dict | None = None, paid: bool = False,
            paid_rate: float | None = None) -> OutboxMessage:
    """Record `text` for each recipient in the caller's transaction; nothing is sent here,
    so a crash after commit loses nothing and a rollback sends nothing. A row is never sent
    at or after `expires_at`; `report_to` gets a delivery report when all are done. `paid`
    (a paid broadcast) is sent with allow_paid_broadcast at up to `paid_rate` messages/s."""
    message = OutboxMessage(kind=kind, text=text, reference=reference, created_by=created_by,
                            created_at=utcnow(), report_to=report_to, markup=markup,
                            paid=paid, paid_rate=paid_rate if paid else None)
    session.add(message)
    session.flush()
    add_recipients(session, message.id, user_ids, due_at or utcnow(), expires_at,
                   PRIORITY.get(kind, DEFAULT_PRIORITY))
    return message


def add_recipients(session: Session, message_id: int, user_ids: Iterable[int],
                   due_at: datetime, expires_at: datetime | None = None,
                   priority: int = DEFAULT_PRIORITY) -> None:
    """More recipients for a message (a mentee assigned after the session was made)."""
    correlation = current_correlation_id()
    rows = [{"message_id": message_id, "user_id": uid, "state": PENDING, "due_at": due_at,
             "attempts": 0, "expires_at": expires_at, "priority": priority,
             "correlation_id": correlation}
            for uid in dict.fromkeys(user_ids)]
    if rows:
        session.execute(insert(OutboxItem), rows)


def markup_of(reply: Reply, contact_label: str) -> dict | None:
    """A reply's buttons, channel-neutral: {"buttons": [[label, payload]...]} (inline),
    {"contact": label, "buttons": ...} (a one-time keyboard with "share contact" first), or
    {"remove_keyboard": true} (hide an earlier contact keyboard)."""
    buttons = [[b.label, b.payload] for b in reply.buttons]
    if reply.ask_contact:
        return {"contact": contact_label, "buttons": buttons}
    if buttons:
        return {"buttons": buttons}
    return {"remove_keyboard": True} if reply.remove_keyboard else None


_NEW_REPLY_MESSAGE = insert(OutboxMessage.__table__).returning(OutboxMessage.__table__.c.id)
_NEW_REPLY_ITEM = insert(OutboxItem.__table__).returning(OutboxItem.__table__.c.id)


def enqueue_replies(session: Session, user_id: int, replies: Iterable[Reply],
                    contact_label: str, split: Callable[[str], list[str]],
                    reference: str | None = None) -> list[int]:
    """Write a turn's replies to the outbox in the turn's transaction, in order, a long one
    in several parts (buttons on the last). Returns the outbox row ids (also noted on the
    current turn, whose correlation id the rows carry)."""
    ids: list[int] = []
    now = utcnow()
    connection = session.connection()  # (Core inserts: the ORM's flush costs CPU per row)
    turn = current_turn.get()
    correlation = current_correlation_id()
    for reply in replies:
        *first, last = split(reply.text) or [reply.text]
        parts = [(part, None) for part in first] + [(last, markup_of(reply, contact_label))]
        for text, markup in parts:
            message_id = connection.execute(_NEW_REPLY_MESSAGE, {
                "kind": REPLY, "text": text, "reference": reference, "created_by": "turn",
                "created_at": now, "markup": markup}).scalar_one()
            ids.append(connection.execute(_NEW_REPLY_ITEM, {
                "message_id": message_id, "user_id": user_id, "state": PENDING,
                "due_at": now, "attempts": 0, "priority": PRIORITY[REPLY],
                "correlation_id": correlation}).scalar_one())
    if turn is not None:  # (replaced, not added to: an attempt rolled back wrote nothing)
        turn.outbox_ids = list(ids)
    return ids
