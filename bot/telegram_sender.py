"""Sends outbox messages through the Telegram Bot API (sendMessage) and classifies what
happened, for the outbox worker. Plain httpx, so every failure mode is visible: a request
that never left (connection refused) may be retried; one whose answer never came may have
been delivered and is reported as uncertain instead of being sent twice."""

from __future__ import annotations

import httpx

from outbox.worker import BLOCKED, FAILED, RETRY, RETRY_AFTER, SENT, UNCERTAIN, Outcome


class TelegramSender:
    def __init__(self, token: str, base_url: str = "https://api.telegram.org/bot",
                 timeout: float = 10.0, max_connections: int = 32) -> None:
        self.url = f"{base_url}{token}/sendMessage"  # as python-telegram-bot builds it
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=5.0),
            limits=httpx.Limits(max_connections=max_connections))

    async def send(self, chat_id: str, text: str, markup: dict | None = None) -> Outcome:
        numeric = chat_id.lstrip("-").isascii() and chat_id.lstrip("-").isdigit()
        body: dict = {"chat_id": int(chat_id) if numeric else chat_id, "text": text}
        reply_markup = telegram_markup(markup)
        if reply_markup is not None:
            body["reply_markup"] = reply_markup
        try:
            response = await self.client.post(self.url, json=body)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Outcome(RETRY, f"cannot reach Telegram: {type(exc).__name__}")
        except httpx.HTTPError as exc:  # sent, but no (complete) answer
            return Outcome(UNCERTAIN, f"no answer from Telegram: {type(exc).__name__}")
        return classify(response)

    async def close(self) -> None:
        await self.client.aclose()


def telegram_markup(markup: dict | None) -> dict | None:
    """The Bot API's reply_markup for the outbox's channel-neutral markup
    (db.outbox.markup_of): inline buttons, a one-time "share contact" keyboard, or the
    removal of that keyboard."""
    if not markup:
        return None
    buttons = markup.get("buttons") or []
    if markup.get("contact"):
        rows = [[{"text": markup["contact"], "request_contact": True}]]
        rows += [[{"text": label}] for label, _ in buttons]
        return {"keyboard": rows, "one_time_keyboard": True, "resize_keyboard": True}
    if buttons:
        return {"inline_keyboard": [[{"text": label, "callback_data": payload}]
                                    for label, payload in buttons]}
    if markup.get("remove_keyboard"):
        return {"remove_keyboard": True}
    return None


def classify(response: httpx.Response) -> Outcome:
    try:
        body = response.json()
    except ValueError:
        body = {}
    description = str(body.get("description") or response.reason_phrase)[:150]
    if response.status_code == 200 and body.get("ok"):
        return Outcome(SENT)
    if response.status_code == 429:
        retry_after = float((body.get("parameters") or {}).get("retry_after") or 1)
        return Outcome(RETRY_AFTER, description, retry_after)
    if response.status_code == 403:
        return Outcome(BLOCKED, "blocked the bot")
    if response.status_code >= 500:
        return Outcome(RETRY, f"Telegram {response.status_code}: {description}")
    return Outcome(FAILED, f"Telegram {response.status_code}: {description}")
