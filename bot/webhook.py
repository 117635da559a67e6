"""Webhook mode: `POST /telegram/webhook` in the same ASGI app as the console.

Telegram posts each update with the secret we gave it in setWebhook. The endpoint checks
the secret (constant time), stores the update in the inbox (unique by update_id), answers
200 at once and hands the update to the same PTB Application, TelegramChannel and
Assistant as polling mode (`app.update_queue`, exactly as bot.polling.DurablePoller does).

Exactly once, in order, across instances (several `prokus serve --webhook` behind a load
balancer, one PostgreSQL):
- an update_id already in the inbox is answered 200 and not queued again;
- the turn claims its update in its own transaction (db.inbox.claim, a compare-and-set),
  so a redelivery that still slips through (two instances) runs no second turn;
- one user's updates run one at a time: the process's per-user lock
  (bot.telegram.PerUserUpdateProcessor), and on PostgreSQL a session-level advisory lock on
  the user's key around the whole turn (`InboxGate`; all of an instance's locks on one
  connection, see `UserLocks`, also for why not pg_advisory_xact_lock); under those locks
  the user's earlier stored updates that are still pending are processed first, in
  update_id order, and an update that another instance processed meanwhile is skipped.
Stalled updates (an instance died after storing them) are queued again by a sweep, and
processed updates are purged after a day (db.inbox.KEEP).
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import hmac
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import Engine, create_engine, text
from sqlalchemy.orm import Session, sessionmaker
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from telegram import Update
from telegram.ext import Application

from bot import metrics
from bot.settings import Settings
from db import inbox

log = logging.getLogger(__name__)

PATH = "/telegram/webhook"
SECRET_HEADER = "X-Telegram-Bot-Api-Secret-Token"
# Exactly the update types bot.telegram.build_application has handlers for.
ALLOWED_UPDATES = ["message", "edited_message", "callback_query"]
MAX_UPDATE_BYTES = 1024 * 1024
# How often stalled updates are looked for (and old ones purged), and how long after it
# was stored a still-pending update counts as stalled: Settings.inbox_sweep_seconds and
# inbox_stalled_seconds (PROKUS_INBOX_SWEEP_SECONDS, PROKUS_INBOX_STALLED_SECONDS). Taking
# over an update that is in fact still running is harmless: the user's lock makes the
# sweep wait for it, then the claim says it is done.
LOCK_RETRY_SECONDS = 0.01  # first wait when another instance holds a user's lock


def lock_key(user_key: str) -> int:
    """A stable signed 64-bit advisory lock key for a user (same in every process)."""
    digest = hashlib.blake2b(f"prokus-user:{user_key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big", signed=True)


class UserLocks:
    """One user's turns at a time across processes: the session-level advisory lock
    `lock_key(user)`, held for the whole turn.

    All of an instance's locks live on ONE PostgreSQL connection of their own (a session
    may hold many advisory locks), taken with `pg_try_advisory_lock` and, when another
    instance holds the user's lock, tried again after a short wait (LOCK_RETRY_SECONDS,
    growing to 0.2 s). A connection per waiting turn would take one PostgreSQL connection
    per user in flight: 60 users at once on two instances exhausted max_connections (100)
    in the end-to-end benchmark. The calls are serialised on that connection by a thread
    lock and last a millisecond; they run in a thread of their own, so the event loop never
    waits on the database.

    Why a session lock and not pg_advisory_xact_lock in the turn's transaction: a turn that
    needs the NLU rolls its transaction back, asks the NLU with no transaction open and
    runs again, so a transaction-scoped lock would be let go during the NLU call and the
    user's next update could overtake it.

    If the lock connection breaks, PostgreSQL drops the locks it held: the turns in flight
    finish (each update is still processed at most once, by its claim) and new turns take
    their locks on a new connection. On SQLite (one instance) it does nothing: the per-user
    lock of the process is enough."""

    def __init__(self, database_url: str) -> None:
        from sqlalchemy.engine import make_url
        from sqlalchemy.pool import NullPool

        from db.engine import normalise_url

        url = normalise_url(database_url)
        self.engine: Engine | None = None
        if make_url(url).get_backend_name() == "postgresql":
            self.engine = create_engine(url, poolclass=NullPool, hide_parameters=True)
        self._conn = None
        self._guard = threading.Lock()
        self._pool = ThreadPoolExecutor(1, thread_name_prefix="user-lock")
        self.waits = 0  # times a lock was found held by another instance

    def _call(self, sql: str, key: int) -> bool:
        """Run one advisory-lock function on the lock connection (a new connection when it
        broke: one retry); its boolean result."""
        assert self.engine is not None
        unlock = "unlock" in sql
        with self._guard:
            for attempt in range(2):
                try:
                    if self._conn is None:
                        self._conn = self.engine.connect()
                    result = bool(self._conn.execute(text(sql), {"key": key}).scalar())
                    self._conn.commit()
                    return result
                except Exception:
                    if self._conn is not None:
                        with contextlib.suppress(Exception):
                            self._conn.invalidate()
                            self._conn.close()
                    self._conn = None
                    if unlock:  # the lock went with the broken connection
                        return False
                    if attempt == 1:
                        raise
            return False

    @contextlib.asynccontextmanager
    async def hold(self, user_key: str) -> AsyncIterator[None]:
        """Hold the user's lock (waiting while another process holds it)."""
        if self.engine is None:
            yield
            return
        loop = asyncio.get_running_loop()
        key = lock_key(user_key)
        wait = LOCK_RETRY_SECONDS
        while not await self._try_lock(loop, key):
            self.waits += 1
            await asyncio.sleep(wait)
            wait = min(wait * 2, 0.2)
        try:
            yield
        finally:
            await loop.run_in_executor(self._pool, self._call,
                                       "SELECT pg_advisory_unlock(:key)", key)

    async def _try_lock(self, loop: asyncio.AbstractEventLoop, key: int) -> bool:
        """pg_try_advisory_lock in the lock thread. Cancelled meanwhile (shutdown): a lock
        the thread took anyway is let go, so it is not held until the connection closes."""
        future = loop.run_in_executor(self._pool, self._call,
                                      "SELECT pg_try_advisory_lock(:key)", key)
        try:
            return await asyncio.shield(future)
        except asyncio.CancelledError:
            with contextlib.suppress(Exception):
                if await future:
                    await loop.run_in_executor(self._pool, self._call,
                                               "SELECT pg_advisory_unlock(:key)", key)
            raise

    def close(self) -> None:
        self._pool.shutdown(wait=True, cancel_futures=True)
        with self._guard:
            if self._conn is not None:
                with contextlib.suppress(Exception):
                    self._conn.close()
                self._conn = None
        if self.engine is not None:
            self.engine.dispose()


