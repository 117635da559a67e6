"""Answers to frequently asked questions (the retrieval intent `faq/*`)."""

from __future__ import annotations

import re

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
    "faq/fraud": ("report_problem", "faq/cost"),
    "faq/capital_disbursement": ("registration_status", "faq/benefits"),
    "faq/process_duration": ("registration_status", "register_prokus"),
    "faq/reapply": ("register_prokus", "registration_status"),
    "faq/register_offline": ("register_prokus", "faq/requirements"),
    "faq/pkh_vs_prokus_mentor": ("mentor_contact", "faq/mentoring_what"),
    "faq/what_is_nik": ("faq/data_privacy", "check_eligibility"),
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


# A link in a message: scheme or www, or a bare host ending in a common top-level domain.
_LINK = re.compile(
    r"(?<![@\w.-])(?:https?://|www\.)?((?:[a-z0-9-]+\.)+(?:com|net|org|info|xyz|site|online|"
    r"store|shop|top|club|biz|link|click|live|me|ly|io|co|id|cc|tk|ml|ga|gq|cf|app|web|page))"
    r"(?![\w-])(?:[/?#]\S*)?", re.IGNORECASE)


def unofficial_links(text: str) -> list[str]:
    """The hosts of links in `text` that are not official government sites (*.go.id):
    "ada link prokus-daftar.com bener gk" -> ["prokus-daftar.com"]. E-mail addresses are
    not links."""
    return [m.group(1).lower() for m in _LINK.finditer(text)
            if not m.group(1).lower().endswith(".go.id")]
