"""Talking to a person in the same chat (issue 14).

The intent human_handoff, the button "Bicara dengan petugas" (or typing "petugas"), a second
miss in a row (its reply carries that button) and report_problem OFFER a handoff: one line
says what the operator will see (the last messages of this conversation, NIK and phone
masked), with "Ya, sambungkan" / "Tidak usah". After yes, a `confirming` ticket holds those
messages and the user writes their question; the ticket then waits for an operator and the
user is told it is received, whether operators work now (else when they open) and that
"selesai" ends the handoff.

While a ticket is open the dialogue core gives it every turn first (`route`), before any
form and without the NLU, so it works while the NLU is down:
- text goes to the ticket (masked); the first message after an operator's reply is
  acknowledged ("Diteruskan ke petugas"), the others quietly, as in a chat with a person;
- "selesai", "batal" (and /batal, /selesai) end it; the user is back with the assistant
  (and a form that was running before is asked again where it stopped);
- /start, /menu and "menu" show "Anda sedang terhubung dengan petugas" with
  "Lanjutkan percakapan dengan petugas" / "Akhiri, kembali ke menu";
- other commands and menu buttons are answered as usual (FAQ, /status of this account,
  /jadwal, /bantuan...), with a one-line reminder that the handoff is still open; one that
  would start a form (/daftar, /cek, a /status needing a NIK) asks to end the handoff first;
- a sticker, photo... gets the usual text-only reply, and the ticket notes what was sent.
Once an operator closes the ticket, the next message goes to the NLU again.

The conversation history is not stored elsewhere, so the state keeps the last few messages
(both sides, masked, at most a day old) for a new ticket's context.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

from sqlalchemy import select

from actions.context import Context, short_yes_no
from actions.sanitize import MAX_CHARS, Problem, check
from actions.types import Button
from db import handoff as tickets
from db.handoff import MEDIA_NAMES, OfficeHours
from db.models import HandoffMessage, HandoffTicket
from domain.redact import redact

PREFIX = "/handoff:"
OFFER_INTENTS = frozenset({"human_handoff", "report_problem"})
# Asking for a person in words the core knows without the NLU (exact, after tails).
ASK_WORDS = {"petugas", "bicara dengan petugas", "bicara sama petugas", "hubungi petugas",
             "minta petugas", "mau bicara dengan petugas", "sambungkan ke petugas",
             "sambungkan dengan petugas", "chat petugas", "operator", "cs",
             "customer service", "bicara dengan manusia", "mau ngobrol sama petugas",
             "tanya petugas", "ke petugas"}
# Ending an open handoff (cancel words end it too).
END_WORDS = {"selesai", "sudah selesai", "udah selesai", "sdh selesai", "akhiri",
             "akhiri percakapan", "akhiri chat", "selesai chat", "cukup", "sudah cukup",
             "udah cukup", "done", "/selesai", "/akhiri"}
START_WORDS = {"start", "menu"}  # intents answered with "you are talking to an operator"
TAILS = {"kak", "ka", "ya", "aja", "saja", "deh", "dong", "min", "pak", "bu", "ini", "sih",
         "terima kasih", "makasih", "dulu"}
HISTORY_SIZE = 8
HISTORY_AGE = timedelta(hours=24)
BOT_TEXT_CHARS = 300
USER_TEXT_CHARS = 1000


class Core(Protocol):
    """What the handoff needs from the dialogue core."""

    office_hours: OfficeHours

    def intent_of(self, token: str) -> str: ...
    def dispatch(self, ctx: Context) -> None: ...
    def resume_form(self, ctx: Context) -> bool: ...


def _plain(text: str) -> str:
    words = "".join(ch if ch.isalnum() or ch in "/ " else " " for ch in text.casefold()).split()
    while len(words) > 1 and words[-1] in TAILS:
        words.pop()
    return " ".join(words)


def asks_for_person(text: str) -> bool:
    """"petugas", "hubungi petugas dong": a request for a person, understood without NLU."""
    return _plain(text) in ASK_WORDS


def ends_handoff(text: str) -> bool:
    return _plain(text) in END_WORDS


# ---------------------------------------------------------------------- offering
def _offer_buttons(ctx: Context) -> tuple[Button, ...]:
    return (Button(ctx.texts("handoff_yes"), f"{PREFIX}yes"),
            Button(ctx.texts("handoff_no"), f"{PREFIX}no"))


def offer(ctx: Context, topic: str = "human_handoff") -> None:
    """Offer to talk to a person (or say one is already listening)."""
    ticket = tickets.current(ctx.session, ctx.user.id)
    if ticket is not None and ticket.status in tickets.OPEN:
        ctx.say("handoff_already_open", ticket=ticket.id)
        return
    ctx.state["handoff_offer"] = topic
    ctx.say("handoff_offer", buttons=_offer_buttons(ctx))


def human_handoff(ctx: Context) -> None:
    """Offer a person."""
    offer(ctx, "human_handoff")


def report_problem(ctx: Context) -> None:
    """Take a problem report seriously and offer a person to tell it to."""
    ctx.say("report_problem_intro")
    offer(ctx, "report_problem")


HANDLERS = {"human_handoff": human_handoff, "report_problem": report_problem}


# ---------------------------------------------------------------------- the turn
def route(ctx: Context, core: Core) -> str | None:
    """Handle the turn when it belongs to a handoff (an answer to the offer, a handoff
    button, or anything while a ticket is open); None lets the core route it as usual."""
    topic = ctx.state.pop("handoff_offer", None)
    ticket = tickets.current(ctx.session, ctx.user.id)
    if ticket is not None and ticket.status == tickets.CONFIRMING and (
            ctx.now - ticket.created_at > tickets.CONFIRM_TIMEOUT):
        tickets.close(ctx.session, ticket, ctx.now, tickets.ABANDONED, closed_by="system")
        ticket = None
    payload = _payload(ctx)
    if payload is not None and payload.startswith(PREFIX):
        return _button(ctx, core, payload.removeprefix(PREFIX), ticket, topic)
    if ticket is None:
        text = ctx.turn.text if payload is None else None
        if topic and text:
            choice = short_yes_no(text)
            if choice == "affirm":
                return _confirm(ctx, topic)
            if choice == "deny":
                return _decline(ctx, core, topic)
        return None
    if ticket.status == tickets.CONFIRMING:
        return _question(ctx, core, ticket, payload)
    return _message(ctx, core, ticket, payload)


def _payload(ctx: Context) -> str | None:
    """The turn's button payload: pressed, or its label typed (or a typed command)."""
    turn = ctx.turn
    if turn.payload:
        return turn.payload
    if turn.text is None:
        return None
    text = turn.text.strip()
    if text.startswith("/"):
        return text.split()[0].split("@")[0]
    lowered = text.casefold()
    return next((p for label, p in ctx.state.get("buttons", []) if lowered == label.casefold()),
                None)


