"""The operators' side of a handoff (issue 14): the inbox of open tickets, one ticket's
conversation, taking, answering and closing a ticket. The console (`/inbox`) calls these;
the chat side (db.handoff) creates the tickets and stores the user's messages.

Rules
- Open tickets are `waiting` (nobody has it) and `assigned` (one operator has it);
  `confirming` tickets (the user has not written their question yet) are not in the inbox.
- Taking is a compare-and-set (`UPDATE ... WHERE status = 'waiting'`): of two operators
  who take the same ticket at once, exactly one gets it; on PostgreSQL the second UPDATE
  waits for the first transaction and then finds the status changed.
- Only the operator who holds a ticket answers it; the answer goes to the ticket's user
  through the outbox (kind "handoff", priority 0 like a reply, so it goes before notices
  and broadcasts and in order per chat), as plain text (no parse mode: HTML typed by an
  operator arrives as text). An answer is at most REPLY_MAX characters; with the
  "Balasan petugas" heading it may exceed Telegram's 4,096 UTF-16 units (an emoji counts
  twice), so it is split into several outbox messages, sent in order. Every part carries
  the reference `handoff-msg:<id>`, from which the ticket shows one delivery state.
- Closing needs an outcome from OUTCOMES and tells the user (`handoff_closed_by_operator`).
  The holder closes an assigned ticket; a waiting ticket may be closed by any operator
  who sees it (spam, a question answered elsewhere); `override` (supervisors) closes any.
- `scope` (a verifier's region, kode wilayah digits) narrows everything to tickets whose
  kode_wilayah starts with it; a ticket outside it is "not found".
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import ColumnElement, and_, func, or_, select, true, update
from sqlalchemy.orm import Session

from actions.responses import shared
from bot.render import TEXT_LIMIT, split_text
from db.models import (
    HandoffMessage,
    HandoffTicket,
    OutboxItem,
    OutboxMessage,
    Registration,
)
from db.outbox import PRIORITY, REPLY, add_recipients
from domain.nik import mask as mask_nik
from domain.phone import mask as mask_phone

WAITING, ASSIGNED, CLOSED, CONFIRMING = "waiting", "assigned", "closed", "confirming"
OPEN = (WAITING, ASSIGNED)
KIND = "handoff"                 # outbox kind of everything sent from the inbox
REPLY_MAX = 4000                 # characters an operator may type in one answer
PAGE_SIZE = 50
MESSAGES_SHOWN = 300             # the latest messages of a ticket on its page
OUTCOMES: dict[str, str] = {
    "selesai": "Selesai (pertanyaan terjawab)",
    "dirujuk": "Dirujuk ke pendamping/dinas sosial",
    "tidak_ada_respons": "Pengguna tidak merespons",
    "spam": "Spam / tidak relevan",
}
STATUS_LABELS = {CONFIRMING: "Konfirmasi", WAITING: "Menunggu petugas",
                 ASSIGNED: "Ditangani", CLOSED: "Selesai"}
# Outbox states grouped for the operator (outbox/store.py has the life cycle).
DELIVERY = {"pending": "menunggu", "claimed": "menunggu", "sending": "menunggu",
            "sent": "terkirim", "failed": "gagal", "blocked": "gagal",
            "uncertain": "tidak_pasti", "expired": "batal", "cancelled": "batal"}
DELIVERY_LABELS = {"menunggu": "Menunggu dikirim", "terkirim": "Terkirim",
                   "gagal": "Gagal dikirim", "tidak_pasti": "Tidak pasti terkirim",
                   "batal": "Tidak dikirim"}
texts = shared  # the bot's Indonesian texts, loaded once


def topic_label(topic: str | None) -> str | None:
    """What led to the handoff, as the bot's button names it ("Laporkan masalah")."""
    key = f"label/{topic}"
    return texts()(key) if topic and key in texts() else topic


class InboxError(Exception):
    """Why a step was not done: not_found, taken (by `holder`), not_taken, mine (the
    operator already holds it), closed, empty, too_long, bad_outcome."""

    def __init__(self, code: str, holder: str | None = None) -> None:
        super().__init__(code)
        self.code = code
        self.holder = holder


