"""Forms: multi-step conversations (eligibility check, later registration) whose progress
lives in the conversation state, so a restart loses nothing.

The dialogue core gives an active form each turn first. A form step either takes the
answer, or the core treats the message as cancel or a side question (answered, then the
step is asked again). After two failed tries on one step the form explains the step with
an example and asks whether to go on or stop.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from actions.context import Context
from actions.types import Button, Contact

# Payloads of form buttons start with this; they never reach the NLU.
FORM_PREFIX = "/form:"
MAX_TRIES = 2


@dataclass
class Invalid:
    """A rejected answer: `key` is the hint in responses.yml, `values` fill it."""

    key: str
    values: dict[str, Any]
    ask_contact: bool = False  # offer the "share contact" button again with the hint


class Form:
    """Base class: subclasses define `name`, `steps` and the per-step methods."""

    name: str = ""
    intents: frozenset[str] = frozenset()  # intents that start this form
    steps: tuple[str, ...] = ()
    free_text_steps: frozenset[str] = frozenset()  # answers that could look like questions
    verbatim_steps: frozenset[str] = frozenset()  # any text is the answer (a message to send)

    # --- state helpers
    @staticmethod
    def data(ctx: Context) -> dict[str, Any]:
        return ctx.state["form"]

    def step(self, ctx: Context) -> str:
        return self.data(ctx)["step"]

    def start(self, ctx: Context) -> None:
        """Begin the form at its first step."""
        ctx.state["form"] = {"name": self.name, "step": self.steps[0], "values": {}, "tries": {}}
        self.ask(ctx)

    def goto(self, ctx: Context, step: str) -> None:
        self.data(ctx)["step"] = step
        self.ask(ctx)

    def finish(self, ctx: Context) -> None:
        """End the form and forget what it collected."""
        ctx.state.pop("form", None)

    # --- what subclasses implement
    def ask(self, ctx: Context) -> None:
        raise NotImplementedError

    def answer(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        """Take an answer for the current step; return Invalid to reject it."""
        raise NotImplementedError

    def contact(self, ctx: Context, contact: Contact) -> Invalid | None:
        """A shared contact; forms that ask for a phone number override this."""
        return Invalid("form_contact_not_needed", {})

    def example(self, ctx: Context) -> str:
        """The key of a text explaining the current step with an example."""
        return f"{self.name}_help_{self.step(ctx)}"

    # --- shared behaviour
    def reject(self, ctx: Context, invalid: Invalid) -> None:
        """Say what was wrong; after MAX_TRIES, explain and offer to go on or stop."""
        tries = self.data(ctx)["tries"]
        step = self.step(ctx)
        tries[step] = tries.get(step, 0) + 1
        if tries[step] >= MAX_TRIES:
            tries[step] = 0
            ctx.say(invalid.key, **invalid.values)
            ctx.say(self.example(ctx), buttons=(
                Button(ctx.texts("form_continue"), f"{FORM_PREFIX}continue"),
                Button(ctx.texts("form_stop"), f"{FORM_PREFIX}stop"),
            ))
            return
        ctx.say(invalid.key, ask_contact=invalid.ask_contact, **invalid.values)

    def cancel(self, ctx: Context) -> None:
        self.finish(ctx)
        ctx.say(f"{self.name}_cancelled", buttons=ctx.main_menu())
