"""Work that runs beside the Telegram bot in one process: the outbox worker, the sync of
the mentors' command menus, and housekeeping (not-understood messages past retention;
handoff tickets left 3 working days without an operator's answer, closed every 10 minutes;
the daily retention run of db/retention.py: unfinished forms, old texts, old audit rows).
All stop cleanly when the bot stops.

The worker runs under a supervisor: if it ends with an error (or ends at all before the
bot stops) the error is logged and the worker started again after a growing pause. Its
`WorkerHealth` (last loop turn, heartbeat, restarts, last error class) is kept in
`app.bot_data[HEALTH_KEY]` for a health check.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Awaitable, Callable

from telegram import BotCommand, BotCommandScopeChat
from telegram.error import TelegramError
from telegram.ext import Application

from bot.app import Assistant
from bot.telegram import COMMANDS, MENTOR_COMMANDS, MENTOR_SYNC_SECONDS, on_startup
from outbox.worker import WorkerHealth, error_name

log = logging.getLogger(__name__)
HEALTH_KEY = "outbox_worker_health"
RESTART_MIN_SECONDS = 1.0
RESTART_MAX_SECONDS = 60.0
# A run that lasted this long was healthy: the next restart starts with a short pause.
STABLE_SECONDS = 300.0


async def sync_mentor_commands(bot, chat_ids: list[str], done: set[str]) -> None:
    """Show the mentor commands in the chats of mentors who do not have them yet."""
    commands = [BotCommand(n, d) for n, d in COMMANDS + MENTOR_COMMANDS]
    for chat_id in chat_ids:
        if chat_id in done:
            continue
        try:
            await bot.set_my_commands(commands, scope=BotCommandScopeChat(int(chat_id)))
            done.add(chat_id)
        except TelegramError as exc:  # e.g. the mentor never opened the chat yet
            log.info("mentor commands not set", extra={"error": type(exc).__name__})


def mentor_chat_ids(assistant: Assistant) -> list[str]:
    from db.mentoring import mentors_with_counts

    with assistant.sessions() as session:
        return [telegram_id for _, telegram_id, _ in mentors_with_counts(session)]


async def _wait(stop: asyncio.Event, seconds: float) -> None:
    with contextlib.suppress(TimeoutError):
        await asyncio.wait_for(stop.wait(), max(0.0, seconds))


async def mentor_sync(bot, assistant: Assistant, stop: asyncio.Event,
                      every: float = MENTOR_SYNC_SECONDS) -> None:
    """Every `every` seconds, give new mentors their command menu; errors are logged and
    the next round tries again."""
    done: set[str] = set()
    while not stop.is_set():
        try:
            ids = await asyncio.to_thread(mentor_chat_ids, assistant)
            await sync_mentor_commands(bot, ids, done)
        except Exception as exc:  # the database is away, or a bug: say so, go on
            log.warning("mentor command sync failed", extra={"error": error_name(exc)})
        await _wait(stop, every)


NLU_RETENTION_SECONDS = 24 * 3600.0


def purge_nlu_misses(assistant: Assistant) -> int:
    """Delete the not-understood messages kept past their retention (db.nlu_review)."""
    from datetime import UTC, datetime

    from db.nlu_review import purge

    with assistant.sessions.begin() as session:
        return purge(session, datetime.now(UTC))


async def nlu_retention(assistant: Assistant, stop: asyncio.Event,
                        every: float = NLU_RETENTION_SECONDS) -> None:
    """Once at start and then daily, delete unreviewed not-understood messages older than
    90 days (an error is logged; the supervisor starts this again)."""
    while not stop.is_set():
        deleted = await asyncio.to_thread(purge_nlu_misses, assistant)
        if deleted:
            log.info("old not-understood messages deleted", extra={"count": deleted})
        await _wait(stop, every)


RETENTION_SECONDS = 24 * 3600.0


def apply_retention(assistant: Assistant, settings) -> dict[str, int]:
    """Apply the retention table once (db.retention; docs/privacy.md)."""
    from bot.cli_privacy import policy_of
    from db.retention import run

    return dict(run(assistant.sessions, policy=policy_of(settings)).items())


async def data_retention(assistant: Assistant, settings, stop: asyncio.Event,
                         every: float = RETENTION_SECONDS) -> None:
    """Once at start and then daily, clear unfinished forms and delete personal data past
    its retention period (an error is logged; the supervisor starts this again). Safe with
    several bot processes: each change is made once, and a conversation only if unchanged."""
    while not stop.is_set():
        counts = await asyncio.to_thread(apply_retention, assistant, settings)
        if any(counts.values()):
            log.info("retention applied", extra=counts)
        await _wait(stop, every)


HANDOFF_CLOSE_SECONDS = 600.0


def close_stale_handoffs(assistant: Assistant) -> int:
    """Close tickets left without an operator's answer for 3 working days (db.handoff),
    telling their users through the outbox."""
    from db.handoff import auto_close_stale

    dialogue = assistant.dialogue
    with assistant.sessions.begin() as session:
        return auto_close_stale(session, dialogue.clock(), dialogue.texts,
                                dialogue.office_hours)


async def handoff_auto_close(assistant: Assistant, stop: asyncio.Event,
                             every: float = HANDOFF_CLOSE_SECONDS) -> None:
    """Every 10 minutes, close stale handoff tickets (an error is logged; the supervisor
    starts this again). Safe with several bot processes: each ticket is closed once."""
    while not stop.is_set():
        closed = await asyncio.to_thread(close_stale_handoffs, assistant)
        if closed:
            log.info("stale handoff tickets closed", extra={"count": closed})
        await _wait(stop, every)


async def supervise(name: str, run: Callable[[], Awaitable[object]], stop: asyncio.Event,
                    health: WorkerHealth, min_pause: float = RESTART_MIN_SECONDS,
                    max_pause: float = RESTART_MAX_SECONDS) -> None:
    """Run `run()` until `stop` is set, restarting it after an error or an early end with
    a pause that doubles (from `min_pause` to `max_pause`; reset after a stable run)."""
    pause = min_pause
    while not stop.is_set():
        began = time.monotonic()
        try:
            await run()
            if stop.is_set():
                return
            log.error("background task ended early; restarting", extra={"task": name})
        except Exception as exc:
            log.error("background task failed; restarting",
                      extra={"task": name, "error": error_name(exc)}, exc_info=exc)
            health.last_error = error_name(exc)
        if time.monotonic() - began >= STABLE_SECONDS:
            pause = min_pause
        health.restarts += 1
        await _wait(stop, pause)
        pause = min(max_pause, pause * 2)


def add_background(app: Application, assistant: Assistant, settings,
                   with_worker: bool) -> WorkerHealth:
    """Run, beside the bot, the supervised outbox worker and the mentor command sync; stop
    both cleanly when the bot stops. Returns the worker's health (also in bot_data)."""
    from bot.outbox_runner import run_worker

    stop = asyncio.Event()
    tasks: list[asyncio.Task] = []
    health = WorkerHealth()
    app.bot_data[HEALTH_KEY] = health

    async def started(application: Application) -> None:
        await on_startup(application)
        tasks.append(asyncio.create_task(mentor_sync(application.bot, assistant, stop)))
        tasks.append(asyncio.create_task(supervise(
            "nlu retention", lambda: nlu_retention(assistant, stop), stop, WorkerHealth())))
        tasks.append(asyncio.create_task(supervise(
            "handoff auto-close", lambda: handoff_auto_close(assistant, stop), stop,
            WorkerHealth())))
        tasks.append(asyncio.create_task(supervise(
            "data retention", lambda: data_retention(assistant, settings, stop), stop,
            WorkerHealth())))
        if with_worker:
            tasks.append(asyncio.create_task(supervise(
                "outbox worker", lambda: run_worker(settings, stop, health=health),
                stop, health)))

    async def stopping(application: Application) -> None:
        stop.set()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("background task failed", extra={"error": error_name(result)},
                          exc_info=result)

    app.post_init = started
    app.post_stop = stopping
    return health
