"""The inbox: incoming updates stored before the channel confirms them, so a crash loses
none, and claimed in the turn's own transaction, so none is handled twice."""

from __future__ import annotations

from collections.abc import Iterable
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, select, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session

from db.models import InboxUpdate

KEEP = timedelta(hours=24)  # processed updates are kept this long (redeliveries come sooner)


def _insert(session: Session):
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


def store(session: Session, updates: Iterable[tuple[int, str | None, dict[str, Any]]],
          now: datetime) -> list[int]:
    """Store (update_id, user_key, payload) rows; returns the ids that were new (an id seen
    before, processed or not, is not stored again)."""
    new = []
    add = _statements(session)["add"]
    connection = session.connection()
    for update_id, user_key, payload in updates:
        # (RETURNING, not rowcount: psycopg reports 1 for a conflict that inserted nothing)
        if connection.execute(add, {"update_id": update_id, "user_key": user_key,
                                    "payload": payload, "received_at": now}
                              ).scalar() is not None:
            new.append(update_id)
    return new


def claim(session: Session, update_id: int, now: datetime) -> bool:
    """Mark the update processed in the caller's (the turn's) transaction. False when it was
    processed already. An update that was never stored is recorded as processed now."""
    st = _statements(session)
    connection = session.connection()
    if connection.execute(st["mark"], {"update": update_id, "at": now}).rowcount:
        return True
    return connection.execute(st["add"], {  # (see store: not rowcount)
        "update_id": update_id, "received_at": now, "processed_at": now}
    ).scalar() is not None


_STATEMENTS: dict[str, dict[str, Any]] = {}


def _statements(session: Session) -> dict[str, Any]:
    """store's and claim's statements, built once per dialect (they run for every update:
    building them each time costs CPU). Core, not the ORM's bulk machinery."""
    dialect = session.get_bind().dialect.name
    if dialect not in _STATEMENTS:
        table = InboxUpdate.__table__
        _STATEMENTS[dialect] = {
            "add": (_insert(session)(table)
                    .on_conflict_do_nothing(index_elements=["update_id"])
                    .returning(table.c.update_id)),
            "mark": (update(table)
                     .where(table.c.update_id == bindparam("update"),
                            table.c.processed_at.is_(None))
                     .values(processed_at=bindparam("at"), payload=None)),
        }
    return _STATEMENTS[dialect]


def pending(session: Session, limit: int = 500, after: int = -1,
            received_before: datetime | None = None) -> list[InboxUpdate]:
    """Stored updates not processed yet with an id above `after`, oldest first (to replay
    after a crash or outage, a page at a time); with `received_before`, only those stored
    before then (stalled ones, not those being processed right now)."""
    stmt = select(InboxUpdate).where(InboxUpdate.processed_at.is_(None),
                                     InboxUpdate.update_id > after)
    if received_before is not None:
        stmt = stmt.where(InboxUpdate.received_at < received_before)
    return list(session.scalars(stmt.order_by(InboxUpdate.update_id).limit(limit)))


def processed(session: Session, update_id: int) -> bool:
    """Whether the update was processed already (False when pending or never stored)."""
    return session.scalar(select(InboxUpdate.update_id).where(
        InboxUpdate.update_id == update_id, InboxUpdate.processed_at.is_not(None))) is not None


def pending_before(session: Session, user_key: str, update_id: int,
                   limit: int = 100) -> list[InboxUpdate]:
    """The user's stored updates not processed yet with an id below `update_id`, oldest
    first: they are processed before it, so one user's updates keep their order even when
    they reached different instances."""
    stmt = select(InboxUpdate).where(InboxUpdate.user_key == user_key,
                                     InboxUpdate.processed_at.is_(None),
                                     InboxUpdate.update_id < update_id)
    return list(session.scalars(stmt.order_by(InboxUpdate.update_id).limit(limit)))


def purge(session: Session, now: datetime) -> int:
    """Forget processed updates older than KEEP."""
    return session.execute(delete(InboxUpdate).where(
        InboxUpdate.processed_at.is_not(None), InboxUpdate.processed_at < now - KEEP)).rowcount
