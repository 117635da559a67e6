"""The user's own data (issue 16 item 4): what is kept about one account (`own_data`, for
/data_saya), its erasure (`erase`, for /hapus_data), the consent record, and the masking
every audit value goes through (`masked`, applied by `AuditLog` itself).

Erasure keeps what the law requires and cuts its link to the Telegram account:
- a registration still being processed (diajukan / diverifikasi) is withdrawn first
  ("ditarik", audited as a status change the operators see in the console's audit log,
  its registration history and the dashboard's status breakdown);
- every registration of the account stays, with `user_id` set to NULL;
- the audit rows written by the account (`actor` "user:<id>") stay, their actor replaced
  by one random pseudonym per erasure ("terhapus:<8 hex>"): still distinct per account
  (the "one NIK from 3 accounts" check keeps working), no longer linked to the account.
  Rows of the last day keep the account as actor for one more day (HOLD; the pseudonym
  waits on the users row and db.retention applies it), so an erasure cannot reset the
  hourly NIK lookup limit nor hide the account from the daily same-NIK check;
- the conversation state, handoff tickets with their messages, and the account's outbox
  rows (and messages nobody else receives) are deleted; the consent record and any other
  optional field of the `users` row are cleared. The row itself (channel and chat id)
  stays: it is how the chat is answered, now (the confirmation) and next time.
A mentor's account is not erased here (their record is managed by a coordinator).
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session

from db import registrations as registration_store
from db import repo
from db.models import (
    Assignment,
    AuditLog,
    HandoffTicket,
    Mentor,
    OutboxItem,
    OutboxMessage,
    Registration,
    User,
)
from domain import nik as nik_rules
from domain import phone as phone_rules
from domain import registration as rules
from domain.redact import redact

CLOSED = "closed"  # db.handoff.CLOSED (not imported: db.handoff imports the outbox)
# Outbox rows a worker may be sending right now: left alone (they finish or expire).
IN_FLIGHT = ("claimed", "sending")
# The users columns an erasure keeps: identity of the chat, role and bookkeeping.
USER_KEPT = frozenset({"id", "channel", "external_id", "role", "is_active", "created_at",
                       "last_seen_at", "erased_at", "erase_pseudonym"})
PSEUDONYM_PREFIX = "terhapus:"
# How long the audit rows before an erasure keep the account as actor: the windows of the
# NIK lookup limits (an hour) and of the same-NIK-from-several-accounts check (a day).
HOLD = timedelta(days=1)


# ---------------------------------------------------------------------- masking
def masked(value: Any) -> Any:
    """`value` (a string, number, or JSON list/dict) with every NIK, mobile number and bot
    token masked (domain.redact); keys of a dict too. None and booleans stay."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        text = redact(str(value))
        return value if text == str(value) else text
    if isinstance(value, str):
        return redact(value)
    if isinstance(value, dict):
        return {masked(str(k)): masked(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [masked(v) for v in value]
    return value


def mask_name(name: str) -> str:
    """"Budi Santoso" -> "Bu** Sa****": enough to recognise one's own name, not to read a
    stranger's over a shoulder."""
    words = []
    for word in name.split():
        keep = 1 if len(word) <= 3 else 2
        words.append(word[:keep] + "*" * (len(word) - keep))
    return " ".join(words)


def mask_nik(nik: str) -> str:
    return nik_rules.mask(nik)


def mask_phone(phone: str) -> str:
    return phone_rules.mask(phone)


# ---------------------------------------------------------------------- consent
def record_consent(session: Session, user: User, purpose: str, now: datetime) -> None:
    """Remember that the account agreed to the use of its data for `purpose` (a form)."""
    user.consent_at = now
    user.consent_for = purpose[:16]


# ---------------------------------------------------------------------- /data_saya
@dataclass(frozen=True)
class RegistrationView:
    number: str
    status: str
    nik: str          # masked
    name: str         # partly masked
    phone: str        # masked
    created_at: datetime
    mentor: str | None


@dataclass(frozen=True)
class OwnData:
    registrations: list[RegistrationView]
    consent_at: datetime | None
    consent_for: str | None
    handoff_tickets: int
    outbox_items: int
    is_mentor: bool


def _mentor_name(session: Session, registration: Registration) -> str | None:
    assignment = session.get(Assignment, registration.id)
    if assignment is None:
        return None
    mentor = session.get(Mentor, assignment.mentor_id)
    return mentor.nama if mentor is not None else None


def own_data(session: Session, user: User) -> OwnData:
    """What is stored about this account (the running form is in the caller's state)."""
    views = [RegistrationView(r.number, r.status, mask_nik(r.nik), mask_name(r.nama),
                              mask_phone(r.no_hp), r.created_at, _mentor_name(session, r))
             for r in registration_store.for_user(session, user.id)]
    tickets = len(session.scalars(select(HandoffTicket.id)
                                  .where(HandoffTicket.user_id == user.id)).all())
    items = len(session.scalars(select(OutboxItem.id)
                                .where(OutboxItem.user_id == user.id)).all())
    is_mentor = session.scalar(select(Mentor.id).where(Mentor.user_id == user.id)) is not None
    return OwnData(views, user.consent_at, user.consent_for, tickets, items, is_mentor)


# ---------------------------------------------------------------------- /hapus_data
@dataclass
class Erasure:
    withdrawn: list[str] = field(default_factory=list)   # registration numbers
    unlinked: int = 0             # registrations kept without the account
    handoff_tickets: int = 0
    outbox_items: int = 0
    outbox_messages: int = 0
    audit_rows: int = 0           # given the pseudonym
    pseudonym: str = ""


def open_handoff(session: Session, user_id: int) -> bool:
    return session.scalar(select(HandoffTicket.id).where(
        HandoffTicket.user_id == user_id, HandoffTicket.status != CLOSED).limit(1)) is not None


def is_mentor(session: Session, user_id: int) -> bool:
    return session.scalar(select(Mentor.id).where(Mentor.user_id == user_id)) is not None


def withdraw(session: Session, registration: Registration, actor: str, now: datetime) -> bool:
    """Set a registration still being processed to "ditarik" (audited); False when it was
    no longer withdrawable (an operator decided it meanwhile)."""
    previous = registration.status
    if not rules.can_withdraw(previous):
        return False
    table = Registration.__table__  # (Core, not an ORM bulk update: it has sealed columns)
    changed = session.execute(
        update(table).where(table.c.id == registration.id, table.c.status == previous)
        .values(status=rules.WITHDRAWN, updated_at=now)).rowcount
    if changed != 1:
        return False
    session.expire(registration, ["status", "updated_at"])
    repo.audit(session, actor, "registration_status", rules.WITHDRAWN,
               subject=registration.number,
               detail={"from": previous, "by": "pendaftar", "via": "hapus_data",
                       "nik": mask_nik(registration.nik)}, at=now)
    return True


def pseudonymise(session: Session, user_id: int, pseudonym: str, before: datetime) -> int:
    """Give the audit rows the account wrote before `before` the pseudonym."""
    return session.execute(
        update(AuditLog).where(AuditLog.actor == f"user:{user_id}", AuditLog.at < before)
        .values(actor=pseudonym).execution_options(synchronize_session=False)).rowcount or 0


def release_erased(session: Session, now: datetime) -> int:
    """For erasures older than HOLD: give the audit rows written up to the erasure their
    pseudonym and forget it (db.retention, daily). Returns how many rows changed."""
    changed = 0
    due = session.scalars(select(User).where(User.erased_at.is_not(None),
                                             User.erased_at < now - HOLD)).all()
    for user in due:
        if user.erase_pseudonym:
            changed += pseudonymise(session, user.id, user.erase_pseudonym,
                                    user.erased_at + timedelta(microseconds=1))
        user.erased_at = user.erase_pseudonym = None
    return changed


def erase(session: Session, user: User, now: datetime) -> Erasure:
    """Erase what is kept about `user` (see the module docstring); the caller has checked
    that no handoff is open and that the account is not a mentor's, and clears the
    conversation state it holds. The caller commits."""
    # A second erasure within HOLD goes on under the pseudonym still pending.
    done = Erasure(pseudonym=user.erase_pseudonym or PSEUDONYM_PREFIX + secrets.token_hex(4))
    actor = f"user:{user.id}"
    owned = registration_store.for_user(session, user.id)
    for registration in owned:
        if withdraw(session, registration, actor, now):
            done.withdrawn.append(registration.number)
    table = Registration.__table__
    done.unlinked = session.execute(
        update(table).where(table.c.user_id == user.id).values(user_id=None)).rowcount or 0
    for registration in owned:  # loaded before the Core updates: read them again
        session.expire(registration)
    # Handoff tickets (their messages go with them: ON DELETE CASCADE).
    done.handoff_tickets = session.execute(
        delete(HandoffTicket).where(HandoffTicket.user_id == user.id)
        .execution_options(synchronize_session=False)).rowcount or 0
    # Outbox rows of this account, then the messages nobody else receives.
    message_ids = set(session.scalars(select(OutboxItem.message_id).where(
        OutboxItem.user_id == user.id, OutboxItem.state.not_in(IN_FLIGHT))).all())
    done.outbox_items = session.execute(
        delete(OutboxItem).where(OutboxItem.user_id == user.id,
                                 OutboxItem.state.not_in(IN_FLIGHT))
        .execution_options(synchronize_session=False)).rowcount or 0
    if message_ids:
        others = exists().where(OutboxItem.message_id == OutboxMessage.id)
        done.outbox_messages = session.execute(
            delete(OutboxMessage).where(OutboxMessage.id.in_(message_ids), ~others)
            .execution_options(synchronize_session=False)).rowcount or 0
    # The users row: everything but the chat's identity and bookkeeping.
    for column in User.__table__.columns:
        if column.name not in USER_KEPT and column.nullable:
            setattr(user, column.key, None)
    # The audit trail stays, under a pseudonym; the erasure itself is audited under it too.
    # Rows of the last HOLD keep the account as actor until db.retention releases them (the
    # hourly NIK lookup limit and the daily same-NIK check count them).
    done.audit_rows = pseudonymise(session, user.id, done.pseudonym, now - HOLD)
    user.erased_at, user.erase_pseudonym = now, done.pseudonym
    repo.audit(session, done.pseudonym, "data_erased", "ok",
               detail={"withdrawn": done.withdrawn, "registrations_unlinked": done.unlinked,
                       "handoff_tickets": done.handoff_tickets,
                       "outbox_items": done.outbox_items,
                       "audit_rows_pseudonymised": done.audit_rows}, at=now)
    return done