class InboxGate:
    """What runs around each update in webhook mode (bot.telegram.UpdateGate), inside the
    process's per-user lock: the user's lock across processes, then the user's earlier
    pending updates in update_id order, then this update unless it was processed already
    (by another instance, or just now as someone's "earlier" update)."""

    def __init__(self, sessions: sessionmaker[Session], locks: UserLocks) -> None:
        self.sessions = sessions
        self.locks = locks
        self.app: Application | None = None  # set once the application is built

    def _look(self, user_key: str, update_id: int) -> tuple[list[dict], bool]:
        with self.sessions() as session:
            earlier = [row.payload for row in inbox.pending_before(session, user_key, update_id)
                       if row.payload]
            return earlier, inbox.processed(session, update_id)

    async def run(self, update: Update, coroutine: Awaitable[Any]) -> None:
        """Run `coroutine` (the handlers for `update`) in order and at most once."""
        assert self.app is not None
        user = update.effective_user
        if user is None:
            await coroutine
            return
        key = str(user.id)
        try:
            async with self.locks.hold(key):
                earlier, done = await asyncio.to_thread(self._look, key, update.update_id)
                for payload in earlier:
                    log.info("processing an earlier stored update first")
                    await self.app.process_update(Update.de_json(payload, self.app.bot))
                if done:
                    log.info("update already handled elsewhere; skipped")
                    return
                await coroutine
                coroutine = None
        finally:
            if coroutine is not None and asyncio.iscoroutine(coroutine):
                coroutine.close()  # not run (skipped, or the lock failed): no warning


