"""Retention (issue 16 item 3): personal data is kept only as long as it serves its purpose.

- a form left unfinished (conversation state): `form_days` (7) after its last answer, then
  removed; the user is told at their next message;
- the last messages kept in the state for a handoff's context: `recent_hours` (24);
- handoff messages of closed tickets: `handoff_days` (90), then deleted (the ticket stays);
- not-understood messages (`nlu_misses`) not labelled: `nlu_days` (90), then deleted
  (db.nlu_review.purge; labelled ones are masked training data);
- outbox texts: `outbox_days` (30) after the last delivery with every recipient final, then
  the text becomes PURGED_TEXT (the delivery records stay);
- `audit_log` (masked values only): `audit_years` (5), then deleted; rows an account wrote
  in the day before its /hapus_data get the erasure's pseudonym a day later
  (db.privacy.release_erased).

`run` does it all (`prokus retention run`, and daily in `prokus run`); each part works in
its own short transactions, so it never holds a lock for long, and `dry_run` counts
without changing anything. A conversation is rewritten only if it did not change since it
was read (its `updated_at`), so a user writing at the same moment is never overwritten.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, fields
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import and_, delete, exists, func, or_, select, update
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session, sessionmaker

from db.models import (
    AuditLog,
    Conversation,
    HandoffMessage,
    HandoffTicket,
    NikAttempt,
    NluMiss,
    OutboxItem,
    OutboxMessage,
)
from outbox.store import FINAL

log = logging.getLogger(__name__)

# What an outbox text becomes after retention: shown as it is wherever the text was shown
# (console, reports); it names nothing and is never sent (its rows are all final).
PURGED_TEXT = "[teks dihapus setelah masa simpan]"
# The state key telling the dialogue core that a form was cleared (actions.privacy).
CLEARED_KEY = "form_cleared"
BATCH = 500
# actions.identity flags a NIK tried from several accounts within a day; two days of
# attempts are enough for that.
NIK_ATTEMPT_DAYS = timedelta(days=2)


@dataclass(frozen=True)
class Policy:
    """How long each kind of personal data is kept."""

    form_days: int = 7
    recent_hours: int = 24
    handoff_days: int = 90
    nlu_days: int = 90
    outbox_days: int = 30
    audit_years: int = 5


@dataclass
class Report:
    """What one run deleted (or, in a dry run, would delete)."""

    forms_cleared: int = 0
    contexts_cleared: int = 0
    handoff_messages: int = 0
    nlu_misses: int = 0
    outbox_texts: int = 0
    audit_rows: int = 0
    nik_attempts: int = 0  # per-account NIK lookups (blind index) older than 2 days
    audit_released: int = 0  # audit rows given the pseudonym of an erasure a day old
    skipped: int = 0  # conversations that could not be read (reported in the log)

    def items(self) -> list[tuple[str, int]]:
        return [(f.name, getattr(self, f.name)) for f in fields(self)]


# ---------------------------------------------------------------------- conversations
def _moment(value: Any) -> datetime | None:
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def clean_state(state: dict[str, Any], updated_at: datetime | None, now: datetime,
                policy: Policy) -> tuple[dict[str, Any], bool, bool]:
    """(new state, form cleared, context cleared) for one conversation: a form whose last
    answer (`form.at`, else the conversation's `updated_at`) is older than `form_days` is
    removed and `CLEARED_KEY` names it (with `form_days`, for the notice); recent
    messages older than `recent_hours` go."""
    new = dict(state)
    form_cleared = context_cleared = False
    form = new.get("form")
    if isinstance(form, dict):
        at = _moment(form.get("at")) or updated_at
        if at is not None and now - at > timedelta(days=policy.form_days):
            new.pop("form")
            new[CLEARED_KEY] = {"form": str(form.get("name") or ""),
                                "days": policy.form_days}
            new.pop("contact_keyboard", None)
            form_cleared = True
    recent = new.get("recent")
    if isinstance(recent, list) and recent:
        limit = now - timedelta(hours=policy.recent_hours)
        kept = [e for e in recent if isinstance(e, list | tuple) and len(e) > 2
                and (_moment(e[2]) or limit) > limit]
        if len(kept) != len(recent):
            context_cleared = True
            if kept:
                new["recent"] = kept
            else:
                new.pop("recent")
    return new, form_cleared, context_cleared


def _states(session: Session, after: int) -> list[tuple[int, dict | None, datetime | None]]:
    """One batch of conversations after `after`; a row that cannot be read (a corrupted
    sealed state) comes with None and is skipped by the caller."""
    ids = session.execute(select(Conversation.user_id, Conversation.updated_at)
                          .where(Conversation.user_id > after)
                          .order_by(Conversation.user_id).limit(BATCH)).all()
    if not ids:
        return []
    try:
        rows = session.execute(select(Conversation.user_id, Conversation.state,
                                      Conversation.updated_at)
                               .where(Conversation.user_id.in_([i for i, _ in ids]))
                               .order_by(Conversation.user_id)).all()
        return [(uid, state, at) for uid, state, at in rows]
    except DBAPIError:
        raise
    except Exception:  # noqa: S110 - one unreadable row: read them one by one
        pass
    found = []
    for uid, at in ids:
        try:
            state = session.scalar(select(Conversation.state)
                                   .where(Conversation.user_id == uid))
        except DBAPIError:
            raise
        except Exception as exc:
            log.error("conversation state unreadable; skipped",
                      extra={"user_id": uid, "error": type(exc).__name__})
            state = None
        found.append((uid, state, at))
    return found


def clear_stale_forms(sessions: sessionmaker[Session], now: datetime, policy: Policy,
                      dry_run: bool = False) -> tuple[int, int, int]:
    """Apply `clean_state` to every conversation: (forms cleared, contexts cleared,
    conversations skipped)."""
    forms = contexts = skipped = 0
    after = 0
    while True:
        with sessions.begin() as session:
            batch = _states(session, after)
            if not batch:
                break
            for uid, state, updated_at in batch:
                after = uid
                if state is None:
                    skipped += 1
                    continue
                new, form_cleared, context_cleared = clean_state(state, updated_at, now,
                                                                 policy)
                if not (form_cleared or context_cleared):
                    continue
                if not dry_run:
                    # (Core, not an ORM bulk update: the state column is sealed.)
                    table = Conversation.__table__
                    changed = session.execute(
                        update(table)
                        .where(table.c.user_id == uid, table.c.updated_at == updated_at)
                        .values(state=new)).rowcount
                    if changed != 1:
                        continue  # the user wrote meanwhile: next run
                forms += form_cleared
                contexts += context_cleared
    return forms, contexts, skipped


# ---------------------------------------------------------------------- the other tables
def _count_or_delete(session: Session, model, condition, dry_run: bool) -> int:
    if dry_run:
        return session.scalar(select(func.count()).select_from(model).where(condition)) or 0
    return session.execute(delete(model).where(condition)
                           .execution_options(synchronize_session=False)).rowcount or 0


def purge_handoff_messages(session: Session, now: datetime, policy: Policy,
                           dry_run: bool = False) -> int:
    """Messages of closed handoff tickets older than `handoff_days` (tickets stay)."""
    cutoff = now - timedelta(days=policy.handoff_days)
    closed = select(HandoffTicket.id).where(HandoffTicket.status == "closed")
    condition = and_(HandoffMessage.created_at < cutoff, HandoffMessage.ticket_id.in_(closed))
    return _count_or_delete(session, HandoffMessage, condition, dry_run)


def purge_nlu_misses(session: Session, now: datetime, policy: Policy,
                     dry_run: bool = False) -> int:
    """Not-understood messages: unreviewed ones `nlu_days` after arriving, discarded ones
    `nlu_days` after review (db.nlu_review.purge); labelled ones are training data."""
    from db.nlu_review import purge

    if not dry_run:
        return purge(session, now, policy.nlu_days)
    cutoff = now - timedelta(days=policy.nlu_days)
    condition = or_(and_(NluMiss.status == "new", NluMiss.created_at < cutoff),
                    and_(NluMiss.status == "discarded", NluMiss.reviewed_at < cutoff))
    return session.scalar(select(func.count()).select_from(NluMiss).where(condition)) or 0


def purge_outbox_texts(sessions: sessionmaker[Session], now: datetime, policy: Policy,
                       dry_run: bool = False) -> int:
    """Replace the text of messages whose every recipient row is final and whose last
    delivery (or attempt) is older than `outbox_days` by PURGED_TEXT."""
    cutoff = now - timedelta(days=policy.outbox_days)
    open_rows = exists().where(OutboxItem.message_id == OutboxMessage.id,
                               OutboxItem.state.not_in(FINAL))
    recent_rows = exists().where(
        OutboxItem.message_id == OutboxMessage.id,
        func.coalesce(OutboxItem.sent_at, OutboxItem.attempted_at, OutboxItem.due_at)
        >= cutoff)
    report_due = and_(OutboxMessage.report_to.is_not(None), OutboxMessage.reported_at.is_(None))
    candidates = and_(OutboxMessage.text_purged_at.is_(None), OutboxMessage.created_at < cutoff,
                      ~open_rows, ~recent_rows, ~report_due)
    total, after = 0, 0
    while True:
        with sessions.begin() as session:
            ids = session.scalars(select(OutboxMessage.id)
                                  .where(candidates, OutboxMessage.id > after)
                                  .order_by(OutboxMessage.id).limit(BATCH)).all()
            if not ids:
                return total
            after = ids[-1]
            if dry_run:
                total += len(ids)
                continue
            table = OutboxMessage.__table__  # (Core: the text column is sealed)
            total += session.execute(
                update(table).where(table.c.id.in_(ids))
                .values(text=PURGED_TEXT, text_purged_at=now)).rowcount or 0


def audit_cutoff(now: datetime, years: int) -> datetime:
    """The same day `years` years back (28 February for 29 February)."""
    try:
        return now.replace(year=now.year - years)
    except ValueError:
        return now.replace(year=now.year - years, day=28)


def purge_audit(session: Session, now: datetime, policy: Policy, dry_run: bool = False) -> int:
    """Audit rows older than `audit_years`."""
    return _count_or_delete(session, AuditLog,
                            AuditLog.at < audit_cutoff(now, policy.audit_years), dry_run)


# ---------------------------------------------------------------------- all of it
def run(sessions: sessionmaker[Session], now: datetime | None = None,
        policy: Policy | None = None, dry_run: bool = False) -> Report:
    """Apply the whole retention table once; returns the counts."""
    now = (now or datetime.now(UTC)).astimezone(UTC)
    policy = policy or Policy()
    report = Report()
    report.forms_cleared, report.contexts_cleared, report.skipped = clear_stale_forms(
        sessions, now, policy, dry_run)
    with sessions.begin() as session:
        report.handoff_messages = purge_handoff_messages(session, now, policy, dry_run)
    with sessions.begin() as session:
        report.nlu_misses = purge_nlu_misses(session, now, policy, dry_run)
    report.outbox_texts = purge_outbox_texts(sessions, now, policy, dry_run)
    with sessions.begin() as session:
        report.audit_rows = purge_audit(session, now, policy, dry_run)
    with sessions.begin() as session:
        report.nik_attempts = _count_or_delete(
            session, NikAttempt, NikAttempt.at < now - NIK_ATTEMPT_DAYS, dry_run)
    if not dry_run:
        from db.privacy import release_erased

        with sessions.begin() as session:
            report.audit_released = release_erased(session, now)
    return report
