"""Wiring: build the engine, NLU client and dialogue once; one DB session per turn."""

from __future__ import annotations

import logging
from dataclasses import dataclass

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from actions.dialogue import NLU, Dialogue, user_tag
from actions.responses import Responses
from actions.types import Reply, Turn
from bot.settings import Settings
from db.engine import make_engine, make_sessionmaker
from nlu.client import NLUClient

log = logging.getLogger(__name__)


@dataclass
class Assistant:
    """The conversation service every channel talks to."""

    dialogue: Dialogue
    sessions: sessionmaker[Session]

    def handle(self, turn: Turn) -> list[Reply]:
        """Run one turn in its own transaction; never raise to the channel."""
        try:
            with self.sessions.begin() as session:
                return self.dialogue.respond(session, turn)
        except Exception:
            log.exception("turn failed", extra={"user": user_tag(turn), "channel": turn.channel})
            return [Reply(self.dialogue.texts("internal_error"))]


def build_assistant(settings: Settings, nlu: NLU, engine: Engine | None = None) -> Assistant:
    """Create the assistant from settings; the caller owns `nlu` and the engine."""
    engine = engine or make_engine(settings.database_url)
    dialogue = Dialogue(nlu, Responses.load(), threshold=settings.nlu_threshold)
    return Assistant(dialogue=dialogue, sessions=make_sessionmaker(engine))


def make_nlu_client(settings: Settings, url: str) -> NLUClient:
    return NLUClient(url, timeout=settings.nlu_timeout, retries=settings.nlu_retries)
