"""Greetings, thanks, goodbyes, help, the menu and messages outside our scope."""

from __future__ import annotations

from actions.context import Context
from actions.mentor_tools import mentor_menu


def start(ctx: Context) -> None:
    """Greet a new or returning user with the privacy notice and the menu (a mentor with
    their own commands)."""
    if mentor_menu(ctx, "mentor_welcome"):
        return
    ctx.say("welcome")
    ctx.say("privacy_notice", buttons=ctx.main_menu())


def greet(ctx: Context) -> None:
    """Greet back and offer the menu."""
    ctx.say("greet", buttons=ctx.main_menu())


def goodbye(ctx: Context) -> None:
    """Say goodbye."""
    ctx.say("goodbye")


def thanks(ctx: Context) -> None:
    """Answer a thank-you."""
    ctx.say("thanks", buttons=ctx.main_menu())


def help_(ctx: Context) -> None:
    """Explain what the assistant can do."""
    ctx.say("help", buttons=ctx.main_menu())


def menu(ctx: Context) -> None:
    """Show the main menu (a mentor's own menu to a mentor)."""
    if mentor_menu(ctx):
        return
    ctx.say("menu", buttons=ctx.main_menu())


def out_of_scope(ctx: Context) -> None:
    """Say politely that this is not something we can help with."""
    ctx.say("out_of_scope", buttons=ctx.main_menu())


def cancel(ctx: Context) -> None:
    """Acknowledge a cancel when nothing is running."""
    ctx.say("cancel_idle", buttons=ctx.main_menu())


def affirm(ctx: Context) -> None:
    """Acknowledge a stray "yes"."""
    ctx.say("affirm_idle", buttons=ctx.main_menu())


def deny(ctx: Context) -> None:
    """Acknowledge a stray "no"."""
    ctx.say("deny_idle", buttons=ctx.main_menu())


HANDLERS = {
    "start": start,
    "greet": greet,
    "goodbye": goodbye,
    "thanks": thanks,
    "help": help_,
    "menu": menu,
    "out_of_scope": out_of_scope,
    "cancel": cancel,
    "affirm": affirm,
    "deny": deny,
}
