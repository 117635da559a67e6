"""The outbox worker: claims due rows, paces sends under the global limit (shared by all
workers through the database) and one message per chat per second, records each send
before and after the API call, retries what may be retried, and queues delivery reports.

It knows nothing about Telegram: a `Sender` does the API call and says what happened.
Database calls run in threads so the worker can share an event loop with the bot.

Database errors never end the worker silently. A transient one (a lost connection, a server
restarting, a deadlock, SQLite busy) is retried with backoff for as long as it lasts; any
other error is logged and retried a few times, then raised (the supervisor in `prokus run`
restarts the worker). An outcome learnt from Telegram is recorded with retries until the
database takes it; after an error the worker reconciles its own rows that no task holds any
more (claimed -> pending, sending -> uncertain). Database errors are logged by class only:
their text carries SQL parameters (chat ids, message text).
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
from typing import Any, Protocol

from sqlalchemy.exc import DBAPIError, InterfaceError
from sqlalchemy.orm import Session, sessionmaker

from bot.metrics import count
from db.errors import is_transient
from db.outbox import PENDING
from outbox import store

log = logging.getLogger(__name__)

# A worker run --until-idle stops when nothing is in flight or due within this.
IDLE_HORIZON = timedelta(minutes=2)
# The attempt is recorded this long before its send slot, so the database round trip does
# not delay (and bunch up) the API calls.
LEAD_SECONDS = 0.02
# A send this late for its reserved slot takes a new one instead of firing at once.
LATE_SECONDS = 0.02

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
    """`paid` is passed (as True) only for a paid broadcast's messages."""

    async def send(self, chat_id: str, text: str, markup: dict | None = None,
                   paid: bool = False) -> Outcome: ...


@dataclass
class WorkerConfig:
    rate: float = 30.0                 # messages per second, all workers together
    # Slots are spaced 3% wider than 1/rate, so jitter on the way to Telegram does
    # not put more than `rate` sends into any one-second window at its end.
    pacing_margin: float = 0.97
    per_chat_seconds: float = 1.0      # at most one message per chat per this
    max_attempts: int = 5              # transient errors, then failed
    max_in_flight: int = 16            # API calls under way at once in one worker
    poll_seconds: float = 0.5          # idle wait when nothing is due
    heartbeat_seconds: float = 1.0
    report: Callable[[store.Progress], str] | None = None  # renders a delivery report
    sending_timeout_seconds: float = store.SENDING_TIMEOUT.total_seconds()
    max_backoff_seconds: float = 5.0   # longest wait between two tries after an error
    max_hard_failures: int = 5         # non-transient errors in a row, then raise
    stop_grace_seconds: float = 10.0   # after stop, how long an outcome is still retried
    # Bulk sends reserve slots only while the shared pacer is less than this far ahead, so
    # replies (which reserve at once) never queue behind more than this much bulk.
    bulk_ahead_seconds: float = 0.1
    # A reply is the fast path's to send (right after its turn); the worker takes it only
    # when it has waited this long (a crash, a retry after an error).
    reply_grace_seconds: float = 3.0
    # The fast path waits out a retry of a reply when it is due within this (a 429's
    # retry_after, the first backoffs); a longer one is left to the workers.
    fast_retry_seconds: float = 10.0
    # Only rows of users on this channel are claimed (None: all); the console channel
    # shows its users' rows itself (bot/console.py).
    channel: str | None = "telegram"
    # Paid broadcasts (allow_paid_broadcast): at most this rate, whatever a message asks.
    paid_max_rate: float = 1000.0
    paid_pacing_margin: float = 0.95  # 1 s windows at the receiver stay at or under the rate
    # Slots are reserved, and attempts recorded, for about this long a block of sends at
    # once (one pacer update and one transaction per block, not per message).
    block_seconds: float = 0.05
    # A claim takes about this long of sends of a paid broadcast (bulk_ahead_seconds'
    # worth otherwise), at most max_claim rows.
    paid_claim_seconds: float = 0.2
    max_claim: int = 500
    # Outcomes are recorded together, at the latest this long after their call.
    record_seconds: float = 0.02
    record_batch: int = 100


class SharedPause:
    """Telegram's "retry after", shared by the senders of one process (they share the bot
    token): slots reserved before a 429 are not used while it lasts. Other processes see it
    through the pacer row (`store.pause`)."""

    def __init__(self) -> None:
        self.until = 0.0


PROCESS_PAUSE = SharedPause()  # the bot process's fast path and worker share this one


