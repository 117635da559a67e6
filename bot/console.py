"""The console channel: the same core as Telegram, driven from stdin/stdout."""

from __future__ import annotations

import re
import sys
from collections.abc import Iterable
from typing import TextIO

from actions.types import Button, Contact, Reply, Turn
from bot.app import Assistant
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
    while True:
        if interactive:
            out.write("Anda> ")
            out.flush()
        line = stdin.readline()
        if not line:
            break
        if not interactive:
            out.write(f"> {line.rstrip()}\n")
        offered = render(assistant.handle(to_turn(line, user_id, offered)), out)
    if interactive:
        out.write("\n")
