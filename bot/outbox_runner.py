"""Running the outbox worker with the Telegram sender: inside the bot process (default) or
on its own (`prokus worker`, to scale out)."""

from __future__ import annotations

import asyncio
import logging

from actions.responses import Responses
from bot.settings import Settings
from bot.telegram_sender import TelegramSender
from db.engine import make_engine, make_sessionmaker
from outbox.store import FINAL, Progress
from outbox.worker import PROCESS_PAUSE, Worker, WorkerConfig, WorkerHealth

log = logging.getLogger(__name__)
REPORT_ORDER = ("sent", "blocked", "failed", "uncertain", "expired", "cancelled")


def report_text(texts: Responses, progress: Progress) -> str:
    """"terkirim 48, gagal 2: memblokir bot" for the mentor who sent the message."""
    parts = [texts(f"report/{state}", n=progress.states[state]) for state in REPORT_ORDER
             if progress.states.get(state) and state in FINAL]
    return texts("broadcast_report", summary=", ".join(parts) or texts("report/sent", n=0))


def worker_config(settings: Settings, texts: Responses | None = None) -> WorkerConfig:
    texts = texts or Responses.load()
    return WorkerConfig(rate=settings.telegram_max_rate, per_chat_seconds=settings.outbox_per_chat,
                        report=lambda progress: report_text(texts, progress))


async def run_worker(settings: Settings, stop: asyncio.Event, until_idle: bool = False,
                     health: WorkerHealth | None = None) -> int:
    """Send from the outbox until `stop` is set; returns how many messages were sent.
    `health` (kept across restarts by a supervisor) shows whether the worker is alive."""
    if not settings.telegram_bot_token:
        raise RuntimeError("TELEGRAM_BOT_TOKEN is not set; the outbox needs it to send.")
    engine = make_engine(settings.database_url)
    config = worker_config(settings)
    # One connection per call in flight: httpx's pool never queues (its queue costs CPU).
    sender = TelegramSender(settings.telegram_bot_token, settings.telegram_api_url,
                            max_connections=config.max_in_flight)
    worker = Worker(make_sessionmaker(engine), sender, config,
                    health=health, pause=PROCESS_PAUSE)
    log.info("outbox worker started",
             extra={"worker": worker.id, "rate": settings.telegram_max_rate})
    try:
        await worker.run(stop, until_idle=until_idle)
    finally:
        await sender.close()
        engine.dispose()
        log.info("outbox worker stopped", extra={"worker": worker.id, "sent": worker.sent})
    return worker.sent
