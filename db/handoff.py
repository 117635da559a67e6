"""Talking to a person, the user's side (issue 14): a ticket is started when the user
confirms the offer (`confirming`), waits for an operator once the question is written
(`waiting`), and is closed by the user ("selesai"), by an operator (db/handoff_inbox.py) or
here after 3 working days without an operator's answer (`auto_close_stale`).

Everything the user writes is stored with NIK-like and phone numbers masked
(domain.redact). Office hours (HANDOFF_OFFICE_HOURS, "Mon-Fri 08:00-16:00", in WIB) tell
the user whether operators work now, when they open next, and what a working day is.

Outcomes set here (USER_OUTCOMES, beside the operators' db.handoff_inbox.OUTCOMES):
"diakhiri_pengguna" (the user wrote "selesai" after asking), "dibatalkan" (the user stopped
before writing the question), "tidak_dilanjutkan" (confirmed but never wrote it),
"tidak_terjawab" (closed after 3 working days without an operator's answer). `closed_by` is
"user" or "system"; the operator side writes "operator:<username>".
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from dataclasses import dataclass
from datetime import datetime, time, timedelta
from functools import lru_cache
from zoneinfo import ZoneInfo

from sqlalchemy import bindparam, or_, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from db import outbox
from db.models import HandoffMessage, HandoffTicket, Registration
from domain.dates import DAYS, MONTHS
from domain.redact import redact

WIB = ZoneInfo("Asia/Jakarta")
CONFIRMING, WAITING, ASSIGNED, CLOSED = "confirming", "waiting", "assigned", "closed"
OPEN = (WAITING, ASSIGNED)          # a question was written: the user's messages go here
NOT_CLOSED = (CONFIRMING, WAITING, ASSIGNED)
STALE_WORKING_DAYS = 3              # unanswered this long: closed with an apology
CONFIRM_TIMEOUT = timedelta(minutes=30)  # confirmed, but no question after this long
DEFAULT_OFFICE_HOURS = "Mon-Fri 08:00-16:00"
HISTORY_AUTHOR, BOT_AUTHOR = "riwayat", "asisten"  # context copied into a new ticket
OUTBOX_KIND = "handoff"
ENDED, CANCELLED = "diakhiri_pengguna", "dibatalkan"
ABANDONED, NO_ANSWER = "tidak_dilanjutkan", "tidak_terjawab"
USER_OUTCOMES = {ENDED: "Diakhiri pengguna", CANCELLED: "Dibatalkan sebelum bertanya",
                 ABANDONED: "Pertanyaan tidak ditulis",
                 NO_ANSWER: "Ditutup otomatis: tidak dijawab dalam 3 hari kerja"}

# What a user sent instead of text, as operators read it in the ticket.
MEDIA_NAMES = {"sticker": "stiker", "photo": "foto", "voice": "pesan suara", "video": "video",
               "audio": "audio", "document": "dokumen", "location": "lokasi",
               "animation": "GIF", "video_note": "video", "poll": "polling",
               "contact": "kontak"}


# ---------------------------------------------------------------------- office hours
_DAY_NAMES = {
    **{name: i for i, name in enumerate(("mon", "tue", "wed", "thu", "fri", "sat", "sun"))},
    **{name: i for i, name in enumerate(("monday", "tuesday", "wednesday", "thursday",
                                         "friday", "saturday", "sunday"))},
    **{name.casefold(): i for i, name in enumerate(DAYS)},
    **{name: i for i, name in enumerate(("sen", "sel", "rab", "kam", "jum", "sab", "min"))},
}
_HOURS = re.compile(r"^\s*(?P<days>[A-Za-z ,\-–]+?)\s+(?P<start>\d{1,2}[:.]\d{2})\s*[-–]\s*"
                    r"(?P<end>\d{1,2}[:.]\d{2})\s*(?:WIB)?\s*$", re.IGNORECASE)


def _clock(text: str) -> time:
    hours, minutes = (int(part) for part in re.split(r"[:.]", text))
    if hours == 24 and minutes == 0:
        return time(23, 59, 59)
    return time(hours, minutes)  # ValueError when out of range


def _days(text: str) -> frozenset[int]:
    found: set[int] = set()
    for part in re.split(r"\s*,\s*", text.strip()):
        ends = [p.strip().casefold() for p in re.split(r"\s*[-–]\s*", part)]
        if len(ends) not in (1, 2) or any(e not in _DAY_NAMES for e in ends):
            raise ValueError(f"unknown day in {part!r}")
        first, last = _DAY_NAMES[ends[0]], _DAY_NAMES[ends[-1]]
        day = first
        found.add(day)
        while day != last:  # "Sat-Mon" wraps round the week
            day = (day + 1) % 7
            found.add(day)
    return frozenset(found)


@dataclass(frozen=True)
class OfficeHours:
    """When operators work, in WIB: the same hours on each of `days` (0 = Monday)."""

    days: frozenset[int]
    start: time
    end: time

    @classmethod
    def parse(cls, text: str) -> OfficeHours:
        """"Mon-Fri 08:00-16:00", "Mon,Wed,Fri 08.00-12.00", "Senin-Sabtu 07:30-15:00"
        (always WIB). Raises ValueError."""
        match = _HOURS.match(text or "")
        if not match:
            raise ValueError(f"office hours not understood: {text!r}")
        start, end = _clock(match["start"]), _clock(match["end"])
        if end <= start:
            raise ValueError("office hours must end after they start")
        return cls(_days(match["days"]), start, end)

    def is_open(self, now: datetime) -> bool:
        local = now.astimezone(WIB)
        return local.weekday() in self.days and self.start <= local.time() < self.end

    def next_opening(self, now: datetime) -> datetime:
        """The next moment operators start work after `now` (WIB)."""
        local = now.astimezone(WIB)
        for ahead in range(8):
            day = local.date() + timedelta(days=ahead)
            opening = datetime.combine(day, self.start, WIB)
            if day.weekday() in self.days and opening > local:
                return opening
        raise ValueError("no working day in the week")  # (parse never allows that)

    def add_working_days(self, start: datetime, count: int) -> datetime:
        """`count` working days after `start`: the same time of day on the count-th working
        day that follows (a question on Friday 15.00 is 3 working days old on Wednesday
        15.00; one asked on Saturday, on Wednesday)."""
        local = start.astimezone(WIB)
        day, left = local, count
        while left > 0:
            day += timedelta(days=1)
            if day.weekday() in self.days:
                left -= 1
        return day

    def describe(self) -> str:
        """"Senin–Jumat, 08.00–16.00 WIB" (for users)."""
        days = sorted(self.days)
        if len(days) > 1 and days == list(range(days[0], days[-1] + 1)):
            named = f"{DAYS[days[0]]}–{DAYS[days[-1]]}"
        else:
            named = ", ".join(DAYS[d] for d in days)
        return f"{named}, {self.start:%H.%M}–{self.end:%H.%M} WIB"


def when_text(moment: datetime) -> str:
    """"Senin, 30 November pukul 08.00 WIB"."""
    local = moment.astimezone(WIB)
    return (f"{DAYS[local.weekday()]}, {local.day} {MONTHS[local.month - 1]} "
            f"pukul {local:%H.%M} WIB")


@lru_cache(maxsize=8)
def office_hours(text: str = DEFAULT_OFFICE_HOURS) -> OfficeHours:
    return OfficeHours.parse(text)


# ---------------------------------------------------------------------- tickets
def current(session: Session, user_id: int) -> HandoffTicket | None:
    """The user's ticket that is not closed (at most one), or None."""
    return session.scalars(_OPEN_TICKET, {"user_id": user_id}).first()


