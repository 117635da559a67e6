"""The dialogue core: one turn in, replies out; the user's state lives in the database."""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Callable
from typing import Protocol

from sqlalchemy.orm import Session

from actions import fallback, faq, smalltalk, support
from actions.context import Context
from actions.responses import Responses
from actions.sanitize import Problem, check
from actions.types import Reply, Turn
from db import repo
from nlu.client import NLUUnavailable, Parse

log = logging.getLogger(__name__)

Handler = Callable[[Context], None]

# Telegram-style commands and what they mean.
COMMANDS = {
    "/start": "start",
    "/menu": "menu",
    "/bantuan": "help",
    "/help": "help",
    "/batal": "cancel",
}

# Outcomes that do not count as understanding the user (they keep the miss counter).
NOT_UNDERSTOOD = {"nlu_fallback", "other", "unknown_command", "bad_input", "nlu_unavailable"}

# Words that always mean "show me the menu", whatever the NLU thinks.
MENU_WORDS = {"menu", "menu utama", "kembali ke menu"}


class NLU(Protocol):
    def parse(self, text: str) -> Parse: ...


def user_tag(turn: Turn) -> str:
    """A short, stable, non-reversible tag for logs (no raw Telegram id in logs)."""
    return hashlib.sha256(f"{turn.channel}:{turn.user_id}".encode()).hexdigest()[:10]


class Dialogue:
    """Route each turn to one handler; build once at start-up, share across turns."""

    def __init__(self, nlu: NLU, texts: Responses, threshold: float = 0.4) -> None:
        self.nlu = nlu
        self.texts = texts
        self.threshold = threshold
        self.handlers: dict[str, Handler] = {
            **smalltalk.HANDLERS, **support.HANDLERS, **fallback.HANDLERS,
        }

    def respond(self, session: Session, turn: Turn) -> list[Reply]:
        """Handle one turn inside the caller's session; the caller commits."""
        started = time.perf_counter()
        user = repo.get_or_create_user(session, turn.channel, turn.user_id)
        state = repo.load_state(session, user)
        ctx = Context(turn=turn, user=user, state=state, session=session, texts=self.texts)
        source = self._understand(ctx)
        if not ctx.replies:
            self._dispatch(ctx)
        offered = [[b.label, b.payload] for r in ctx.replies for b in r.buttons]
        if offered:
            state["buttons"] = offered
        state["last_intent"] = ctx.intent
        if ctx.intent not in NOT_UNDERSTOOD:
            state.pop("misses", None)
        repo.save_state(session, user, state)
        log.info(
            "turn",
            extra={
                "user": user_tag(turn),
                "channel": turn.channel,
                "source": source,
                "intent": ctx.intent,
                "confidence": round(ctx.parse.confidence, 3) if ctx.parse else None,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return ctx.replies

    def _understand(self, ctx: Context) -> str:
        """Set `ctx.intent` from the payload, a command, a button label or the NLU.

        Returns where the intent came from; may already append replies (bad input).
        """
        turn = ctx.turn
        if turn.payload:
            ctx.intent = self._intent_from_slash(turn.payload)
            return "payload"
        if turn.contact is not None:
            ctx.intent = "contact"
            ctx.say("contact_not_needed", buttons=ctx.main_menu())
            return "contact"
        text, problem = check(turn.text)
        if problem is not None:
            ctx.intent = "bad_input"
            values = {"limit": 4096} if problem is Problem.TOO_LONG else {}
            ctx.say(problem.value, buttons=ctx.main_menu(), **values)
            return "bad_input"
        if text.startswith("/"):
            ctx.intent = self._intent_from_slash(text.split()[0].split("@")[0])
            return "command"
        lowered = text.casefold()
        for label, payload in ctx.state.get("buttons", []):
            if lowered == label.casefold():
                ctx.intent = self._intent_from_slash(payload)
                return "button_label"
        if lowered in MENU_WORDS:
            ctx.intent = "menu"
            return "keyword"
        try:
            ctx.parse = self.nlu.parse(text)
        except NLUUnavailable:
            ctx.intent = "nlu_unavailable"
            ctx.say("nlu_down", buttons=ctx.main_menu())
            return "nlu"
        ctx.intent = self._intent_from_parse(ctx.parse)
        return "nlu"

    def _intent_from_slash(self, token: str) -> str:
        if token in COMMANDS:
            return COMMANDS[token]
        name = token.lstrip("/")
        return name if name in self.handlers or faq.is_faq(name) else "unknown_command"

    def _intent_from_parse(self, parse: Parse) -> str:
        if parse.intent == "nlu_fallback" or parse.confidence < self.threshold:
            return "nlu_fallback"
        if parse.intent == "faq":
            return parse.faq_key or "nlu_fallback"
        return parse.intent

    def _dispatch(self, ctx: Context) -> None:
        if faq.is_faq(ctx.intent):
            faq.answer(ctx)
        elif ctx.intent in self.handlers:
            self.handlers[ctx.intent](ctx)
        elif ctx.intent == "unknown_command":
            ctx.say("unknown_command", buttons=ctx.main_menu())
        else:
            fallback.fallback(ctx)