class WebhookService:
    """The PTB application of one `prokus serve --webhook` instance: built and started with
    the ASGI app (its lifespan), fed by `handle` (the endpoint)."""

    def __init__(self, settings: Settings, *, with_worker: bool = False,
                 assistant=None, nlu_client=None) -> None:
        if not settings.telegram_webhook_secret:
            raise ValueError("TELEGRAM_WEBHOOK_SECRET is not set")
        if not settings.telegram_bot_token:
            raise ValueError("TELEGRAM_BOT_TOKEN is not set")
        self.settings = settings
        self.secret = settings.telegram_webhook_secret.encode()
        self.with_worker = with_worker
        self.assistant = assistant
        self.nlu_client = nlu_client  # anything with is_ready() and close()
        self._own_client = nlu_client is None and assistant is None
        self.app: Application | None = None
        self.locks: UserLocks | None = None
        self._stop = asyncio.Event()
        self._sweeper: asyncio.Task | None = None
        self.received = 0
        self.duplicates = 0

    # ------------------------------------------------------------------ lifecycle
    async def start(self, engine: Engine | None = None) -> None:
        """Build the assistant (unless given), the application and the gate; start them."""
        from bot.app import build_assistant, make_nlu_client
        from bot.background import add_background
        from bot.polling import DurablePoller
        from bot.telegram import build_application

        settings = self.settings
        metrics.metrics()  # (made now, not on the first update's request)
        if self.assistant is None:
            if not settings.nlu_url:
                raise ValueError("NLU_URL is not set")
            self.nlu_client = self.nlu_client or make_nlu_client(settings, settings.nlu_url)
            self.assistant = build_assistant(settings, self.nlu_client, engine)
        self.locks = UserLocks(settings.database_url)
        gate = InboxGate(self.assistant.sessions, self.locks)
        self.app = build_application(settings.telegram_bot_token, self.assistant,
                                     settings.telegram_api_url, rate=settings.telegram_max_rate,
                                     gate=gate)
        gate.app = self.app
        add_background(self.app, self.assistant, settings, self.with_worker)
        self.poller = DurablePoller(self.app, self.assistant.sessions)
        await self.app.initialize()
        if self.app.post_init:
            await self.app.post_init(self.app)
        await self.app.start()
        self._stop.clear()
        self._sweeper = asyncio.create_task(self._sweep())

    async def stop(self) -> None:
        """Stop taking new work, let the updates in progress finish, stop the application."""
        from bot.telegram import stop_delivery

        self._stop.set()
        if self._sweeper is not None:
            self._sweeper.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._sweeper
        app = self.app
        if app is not None:
            try:
                if app.running:
                    await app.stop()
                if app.post_stop:
                    await app.post_stop(app)
                await stop_delivery(app)
            finally:
                await app.shutdown()
        if self.locks is not None:
            self.locks.close()
        if self._own_client and self.nlu_client is not None:
            self.nlu_client.close()

    # ------------------------------------------------------------------ housekeeping
    def _stalled(self) -> list[Update]:
        assert self.app is not None and self.assistant is not None
        before = datetime.now(UTC) - timedelta(seconds=self.settings.inbox_stalled_seconds)
        with self.assistant.sessions() as session:
            rows = inbox.pending(session, received_before=before)
            return [Update.de_json(row.payload, self.app.bot) for row in rows if row.payload]

    async def _sweep(self) -> None:
        """Queue again updates stored long ago and never processed (their instance died),
        and purge processed updates older than a day; every inbox_sweep_seconds, from start."""
        assert self.app is not None
        while not self._stop.is_set():
            try:
                for update in await asyncio.to_thread(self._stalled):
                    metrics.count("requeued")
                    await self.app.update_queue.put(update)  # the gate skips what is done
                await self.poller.purge_now_and_then()
            except Exception as exc:  # the database is away: the next round tries again
                log.warning("webhook sweep failed", extra={"error": type(exc).__name__})
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._stop.wait(), self.settings.inbox_sweep_seconds)

    # ------------------------------------------------------------------ the endpoint
    def _store(self, update: Update) -> bool:
        assert self.assistant is not None
        user = update.effective_user
        row = (update.update_id, str(user.id) if user else None, update.to_dict())
        with self.assistant.sessions.begin() as session:
            return bool(inbox.store(session, [row], datetime.now(UTC)))

    def secret_ok(self, sent: str | None) -> bool:
        """Constant-time check of the X-Telegram-Bot-Api-Secret-Token header."""
        return sent is not None and hmac.compare_digest(sent.encode("utf-8", "replace"),
                                                        self.secret)

    async def handle(self, request: Request) -> Response:
        """POST /telegram/webhook: check, store, answer 200; the turn runs in the background."""
        came = time.monotonic()  # the update's arrival (prokus_reply_latency_seconds)
        if not self.secret_ok(request.headers.get(SECRET_HEADER)):
            return JSONResponse({"ok": False, "error": "forbidden"}, status_code=403)
        if self.app is None or not self.app.running:
            return JSONResponse({"ok": False, "error": "starting"}, status_code=503)
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_UPDATE_BYTES:
                return JSONResponse({"ok": False, "error": "too large"}, status_code=413)
        try:
            data = json.loads(body)
            if not isinstance(data, dict) or not isinstance(data.get("update_id"), int):
                raise ValueError("no update_id")
            update = Update.de_json(data, self.app.bot)
        except Exception:  # not JSON, or not an update
            return JSONResponse({"ok": False, "error": "bad update"}, status_code=400)
        try:
            new = await asyncio.to_thread(self._store, update)
        except Exception as exc:  # Telegram sends it again later
            log.warning("webhook update not stored", extra={"error": type(exc).__name__})
            return JSONResponse({"ok": False, "error": "unavailable"}, status_code=503)
        self.received += 1
        metrics.count("updates_received", source="webhook")
        if new:
            metrics.arrived(update.update_id, came)
            await self.app.update_queue.put(update)
        else:
            self.duplicates += 1
            metrics.count("duplicates", source="webhook")
            log.info("webhook update delivered again; not processed twice")
        return JSONResponse({"ok": True})

    def nlu_ready(self) -> bool | None:
        """Whether an NLU server answers (None when no client is known)."""
        client = self.nlu_client
        if client is None or not hasattr(client, "is_ready"):
            return None
        return bool(client.is_ready())