@dataclass
class WorkerHealth:
    """Liveness of one worker (and of its supervisor's restarts), for a health check."""

    running: bool = False
    started_at: float = 0.0            # seconds since the epoch, as time.time()
    loop_at: float = 0.0               # the main loop last turned
    ok_at: float = 0.0                 # a loop turn last succeeded
    beat_at: float = 0.0               # the heartbeat was last written
    restarts: int = 0                  # set by the supervisor
    failures: int = 0                  # failed steps in a row (0 when healthy)
    last_error: str | None = None      # the class of the last error, never its text

    def alive(self, max_age: float = 30.0, now: float | None = None) -> bool:
        """Running and its loop turned within `max_age` seconds."""
        now = time.time() if now is None else now
        return self.running and now - self.loop_at <= max_age


def new_worker_id() -> str:
    return f"{socket.gethostname()[:20]}:{os.getpid()}:{uuid.uuid4().hex[:6]}"


def _now() -> datetime:
    return datetime.now(UTC)


def transient(exc: BaseException) -> bool:
    """A database error that a later try may not meet again."""
    return is_transient(exc) or isinstance(exc, InterfaceError)


def error_name(exc: BaseException) -> str:
    """The error's class (the driver's, for database errors): safe to log."""
    if isinstance(exc, DBAPIError) and exc.orig is not None:
        return f"{type(exc).__name__}/{type(exc.orig).__name__}"
    return type(exc).__name__


