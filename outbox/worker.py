"""The outbox worker: claims due rows, paces sends under the global limit (shared by all
workers through the database) and one message per chat per second, records each send
before and after the API call, retries what may be retried, and queues delivery reports.

It knows nothing about Telegram: a `Sender` does the API call and says what happened.
Database calls run in threads so the worker can share an event loop with the bot.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import socket
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Protocol

from sqlalchemy.orm import Session, sessionmaker

from outbox import store

log = logging.getLogger(__name__)

# A worker run --until-idle stops when nothing is in flight or due within this.
IDLE_HORIZON = timedelta(minutes=2)
# The attempt is recorded this long before its send slot, so the database round trip does
# not delay (and bunch up) the API calls.
LEAD_SECONDS = 0.02

SENT, RETRY_AFTER, BLOCKED, FAILED, RETRY, UNCERTAIN = (
    "sent", "retry_after", "blocked", "failed", "retry", "uncertain")


@dataclass(frozen=True)
class Outcome:
    """What the API call did: sent; retry_after (429, nothing sent); blocked (403);
    failed (permanent error); retry (nothing sent, try again later); uncertain (it may have
    been delivered: never resent)."""

    kind: str
    detail: str = ""
    retry_after: float = 0.0


class Sender(Protocol):
    async def send(self, chat_id: str, text: str) -> Outcome: ...


@dataclass
class WorkerConfig:
    rate: float = 30.0                 # messages per second, all workers together
    per_chat_seconds: float = 1.0      # at most one message per chat per this
    max_attempts: int = 5              # transient errors, then failed
    max_in_flight: int = 16
    poll_seconds: float = 0.5          # idle wait when nothing is due
    heartbeat_seconds: float = 1.0
    report: Callable[[store.Progress], str] | None = None  # renders a delivery report


def new_worker_id() -> str:
    return f"{socket.gethostname()[:20]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _now() -> datetime:
    return datetime.now(UTC)


class Worker:
    def __init__(self, sessions: sessionmaker[Session], sender: Sender,
                 config: WorkerConfig | None = None, worker_id: str | None = None) -> None:
        self.sessions = sessions
        self.sender = sender
        self.config = config or WorkerConfig()
        self.id = worker_id or new_worker_id()
        self.per_chat = timedelta(seconds=self.config.per_chat_seconds)
        self.paused_until = 0.0
        self.last_fire = 0.0
        # Reports are looked for only after this worker recorded an outcome (the worker
        # that finishes a message's last row queues its report); recovery counts too.
        self.finished_since_report = True
        self.in_flight: set[asyncio.Task] = set()
        self.sent = 0

    # ------------------------------------------------------------------ db helpers
    def _tx(self, fn, *args):
        with self.sessions.begin() as session:
            return fn(session, *args)

    async def db(self, fn, *args, tries: int = 4):
        """Run `fn(session, *args)` in its own transaction in a thread; a transient database
        error (a lost connection, a deadlock, SQLite busy) is retried with a short backoff."""
        from sqlalchemy.exc import DBAPIError

        for attempt in range(1, tries + 1):
            try:
                return await asyncio.to_thread(self._tx, fn, *args)
            except DBAPIError as exc:
                if attempt == tries:
                    raise
                log.warning("outbox database error, retrying",
                            extra={"error": type(exc.orig).__name__, "attempt": attempt})
                await asyncio.sleep(0.1 * 2 ** attempt)

    # ------------------------------------------------------------------ lifecycle
    async def run(self, stop: asyncio.Event, until_idle: bool = False) -> None:
        """Send until `stop` is set (or, with until_idle, until nothing is left to do)."""
        await self.db(store.register_worker, self.id, _now())
        requeued, uncertain = await self.db(store.recover, _now())
        if requeued or uncertain:
            log.warning("outbox recovered", extra={"requeued": requeued, "uncertain": uncertain})
        beat = asyncio.create_task(self._heartbeat(stop))
        try:
            while not stop.is_set():
                try:
                    claimed = await self.db(store.claim, self.id, self._batch(), _now(),
                                            self.per_chat)
                except Exception:  # the database is away: wait and try again
                    log.exception("outbox claim failed")
                    await self._sleep(stop, 5.0)
                    continue
                if not claimed:
                    await self._reports()  # cheap unless rows finished since the last look
                    if until_idle and not self.in_flight and await self._idle():
                        break
                    await self._sleep(stop, self.config.poll_seconds)
                    continue
                await self._send_batch(claimed, stop)
            await asyncio.gather(*self.in_flight, return_exceptions=True)
            await self._reports()
        finally:
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            await self.db(store.unregister_worker, self.id)

    def _batch(self) -> int:
        return max(1, int(self.config.rate))  # about one second of slots at a time

    async def _idle(self) -> bool:
        return await self.db(store.busy, _now(), IDLE_HORIZON) == 0

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        while not stop.is_set():
            await self._sleep(stop, self.config.heartbeat_seconds)
            try:
                await self.db(store.heartbeat, self.id, _now())
                _, uncertain = await self.db(store.recover, _now())  # rows of dead workers
                self.finished_since_report |= bool(uncertain)
            except Exception:  # keep beating; the next round retries
                log.exception("outbox heartbeat failed")

    @staticmethod
    async def _sleep(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))

    # ------------------------------------------------------------------ sending
    async def _send_batch(self, item_ids: list[int], stop: asyncio.Event) -> None:
        interval = 1.0 / self.config.rate
        first = await self.db(store.reserve_slots, len(item_ids), interval, time.time())
        limit = asyncio.Semaphore(self.config.max_in_flight)
        for index, item_id in enumerate(item_ids):
            slot = max(first + index * interval, self.paused_until)
            await self._sleep(stop, slot - LEAD_SECONDS - time.time())
            if stop.is_set():
                break
            await limit.acquire()
            task = asyncio.create_task(self._send_one(item_id, limit, slot))
            self.in_flight.add(task)
            task.add_done_callback(self.in_flight.discard)
        # On stop, rows claimed but not started go back to pending in run()'s cleanup.

    async def _send_one(self, item_id: int, limit: asyncio.Semaphore, slot: float) -> None:
        try:
            while time.time() < self.paused_until:
                await asyncio.sleep(self.paused_until - time.time())
            # This worker's calls are at least one interval apart, so a send delayed (by
            # the database, a pause) does not bunch up with the next ones.
            interval = 1.0 / self.config.rate
            fire = max(slot, self.last_fire + interval, time.time())
            self.last_fire = fire
            # Record the attempt just before the call (LEAD_SECONDS ahead, to absorb the
            # database round trip): only a row recorded and not yet answered can be caught
            # mid-send by a crash.
            await asyncio.sleep(max(0.0, fire - LEAD_SECONDS - time.time()))
            try:
                attempt = await self.db(store.start_send, item_id, self.id, _now(),
                                        self.per_chat)
            except Exception:  # nothing was sent: give the row back
                log.exception("outbox start failed")
                with contextlib.suppress(Exception):
                    await self.db(store.release, item_id, self.id)
                return
            if attempt is None:
                return
            await asyncio.sleep(max(0.0, fire - time.time()))
            try:
                outcome = await self.sender.send(attempt.chat_id, attempt.text)
            except Exception as exc:  # a sender bug: we cannot know whether it went out
                log.exception("sender failed")
                outcome = Outcome(UNCERTAIN, f"sender error: {type(exc).__name__}")
            await self._record(item_id, outcome)
        finally:
            limit.release()

    async def _record(self, item_id: int, outcome: Outcome) -> None:
        now = _now()
        self.finished_since_report = True
        kind = outcome.kind
        if kind == SENT:
            self.sent += 1
            await self.db(store.finish_send, item_id, self.id, store.SENT, now)
        elif kind == RETRY_AFTER:
            until = time.time() + outcome.retry_after
            self.paused_until = max(self.paused_until, until)
            await self.db(store.pause, until)
            await self.db(store.undo_attempt, item_id, self.id,
                          now + timedelta(seconds=outcome.retry_after),
                          f"429 retry after {outcome.retry_after:g}s")
        elif kind == BLOCKED:
            await self.db(store.finish_send, item_id, self.id, store.BLOCKED, now,
                          outcome.detail or "blocked the bot")
        elif kind == FAILED:
            await self.db(store.finish_send, item_id, self.id, store.FAILED, now,
                          outcome.detail[:200])
        elif kind == RETRY:
            await self.db(store.retry_later, item_id, self.id, now, outcome.detail[:200],
                          self.config.max_attempts)
        else:
            await self.db(store.finish_send, item_id, self.id, store.UNCERTAIN, now,
                          outcome.detail[:200] or "no answer from Telegram")

    # ------------------------------------------------------------------ reports
    async def _reports(self) -> None:
        """Queue a delivery report for each finished message that asked for one."""
        if self.config.report is None or not self.finished_since_report:
            return
        self.finished_since_report = False
        render = self.config.report

        def queue(session: Session) -> int:
            from db.outbox import enqueue

            done = 0
            for message in store.finished_unreported(session):
                if store.mark_reported(session, message.id, _now()):
                    text = render(store.progress(session, message.id))
                    enqueue(session, "report", text, [message.report_to],
                            created_by=f"worker:{self.id}"[:64],
                            reference=f"report:{message.id}")
                    done += 1
            return done

        await self.db(queue)
