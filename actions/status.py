"""Registration status (/status): the account that registered sees its registrations at
once; anyone else proves who they are with NIK + full name first."""

from __future__ import annotations

from actions.context import Context
from actions.forms import Invalid
from actions.identity import NikForm
from actions.registration import status_line
from db import registrations
from db.models import Kpm


def show(ctx: Context, found: list) -> None:
    """The registrations; a rejection's reason only for those made from this account (a
    stranger who knows a NIK and name must not learn why someone was refused)."""
    lines = [ctx.texts("status_title")] + [
        status_line(ctx, r, with_reason=r.user_id == ctx.user.id) for r in found]
    ctx.say("status_list", items="\n\n".join(lines), buttons=ctx.main_menu())


class StatusForm(NikForm):
    name = "status"
    consent_key = "status_consent"
    no_consent_key = "status_no_consent"
    retry_intent = "registration_status"
    # Not started by intent while another form runs: the handler below decides.
    steps = ("consent", "nik", "name")
    free_text_steps = frozenset({"name"})

    def ask(self, ctx: Context) -> None:
        step = self.step(ctx)
        if step == "consent":
            self.ask_consent(ctx)
        else:
            ctx.say(f"eligibility_ask_{step}")

    def example(self, ctx: Context) -> str:
        return f"eligibility_help_{self.step(ctx)}"

    def answer(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        if self.step(ctx) != "name":
            return getattr(self, f"_{self.step(ctx)}")(ctx, text, payload)
        nik = self.data(ctx)["values"]["nik"]
        kpm = self.identify(ctx, text)
        if not isinstance(kpm, Kpm):
            return kpm
        self.finish(ctx)
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
    else:
        FORM.start(ctx)  # checks the NIK lookup limit first


HANDLERS = {"registration_status": registration_status}
FORMS = {FORM.name: FORM}
