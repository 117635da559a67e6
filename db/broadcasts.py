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
from db.models import OutboxMessage, Registration, User, utcnow
from db.outbox import enqueue
from db.registrations import in_region
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
        # The registration's own region code (its matched address, else the NIK's
        # kecamatan): no join on the NIK, which is sealed.
        where = (in_region(value), Registration.status.in_(rules.ACTIVE))
        description = f"registrants in region {value}"
    base = select(Registration.user_id)
    ids = session.scalars(base.where(*where, Registration.user_id.is_not(None))).all()
    count = select(func.count()).select_from(Registration)
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


def queue(session: Session, target: str, text: str, actor: str, paid: bool = False,
          rate: float | None = None) -> tuple[OutboxMessage, Recipients]:
    """Queue `text` for everyone the target reaches now, in the caller's transaction (the
    caller audits and commits); the outbox worker sends it. `paid`: a paid broadcast
    (allow_paid_broadcast) at `rate` messages/s (PAID_RATE_MAX by default). Raises
    BroadcastError when the text or the rate is invalid or nobody can be reached."""
    text = clean_text(text)
    if paid:
        rate = check_paid_rate(PAID_RATE_MAX if rate is None else rate)
    found = recipients(session, target)
    if not found.reachable:
        raise BroadcastError("nobody to send to", "nobody")
    message = enqueue(session, KIND, text, found.reachable, created_by=actor,
                      reference=found.audience.target, paid=paid,
                      paid_rate=rate if paid else None)
    return message, found


# ---------------------------------------------------------------------- paid broadcasts
FREE_RATE = 30.0            # Telegram's free broadcast limit, messages/s
PAID_RATE_MAX = 1000.0      # with allow_paid_broadcast
STARS_PER_PAID_MESSAGE = 0.1


def check_paid_rate(rate: float) -> float:
    """A paid broadcast's rate: above the free limit, at most PAID_RATE_MAX."""
    if not FREE_RATE < rate <= PAID_RATE_MAX:
        raise BroadcastError(f"a paid rate is more than {FREE_RATE:g} and at most "
                             f"{PAID_RATE_MAX:g} messages/s", "paid_rate")
    return float(rate)


@dataclass(frozen=True)
class PaidEstimate:
    """What a paid broadcast to `recipients` at `rate` is expected to cost and take.

    Stars = 0.1 x the messages above the free limit = 0.1 x N x (1 - 30 / rate): over the
    broadcast's duration N / rate, 30 messages/s are free and the rest are paid. Telegram
    may charge every message sent with the flag: at most 0.1 x N (`stars_max`)."""

    recipients: int
    rate: float
    free_rate: float = FREE_RATE

    @property
    def paid_messages(self) -> int:
        return max(0, round(self.recipients * (1 - self.free_rate / self.rate)))

    @property
    def stars(self) -> float:
        return round(self.paid_messages * STARS_PER_PAID_MESSAGE, 1)

    @property
    def stars_max(self) -> float:
        return round(self.recipients * STARS_PER_PAID_MESSAGE, 1)

    @property
    def seconds(self) -> float:
        return self.recipients / self.rate

    @property
    def free_seconds(self) -> float:
        """The same broadcast at the free limit, for comparison."""
        return self.recipients / self.free_rate


def duration_text(seconds: float) -> str:
    """"2 h 05 min", "3 min 20 s", "45 s"."""
    seconds = max(0, round(seconds))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    if hours:
        return f"{hours} h {minutes:02d} min"
    if minutes:
        return f"{minutes} min {secs:02d} s"
    return f"{secs} s"


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
    candidates = session.scalars(select(OutboxMessage).where(
        OutboxMessage.kind == KIND, OutboxMessage.reference == f"{kind}:{value}",
        OutboxMessage.created_by == actor,
        OutboxMessage.created_at >= (now or utcnow()) - within,  # enqueue stamps utcnow()
    ).order_by(OutboxMessage.id.desc()))
    # The text is sealed (db.crypto): compared here, among the few recent candidates.
    return next((m for m in candidates if m.text == text), None)


def recent(session: Session, limit: int = 20) -> list[OutboxMessage]:
    """The newest broadcasts (operators' and mentors'), newest first."""
    return list(session.scalars(select(OutboxMessage).where(OutboxMessage.kind == KIND)
                                .order_by(OutboxMessage.id.desc()).limit(limit)))


def get(session: Session, message_id: int) -> OutboxMessage | None:
    message = session.get(OutboxMessage, message_id)
    return message if message is not None and message.kind == KIND else None