def _button(ctx: Context, core: Core, action: str, ticket: HandoffTicket | None,
            topic: str | None) -> str:
    ctx.intent = f"handoff_{action}"
    if action == "yes":
        if ticket is None:
            return _confirm(ctx, topic or "human_handoff")
        if ticket.status == tickets.CONFIRMING:
            ctx.say("handoff_ask_question")
        else:
            ctx.say("handoff_already_open", ticket=ticket.id)
        return "handoff"
    if action == "no":
        if ticket is None:
            return _decline(ctx, core, topic or "human_handoff")
        if ticket.status == tickets.CONFIRMING:
            return _end(ctx, core, ticket)
        ctx.say("handoff_already_open", ticket=ticket.id)
        return "handoff"
    if ticket is None:  # "Lanjutkan" / "Akhiri" after the ticket was closed
        ctx.say("handoff_none", buttons=ctx.main_menu())
        return "handoff"
    if action == "end":
        return _end(ctx, core, ticket)
    ctx.say("handoff_continue_ok")
    return "handoff"


def _confirm(ctx: Context, topic: str) -> str:
    """Yes to the offer: a ticket with the recent messages; ask for the question."""
    ctx.intent = "handoff_confirm"
    ticket = tickets.start(ctx.session, ctx.user.id, topic, ctx.now, history=recent(ctx))
    if ticket is None:  # one was opened meanwhile
        ticket = tickets.current(ctx.session, ctx.user.id)
        if ticket is not None and ticket.status in tickets.OPEN:
            ctx.say("handoff_already_open", ticket=ticket.id)
            return "handoff"
    ctx.say("handoff_ask_question")
    return "handoff"


