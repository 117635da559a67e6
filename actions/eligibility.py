"""The eligibility check: consent, NIK, full name, business field, then the result
criterion by criterion. "Not found" and "name does not match" look the same to the user,
every lookup is audited, and each user may check at most 5 NIKs an hour."""

from __future__ import annotations

from datetime import date

from actions.context import Context
from actions.forms import FORM_PREFIX, Invalid
from actions.identity import NikForm
from actions.types import Button, Reply
from db.models import Kpm
from domain import eligibility
from domain import nik as nik_rules


def sector_buttons(ctx: Context) -> tuple[Button, ...]:
    fields = tuple(Button(ctx.texts(f"sector/{s}"), f"{FORM_PREFIX}sector:{s}")
                   for s in eligibility.SECTORS)
    none = Button(ctx.texts(f"sector/{eligibility.NO_BUSINESS}"),
                  f"{FORM_PREFIX}sector:{eligibility.NO_BUSINESS}")
    return fields + (none,)


def sector_from_text(ctx: Context, text: str) -> str | None:
    """A business field from typed words: a field label, or the NLU's business_sector."""
    lowered = text.casefold()
    for sector in (*eligibility.SECTORS, eligibility.NO_BUSINESS):
        if lowered == ctx.texts(f"sector/{sector}").casefold():
            return sector
    if lowered in {"belum", "belum ada", "tidak ada", "gak ada", "nggak punya", "belum punya"}:
        return eligibility.NO_BUSINESS
    parse = ctx.parse_text(text)
    value = parse.entity("business_sector") if parse else None
    return value if value in eligibility.SECTORS else None


class EligibilityForm(NikForm):
    name = "eligibility"
    consent_key = "eligibility_consent"
    no_consent_key = "eligibility_no_consent"
    retry_intent = "check_eligibility"
    intents = frozenset({"check_eligibility"})
    steps = ("consent", "nik", "name", "business")
    free_text_steps = frozenset({"name"})

    def ask(self, ctx: Context) -> None:
        step = self.step(ctx)
        if step == "consent":
            self.ask_consent(ctx)
        elif step == "business":
            ctx.say("eligibility_ask_business", buttons=sector_buttons(ctx))
        else:
            ctx.say(f"eligibility_ask_{step}")

    def no_consent_buttons(self, ctx: Context) -> tuple[Button, ...]:
        return (ctx.button("faq/requirements"), *ctx.main_menu())

    def answer(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        return getattr(self, f"_{self.step(ctx)}")(ctx, text, payload)

    def _name(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        kpm = self.identify(ctx, text)
        if not isinstance(kpm, Kpm):
            return kpm
        self.data(ctx)["values"].update(status=kpm.status_pkh,
                                        born=kpm.tanggal_lahir.isoformat())
        self.goto(ctx, "business")
        return None

    def _business(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        prefix = f"{FORM_PREFIX}sector:"
        sector = payload.removeprefix(prefix) if payload and payload.startswith(prefix) else (
            sector_from_text(ctx, text) if text else None)
        if sector not in (*eligibility.SECTORS, eligibility.NO_BUSINESS):
            return Invalid("sector_unclear", {})
        self.result(ctx, sector)
        return None

    def result(self, ctx: Context, sector: str) -> None:
        """Show each criterion with ✅ or ❌ and a plain reason, then the next step."""
        values = self.data(ctx)["values"]
        born = date.fromisoformat(values["born"])
        criteria = eligibility.evaluate(values["status"], born, sector, ctx.today)
        lines = [ctx.texts("eligibility_result_title")]
        for criterion in criteria:
            mark = "✅" if criterion.ok else "❌"
            state = "ok" if criterion.ok else "fail"
            shown = dict(criterion.values)
            if "sector" in shown:
                shown["sector"] = ctx.texts(f"sector/{shown['sector']}")
            lines.append(f"{mark} " + ctx.texts(f"criterion/{criterion.key}/{state}", **shown))
        if not nik_rules.parse(values["nik"]).matches_birth_date(born):
            lines.append(ctx.texts("nik_date_warning"))
        self.finish(ctx)
        ctx.replies.append(Reply("\n".join(lines)))
        if eligibility.eligible(criteria):
            ctx.say("eligibility_pass", buttons=(ctx.button("register_prokus"),
                                                 ctx.button("faq/benefits")))
        else:
            ctx.say("eligibility_fail", buttons=(ctx.button("human_handoff"),
                                                 *ctx.main_menu()))


FORM = EligibilityForm()


def check_eligibility(ctx: Context) -> None:
    """Start the eligibility check."""
    FORM.start(ctx)


HANDLERS = {"check_eligibility": check_eligibility}
FORMS = {FORM.name: FORM}
