"""The console channel: the same core as Telegram, driven from stdin/stdout.

What is queued for a console user in the outbox (an operator's reply in a handoff, the
notice that the operator closed it, a status notice) cannot be pushed to a terminal: it is
shown before the replies of the user's next turn and marked delivered.
"""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from datetime import datetime
from typing import TextIO

from sqlalchemy import and_, or_, select

from actions.types import Button, Contact, Reply, Turn
from bot.app import Assistant
from db.models import OutboxItem, OutboxMessage, User, utcnow
from domain.numbers import read_int

CHANNEL = "console"
_CONTACT = re.compile(r"^/contact\s+(\S+)\s*$")


def render(replies: Iterable[Reply], out: TextIO) -> list[Button]:
    """Print replies; buttons become numbered options. Return the buttons offered."""
    offered: list[Button] = []
    for reply in replies:
        out.write(f"Bot: {reply.text}\n")
        for button in reply.buttons:
            offered.append(button)
            out.write(f"  [{len(offered)}] {button.label}\n")
        if reply.ask_contact:
            out.write("  (bagikan kontak: ketik /contact +628xxxxxxxxxx)\n")
    out.flush()
    return offered


def take_queued(assistant: Assistant, user_id: str,
                now: datetime | None = None) -> list[Reply]:
    """The outbox messages waiting for this console user, oldest first, as replies; they
    are marked sent. (A Telegram worker sharing the database marks rows for other
    channels failed, "no Telegram chat": those are shown here too.)"""
    now = now or utcnow()
    with assistant.sessions.begin() as session:
        rows = session.execute(
            select(OutboxItem, OutboxMessage.text, OutboxMessage.markup)
            .join(OutboxMessage, OutboxMessage.id == OutboxItem.message_id)
            .join(User, User.id == OutboxItem.user_id)
            .where(User.channel == CHANNEL, User.external_id == user_id,
                   OutboxItem.due_at <= now,
                   or_(OutboxItem.state == "pending",
                       and_(OutboxItem.state == "failed",
                            OutboxItem.error.like("no Telegram chat%"))))
            .order_by(OutboxItem.due_at, OutboxItem.id)).all()
        replies = []
        for item, text, markup in rows:
            buttons = tuple(Button(label, payload)
                            for label, payload in (markup or {}).get("buttons", []))
            replies.append(Reply(text or "", buttons))
            item.state, item.error, item.attempted_at = "sent", None, now
            item.attempts += 1
        return replies


def to_turn(line: str, user_id: str, offered: list[Button]) -> Turn:
    """Turn a typed line into a Turn: a number picks a button, /contact shares a contact."""
    stripped = line.strip()
    # Button numbers are short: a line of 5,000 digits or "²" is text, never int()'d.
    number = read_int(stripped, max_digits=3, low=1, high=len(offered)) if offered else None
    if number is not None:
        return Turn(CHANNEL, user_id, payload=offered[number - 1].payload)
    match = _CONTACT.match(stripped)
    if match:
        return Turn(CHANNEL, user_id, contact=Contact(match.group(1), user_id=user_id))
    return Turn(CHANNEL, user_id, text=line.rstrip("\n"))


def run(
    assistant: Assistant, user_id: str, stdin: TextIO = sys.stdin, out: TextIO = sys.stdout
) -> None:
    """Chat until end of input; interactive on a terminal, line by line otherwise."""
    interactive = stdin.isatty()
    offered: list[Button] = []
    if interactive:
        out.write("Asisten Prokus (konsol). Ketik pesan; Ctrl-D untuk keluar.\n")
        offered = render(assistant.handle(Turn(CHANNEL, user_id, text="/start")), out)
        offered = render(take_queued(assistant, user_id), out) or offered
    while True:
        if interactive:
            out.write("Anda> ")
            out.flush()
        line = stdin.readline()
        if not line:
            break
        if not interactive:
            out.write(f"> {line.rstrip()}\n")
        turn = to_turn(line, user_id, offered)
        queued = take_queued(assistant, user_id)  # arrived before this line: shown first
        render(queued, out)
        offered = render(assistant.handle(turn), out)
    if interactive:
        out.write("\n")