def _decline(ctx: Context, core: Core, topic: str) -> str:
    ctx.intent = "handoff_declined"
    # After a problem report: where else to report it; otherwise a friendly "ok".
    key = "report_problem" if topic == "report_problem" else "handoff_declined"
    _say_then_menu(ctx, core, key)
    return "handoff"


def _say_then_menu(ctx: Context, core: Core, key: str, **values: object) -> None:
    """Say `key`, then go on with a form that was running, else show the menu."""
    if ctx.state.get("form"):
        ctx.say(key, **values)
        core.resume_form(ctx)
    else:
        ctx.say(key, buttons=ctx.main_menu(), **values)


def _end(ctx: Context, core: Core, ticket: HandoffTicket) -> str:
    """"selesai": close the ticket; the user is back with the assistant."""
    confirming = ticket.status == tickets.CONFIRMING
    tickets.close_by_user(ctx.session, ticket, ctx.now)
    ctx.intent = "handoff_end"
    _say_then_menu(ctx, core, "handoff_cancelled" if confirming else "handoff_ended")
    return "handoff"


def _text(ctx: Context, emoji_ok: bool) -> str | None:
    """The turn's cleaned text, or None after the usual reply to input we cannot take (a
    sticker or photo, empty, too long; emoji alone only when `emoji_ok` is False)."""
    if ctx.turn.unsupported:
        ctx.say("text_only")
        return None
    text, problem = check(ctx.turn.text)
    if problem is None or (problem is Problem.NO_WORDS and emoji_ok):
        return text
    ctx.say(problem.value, **({"limit": MAX_CHARS} if problem is Problem.TOO_LONG else {}))
    return None


def _question(ctx: Context, core: Core, ticket: HandoffTicket, payload: str | None) -> str | None:
    """The turn after yes: the question, unless the user stops or goes elsewhere."""
    if payload is not None or ctx.turn.contact is not None:
        # A command or another button: the request is dropped, the turn goes on as usual.
        tickets.close(ctx.session, ticket, ctx.now, tickets.CANCELLED, closed_by="user")
        return None
    ctx.intent = "handoff_question"
    if ctx.turn.unsupported:
        tickets.add_user_message(ctx.session, ticket, "", ctx.now, kind=ctx.turn.unsupported)
    text = _text(ctx, emoji_ok=False)
    if text is None:
        return "handoff"
    plain = _plain(text)
    if ends_handoff(text) or _is_cancel(plain):
        return _end(ctx, core, ticket)
    if plain in ("menu", "menu utama", "kembali ke menu"):
        tickets.close(ctx.session, ticket, ctx.now, tickets.CANCELLED, closed_by="user")
        return None
    if short_yes_no(text) == "affirm":  # a second "ya": the question is still to come
        ctx.say("handoff_ask_question")
        return "handoff"
    tickets.submit_question(ctx.session, ticket, text, ctx.now)
    hours = core.office_hours
    if hours.is_open(ctx.now):
        line = ctx.texts("handoff_hours_open", hours=hours.describe())
    else:
        line = ctx.texts("handoff_hours_closed", hours=hours.describe(),
                         when=tickets.when_text(hours.next_opening(ctx.now)))
    ctx.say("handoff_received", ticket=ticket.id, hours=line,
            buttons=(Button(ctx.texts("handoff_end"), f"{PREFIX}end"),))
    return "handoff"


def _is_cancel(plain: str) -> bool:
    from actions.dialogue import is_cancel  # (the core imports this module)

    return is_cancel(plain)


def _message(ctx: Context, core: Core, ticket: HandoffTicket, payload: str | None) -> str:
    """A turn while the ticket is open: to the ticket, or a command that still works."""
    turn = ctx.turn
    if turn.unsupported:
        ctx.intent = "handoff_media"
        tickets.add_user_message(ctx.session, ticket, "", ctx.now, kind=turn.unsupported)
        ctx.say("text_only")
        return "handoff"
    if turn.contact is not None:
        ctx.intent = "handoff_contact"
        tickets.add_user_message(ctx.session, ticket, turn.contact.phone, ctx.now,
                                 kind="contact")
        _acknowledge(ctx, ticket, force=True)
        return "handoff"
    if payload is not None:
        return _command(ctx, core, ticket, payload)
    text = _text(ctx, emoji_ok=True)
    if text is None:
        ctx.intent = "bad_input"
        return "handoff"
    plain = _plain(text)
    if ends_handoff(text) or _is_cancel(plain):
        return _end(ctx, core, ticket)
    if plain in ("menu", "menu utama", "kembali ke menu"):
        return _still_connected(ctx, ticket)
    ctx.intent = "handoff_message"
    _acknowledge(ctx, ticket)
    tickets.add_user_message(ctx.session, ticket, text, ctx.now)
    return "handoff"


