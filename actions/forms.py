"""Forms: multi-step conversations (eligibility check, later registration) whose progress
lives in the conversation state, so a restart loses nothing.

The dialogue core gives an active form each turn first. A form step either takes the
answer, or the core treats the message as cancel or a side question (answered, then the
step is asked again). After two failed tries on one step the form explains the step with
an example and asks whether to go on or stop.

Every form keeps the steps it went through (`history`), so "kembali" goes back one step
at any step of any form. Going back to a step forgets what was collected at that step and
after it: the user answers those steps again, so nothing stays from a path left behind (in
a NIK form, going back to the NIK step or before restarts the identity part: a name proven
for one NIK is never kept with another NIK; going back to the name step proves it again).
The time of the last turn (`at`) tells the core when the user comes back after a pause.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from actions.context import Context
from actions.types import Button, Contact

# Payloads of form buttons start with this; they never reach the NLU.
FORM_PREFIX = "/form:"
MAX_TRIES = 2
# After this long without a message, the form says where the user is before it takes the
# next message as an answer.
PAUSE = timedelta(minutes=30)
MAX_HISTORY = 40  # steps remembered for "kembali"


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
    # Free-text steps whose answer may itself be phrased as a question (a session topic such
    # as "Bagaimana mencatat kas?"); at the others a question is never taken as the answer.
    question_ok_steps: frozenset[str] = frozenset()
    verbatim_steps: frozenset[str] = frozenset()  # any text is the answer (a message to send)

    # --- state helpers
    @staticmethod
    def data(ctx: Context) -> dict[str, Any]:
        return ctx.state["form"]

    def step(self, ctx: Context) -> str:
        return self.data(ctx)["step"]

    def start(self, ctx: Context) -> None:
        """Begin the form at its first step."""
        ctx.state["form"] = {"name": self.name, "step": self.steps[0], "values": {}, "tries": {},
                             "history": [], "step_keys": []}
        self.ask(ctx)

    def goto(self, ctx: Context, step: str) -> None:
        """Move to `step` and ask it; the step left behind is remembered for "kembali"."""
        data = self.data(ctx)
        if step != data["step"]:
            # The values held when the step left behind was asked (before its answer).
            arrived = data.get("step_keys", sorted(data["values"]))
            history = data.setdefault("history", [])
            history.append({"step": data["step"], "keys": arrived})
            del history[:-MAX_HISTORY]  # changing fields again and again stays small
            data["step_keys"] = sorted(data["values"])
        data["step"] = step
        self.ask(ctx)

    def back(self, ctx: Context) -> bool:
        """Go back to the previous step and ask it again (with its buttons), forgetting what
        was collected from that step on; False (nothing changed) at the first step."""
        data = self.data(ctx)
        history = data.get("history") or []
        if not history:
            return False
        previous = history.pop()
        keep = set(previous["keys"])
        data["values"] = {k: v for k, v in data["values"].items() if k in keep}
        data["step"], data["step_keys"] = previous["step"], previous["keys"]
        data["tries"] = {}
        data.pop("held", None)
        self.on_back(ctx)
        self.ask(ctx)
        return True

    def on_back(self, ctx: Context) -> None:
        """Forget per-step choices a form keeps outside its values (subclasses)."""

    # --- pauses
    @staticmethod
    def touch(ctx: Context) -> None:
        """Remember when the user last spoke to the form."""
        ctx.state["form"]["at"] = ctx.now.isoformat()

    def paused(self, ctx: Context) -> bool:
        """True when the last turn of this form was more than PAUSE ago."""
        at = self.data(ctx).get("at")
        if not isinstance(at, str):
            return False
        try:
            return ctx.now - datetime.fromisoformat(at) > PAUSE
        except (TypeError, ValueError):  # unreadable, or a time without its zone
            return False

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