class Worker:
    def __init__(self, sessions: sessionmaker[Session], sender: Sender,
                 config: WorkerConfig | None = None, worker_id: str | None = None,
                 health: WorkerHealth | None = None, claiming: bool = True,
                 pause: SharedPause | None = None) -> None:
        self.sessions = sessions
        self.sender = sender
        self.config = config or WorkerConfig()
        self.id = worker_id or new_worker_id()
        self.health = health or WorkerHealth()
        self.per_chat = timedelta(seconds=self.config.per_chat_seconds)
        self.sending_timeout = timedelta(seconds=self.config.sending_timeout_seconds)
        self.pause = pause or SharedPause()
        self.last_fire = 0.0
        # Reports are looked for only after this worker recorded an outcome (the worker
        # that finishes a message's last row queues its report); recovery counts too.
        self.finished_since_report = True
        self.in_flight: set[asyncio.Task] = set()
        # Rows this worker's tasks are handling; reconcile leaves these alone.
        self.holding: set[int] = set()
        self.reconcile_needed = False
        # begin_reply calls under way: the rows they commit join `holding` only once they
        # return, so reconcile closes the gate to new ones and waits for these (else it
        # could declare a reply that is being sent uncertain).
        self.beginning = 0
        self.begin_gate = asyncio.Event()
        self.begin_gate.set()
        self.begins_idle = asyncio.Event()
        self.begins_idle.set()
        self.stop = asyncio.Event()
        self.sent = 0
        self.claiming = claiming
        self.registered = asyncio.Event()  # set once the worker row exists (peers see us)
        # Adaptive paid rate shared through the pacer row (store.throttle/pacer_scale).
        self.scale, self.scaled_at = 1.0, 0.0
        self.throttles = 0                 # 429s that cut the paid rate
        self.claim_rate = self.config.rate  # what the last claim's rows were sent at
        self.meta: dict[int, store.MessageMeta] = {}  # per message, loaded once
        self.outcomes: list[tuple[int, Outcome]] = []  # sent, waiting to be recorded
        # One flush at a time: a flush that finds the buffer empty while another is still
        # writing waits for that write, so "nothing left to record" is true when it returns.
        self.flushing = asyncio.Lock()
        self.record_wake = asyncio.Event()
        self.recording = False

    @property
    def interval(self) -> float:
        """Seconds between two sends of all senders together."""
        return 1.0 / (self.config.rate * self.config.pacing_margin)

    # ------------------------------------------------------------------ db helpers
    def _tx(self, fn, *args):
        with self.sessions.begin() as session:
            return fn(session, *args)

    async def db(self, fn, *args, tries: int = 4):
        """Run `fn(session, *args)` in its own transaction in a thread; a transient database
        error is retried with a short backoff, any other error is raised at once."""
        for attempt in range(1, tries + 1):
            try:
                return await asyncio.to_thread(self._tx, fn, *args)
            except Exception as exc:
                if attempt == tries or not transient(exc):
                    raise
                # The failed try may have committed without our hearing it (a claim
                # whose rows we never learnt): reconcile our rows at the next turn.
                self.reconcile_needed = True
                log.warning("outbox database error, retrying",
                            extra={"error": error_name(exc), "attempt": attempt})
                await asyncio.sleep(0.1 * 2 ** attempt)

    async def _persist(self, step: str, fn, *args) -> bool:
        """Run a write that must not be lost: retried with backoff while the error is
        transient (after stop, for at most stop_grace_seconds). False if it gave up."""
        failures = 0
        deadline: float | None = None
        while True:
            try:
                await self.db(fn, *args, tries=1)
                return True
            except Exception as exc:
                failures += 1
                self._failed(step, exc, quiet=failures > 1)  # one warning per outage
                if not transient(exc):
                    return False
            if self.stop.is_set():
                deadline = deadline or time.monotonic() + self.config.stop_grace_seconds
                if time.monotonic() >= deadline:
                    log.error("outbox gave up after stop", extra={"step": step})
                    return False
            await asyncio.sleep(self._backoff(failures))

    def _failed(self, step: str, exc: BaseException, quiet: bool = False) -> None:
        """Log a failed step (the error's class only, for database errors) and note it;
        `quiet` (a repeat of the same failure) logs at DEBUG."""
        self.health.last_error = error_name(exc)
        is_db = isinstance(exc, DBAPIError) or transient(exc)
        self.reconcile_needed |= is_db
        extra = {"step": step, "error": error_name(exc), "transient": transient(exc)}
        if is_db:
            log.log(logging.DEBUG if quiet else logging.WARNING, "outbox database error",
                    extra=extra)
        else:  # a bug: the traceback is needed (the formatter redacts NIK, phone, token)
            log.error("outbox step failed", extra=extra, exc_info=exc)

    def _backoff(self, failures: int) -> float:
        return min(self.config.max_backoff_seconds, 0.25 * 2 ** max(0, failures - 1))

    # ------------------------------------------------------------------ lifecycle
    async def run(self, stop: asyncio.Event, until_idle: bool = False) -> None:
        """Send until `stop` is set (or, with until_idle, until nothing is left to do)."""
        self.stop = stop
        self.health.running, self.health.started_at = True, time.time()
        try:
            if await self._start(stop):
                await self._loop(stop, until_idle)
        finally:
            self.health.running = False

    async def _start(self, stop: asyncio.Event) -> bool:
        """Register and recover dead workers' rows, retrying until the database answers."""
        failures = 0
        while not stop.is_set():
            try:
                await self.db(store.register_worker, self.id, _now())
                requeued, uncertain = await self.db(store.recover, _now(),
                                                    self.sending_timeout)
            except Exception as exc:
                failures = self._step_failed("start", exc, failures)
                await self._sleep(stop, self._backoff(failures))
                continue
            if requeued or uncertain:
                log.warning("outbox recovered",
                            extra={"requeued": requeued, "uncertain": uncertain})
            self.registered.set()
            return True
        return False

    async def _loop(self, stop: asyncio.Event, until_idle: bool) -> None:
        """The main loop: each turn's errors are logged and backed off, never fatal unless
        a non-transient error keeps coming back."""
        beat = asyncio.create_task(self._heartbeat(stop))
        self.recording = True
        recorder = asyncio.create_task(self._recorder())
        failures = 0
        try:
            while not stop.is_set():
                self.health.loop_at = time.time()
                try:
                    if await self._step(stop, until_idle):
                        break
                except Exception as exc:
                    failures = self._step_failed("loop", exc, failures)
                    await self._sleep(stop, self._backoff(failures))
                    continue
                failures = self.health.failures = 0
                self.health.ok_at = time.time()
            await self._drain()
        finally:
            # the recorder writes what it holds (within stop_grace_seconds), then ends
            self.recording = False
            self.record_wake.set()
            with contextlib.suppress(Exception):
                await recorder
            beat.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await beat
            try:
                await self.db(store.unregister_worker, self.id)
            except Exception as exc:  # peers recover our rows once our heartbeat is old
                self._failed("unregister", exc)

    def _step_failed(self, step: str, exc: Exception, failures: int) -> int:
        """Count a failed step; raise once non-transient errors keep coming back."""
        self._failed(step, exc, quiet=failures > 0)
        failures += 1
        self.health.failures = failures
        if not transient(exc) and failures >= self.config.max_hard_failures:
            raise exc
        return failures

    async def _step(self, stop: asyncio.Event, until_idle: bool) -> bool:
        """One turn: reconcile if needed, claim, send. True when an --until-idle run is
        done."""
        if self.reconcile_needed:
            await self._reconcile()
        if not self.claiming:  # a fast-path-only worker: replies come through deliver()
            await self._sleep(stop, self.config.poll_seconds)
            return False
        claimed = await self.db(store.claim_rows, self.id, self._batch(), _now(),
                                self.per_chat,
                                timedelta(seconds=self.config.reply_grace_seconds),
                                self.config.channel)
        if claimed:
            await self._send_claimed(claimed, stop)
            return False
        if until_idle and not self.in_flight:
            # Record the outcomes still buffered first: the reports below must see them (a
            # report queued only in _drain, after the loop, was never sent).
            await self._flush_outcomes()
        await self._reports()  # cheap unless rows finished since the last look
        if until_idle and not self.in_flight and await self._idle():
            return True
        await self._sleep(stop, self.config.poll_seconds)
        return False

    async def _drain(self) -> None:
        """Let the sends in flight finish, then queue the last reports (best effort)."""
        await asyncio.gather(*self.in_flight, return_exceptions=True)
        await self._flush_outcomes()
        try:
            await self._reports()
        except Exception as exc:  # a later worker run queues them
            self._failed("reports", exc)

    async def _reconcile(self) -> None:
        """Our rows that no task holds: claimed back to pending, sending to uncertain."""
        self.reconcile_needed = False  # an error from here on asks for another round
        self.begin_gate.clear()
        try:
            await self.begins_idle.wait()
            requeued, uncertain = await self.db(store.reconcile, self.id,
                                                sorted(self.holding))
        except BaseException:
            self.reconcile_needed = True
            raise
        finally:
            self.begin_gate.set()
        self.finished_since_report |= bool(uncertain)
        if requeued or uncertain:
            log.warning("outbox reconciled its rows",
                        extra={"requeued": requeued, "uncertain": uncertain})

    def _batch(self) -> int:
        """About bulk_ahead_seconds of slots at a time (paid_claim_seconds' worth while a
        paid broadcast is going out)."""
        if self.claim_rate > self.config.rate:
            return max(1, min(self.config.max_claim,
                              int(self.claim_rate * self.config.paid_claim_seconds)))
        return max(1, int(self.config.rate * self.config.bulk_ahead_seconds))

    async def _idle(self) -> bool:
        return await self.db(store.busy, _now(), IDLE_HORIZON, self.config.channel) == 0

    async def _heartbeat(self, stop: asyncio.Event) -> None:
        """Beat, and recover dead workers' rows and rows whose outcome was lost."""
        failing = False
        while not stop.is_set():
            await self._sleep(stop, self.config.heartbeat_seconds)
            try:
                _, uncertain = await self.db(self._beat, _now(), tries=1)
            except Exception as exc:  # keep beating; the next round retries
                self._failed("heartbeat", exc, quiet=failing)
                failing = True
                continue
            failing = False
            self.health.beat_at = time.time()
            self.finished_since_report |= bool(uncertain)

    def _beat(self, session: Session, now: datetime) -> tuple[int, int]:
        """Heartbeat and recovery (store.beat_and_recover), and the shared paid rate."""
        result = store.beat_and_recover(session, self.id, now, self.sending_timeout)
        self.scale, self.scaled_at = store.pacer_scale(session)
        return result

    @staticmethod
    async def _sleep(stop: asyncio.Event, seconds: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(stop.wait(), timeout=max(0.0, seconds))

    # ------------------------------------------------------------------ sending
    # ------------------------------------------------------------------ batched sending
    def paid_rate(self, meta: store.MessageMeta, now: float | None = None) -> float:
        """The rate a paid message goes at now: its target (at most paid_max_rate), times
        the shared adaptive scale, never below the free rate."""
        target = min(meta.paid_rate or self.config.paid_max_rate, self.config.paid_max_rate)
        now = time.time() if now is None else now
        return max(self.config.rate,
                   target * store.current_scale(self.scale, self.scaled_at, now))

    def _interval_for(self, meta: store.MessageMeta | None) -> float:
        if meta is None or not meta.paid:
            return self.interval
        return 1.0 / (self.paid_rate(meta) * self.config.paid_pacing_margin)

    async def _metas(self, message_ids: set[int]) -> dict[int, store.MessageMeta]:
        """Each message's text and mode, from the database once per message (replies,
        which are one message per row and may hold personal data, are not kept)."""
        missing = sorted(m for m in message_ids if m not in self.meta)
        found = dict(await self.db(store.message_meta, missing)) if missing else {}
        if len(self.meta) > 512:
            self.meta.clear()
        self.meta.update({m: meta for m, meta in found.items() if meta.kind != "reply"})
        return {m: self.meta.get(m) or found.get(m) for m in message_ids}

    def _blocks(self, claimed: list[store.Claimed],
                metas: dict[int, store.MessageMeta | None]):
        """The claimed rows in blocks of about block_seconds of sends, each block of one
        mode (paid or not), in claim order (priority first). A block may hold rows of
        several messages (replies and notices are one message each): `meta` only sets the
        block's pace; each row is sent with its own message (see _send_claimed)."""
        blocks: list[tuple[store.MessageMeta | None, list[int]]] = []
        for row in claimed:
            meta = metas.get(row.message_id)
            paid = bool(meta and meta.paid)
            rate = self.paid_rate(meta) if paid else self.config.rate
            size = max(1, int(rate * self.config.block_seconds))
            if blocks and bool(blocks[-1][0] and blocks[-1][0].paid) == paid \
                    and len(blocks[-1][1]) < size:
                blocks[-1][1].append(row.item_id)
            else:
                blocks.append((meta, [row.item_id]))
        return blocks

    async def _send_claimed(self, claimed: list[store.Claimed], stop: asyncio.Event) -> None:
        """Send claimed rows block by block: one slot reservation and one transaction
        recording all of a block's attempts, then one task per row at its slot (at most
        max_in_flight calls under way); rows not started are left to reconcile (or, on
        stop, to unregister)."""
        item_ids = [c.item_id for c in claimed]
        self.holding.update(item_ids)
        started = 0
        try:
            metas = await self._metas({c.message_id for c in claimed})
            rates = [self.paid_rate(m) for m in metas.values() if m is not None and m.paid]
            self.claim_rate = max(rates) if rates else self.config.rate
            limit = asyncio.Semaphore(self.config.max_in_flight)
            # Each row's own message (text, buttons, mode): never the block's first one.
            row_meta = {c.item_id: metas.get(c.message_id) for c in claimed}
            for meta, block in self._blocks(claimed, metas):
                if not await self._send_block(meta, block, limit, stop, row_meta):
                    break
                started += len(block)
        finally:
            if started < len(item_ids):
                self.holding.difference_update(item_ids[started:])
                self.reconcile_needed = True

    async def _send_block(self, meta: store.MessageMeta | None, block: list[int],
                          limit: asyncio.Semaphore, stop: asyncio.Event,
                          row_meta: dict[int, store.MessageMeta | None]) -> bool:
        """Reserve the block's slots, record its attempts, start its sends (each row with
        its own message, `row_meta`; `meta` sets the pace). False when the rest of the
        claim is to be left (stop, or no slots for a while)."""
        interval = self._interval_for(meta)
        # Bulk takes slots only while the pacer is less than this far ahead, so a reply
        # waits at most that long (paid blocks need room for two workers' blocks).
        ahead = self.config.bulk_ahead_seconds
        if meta is not None and meta.paid:
            ahead = max(ahead, 3 * self.config.block_seconds)
        waited = 0.0
        while True:
            self.health.loop_at = time.time()  # a long batch is not a stuck loop
            first = await self.db(store.reserve_slots, len(block), interval, time.time(),
                                  ahead)
            if first is not None:
                break
            # Replies (or the other workers) use the budget now: wait a little, then give
            # the rows back if it lasts.
            if waited >= 1.0 or stop.is_set():
                return False
            pause = max(self.config.block_seconds / 2, 0.01)
            await self._sleep(stop, pause)
            waited += pause
        await self._sleep(stop, first - LEAD_SECONDS - time.time())
        if stop.is_set():
            return False
        try:  # one try: a retry would find the rows `sending` if the first committed
            attempts = await self.db(store.start_sends, block, self.id, _now(), self.per_chat,
                                     tries=1)
        except Exception as exc:  # nothing was sent: give the rows back
            self._failed("start_send", exc)
            await self._persist("give_back", store.give_back_many, block, self.id)
            self.holding.difference_update(block)
            return True
        going = {a.item_id for a in attempts}
        self.holding.difference_update(i for i in block if i not in going)
        if len(going) < len(block):
            self.finished_since_report = True
        for index, attempt in enumerate(attempts):
            self._spawn(self._fire(attempt, row_meta.get(attempt.item_id), first + index * interval,
                                   interval, limit))
        return True

    async def _fire(self, attempt: store.Attempt, meta: store.MessageMeta | None,
                    slot: float, interval: float, limit: asyncio.Semaphore) -> None:
        """One recorded attempt: wait for its slot (a fresh one after a pause), call the
        API (at most max_in_flight calls under way), hand the outcome to the recorder."""
        acquired = queued = False
        try:
            if time.time() < self.pause.until:
                while time.time() < self.pause.until:
                    await asyncio.sleep(self.pause.until - time.time())
                try:  # the slot passed during the pause: take a new one, not a burst
                    slot = await self.db(store.reserve_slots, 1, self._interval_for(meta),
                                         time.time())
                except Exception as exc:  # nothing was sent
                    self._failed("reserve_slots", exc)
                    await self._persist("give_back", store.give_back, attempt.item_id,
                                        self.id)
                    self.holding.discard(attempt.item_id)
                    queued = True  # given back, nothing to reconcile
                    return
            # This worker's calls are at least one interval apart, so late sends do not
            # bunch up.
            fire = max(slot, self.last_fire + interval, time.time())
            self.last_fire = fire
            await asyncio.sleep(max(0.0, fire - time.time()))
            await limit.acquire()
            acquired = True
            paid = bool(meta and meta.paid)
            text = meta.text if meta is not None else attempt.text
            markup = meta.markup if meta is not None else attempt.markup
            outcome = await self._call(store.Attempt(attempt.item_id, attempt.chat_id, text,
                                                     markup), paid)
            await self._record(attempt.item_id, outcome, later=True, paid=paid)
            queued = True
        finally:
            if acquired:
                limit.release()
            if not queued:  # a bug or a cancel: reconcile decides the row's fate
                self.holding.discard(attempt.item_id)
                self.reconcile_needed = True

    async def _recorder(self) -> None:
        """Record the outcomes of batched sends, many in one transaction, every
        record_seconds (sooner when record_batch are waiting)."""
        while self.recording or self.outcomes:
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self.record_wake.wait(), self.config.record_seconds)
            self.record_wake.clear()
            try:
                await self._flush_outcomes()
            except Exception as exc:  # a bug: logged; the rows are reconciled
                self._failed("record", exc)

    async def _flush_outcomes(self) -> None:
        """Write the buffered outcomes. Returns only once every outcome buffered before the
        call is written (or given up), also those another flush (the recorder's) took: the
        --until-idle check relies on it (else the last report was queued after the loop and
        never sent)."""
        if not self.outcomes and not self.flushing.locked():
            return
        async with self.flushing:
            if not self.outcomes:
                return
            batch, self.outcomes = self.outcomes, []
            now = _now()
            sent = [item_id for item_id, outcome in batch if outcome.kind == SENT]
            writes = [self._outcome_write(item_id, outcome, now) for item_id, outcome in batch
                      if outcome.kind != SENT]
            try:
                if await self._persist("record", self._record_all, sent, writes, now):
                    self.finished_since_report = True
            finally:  # given up: reconcile makes what was `sending` uncertain
                self.holding.difference_update(item_id for item_id, _ in batch)

    def _record_all(self, session: Session, sent: list[int],
                    writes: list[tuple[Callable[..., Any], tuple]], now: datetime) -> None:
        store.finish_sends(session, sent, self.id, now)
        for fn, args in writes:
            fn(session, *args)

    def _spawn(self, coro) -> None:
        task = asyncio.create_task(coro)
        self.in_flight.add(task)
        task.add_done_callback(self._task_done)

    def _task_done(self, task: asyncio.Task) -> None:
        """Forget a finished send task, retrieving (and logging) any exception."""
        self.in_flight.discard(task)
        if not task.cancelled() and (exc := task.exception()) is not None:
            self._failed("send task", exc)

    async def _send_one(self, item_id: int, limit: asyncio.Semaphore, slot: float) -> bool:
        """Wait for the slot, record the attempt, call, record the outcome; True if sent."""
        try:
            fire = await self._wait_for_slot(slot)
            try:  # one try: a retry would find the row `sending` if the first committed
                attempt = await self.db(store.start_send, item_id, self.id, _now(),
                                        self.per_chat, tries=1)
            except Exception as exc:  # nothing was sent: give the row back
                self._failed("start_send", exc)
                await self._persist("give_back", store.give_back, item_id, self.id)
                return False
            if attempt is None:
                return False
            return await self._call_recorded(item_id, attempt, fire)
        finally:
            self.holding.discard(item_id)
            limit.release()

    async def _wait_for_slot(self, slot: float) -> float:
        """Wait out a pause; return when to call the API. The attempt is recorded
        LEAD_SECONDS before that, to absorb the database round trip: only a row recorded
        and not yet answered can be caught mid-send by a crash."""
        while time.time() < self.pause.until:
            await asyncio.sleep(self.pause.until - time.time())
        interval = self.interval
        if time.time() > slot + LATE_SECONDS:
            # Late for its slot (a pause, a slow database): sending now could bunch with
            # other senders' slots, so take a fresh one.
            slot = await self.db(store.reserve_slots, 1, interval, time.time())
        # This worker's calls are at least one interval apart, so a send delayed (by the
        # database, a pause) does not bunch up with the next ones.
        fire = max(slot, self.last_fire + interval, time.time())
        self.last_fire = fire
        await asyncio.sleep(max(0.0, fire - LEAD_SECONDS - time.time()))
        return fire

    async def _call(self, attempt: store.Attempt, paid: bool = False) -> Outcome:
        """The API call; a sender that raises may or may not have sent: uncertain. `paid`
        is passed only when true (allow_paid_broadcast)."""
        try:
            if paid:
                return await self.sender.send(attempt.chat_id, attempt.text, attempt.markup,
                                              paid=True)
            if attempt.markup is None:
                return await self.sender.send(attempt.chat_id, attempt.text)
            return await self.sender.send(attempt.chat_id, attempt.text, attempt.markup)
        except Exception as exc:
            self._failed("send", exc)
            return Outcome(UNCERTAIN, f"sender error: {type(exc).__name__}")

    async def _record(self, item_id: int, outcome: Outcome, later: bool = False,
                      paid: bool = False) -> None:
        """Record what the API call did, retrying until the database takes it; `later`:
        hand it to the recorder, which writes many outcomes in one transaction. A 429
        pauses every sender; during a paid broadcast it also cuts the paid rate of all
        workers (store.throttle), which then climbs back."""
        count("outbox_sends", result=outcome.kind)  # (prokus_outbox_sends_total)
        if outcome.kind == SENT:
            self.sent += 1
        if outcome.kind == RETRY_AFTER:
            now = time.time()
            until = now + outcome.retry_after
            self.pause.until = max(self.pause.until, until)
            with contextlib.suppress(Exception):  # our own pause holds meanwhile
                if paid:
                    scale, scaled_at = await self.db(store.throttle, until, now)
                    if scaled_at >= until:  # this 429 cut the rate (one cut per storm)
                        self.throttles += 1
                        log.warning("paid broadcast slowed down after a 429",
                                    extra={"scale": round(scale, 3),
                                           "retry_after": outcome.retry_after})
                    self.scale, self.scaled_at = scale, scaled_at
                else:
                    await self.db(store.pause, until)
        if later:
            self.outcomes.append((item_id, outcome))
            if len(self.outcomes) >= self.config.record_batch:
                self.record_wake.set()
            return
        fn, args = self._outcome_write(item_id, outcome, _now())
        if await self._persist("record", fn, *args):
            self.finished_since_report = True

    def _outcome_write(self, item_id: int, outcome: Outcome,
                       now: datetime) -> tuple[Callable[..., Any], tuple]:
        """The store call (and its arguments) that records `outcome`."""
        kind, detail = outcome.kind, outcome.detail[:200]
        if kind == SENT:
            return store.finish_send, (item_id, self.id, store.SENT, now)
        if kind == RETRY_AFTER:
            return store.undo_attempt, (item_id, self.id,
                                        now + timedelta(seconds=outcome.retry_after),
                                        f"429 retry after {outcome.retry_after:g}s")
        if kind == BLOCKED:
            return store.finish_send, (item_id, self.id, store.BLOCKED, now,
                                       detail or "blocked the bot")
        if kind == FAILED:
            return store.finish_send, (item_id, self.id, store.FAILED, now, detail)
        if kind == RETRY:
            return store.retry_later, (item_id, self.id, now, detail,
                                       self.config.max_attempts)
        return store.finish_send, (item_id, self.id, store.UNCERTAIN, now,
                                   detail or "no answer from Telegram")

    # ------------------------------------------------------------------ fast path
    async def deliver(self, channel: str, external_id: str,
                      first_sent: Callable[[], None] | None = None,
                      rows: list[int] | None = None) -> int:
        """Send a user's due replies now, in order (right after their turn committed), each
        recorded before and after its call like any row. Returns how many were sent. A
        reply that must be retried is left to the workers (after its backoff).
        `first_sent` is called once the first of them reached Telegram (reply latency).
        `rows`: the rows the turn wrote; once all of them are sent, no further look (a
        transaction) for more: anything else due is the workers' (rare: an earlier reply's
        retry)."""
        sent = 0
        left = set(rows) if rows else None  # this turn's rows not handled yet
        if not self.registered.is_set():  # just started, or the database was away
            await asyncio.wait_for(self.registered.wait(), timeout=30)
        while not self.stop.is_set() and (left is None or left):
            begun = await self._begin_reply(channel, external_id)
            if begun is None:
                return sent
            item_id = begun.item_id
            if begun.attempt is not None:  # recorded `sending`: call the API at its slot
                try:
                    fire = max(begun.slot, self.last_fire + self.interval, time.time())
                    self.last_fire = fire
                    ok = await self._call_recorded(item_id, begun.attempt, fire)
                finally:
                    self.holding.discard(item_id)
            elif begun.done:  # expired, or nobody to send it to
                self.holding.discard(item_id)
                ok = False
            else:  # its slot is later (a pause, a busy pacer): record the attempt then
                one = asyncio.Semaphore(1)
                await one.acquire()
                ok = await self._send_one(item_id, one, begun.slot)
            if ok:
                sent += 1
                if left is not None:
                    left.discard(item_id)
                if sent == 1 and first_sent is not None:
                    with contextlib.suppress(Exception):
                        first_sent()
                continue
            # Not sent: a 429 or a transient error puts the row back with a short wait;
            # wait here when it is short (the user is waiting), else leave it to workers.
            state, due = await self.db(store.item_state, item_id)
            wait = (due - _now()).total_seconds() if due is not None else None
            if state != PENDING or wait is None or wait > self.config.fast_retry_seconds:
                return sent
            await self._sleep(self.stop, wait)
        return sent

    async def _call_recorded(self, item_id: int, attempt: store.Attempt,
                             fire: float) -> bool:
        """A started row (recorded `sending`, not yet called): wait for `fire` and any
        pause, call the API and record the outcome; True if sent. Cancelled before the call
        (shutdown), the row goes back to pending: nothing was sent."""
        try:
            await asyncio.sleep(max(0.0, fire - time.time()))
            while time.time() < self.pause.until:  # a 429 came meanwhile
                await asyncio.sleep(self.pause.until - time.time())
        except BaseException:
            with contextlib.suppress(Exception):
                await asyncio.shield(self.db(store.give_back, item_id, self.id))
            raise
        outcome = await self._call(attempt)
        await self._record(item_id, outcome)
        return outcome.kind == SENT

    async def _begin_reply(self, channel: str, external_id: str) -> store.ReplyStart | None:
        """Claim the user's next reply, its slot and (when it can go at once) its attempt,
        in one transaction (store.begin_reply). Nothing is sent before this returns, so if
        its answer is lost, what it may have committed goes back to pending."""
        for attempt in range(1, 4):
            await self.begin_gate.wait()
            now_s, now = time.time(), _now()
            can_start = now_s >= self.pause.until and \
                self.last_fire + self.interval <= now_s + LEAD_SECONDS
            self.beginning += 1
            self.begins_idle.clear()
            call = asyncio.ensure_future(self.db(
                store.begin_reply, channel, external_id, self.id, now, self.interval, now_s,
                now_s + LEAD_SECONDS if can_start else 0.0, self.per_chat, tries=1))
            try:
                try:
                    begun = await asyncio.shield(call)
                except asyncio.CancelledError:  # (shutdown) its thread still commits:
                    await self._give_back_begun(call, channel, external_id, now)
                    raise
                if begun is not None:
                    self.holding.add(begun.item_id)
                break
            except Exception as exc:
                self._failed("begin_reply", exc, quiet=attempt > 1)
                # Nothing was sent: what this call may have committed (its rows carry its
                # `now`) goes back to pending; until that is written, reconcile waits.
                if not await self._persist("give_back", store.give_back_replies, channel,
                                           external_id, self.id, now):
                    self.reconcile_needed = True
                if attempt == 3 or not transient(exc):
                    raise
                await asyncio.sleep(0.1 * 2 ** attempt)
            finally:
                self.beginning -= 1
                if not self.beginning:
                    self.begins_idle.set()
        return begun

    async def _give_back_begun(self, call: asyncio.Future, channel: str, external_id: str,
                               now: datetime) -> None:
        """A begin_reply whose caller was cancelled: wait for its thread, then give back
        what it committed (nothing of it was sent)."""
        try:
            await asyncio.wait([call])
            claimed_nothing = (not call.cancelled() and call.exception() is None
                               and call.result() is None)
            if not claimed_nothing:
                await self.db(store.give_back_replies, channel, external_id, self.id, now)
        except BaseException:  # (cancelled again) reconcile gives the rows back
            self.reconcile_needed = True

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

        try:
            await self.db(queue)
        except BaseException:  # look again next time
            self.finished_since_report = True
            raise