def _acknowledge(ctx: Context, ticket: HandoffTicket, force: bool = False) -> None:
    """Say "forwarded" for the first message after someone else spoke in the ticket (an
    operator's reply, a note), not for every line of a user typing several."""
    last = ctx.session.scalar(select(HandoffMessage.sender)
                              .where(HandoffMessage.ticket_id == ticket.id)
                              .order_by(HandoffMessage.id.desc()).limit(1))
    if force or last != "user":
        ctx.say("handoff_forwarded")


def _still_connected(ctx: Context, ticket: HandoffTicket) -> str:
    ctx.intent = "handoff_active"
    ctx.say("handoff_active", ticket=ticket.id,
            buttons=(Button(ctx.texts("handoff_continue"), f"{PREFIX}continue"),
                     Button(ctx.texts("handoff_end"), f"{PREFIX}end")))
    return "handoff"


def _command(ctx: Context, core: Core, ticket: HandoffTicket, payload: str) -> str:
    """A command or menu button during a handoff."""
    if ends_handoff(payload):
        return _end(ctx, core, ticket)
    intent = core.intent_of(payload)
    if intent == "cancel":
        return _end(ctx, core, ticket)
    if intent in START_WORDS:
        return _still_connected(ctx, ticket)
    if intent in OFFER_INTENTS:
        ctx.intent = intent
        ctx.say("handoff_already_open", ticket=ticket.id)
        return "handoff"
    form_before = ctx.state.get("form")
    snapshot = None if form_before is None else dict(form_before)
    before = len(ctx.replies)
    ctx.intent = intent
    core.dispatch(ctx)
    if ctx.state.get("form") != snapshot:
        # It would start a form, whose answers would go to the ticket: not now.
        del ctx.replies[before:]
        if snapshot is None:
            ctx.state.pop("form", None)
        else:
            ctx.state["form"] = snapshot
        ctx.say("handoff_finish_first",
                buttons=(Button(ctx.texts("handoff_end"), f"{PREFIX}end"),
                         Button(ctx.texts("handoff_continue"), f"{PREFIX}continue")))
        return "handoff"
    ctx.say("handoff_still_open")
    return "handoff"


# ---------------------------------------------------------------------- recent messages
def incoming(ctx: Context) -> str | None:
    """What the user sent this turn, as a line of the conversation (before routing)."""
    turn = ctx.turn
    if turn.unsupported:
        return f"({MEDIA_NAMES.get(turn.unsupported, 'pesan non-teks')})"
    if turn.contact is not None:
        return "(membagikan kontak)"
    if turn.payload:
        label = next((lbl for lbl, p in ctx.state.get("buttons", []) if p == turn.payload), None)
        return f"[tombol: {label}]" if label else "[tombol]"  # never the raw payload
    text, problem = check(turn.text)  # only clean text goes into the state
    if problem is None:
        return text
    return "(pesan kosong atau tidak terbaca)" if turn.text else None


def remember(ctx: Context, line: str | None) -> None:
    """Keep the last few messages of the conversation (masked, at most a day old) in the
    state: the context a new ticket starts with."""
    now = ctx.now
    kept = []
    for entry in ctx.state.get("recent", []):
        try:
            at = datetime.fromisoformat(entry[2])
        except (TypeError, ValueError, IndexError):
            continue
        if now - at <= HISTORY_AGE:
            kept.append(entry)
    if line:
        kept.append(["user", redact(line)[:USER_TEXT_CHARS], now.isoformat()])
    kept += [["bot", redact(reply.text)[:BOT_TEXT_CHARS], now.isoformat()]
             for reply in ctx.replies]
    ctx.state["recent"] = kept[-HISTORY_SIZE:]


def recent(ctx: Context) -> list[tuple[str, str, datetime]]:
    """The kept messages as (sender, text, time) for a new ticket."""
    found = []
    for sender, text, at in ctx.state.get("recent", []):
        try:
            found.append((sender, text, datetime.fromisoformat(at)))
        except (TypeError, ValueError):
            continue
    return found