# Built once (every turn runs `current`).
_OPEN_TICKET = select(HandoffTicket).where(HandoffTicket.user_id == bindparam("user_id"),
                                           HandoffTicket.status.in_(NOT_CLOSED))


def region_of(session: Session, user_id: int) -> str | None:
    """The kode_wilayah of the user's newest registration, if they have one."""
    return session.scalar(select(Registration.kode_wilayah)
                          .where(Registration.user_id == user_id,
                                 Registration.kode_wilayah.is_not(None))
                          .order_by(Registration.created_at.desc()).limit(1))


def _add(session: Session, ticket: HandoffTicket, sender: str, text: str, now: datetime,
         kind: str = "text", author: str | None = None) -> HandoffMessage:
    message = HandoffMessage(ticket_id=ticket.id, sender=sender, author=author, kind=kind,
                             text=redact(text), created_at=now)
    session.add(message)
    return message


def start(session: Session, user_id: int, topic: str, now: datetime,
          history: Iterable[tuple[str, str, datetime]] = ()) -> HandoffTicket | None:
    """Open a `confirming` ticket for the user, with the last messages of the conversation
    (`history`: (sender "user" or "bot", text, time)) copied in as context, masked. Returns
    None when the user has a ticket that is not closed already (another turn made one)."""
    ticket = HandoffTicket(user_id=user_id, status=CONFIRMING, topic=topic[:32],
                           kode_wilayah=region_of(session, user_id), created_at=now)
    try:
        with session.begin_nested():
            session.add(ticket)
            session.flush()
    except IntegrityError:  # the partial unique index: one ticket that is not closed
        return None
    for sender, text, at in history:
        if sender == "user":
            _add(session, ticket, "user", text, at, author=HISTORY_AUTHOR)
        else:
            _add(session, ticket, "system", text, at, author=BOT_AUTHOR)
    return ticket


