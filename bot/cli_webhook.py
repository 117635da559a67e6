"""`prokus webhook set|delete|info`: register the bot's webhook with Telegram (webhook mode,
served by `prokus serve --webhook`), remove it (back to polling with `prokus run`), show it.

The calls go to TELEGRAM_API_URL (the fake Bot API in tests)."""

from __future__ import annotations

import json
from typing import Any

import click

from bot.cli_common import pass_settings
from bot.settings import Settings, mask_url

TIMEOUT = 30.0


def _call(settings: Settings, method: str, params: dict[str, Any] | None = None) -> Any:
    """One Bot API call; a Telegram error or an unreachable server becomes a clear line."""
    import httpx

    if not settings.telegram_bot_token:
        raise click.UsageError("TELEGRAM_BOT_TOKEN is not set (the token from @BotFather, in "
                               ".env or the environment).")
    url = f"{settings.telegram_api_url.rstrip('/')}{settings.telegram_bot_token}/{method}"
    try:
        response = httpx.post(url, json=params or {}, timeout=TIMEOUT)
        body = response.json()
    except (httpx.HTTPError, ValueError) as exc:
        raise click.ClickException(
            f"{method}: no answer from {mask_url(settings.telegram_api_url)} "
            f"({type(exc).__name__})") from exc
    if not body.get("ok"):
        raise click.ClickException(f"{method} refused by Telegram: "
                                   f"{body.get('description', response.status_code)}")
    return body.get("result")


@click.group()
def webhook() -> None:
    """Webhook mode: register, remove or show the bot's webhook with Telegram.

    In webhook mode Telegram posts each update to `prokus serve --webhook` (one or several
    instances behind a load balancer); without a webhook `prokus run` polls instead.
    """


@webhook.command("set")
@click.option("--url", required=True,
              help="The public HTTPS address of the endpoint, ending in /telegram/webhook "
                   "(e.g. https://bot.example.go.id/telegram/webhook).")
@click.option("--max-connections", type=click.IntRange(1, 100), default=40, show_default=True,
              help="Parallel connections Telegram may open to deliver updates (about "
                   "instances x concurrent updates each can take).")
@click.option("--drop-pending", is_flag=True,
              help="Drop the updates Telegram is still holding (default: keep them).")
@pass_settings
def webhook_set(settings: Settings, url: str, max_connections: int, drop_pending: bool) -> None:
    """Register URL with Telegram, with TELEGRAM_WEBHOOK_SECRET as its secret token and
    exactly the update types the bot handles."""
    from bot.webhook import ALLOWED_UPDATES, PATH

    if not settings.telegram_webhook_secret:
        raise click.UsageError(
            "TELEGRAM_WEBHOOK_SECRET is not set: put a random secret of 16-256 characters "
            "(A-Z, a-z, 0-9, _ and -) in .env or the environment, the same on every "
            "`prokus serve --webhook` instance.")
    if not url.startswith("https://") and not url.startswith(("http://127.0.0.1",
                                                              "http://localhost")):
        raise click.BadParameter("Telegram delivers webhooks to https:// addresses only.",
                                 param_hint="--url")
    if not url.rstrip("/").endswith(PATH):
        raise click.BadParameter(f"the endpoint's path is {PATH} (e.g. "
                                 f"https://bot.example.go.id{PATH}).", param_hint="--url")
    _call(settings, "setWebhook", {
        "url": url, "secret_token": settings.telegram_webhook_secret,
        "allowed_updates": ALLOWED_UPDATES, "max_connections": max_connections,
        "drop_pending_updates": drop_pending,
    })
    click.echo(f"webhook set: {url} (max {max_connections} connections; updates: "
               f"{', '.join(ALLOWED_UPDATES)})")


@webhook.command("delete")
@click.option("--drop-pending", is_flag=True,
              help="Drop the updates Telegram is still holding (default: keep them for "
                   "polling).")
@pass_settings
def webhook_delete(settings: Settings, drop_pending: bool) -> None:
    """Remove the webhook: Telegram keeps the updates until `prokus run` polls them."""
    _call(settings, "deleteWebhook", {"drop_pending_updates": drop_pending})
    click.echo("webhook deleted; run the bot with `prokus run` (polling)")


@webhook.command("info")
@click.option("--json", "as_json", is_flag=True, help="Print Telegram's answer as JSON.")
@pass_settings
def webhook_info(settings: Settings, as_json: bool) -> None:
    """Show what Telegram knows of the webhook (getWebhookInfo)."""
    info = _call(settings, "getWebhookInfo") or {}
    if as_json:
        click.echo(json.dumps(info, indent=2, sort_keys=True))
        return
    click.echo(f"url: {info.get('url') or '(none: polling mode)'}")
    for key in ("pending_update_count", "max_connections", "allowed_updates", "ip_address",
                "last_error_date", "last_error_message"):
        if key in info:
            value = info[key]
            click.echo(f"{key}: {', '.join(value) if isinstance(value, list) else value}")
