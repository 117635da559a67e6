"""Wiring: build the engine, NLU client and dialogue once; one DB session per turn.

A turn runs in one database transaction. When it needs the NLU, the transaction is rolled
back, the NLU is asked with no transaction open (so a slow NLU never holds SQLite's write
lock or an idle PostgreSQL transaction), and the turn runs again with the parse. A
database outage is retried with backoff for a bounded time before the user is told.
"""

from __future__ import annotations

import asyncio
import contextvars
import logging
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime

from sqlalchemy import Engine
from sqlalchemy.orm import Session, sessionmaker

from actions.context import NeedParse
from actions.dialogue import NLU, Dialogue, user_tag
from actions.responses import Responses
from actions.types import Reply, Turn
from bot.render import TEXT_LIMIT, split_text
from bot.settings import Settings
from db import inbox, repo
from db.engine import make_engine, make_sessionmaker
from db.errors import is_transient
from db.handoff import OfficeHours
from db.outbox import enqueue_replies
from nlu.client import NLUClient, Parse
from nlu.guard import GuardedNLU

log = logging.getLogger(__name__)


class TurnFailed(Exception):
    """The turn could not be processed (the database stayed away): nothing was stored."""


@dataclass
class RetryPolicy:
    """Backoff for transient database errors: 0.2, 0.4, 0.8 ... s, each at most `cap`, for
    at most `budget` seconds in all."""

    budget: float = 20.0
    first: float = 0.2
    cap: float = 5.0
    clock: Callable[[], float] = time.monotonic

    def delays(self):
        """Yield the waits before each retry until the budget is spent."""
        deadline = self.clock() + self.budget
        delay = self.first
        while self.clock() + delay <= deadline:
            yield delay
            delay = min(delay * 2, self.cap)


