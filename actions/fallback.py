"""When the NLU is unsure: ask which of the two likeliest intents was meant (two-stage
fallback), or say so plainly and offer the menu; from the second miss in a row, offer a
person (actions/handoff.py)."""

from __future__ import annotations

from actions.context import Context
from actions.types import Button
from nlu.client import Parse

# Intents never offered as "did you mean": they make no sense as a button.
NOT_OFFERED = {"nlu_fallback", "out_of_scope", "inform", "affirm", "deny", "greet",
               "goodbye", "thanks", "cancel"}
CANDIDATE_FLOOR = 0.15  # below this confidence an intent is not worth offering
MAX_CANDIDATES = 2


def candidates(parse: Parse) -> list[str]:
    """Up to two intents to offer, best first; `faq` resolved to its sub-intent."""
    offered: list[str] = []
    for name, confidence in parse.ranking:
        if name in NOT_OFFERED or confidence < CANDIDATE_FLOOR:
            continue
        if name == "faq":
            if not parse.faq_key:
                continue
            name = parse.faq_key
        if name not in offered:
            offered.append(name)
        if len(offered) == MAX_CANDIDATES:
            break
    return offered


def fallback(ctx: Context) -> None:
    """Ask which intent was meant, or say we did not understand."""
    misses = ctx.state.get("misses", 0) + 1
    ctx.state["misses"] = misses
    options = [o for o in candidates(ctx.parse) if f"label/{o}" in ctx.texts] if ctx.parse else []
    # From the second miss in a row on, a person is offered too ("Bicara dengan petugas":
    # the handoff offer, with what the operator will see, follows when it is pressed).
    handoff = (Button(ctx.texts("label/human_handoff"), "/human_handoff"),) if misses >= 2 else ()
    if options:
        buttons = tuple(Button(ctx.texts(f"label/{o}"), f"/{o}") for o in options)
        ctx.say("clarify", buttons=buttons + (Button(ctx.texts("label/other"), "/other"),)
                + handoff)
    elif misses >= 2:
        ctx.say("fallback_again", buttons=ctx.main_menu() + handoff)
    else:
        ctx.say("fallback", buttons=ctx.main_menu())


def other(ctx: Context) -> None:
    """The user said none of the offered intents was right."""
    ctx.say("clarify_other", buttons=ctx.main_menu())


HANDLERS = {"nlu_fallback": fallback, "other": other}
