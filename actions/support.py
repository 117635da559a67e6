"""Reaching a person, reporting a problem, and data given outside a form."""

from __future__ import annotations

from actions.context import Context


def human_handoff(ctx: Context) -> None:
    """Tell the user how to reach a person."""
    ctx.say("human_handoff", buttons=ctx.main_menu())


def report_problem(ctx: Context) -> None:
    """Take a problem report seriously and say where to report it."""
    ctx.say("report_problem", buttons=ctx.main_menu())


def inform(ctx: Context) -> None:
    """Data given outside a form (a NIK, a phone number...): do not keep it."""
    ctx.say("inform_idle", buttons=ctx.main_menu())


HANDLERS = {
    "human_handoff": human_handoff,
    "report_problem": report_problem,
    "inform": inform,
}