@dataclass
class Assistant:
    """The conversation service every channel talks to."""

    dialogue: Dialogue
    sessions: sessionmaker[Session]
    retry: RetryPolicy = field(default_factory=RetryPolicy)
    # NLU calls run here, apart from the database work, so turns that need no NLU (form
    # steps, buttons, commands) never wait behind a slow NLU.
    nlu_pool: ThreadPoolExecutor = field(
        default_factory=lambda: ThreadPoolExecutor(20, thread_name_prefix="nlu"))
    # Channels whose replies go to the outbox in the turn's own transaction (and are sent
    # by its fast path): a reply is then never lost after the state moved on.
    outbox_channels: frozenset[str] = frozenset()

    def _run(self, turn: Turn, parses: dict[str, Parse | None], now: datetime) -> list[Reply]:
        """One attempt at the turn in its own transaction (raises NeedParse, DB errors)."""
        with self.sessions.begin() as session:
            if turn.update_id is not None and not inbox.claim(session, turn.update_id, now):
                log.info("update already handled", extra={"user": user_tag(turn)})
                return []  # handled before (a redelivery, or a replay racing the original)
            user = repo.get_or_create_user(session, turn.channel, turn.user_id)
            replies = self.dialogue.respond(session, turn, parses, now=now, user=user)
            if turn.channel in self.outbox_channels:
                self._enqueue(session, turn, user.id, replies)
            return replies

    def _enqueue(self, session: Session, turn: Turn, user_id: int,
                 replies: list[Reply]) -> None:
        enqueue_replies(session, user_id, replies, self.dialogue.texts("share_contact_button"),
                        lambda text: split_text(text, TEXT_LIMIT),
                        reference=None if turn.update_id is None else f"update:{turn.update_id}")

    def say(self, turn: Turn, replies: list[Reply]) -> None:
        """Queue replies that need no turn (an edited message, a command for another bot)
        and mark the update handled, in one transaction."""
        with self.sessions.begin() as session:
            if turn.update_id is not None and not inbox.claim(session, turn.update_id,
                                                              self.dialogue.clock()):
                return
            user = repo.get_or_create_user(session, turn.channel, turn.user_id)
            self._enqueue(session, turn, user.id, replies)

    def _failed(self, turn: Turn, exc: BaseException) -> list[Reply]:
        """Log the failure; the user is asked to send again. For an outbox channel the
        apology is queued (and the update marked handled: a replay would fail the same)."""
        log.error("turn failed", exc_info=exc,
                  extra={"user": user_tag(turn), "channel": turn.channel})
        replies = [Reply(self.dialogue.texts("internal_error"))]
        if turn.channel in self.outbox_channels:
            try:
                self.say(turn, replies)
            except Exception:
                log.exception("could not queue the apology", extra={"user": user_tag(turn)})
        return replies

    def _keep_or_fail(self, turn: Turn, exc: Exception) -> list[Reply]:
        """After the retries: a stored update will be replayed, anything else is lost."""
        if turn.update_id is not None and is_transient(exc):
            raise TurnFailed(str(exc)) from exc
        return self._failed(turn, exc)

    def mark_handled(self, update_id: int) -> None:
        """Record an update as handled when no turn did (edits, group commands...)."""
        with self.sessions.begin() as session:
            inbox.claim(session, update_id, self.dialogue.clock())

    def handle(self, turn: Turn) -> list[Reply]:
        """Run one turn (console, tests); never raise to the channel except TurnFailed."""
        now, parses = self.dialogue.clock(), {}
        delays = self.retry.delays()
        while True:
            try:
                return self._run(turn, parses, now)
            except NeedParse as need:
                if need.text in parses:
                    return self._failed(turn, RuntimeError("NLU parse asked twice"))
                parses[need.text] = self.dialogue.parse(need.text)
            except Exception as exc:
                delay = next(delays, None) if is_transient(exc) else None
                if delay is None:
                    return self._keep_or_fail(turn, exc)
                log.warning("turn retried after a database error",
                            extra={"user": user_tag(turn), "error": type(exc).__name__})
                time.sleep(delay)

    async def handle_async(self, turn: Turn) -> list[Reply]:
        """The same as `handle`, for an event loop: database work in threads, NLU calls in
        their own pool, waits without blocking other users."""
        loop = asyncio.get_running_loop()
        now, parses = self.dialogue.clock(), {}
        delays = self.retry.delays()
        while True:
            try:
                return await asyncio.to_thread(self._run, turn, parses, now)
            except NeedParse as need:
                if need.text in parses:
                    return await asyncio.to_thread(self._failed, turn,
                                                   RuntimeError("NLU parse asked twice"))
                # (in a copy of the turn's context: its correlation id and record)
                parses[need.text] = await loop.run_in_executor(
                    self.nlu_pool, contextvars.copy_context().run, self.dialogue.parse,
                    need.text)
            except Exception as exc:
                delay = next(delays, None) if is_transient(exc) else None
                if delay is None:  # (queuing the apology is database work: a thread)
                    return await asyncio.to_thread(self._keep_or_fail, turn, exc)
                log.warning("turn retried after a database error",
                            extra={"user": user_tag(turn), "error": type(exc).__name__})
                await asyncio.sleep(delay)


def build_assistant(settings: Settings, nlu: NLU, engine: Engine | None = None) -> Assistant:
    """Create the assistant from settings; the caller owns `nlu` and the engine."""
    from bot.logging import install_tag_key

    install_tag_key(settings)  # the per-user log tag's key (HMAC, issue 16)
    engine = engine or make_engine(settings.database_url)
    concurrency = settings.nlu_concurrency
    # (a call waits for a free slot at most as long as a call may take)
    guarded = GuardedNLU(nlu, max_concurrent=concurrency, wait_seconds=settings.nlu_timeout)
    # One thread for every call the guard admits (in flight or waiting for a slot), so a
    # call never waits in the executor's own queue, where no time limit applies.
    dialogue = Dialogue(guarded, Responses.load(), threshold=settings.nlu_threshold,
                        office_hours=OfficeHours.parse(settings.handoff_office_hours))
    return Assistant(dialogue=dialogue, sessions=make_sessionmaker(engine),
                     retry=RetryPolicy(budget=settings.turn_retry_seconds),
                     nlu_pool=ThreadPoolExecutor(concurrency + guarded.max_waiting,
                                                 thread_name_prefix="nlu"))


def make_nlu_client(settings: Settings, url: str) -> NLUClient:
    """The NLU client; it sends NLU_AUTH_TOKEN (or the token `prokus` generated for the
    local server it started, see bot.cli.nlu_url) as Rasa's `?token=`."""
    import os

    token = settings.nlu_auth_token or os.environ.get("NLU_AUTH_TOKEN") or None
    return NLUClient(url, timeout=settings.nlu_timeout, retries=settings.nlu_retries,
                     token=token)