def submit_question(session: Session, ticket: HandoffTicket, text: str,
                    now: datetime) -> None:
    """The user's question: the ticket now waits for an operator."""
    add_user_message(session, ticket, text, now)
    ticket.status = WAITING


def add_user_message(session: Session, ticket: HandoffTicket, text: str, now: datetime,
                     kind: str = "text") -> HandoffMessage:
    """A message from the user (masked before it is stored). For a sticker, photo... (`kind`)
    the text says what was sent."""
    if kind != "text":
        text = f"(mengirim {MEDIA_NAMES.get(kind, 'pesan non-teks')})" + (
            f": {text}" if text else "")
    ticket.last_user_at = now
    return _add(session, ticket, "user", text, now, kind=kind)


def close(session: Session, ticket: HandoffTicket, now: datetime, outcome: str,
          closed_by: str = "user", note: str | None = None) -> bool:
    """Close the ticket unless someone else closed it first (compare-and-set on its status):
    True when this call closed it."""
    done = session.execute(
        update(HandoffTicket)
        .where(HandoffTicket.id == ticket.id, HandoffTicket.status == ticket.status)
        .values(status=CLOSED, closed_at=now, closed_by=closed_by, outcome=outcome)
        .execution_options(synchronize_session=False)).rowcount
    session.refresh(ticket)
    if done and note:
        _add(session, ticket, "system", note, now)
    return bool(done)


def close_by_user(session: Session, ticket: HandoffTicket, now: datetime) -> bool:
    """"selesai" (or "batal") from the user."""
    if ticket.status == CONFIRMING:
        return close(session, ticket, now, CANCELLED, note="Pengguna membatalkan permintaan.")
    return close(session, ticket, now, ENDED,
                 note="Pengguna mengakhiri percakapan dengan petugas.")


def _unanswered_since(session: Session, ticket: HandoffTicket) -> datetime | None:
    """Since when the user has waited for an operator: their first message after the last
    operator answer (or the ticket's start); None when nothing waits for an answer."""
    if ticket.last_operator_at is None:
        return ticket.created_at
    if ticket.last_user_at is None or ticket.last_user_at <= ticket.last_operator_at:
        return None
    return session.scalar(select(HandoffMessage.created_at).where(
        HandoffMessage.ticket_id == ticket.id, HandoffMessage.sender == "user",
        HandoffMessage.created_at > ticket.last_operator_at)
        .order_by(HandoffMessage.created_at).limit(1))


def auto_close_stale(session: Session, now: datetime, texts=None,
                     hours: OfficeHours | None = None) -> int:
    """Close tickets whose user has waited `STALE_WORKING_DAYS` working days without an
    operator's answer, telling them (through the outbox) with an apology and the menu; a
    ticket confirmed without a question for a day is closed silently. Safe to run in
    several processes at once (each ticket is closed by one). Returns how many were closed
    with an apology."""
    from actions.context import MAIN_MENU
    from actions.responses import Responses
    from db.registrations import for_user
    from domain.registration import ACTIVE

    texts = texts or Responses.load()
    hours = hours or office_hours()
    for ticket in session.scalars(select(HandoffTicket).where(
            HandoffTicket.status == CONFIRMING,
            HandoffTicket.created_at < now - timedelta(days=1))):
        close(session, ticket, now, ABANDONED, closed_by="system")
    closed = 0
    candidates = session.scalars(select(HandoffTicket).where(
        HandoffTicket.status.in_(OPEN),
        or_(HandoffTicket.last_operator_at.is_(None),
            HandoffTicket.last_user_at > HandoffTicket.last_operator_at))
        .order_by(HandoffTicket.id)).all()
    for ticket in candidates:
        since = _unanswered_since(session, ticket)
        if since is None or hours.add_working_days(since, STALE_WORKING_DAYS) > now:
            continue
        if not close(session, ticket, now, NO_ANSWER, closed_by="system",
                     note=f"Ditutup otomatis: tidak ada jawaban petugas dalam "
                          f"{STALE_WORKING_DAYS} hari kerja."):
            continue
        registered = any(r.status in ACTIVE for r in for_user(session, ticket.user_id))
        menu = [("registration_status" if registered and i == "register_prokus" else i)
                for i in MAIN_MENU]
        buttons = [[texts(f"label/{i}"), f"/{i}"] for i in menu]
        buttons.append([texts("label/human_handoff"), "/human_handoff"])
        message = outbox.enqueue(session, OUTBOX_KIND,
                                 texts("handoff_stale_closed", days=STALE_WORKING_DAYS),
                                 [ticket.user_id], created_by="system:handoff",
                                 reference=f"handoff:{ticket.id}",
                                 markup={"buttons": buttons})
        _add(session, ticket, "system", texts("handoff_stale_closed", days=STALE_WORKING_DAYS),
             now).outbox_message_id = message.id
        closed += 1
    return closed