# ---------------------------------------------------------------------- the list
@dataclass(frozen=True)
class TicketRow:
    id: int
    status: str
    kode_wilayah: str | None
    topic: str | None
    assigned_to: str | None
    created_at: datetime
    last_user_at: datetime | None
    last_operator_at: datetime | None
    closed_at: datetime | None
    outcome: str | None
    messages: int
    preview: str | None          # the user's latest message (already masked), shortened

    @property
    def topic_label(self) -> str | None:
        return topic_label(self.topic)

    @property
    def waiting_since(self) -> datetime | None:
        """Since when the user waits for a person: the ticket's creation while nobody has
        it, then their latest message that no operator answer followed; None: answered."""
        if self.status == WAITING:
            return self.created_at
        if self.status != ASSIGNED or self.last_user_at is None:
            return None
        if self.last_operator_at is None or self.last_user_at > self.last_operator_at:
            return self.last_user_at
        return None


@dataclass(frozen=True)
class TicketPage:
    rows: list[TicketRow]
    page: int
    total: int

    @property
    def pages(self) -> int:
        return max(1, -(-self.total // PAGE_SIZE))

    @property
    def has_next(self) -> bool:
        return self.page < self.pages


def in_scope(scope: str | None) -> ColumnElement[bool]:
    """Tickets whose kode_wilayah starts with `scope` (digits); everything for None. A
    ticket without a region is outside every region."""
    if not scope:
        return true()
    return HandoffTicket.kode_wilayah.startswith(scope, autoescape=True)


def list_tickets(session: Session, *, mine: str | None = None, unassigned: bool = False,
                 region_prefix: str | None = None, include_closed: bool = False,
                 page: int = 1, scope: str | None = None) -> TicketPage:
    """Open tickets (and closed ones with `include_closed`), oldest first, PAGE_SIZE a page:
    `mine` an operator's, `unassigned` nobody's, `region_prefix` (digits) a region's,
    `scope` the operator's own region limit."""
    statuses = (*OPEN, CLOSED) if include_closed else OPEN
    where: list[ColumnElement[bool]] = [HandoffTicket.status.in_(statuses), in_scope(scope)]
    if mine:
        where.append(HandoffTicket.assigned_to == mine)
    if unassigned:
        where.append(HandoffTicket.status == WAITING)
    if region_prefix:
        where.append(in_scope(region_prefix))
    total = session.scalar(select(func.count()).select_from(HandoffTicket).where(*where)) or 0
    page = max(1, page)
    count = (select(func.count()).where(HandoffMessage.ticket_id == HandoffTicket.id)
             .scalar_subquery())
    last_user = (select(func.max(HandoffMessage.id))
                 .where(HandoffMessage.ticket_id == HandoffTicket.id,
                        HandoffMessage.sender == "user").scalar_subquery())
    stmt = (select(HandoffTicket, count.label("n"), last_user.label("last_user"))
            .where(*where)
            .order_by(HandoffTicket.created_at, HandoffTicket.id)
            .offset((page - 1) * PAGE_SIZE).limit(PAGE_SIZE))
    found = session.execute(stmt).all()
    previews = {}
    wanted = [row.last_user for row in found if row.last_user is not None]
    if wanted:
        previews = dict(session.execute(select(HandoffMessage.id, HandoffMessage.text)
                                        .where(HandoffMessage.id.in_(wanted))).all())
    rows = []
    for ticket, n, last in found:
        text = previews.get(last)
        rows.append(TicketRow(
            ticket.id, ticket.status, ticket.kode_wilayah, ticket.topic, ticket.assigned_to,
            ticket.created_at, ticket.last_user_at, ticket.last_operator_at,
            ticket.closed_at, ticket.outcome, int(n or 0),
            (text[:117] + "…" if len(text) > 120 else text) if text else None))
    return TicketPage(rows, page, int(total))


# ---------------------------------------------------------------------- one ticket
@dataclass(frozen=True)
class MessageView:
    id: int
    sender: str
    author: str | None
    kind: str
    text: str
    created_at: datetime
    delivery: str | None = None        # a DELIVERY group for what went to the user
    delivery_error: str | None = None

    @property
    def delivery_label(self) -> str | None:
        return DELIVERY_LABELS.get(self.delivery) if self.delivery else None


@dataclass(frozen=True)
class RegistrationSummary:
    number: str
    status: str
    nama: str
    nik_masked: str
    phone_masked: str
    address: str
    bidang_usaha: str
    created_at: datetime


@dataclass
class TicketView:
    ticket: HandoffTicket
    messages: list[MessageView]
    registration: RegistrationSummary | None
    registrations: int = 0
    earlier: int = 0                    # messages older than the ones shown
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def last_id(self) -> int:
        return self.messages[-1].id if self.messages else 0


def reference(message_id: int) -> str:
    """The outbox reference of every part sent for one handoff message."""
    return f"handoff-msg:{message_id}"


def _ticket(session: Session, ticket_id: int, scope: str | None,
            lock: bool = False) -> HandoffTicket:
    stmt = select(HandoffTicket).where(HandoffTicket.id == ticket_id, in_scope(scope),
                                       HandoffTicket.status != CONFIRMING)
    if lock and session.get_bind().dialect.name == "postgresql":
        stmt = stmt.with_for_update()
    ticket = session.scalars(stmt).first()
    if ticket is None:
        raise InboxError("not_found")
    return ticket


def find(session: Session, ticket_id: int, scope: str | None = None) -> HandoffTicket | None:
    """The ticket if it is in the inbox and in the operator's region, else None."""
    try:
        return _ticket(session, ticket_id, scope)
    except InboxError:
        return None


def _worst(states: list[tuple[str, str | None]]) -> tuple[str, str | None]:
    """One delivery state for the parts of a message: the least advanced wins."""
    order = ("gagal", "tidak_pasti", "batal", "menunggu", "terkirim")
    groups = [(DELIVERY.get(state, "menunggu"), error) for state, error in states]
    for group in order:
        for found, error in groups:
            if found == group:
                return group, error
    return "menunggu", None


def delivery_states(session: Session, sent: dict[int, int | None]
                    ) -> dict[int, tuple[str, str | None]]:
    """Delivery (group, error) of what was sent for these handoff messages ({handoff message
    id: its outbox_message_id}): every part sent from here (reference `handoff-msg:<id>`),
    or else the one outbox message it names (the chat side's notices)."""
    if not sent:
        return {}
    refs = {reference(mid): mid for mid in sent}
    rows = session.execute(
        select(OutboxMessage.reference, OutboxItem.state, OutboxItem.error)
        .join(OutboxItem, OutboxItem.message_id == OutboxMessage.id)
        .where(OutboxMessage.kind == KIND, OutboxMessage.reference.in_(list(refs)))).all()
    per: dict[int, list[tuple[str, str | None]]] = {}
    for ref, state, error in rows:
        per.setdefault(refs[ref], []).append((state, error))
    by_outbox = {oid: mid for mid, oid in sent.items() if oid is not None and mid not in per}
    if by_outbox:
        for oid, state, error in session.execute(
                select(OutboxItem.message_id, OutboxItem.state, OutboxItem.error)
                .where(OutboxItem.message_id.in_(list(by_outbox)))):
            per.setdefault(by_outbox[oid], []).append((state, error))
    return {mid: _worst(states) for mid, states in per.items()}


def messages(session: Session, ticket_id: int, limit: int = MESSAGES_SHOWN
             ) -> tuple[list[MessageView], int]:
    """The latest `limit` messages of a ticket, oldest first, with the delivery state of
    those sent to the user; and how many older ones were left out."""
    total = session.scalar(select(func.count()).where(HandoffMessage.ticket_id == ticket_id))
    found = list(session.scalars(select(HandoffMessage)
                                 .where(HandoffMessage.ticket_id == ticket_id)
                                 .order_by(HandoffMessage.id.desc()).limit(limit)))
    found.reverse()
    states = delivery_states(session, {m.id: m.outbox_message_id for m in found
                                       if m.outbox_message_id is not None
                                       or m.sender == "operator"})
    views = [MessageView(m.id, m.sender, m.author, m.kind, m.text, m.created_at,
                         *(states.get(m.id, (None, None))))
             for m in found]
    return views, max(0, int(total or 0) - len(views))


def registration_summary(session: Session, user_id: int
                         ) -> tuple[RegistrationSummary | None, int]:
    """The user's latest registration (NIK and phone masked) and how many they have."""
    regs = list(session.scalars(select(Registration).where(Registration.user_id == user_id)
                                .order_by(Registration.created_at.desc(),
                                          Registration.id.desc())))
    if not regs:
        return None, 0
    r = regs[0]
    return RegistrationSummary(
        r.number, r.status, r.nama, mask_nik(r.nik), mask_phone(r.no_hp),
        f"{r.desa}, {r.kecamatan}, {r.kabupaten}", r.bidang_usaha, r.created_at), len(regs)


def ticket_view(session: Session, ticket_id: int, scope: str | None = None) -> TicketView:
    """A ticket, its conversation and the user's registration summary (InboxError
    not_found when it is not in the inbox or not in `scope`)."""
    ticket = _ticket(session, ticket_id, scope)
    views, earlier = messages(session, ticket.id)
    summary, count = registration_summary(session, ticket.user_id)
    return TicketView(ticket, views, summary, count, earlier)


# ---------------------------------------------------------------------- steps
def _refusal(session: Session, ticket_id: int, scope: str | None, operator: str) -> InboxError:
    """Why a compare-and-set found nothing to change."""
    session.expire_all()
    ticket = _ticket(session, ticket_id, scope)  # raises not_found
    if ticket.status == CLOSED:
        return InboxError("closed", ticket.assigned_to)
    if ticket.status == ASSIGNED and ticket.assigned_to != operator:
        return InboxError("taken", ticket.assigned_to)
    if ticket.status == WAITING:
        return InboxError("not_taken")
    return InboxError("mine", ticket.assigned_to)  # already this operator's


def _system(session: Session, ticket_id: int, author: str, text: str, now: datetime,
            outbox_message_id: int | None = None) -> HandoffMessage:
    note = HandoffMessage(ticket_id=ticket_id, sender="system", author=author, kind="text",
                          text=text, outbox_message_id=outbox_message_id, created_at=now)
    session.add(note)
    session.flush()
    return note


def take(session: Session, ticket_id: int, operator: str, now: datetime, *,
         scope: str | None = None) -> HandoffTicket:
    """Give a waiting ticket to `operator` (InboxError taken/closed/not_found otherwise;
    taking one's own ticket again is a no-op). The caller commits."""
    done = session.execute(
        update(HandoffTicket)
        .where(HandoffTicket.id == ticket_id, HandoffTicket.status == WAITING,
               in_scope(scope))
        .values(status=ASSIGNED, assigned_to=operator, assigned_at=now)
        .execution_options(synchronize_session=False)).rowcount
    if done != 1:
        refusal = _refusal(session, ticket_id, scope, operator)
        if refusal.code == "mine":
            return _ticket(session, ticket_id, scope)
        raise refusal
    _system(session, ticket_id, operator, f"Diambil oleh {operator}.", now)
    session.expire_all()
    return _ticket(session, ticket_id, scope)


def _send(session: Session, ticket: HandoffTicket, text: str, operator: str,
          handoff_message: HandoffMessage, now: datetime,
          split: Callable[[str], list[str]]) -> list[OutboxMessage]:
    """Queue `text` for the ticket's user, split for Telegram, each part its own outbox
    message (sent in order: priority 0 rows of one chat go by id)."""
    parts = split(text) or [text]
    sent = []
    for part in parts:
        message = OutboxMessage(kind=KIND, text=part, reference=reference(handoff_message.id),
                                created_by=f"operator:{operator}"[:64], created_at=now)
        session.add(message)
        session.flush()
        add_recipients(session, message.id, [ticket.user_id], now,
                       priority=PRIORITY[REPLY])
        sent.append(message)
    handoff_message.outbox_message_id = sent[0].id
    return sent


def telegram_parts(text: str) -> list[str]:
    return split_text(text, TEXT_LIMIT)


def reply(session: Session, ticket_id: int, operator: str, text: str, now: datetime, *,
          scope: str | None = None,
          split: Callable[[str], list[str]] = telegram_parts) -> HandoffMessage:
    """The holder's answer: stored on the ticket, queued for the user as plain text
    (several messages when it is too long for one). InboxError empty/too_long/not_taken/
    taken/closed/not_found. The caller commits."""
    body = (text or "").replace("\r\n", "\n").strip()
    if not body:
        raise InboxError("empty")
    if len(body) > REPLY_MAX:
        raise InboxError("too_long")
    done = session.execute(
        update(HandoffTicket)
        .where(HandoffTicket.id == ticket_id, HandoffTicket.status == ASSIGNED,
               HandoffTicket.assigned_to == operator, in_scope(scope))
        .values(last_operator_at=now,
                first_response_at=func.coalesce(HandoffTicket.first_response_at, now))
        .execution_options(synchronize_session=False)).rowcount
    if done != 1:
        raise _refusal(session, ticket_id, scope, operator)
    session.expire_all()
    ticket = _ticket(session, ticket_id, scope)
    stored = HandoffMessage(ticket_id=ticket.id, sender="operator", author=operator,
                            kind="text", text=body, created_at=now)
    session.add(stored)
    session.flush()
    full = texts()("handoff_operator_reply", text=body).rstrip()
    _send(session, ticket, full, operator, stored, now, split)
    return stored


def close(session: Session, ticket_id: int, operator: str, outcome: str, now: datetime, *,
          scope: str | None = None, override: bool = False,
          split: Callable[[str], list[str]] = telegram_parts) -> HandoffTicket:
    """Close a ticket with an outcome and tell the user they are back with the assistant.
    The holder closes an assigned ticket, anyone who sees it a waiting one, `override`
    (supervisors) any open one. The caller commits."""
    if outcome not in OUTCOMES:
        raise InboxError("bad_outcome")
    allowed = or_(HandoffTicket.status == WAITING,
                  and_(HandoffTicket.status == ASSIGNED, HandoffTicket.assigned_to == operator))
    if override:
        allowed = HandoffTicket.status.in_(OPEN)
    done = session.execute(
        update(HandoffTicket)
        .where(HandoffTicket.id == ticket_id, allowed, in_scope(scope))
        .values(status=CLOSED, closed_at=now, closed_by=f"operator:{operator}"[:64],
                outcome=outcome,
                assigned_to=func.coalesce(HandoffTicket.assigned_to, operator),
                assigned_at=func.coalesce(HandoffTicket.assigned_at, now))
        .execution_options(synchronize_session=False)).rowcount
    if done != 1:
        raise _refusal(session, ticket_id, scope, operator)
    session.expire_all()
    ticket = session.get(HandoffTicket, ticket_id)
    assert ticket is not None
    _system(session, ticket.id, operator, f"Ditutup oleh {operator}: {OUTCOMES[outcome]}.",
            now)
    notice = _system(session, ticket.id, operator,
                     texts()("handoff_closed_by_operator").rstrip(), now)
    _send(session, ticket, notice.text, operator, notice, now, split)
    return ticket


def waited(since: datetime | None, now: datetime) -> str:
    """A waiting time for people: "5 mnt", "2 jam 10 mnt", "3 hari 4 jam"."""
    if since is None:
        return "–"
    minutes = max(0, int((now - since) / timedelta(minutes=1)))
    if minutes < 1:
        return "< 1 mnt"
    if minutes < 60:
        return f"{minutes} mnt"
    hours, rest = divmod(minutes, 60)
    if hours < 24:
        return f"{hours} jam {rest} mnt" if rest else f"{hours} jam"
    days, hours = divmod(hours, 24)
    return f"{days} hari {hours} jam" if hours else f"{days} hari"
