"""Data given outside a form. (Reaching a person and reporting a problem: actions/handoff.py.)"""

from __future__ import annotations

from actions.context import Context


def inform(ctx: Context) -> None:
    """Data given outside a form (a NIK, a phone number...): do not keep it."""
    ctx.say("inform_idle", buttons=ctx.main_menu())


HANDLERS = {
    "inform": inform,
}
