"""Long polling that loses no update: each batch from getUpdates is stored in the inbox
before its offset is confirmed (the next getUpdates call confirms it), then handed to the
PTB application. While the database is away nothing is confirmed, so Telegram keeps the
updates; after a crash, stored updates that were not processed are replayed at start.

Used instead of PTB's Updater, which confirms an offset before the update is handled.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from datetime import UTC, datetime

from sqlalchemy.orm import Session, sessionmaker
from telegram import Update
from telegram.error import NetworkError, RetryAfter, TelegramError, TimedOut
from telegram.ext import Application

from bot import metrics
from db import inbox
from db.errors import is_transient
from outbox import store

log = logging.getLogger(__name__)
PURGE_SECONDS = 600.0


def _row(update: Update) -> tuple[int, str | None, dict]:
    user = update.effective_user
    return update.update_id, (str(user.id) if user else None), update.to_dict()


class DurablePoller:
    """getUpdates -> inbox (committed) -> application queue -> confirm the offset."""

    def __init__(self, app: Application, sessions: sessionmaker[Session],
                 timeout: int = 25, allowed_updates: list[str] | None = None) -> None:
        self.app = app
        self.sessions = sessions
        self.timeout = timeout
        self.allowed_updates = allowed_updates or Update.ALL_TYPES
        self.offset: int | None = None
        self.stored = 0
        self.purged_at = 0.0  # time.monotonic() of the last purge of old processed updates

    def _purge(self) -> int:
        """Processed updates and delivered replies older than a day (personal data)."""
        now = datetime.now(UTC)
        with self.sessions.begin() as session:
            return (inbox.purge(session, now)
                    + store.purge_replies(session, now - inbox.KEEP))

    async def purge_now_and_then(self) -> None:
        """Forget processed updates older than a day, at most every PURGE_SECONDS."""
        if time.monotonic() - self.purged_at < PURGE_SECONDS:
            return
        self.purged_at = time.monotonic()
        try:
            await asyncio.to_thread(self._purge)
        except Exception as exc:  # the next round tries again
            log.warning("inbox purge failed", extra={"error": type(exc).__name__})

    def _store(self, rows: list[tuple[int, str | None, dict]]) -> list[int]:
        with self.sessions.begin() as session:
            return inbox.store(session, rows, datetime.now(UTC))

    def _pending(self, after: int) -> list[Update]:
        with self.sessions() as session:
            rows = inbox.pending(session, after=after)
            return [Update.de_json(row.payload, self.app.bot) for row in rows if row.payload]

    async def replay(self) -> int:
        """Queue every stored update that was never processed (a crash, an outage), in
        order, page by page."""
        count, after = 0, -1
        while True:
            updates = await asyncio.to_thread(self._pending, after)
            if not updates:
                break
            for update in updates:
                await self.app.update_queue.put(update)
            count += len(updates)
            after = updates[-1].update_id
        if count:
            log.warning("replaying stored updates", extra={"count": count})
        return count

    async def _store_until_done(self, updates: tuple[Update, ...], stop: asyncio.Event
                                ) -> list[int] | None:
        """Store the batch, retrying while the database is away; None when stopped first."""
        delay = 0.5
        rows = [_row(u) for u in updates]
        while not stop.is_set():
            try:
                return await asyncio.to_thread(self._store, rows)
            except Exception as exc:
                if not is_transient(exc):
                    raise
                log.warning("inbox store failed; updates stay with Telegram",
                            extra={"error": type(exc).__name__, "count": len(rows)})
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(stop.wait(), delay)
                delay = min(delay * 2, 5.0)
        return None

    async def run(self, stop: asyncio.Event) -> None:
        """Poll until `stop` is set."""
        await self.replay()
        delay = 1.0
        while not stop.is_set():
            await self.purge_now_and_then()
            fetch = asyncio.ensure_future(self.app.bot.get_updates(
                offset=self.offset, timeout=self.timeout, allowed_updates=self.allowed_updates,
                read_timeout=self.timeout + 10))
            stopped = asyncio.ensure_future(stop.wait())
            done, _ = await asyncio.wait({fetch, stopped}, return_when=asyncio.FIRST_COMPLETED)
            if fetch not in done:
                fetch.cancel()
                with contextlib.suppress(asyncio.CancelledError, TelegramError):
                    await fetch
                break
            stopped.cancel()
            try:
                updates = fetch.result()
            except RetryAfter as exc:
                await self._pause(stop, float(exc.retry_after if isinstance(
                    exc.retry_after, (int, float)) else exc.retry_after.total_seconds()))
                continue
            except (NetworkError, TimedOut) as exc:
                log.warning("getUpdates failed", extra={"error": type(exc).__name__})
                await self._pause(stop, delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            if not updates:
                continue
            came = time.monotonic()  # their arrival (prokus_reply_latency_seconds)
            new = await self._store_until_done(updates, stop)
            if new is None:
                break  # stopped while the database was away: nothing confirmed, nothing lost
            self.stored += len(new)
            fresh = set(new)
            metrics.count("updates_received", len(updates), source="polling")
            if len(updates) > len(fresh):
                metrics.count("duplicates", len(updates) - len(fresh), source="polling")
            for update in updates:
                if update.update_id in fresh:
                    metrics.arrived(update.update_id, came)
                    await self.app.update_queue.put(update)
            self.offset = updates[-1].update_id + 1

    @staticmethod
    async def _pause(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), seconds)
