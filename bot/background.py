"""Work that runs beside the Telegram bot in one process: the outbox worker and the sync of
the mentors' command menus. Both stop cleanly when the bot stops."""

from __future__ import annotations

import asyncio
import contextlib
import logging

from telegram import BotCommand, BotCommandScopeChat
from telegram.error import TelegramError
from telegram.ext import Application

from bot.app import Assistant
from bot.telegram import COMMANDS, MENTOR_COMMANDS, MENTOR_SYNC_SECONDS, on_startup

log = logging.getLogger(__name__)


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


def add_background(app: Application, assistant: Assistant, settings,
                   with_worker: bool) -> None:
    """Run, beside the bot, the outbox worker and the mentor command sync; stop both
    cleanly when the bot stops."""
    from bot.outbox_runner import run_worker

    stop = asyncio.Event()
    tasks: list[asyncio.Task] = []

    async def mentor_sync() -> None:
        done: set[str] = set()
        while not stop.is_set():
            with contextlib.suppress(Exception):
                ids = await asyncio.to_thread(mentor_chat_ids, assistant)
                await sync_mentor_commands(app.bot, ids, done)
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), MENTOR_SYNC_SECONDS)

    async def started(application: Application) -> None:
        await on_startup(application)
        tasks.append(asyncio.create_task(mentor_sync()))
        if with_worker:
            tasks.append(asyncio.create_task(run_worker(settings, stop)))

    async def stopping(application: Application) -> None:
        stop.set()
        for result in await asyncio.gather(*tasks, return_exceptions=True):
            if isinstance(result, Exception):
                log.error("background task failed", exc_info=result)

    app.post_init = started
    app.post_stop = stopping
