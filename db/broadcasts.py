"""Operator broadcasts: who a target reaches, who is skipped and why, and queueing the
message in the durable outbox. `prokus broadcast send --to ...` and the console's
/broadcasts call these same functions.

Targets (the CLI's --to, the console's audience picker):
  mentees:MENTOR_ID     the registrations assigned to that mentor
  registrants:STATUS    registrations with that status (diajukan, diverifikasi, diterima,
                        ditolak)
  region:CODE           active registrations whose KPM registry record lies in the region
                        (kode wilayah prefix, dotted or digits: a province 32, a kabupaten
                        32.01 or a kecamatan 32.01.05); once `prokus regions load` has
                        filled the regions table, a code it lacks is refused
                        ("unknown region code 32.99", code target_region)
Only registrations made through the chat have an account to write to; of those accounts,
one that blocked the bot (or left: inactive) or is not on Telegram is skipped.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from db import mentoring
from db import regions as region_table
from db.models import Kpm, OutboxMessage, Registration, User, utcnow
from db.outbox import enqueue
from domain import regions
from domain import registration as rules
from domain.numbers import read_int

KIND = "broadcast"          # outbox kind; db.outbox gives it priority 2 (after replies)
TEXT_MAX = 4096             # Telegram's limit for one message
CHANNEL = "telegram"
DB_ID_MAX = 2**31 - 1
TARGET_KINDS = ("mentees", "registrants", "region")
TARGET_HELP = ("use mentees:MENTOR_ID, registrants:STATUS (diajukan, diverifikasi, "
               "diterima, ditolak) or region:CODE")


class BroadcastError(ValueError):
    """A target or text the operator must fix; `code` for the console's messages."""

    def __init__(self, message: str, code: str) -> None:
        super().__init__(message)
        self.code = code


@dataclass(frozen=True)
class Audience:
    """Who a target names: chat accounts (user ids) and registrations without one."""

    target: str                  # normalised: mentees:3, registrants:diterima, region:3201
    kind: str
    value: str
    description: str             # English, for the CLI
    user_ids: list[int]
    without_chat: int            # matching registrations made outside the chat
    mentor: mentoring.Mentor | None = None


@dataclass(frozen=True)
class Recipients:
    """An audience split into those the broadcast goes to and those skipped, by reason."""

    audience: Audience
    reachable: list[int]
    inactive: int                # blocked the bot or left (users.is_active false)
    other_channel: int           # an account on another channel (not Telegram)

    @property
    def skipped(self) -> int:
        """Accounts skipped (registrations without an account are counted apart)."""
        return self.inactive + self.other_channel


def clean_text(text: str) -> str:
    """The text to send (trimmed), or BroadcastError for an empty or too long one."""
    text = (text or "").replace("\r\n", "\n").replace("\r", "\n").strip()
    if not text:
        raise BroadcastError("the text is empty", "text_empty")
    if len(text) > TEXT_MAX:
        raise BroadcastError(f"1-{TEXT_MAX} characters (this one has {len(text)})",
                             "text_long")
    return text


def parse_target(target: str) -> tuple[str, str]:
    """(kind, value) of a target, normalised; BroadcastError when it names nothing."""
    kind, _, value = (target or "").strip().partition(":")
    value = value.strip()
    if kind == "mentees" and read_int(value, 10, 1, DB_ID_MAX) is not None:
        return kind, str(read_int(value, 10, 1, DB_ID_MAX))
    if kind == "registrants" and value in rules.STATUSES:
        return kind, value
    if kind == "region" and regions.valid_region(value):
        return kind, value.replace(".", "")
    raise BroadcastError(TARGET_HELP, f"target_{kind}" if kind in TARGET_KINDS else "target")


def _unique(ids) -> list[int]:
    return list(dict.fromkeys(i for i in ids if i is not None))


def resolve(session: Session, target: str) -> Audience:
    """The accounts and registrations a target names. Raises BroadcastError for a target
    that names nothing and MentoringError for an unknown mentor."""
    kind, value = parse_target(target)
    normal = f"{kind}:{value}"
    if kind == "region":
        try:
            region_table.check_code(session, value)
        except region_table.UnknownRegion as exc:
            raise BroadcastError(f"{exc}; {TARGET_HELP}", "target_region") from None
    if kind == "mentees":
        mentor = mentoring.mentor_by_id(session, int(value))
        people = mentoring.mentees(session, mentor.id)
        return Audience(normal, kind, value, f"mentees of mentor {mentor.id} ({mentor.nama})",
                        _unique(sorted(r.user_id for r in people if r.user_id)),
                        sum(1 for r in people if r.user_id is None), mentor)
    if kind == "registrants":
        where = (Registration.status == value,)
        description = f"registrants with status {value}"
    else:
        where = (Kpm.kode_wilayah.startswith(value), Registration.status.in_(rules.ACTIVE))
        description = f"registrants in region {value}"
    base = select(Registration.user_id)
    if kind == "region":
        base = base.join(Kpm, Kpm.nik == Registration.nik)
    ids = session.scalars(base.where(*where, Registration.user_id.is_not(None))).all()
    count = select(func.count()).select_from(Registration)
    if kind == "region":
        count = count.join(Kpm, Kpm.nik == Registration.nik)
    without = session.scalar(count.where(*where, Registration.user_id.is_(None))) or 0
    return Audience(normal, kind, value, description, _unique(ids), without)


def recipients(session: Session, target: str) -> Recipients:
    """Resolve a target and split it into reachable accounts and skipped ones."""
    audience = resolve(session, target)
    users = session.execute(select(User.id, User.channel, User.is_active).where(
        User.id.in_(audience.user_ids))).all() if audience.user_ids else []
    reachable, inactive, other = [], 0, 0
    for user_id, channel, active in sorted(users):
        if channel != CHANNEL:
            other += 1
        elif not active:
            inactive += 1
        else:
            reachable.append(user_id)
    return Recipients(audience, reachable, inactive, other)


def queue(session: Session, target: str, text: str, actor: str) -> tuple[OutboxMessage,
                                                                       Recipients]:
    """Queue `text` for everyone the target reaches now, in the caller's transaction (the
    caller audits and commits); the outbox worker sends it. Raises BroadcastError when the
    text is invalid or nobody can be reached."""
    text = clean_text(text)
    found = recipients(session, target)
    if not found.reachable:
        raise BroadcastError("nobody to send to", "nobody")
    message = enqueue(session, KIND, text, found.reachable, created_by=actor,
                      reference=found.audience.target)
    return message, found


def recent_duplicate(session: Session, target: str, text: str, actor: str,
                     now: datetime | None = None,
                     within: timedelta = timedelta(minutes=10)) -> OutboxMessage | None:
    """The same broadcast (same target, text and operator) queued in the last minutes: a
    second press of "Kirim" should not send it twice."""
    try:
        kind, value = parse_target(target)
        text = clean_text(text)
    except BroadcastError:
        return None
    return session.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == KIND, OutboxMessage.reference == f"{kind}:{value}",
        OutboxMessage.created_by == actor,
        OutboxMessage.created_at >= (now or utcnow()) - within,  # enqueue stamps utcnow()
        OutboxMessage.text == text).order_by(OutboxMessage.id.desc())).first()


def recent(session: Session, limit: int = 20) -> list[OutboxMessage]:
    """The newest broadcasts (operators' and mentors'), newest first."""
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == KIND)
                                .order_by(OutboxMessage.id.desc()).limit(limit)))


def get(session: Session, message_id: int) -> OutboxMessage | None:
    message = session.get(OutboxMessage, message_id)
    return message if message is not None and message.kind == KIND else None
