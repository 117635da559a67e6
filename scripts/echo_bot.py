"""The ceiling of scripts/bench_e2e.py: a python-telegram-bot echo bot (no NLU, no
database), polling the Bot API at TELEGRAM_API_URL with TELEGRAM_BOT_TOKEN, with the same
concurrency as the assistant (concurrent updates) and no rate limiter."""

from __future__ import annotations

import os

from telegram import Update
from telegram.ext import Application, ContextTypes, MessageHandler, filters


async def echo(update: Update, context: ContextTypes.DEFAULT_TYPE) -> None:
    await update.effective_message.reply_text(update.effective_message.text)


def main() -> None:
    app = (Application.builder().token(os.environ["TELEGRAM_BOT_TOKEN"])
           .base_url(os.environ["TELEGRAM_API_URL"]).concurrent_updates(64)
           .connection_pool_size(64).build())
    app.add_handler(MessageHandler(filters.TEXT, echo))
    app.run_polling(poll_interval=0.0, timeout=10)


if __name__ == "__main__":
    main()
