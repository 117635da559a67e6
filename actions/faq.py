"""Answers to frequently asked questions (the retrieval intent `faq/*`)."""

from __future__ import annotations

from actions.context import Context


def answer(ctx: Context) -> None:
    """Answer the FAQ sub-intent in `ctx.intent`, or fall back when there is no answer."""
    if ctx.intent in ctx.texts:
        ctx.say(ctx.intent, buttons=ctx.main_menu())
    else:
        ctx.say("fallback", buttons=ctx.main_menu())


def is_faq(intent: str) -> bool:
    return intent.startswith("faq/")
