"""Answers to frequently asked questions (the retrieval intent `faq/*`)."""

from __future__ import annotations

from actions.context import Context

# The natural next step after an answer, offered as buttons (the menu otherwise).
NEXT_STEPS: dict[str, tuple[str, ...]] = {
    "faq/what_is_prokus": ("faq/requirements", "faq/benefits", "help"),
    "faq/requirements": ("check_eligibility", "register_prokus", "faq/business_sectors"),
    "faq/benefits": ("faq/requirements", "faq/mentoring_what", "faq/cooperative"),
    "faq/business_sectors": ("faq/requirements", "check_eligibility"),
    "faq/why_under_40": ("faq/requirements", "faq/pkh_graduation"),
    "faq/pkh_graduation": ("faq/requirements", "human_handoff"),
    "faq/cooperative": ("faq/benefits", "faq/cost"),
    "faq/bansos_schedule": ("human_handoff", "faq/what_is_prokus"),
    "faq/cost": ("report_problem", "faq/requirements"),
    "faq/data_privacy": ("faq/cost", "help"),
    "faq/mentoring_what": ("mentoring_schedule", "faq/benefits"),
}


def answer(ctx: Context) -> None:
    """Answer the FAQ sub-intent in `ctx.intent` and offer the next step."""
    if ctx.intent not in ctx.texts:
        ctx.say("fallback", buttons=ctx.main_menu())
        return
    steps = NEXT_STEPS.get(ctx.intent)
    ctx.say(ctx.intent, buttons=tuple(ctx.button(s) for s in steps) if steps else ctx.main_menu())


def is_faq(intent: str) -> bool:
    return intent.startswith("faq/")
