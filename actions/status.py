"""Registration status (/status): the account that registered sees its registrations at
once; anyone else proves who they are with NIK + full name first."""

from __future__ import annotations

from actions.context import Context
from actions.forms import FORM_PREFIX, Form, Invalid
from actions.identity import rate_limited, verify
from actions.registration import status_line
from actions.types import Button
from db import registrations
from domain import names
from domain import nik as nik_rules


def show(ctx: Context, found: list) -> None:
    lines = [ctx.texts("status_title")] + [status_line(ctx, r) for r in found]
    ctx.say("status_list", items="\n\n".join(lines), buttons=ctx.main_menu())


class StatusForm(Form):
    name = "status"
    # Not started by intent while another form runs: the handler below decides.
    steps = ("consent", "nik", "name")
    free_text_steps = frozenset({"name"})

    def ask(self, ctx: Context) -> None:
        step = self.step(ctx)
        if step == "consent":
            ctx.say("status_consent", buttons=(
                Button(ctx.texts("consent_yes"), f"{FORM_PREFIX}yes"),
                Button(ctx.texts("consent_no"), f"{FORM_PREFIX}no"),
            ))
        else:
            ctx.say(f"eligibility_ask_{step}")

    def example(self, ctx: Context) -> str:
        return f"eligibility_help_{self.step(ctx)}"

    def answer(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        step = self.step(ctx)
        if step == "consent":
            choice = payload or ctx.yes_no(text)
            if choice in (f"{FORM_PREFIX}yes", "affirm"):
                self.goto(ctx, "nik")
                return None
            if choice in (f"{FORM_PREFIX}no", "deny"):
                self.finish(ctx)
                ctx.say("status_no_consent", buttons=ctx.main_menu())
                return None
            return Invalid("consent_unclear", {})
        if step == "nik":
            try:
                self.data(ctx)["values"]["nik"] = nik_rules.parse(text or "").value
            except nik_rules.NikError as error:
                return Invalid(error.key, error.values)
            self.goto(ctx, "name")
            return None
        if not text or not names.plausible(text):
            return Invalid("name_invalid", {})
        nik = self.data(ctx)["values"]["nik"]
        self.finish(ctx)
        if rate_limited(ctx):
            ctx.say("nik_rate_limited", buttons=ctx.main_menu())
            return None
        if verify(ctx, nik, text, purpose="status") is None:
            ctx.say("eligibility_not_verified", buttons=(
                ctx.button("registration_status"), ctx.button("human_handoff")))
            return None
        found = registrations.for_nik(ctx.session, nik)
        if found:
            show(ctx, found)
        else:
            ctx.say("status_none_for_nik", buttons=(ctx.button("register_prokus"),
                                                    *ctx.main_menu()))
        return None


FORM = StatusForm()


def registration_status(ctx: Context) -> None:
    """Show the registrations of this account, or verify NIK + name first."""
    found = registrations.for_user(ctx.session, ctx.user.id)
    if found:
        show(ctx, found)
    elif ctx.state.get("form"):  # asked in the middle of a form: do not replace it
        ctx.say("status_none_for_account")
    elif rate_limited(ctx):
        ctx.say("nik_rate_limited", buttons=ctx.main_menu())
    else:
        FORM.start(ctx)


HANDLERS = {"registration_status": registration_status}
FORMS = {FORM.name: FORM}
