"""The eligibility check: consent, NIK, full name, business field, then the result
criterion by criterion. "Not found" and "name does not match" look the same to the user,
every lookup is audited, and each user may check at most 5 NIKs an hour."""

from __future__ import annotations

import re
from datetime import date
from functools import cache
from pathlib import Path

from actions.context import Context
from actions.forms import FORM_PREFIX, Form, Invalid
from actions.identity import NikForm
from actions.types import Button, Reply
from db.models import Kpm
from domain import business, eligibility
from domain import nik as nik_rules

LEXICON_PATH = Path(__file__).with_name("business_lexicon.yml")
OTHER = "lainnya"  # a business the lexicon knows that fits none of the seven fields
MAX_PLAIN_REFUSALS = 1  # after this many refusals the step explains with an example


@cache
def lexicon() -> business.Lexicon:
    """The everyday business words (business_lexicon.yml), read once."""
    return business.Lexicon.load(LEXICON_PATH)


def sector_buttons(ctx: Context, unsure: bool = False) -> tuple[Button, ...]:
    """The seven fields and "no business yet"; with `unsure`, also "let a petugas judge"."""
    fields = tuple(Button(ctx.texts(f"sector/{s}"), f"{FORM_PREFIX}sector:{s}")
                   for s in eligibility.SECTORS)
    none = Button(ctx.texts(f"sector/{eligibility.NO_BUSINESS}"),
                  f"{FORM_PREFIX}sector:{eligibility.NO_BUSINESS}")
    if not unsure:
        return fields + (none,)
    review = Button(ctx.texts("sector_review_button"), f"{FORM_PREFIX}sector:{eligibility.REVIEW}")
    return fields + (review, none)


def sector_from_text(ctx: Context, text: str) -> str | None:
    """A business field from typed words: a field label, the lexicon of everyday words, then
    the NLU's business_sector. Also NO_BUSINESS, REVIEW ("not sure"), OTHER (a business that
    fits none of the fields) or None (not understood)."""
    lowered = text.casefold().strip(" .!")
    for sector in (*eligibility.SECTORS, eligibility.NO_BUSINESS):
        if lowered == ctx.texts(f"sector/{sector}").casefold():
            return sector
    if lowered == ctx.texts("sector_review_button").casefold():
        return eligibility.REVIEW
    if lowered in NO_BUSINESS_WORDS:
        return eligibility.NO_BUSINESS
    found = lexicon().match(text)
    if found is not None:
        return found.category
    if NO_BUSINESS_PHRASE.search(lowered):
        return eligibility.NO_BUSINESS
    parse = ctx.parse_text(text)
    value = parse.entity("business_sector") if parse else None
    return value if value in eligibility.SECTORS else None


# "usaha nya blm ada kak, baru niat", "belum buka usaha", "masih rencana": no business yet
# (only when the lexicon found no business word in the message).
NO_BUSINESS_PHRASE = re.compile(
    r"\b(?:belum|blm|belom|durung|teu acan|tidak|tdk|gak|ga|nggak|ngga|kagak)\s+"
    r"(?:ada|punya|pny|buka|mulai|jalan|berjalan|usaha)\b(?!\s+(?:modal|uang|duit|biaya))"
    r"|\b(?:baru|masih)\s+(?:niat|rencana|mau mulai|pengen|ingin|mau buka)\b")

NO_BUSINESS_WORDS = {"belum", "belum ada", "tidak ada", "gak ada", "nggak punya", "belum punya",
                     "ga ada", "nggak ada", "ngga ada", "tidak punya", "gak punya", "ga punya",
                     "blm", "blm ada", "blm punya", "belom", "belom ada", "teu acan", "durung"}


def choose_sector(form: Form, ctx: Context, text: str | None,
                  payload: str | None) -> str | Invalid | None:
    """The business step of the check and the registration: the chosen value, or None after
    a refusal (said here, with the buttons again), or Invalid for a message that reads as a
    question (the core may answer it on the side; else `refuse_sector` runs).

    The words at this step are answers, not questions: they never go to a FAQ unless the
    message is phrased as a question and is not a business the lexicon knows."""
    prefix = f"{FORM_PREFIX}sector:"
    if payload is not None:
        sector = payload.removeprefix(prefix) if payload.startswith(prefix) else None
        if sector in CHOICES:
            return sector
        refuse_sector(form, ctx, "sector_unclear")
        return None
    sector = sector_from_text(ctx, text or "")
    if sector in CHOICES:
        return sector
    if sector == OTHER:
        refuse_sector(form, ctx, "sector_other")
        return None
    from actions.dialogue import looks_like_question, mentions_switch  # (core imports us)

    if looks_like_question(text or "") or mentions_switch(text or ""):
        return Invalid("sector_unclear", {})
    refuse_sector(form, ctx, "sector_unclear")
    return None


def refuse_sector(form: Form, ctx: Context, key: str) -> None:
    """Say why the answer was not taken and show the buttons again, with "Belum yakin"."""
    tries = form.data(ctx)["tries"]
    tries["business"] = tries.get("business", 0) + 1
    if key == "sector_unclear" and tries["business"] > MAX_PLAIN_REFUSALS:
        key = "sector_unclear_again"
    ctx.say(key, buttons=sector_buttons(ctx, unsure=True))


class BusinessStep(Form):
    """Mixed into the forms with a "business" step: its refusals always show the buttons."""

    def reject(self, ctx: Context, invalid: Invalid) -> None:
        if self.step(ctx) == "business":
            refuse_sector(self, ctx, invalid.key)
            return
        super().reject(ctx, invalid)


CHOICES = (*eligibility.SECTORS, eligibility.NO_BUSINESS, eligibility.REVIEW)


class EligibilityForm(BusinessStep, NikForm):
    name = "eligibility"
    consent_key = "eligibility_consent"
    no_consent_key = "eligibility_no_consent"
    retry_intent = "check_eligibility"
    intents = frozenset({"check_eligibility"})
    steps = ("consent", "nik", "name", "contact", "business")
    free_text_steps = frozenset({"name"})

    def ask(self, ctx: Context) -> None:
        step = self.step(ctx)
        if step == "consent":
            self.ask_consent(ctx)
        elif step == "contact":
            self.ask_contact(ctx)
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
        self.confirm_contact(ctx, "business")
        return None

    def contact_done(self, ctx: Context, confirmed: bool, next_step: str | None) -> None:
        """A contact that matches the registry: on to the result. Otherwise nothing from
        the registry is shown (not the PKH status, not the age): registering is still
        possible, and a petugas checks the data."""
        if confirmed:
            super().contact_done(ctx, confirmed, next_step)
            return
        self.finish(ctx)
        ctx.say("eligibility_unconfirmed", buttons=(ctx.button("register_prokus"),
                                                    ctx.button("human_handoff")))

    def _business(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        sector = choose_sector(self, ctx, text, payload)
        if isinstance(sector, str):
            self.result(ctx, sector)
            return None
        return sector

    def result(self, ctx: Context, sector: str) -> None:
        """Show each criterion with ✅ or ❌ and a plain reason, then the next step."""
        values = self.data(ctx)["values"]
        born = date.fromisoformat(values["born"])
        criteria = eligibility.evaluate(values["status"], born, sector, ctx.today)
        lines = [ctx.texts("eligibility_result_title")]
        for criterion in criteria:
            mark = "⏳" if criterion.review else ("✅" if criterion.ok else "❌")
            state = "review" if criterion.review else ("ok" if criterion.ok else "fail")
            shown = dict(criterion.values)
            if "sector" in shown:
                shown["sector"] = ctx.texts(f"sector/{shown['sector']}")
            lines.append(f"{mark} " + ctx.texts(f"criterion/{criterion.key}/{state}", **shown))
        if not nik_rules.parse(values["nik"]).matches_birth_date(born):
            lines.append(ctx.texts("nik_date_warning"))
        self.finish(ctx)
        ctx.replies.append(Reply("\n".join(lines)))
        if eligibility.eligible(criteria) and eligibility.needs_review(criteria):
            ctx.say("eligibility_pass_review", buttons=(ctx.button("register_prokus"),
                                                        ctx.button("faq/business_sectors")))
        elif eligibility.eligible(criteria):
            ctx.say("eligibility_pass", buttons=(ctx.button("register_prokus"),
                                                 ctx.button("faq/benefits")))
        else:
            ctx.say("eligibility_fail", buttons=(ctx.button("human_handoff"),
                                                 *ctx.main_menu()))


FORM = EligibilityForm()


# An age the user states ("umur 41 bs ikut?") is only taken when it is a plausible adult age.
PLAUSIBLE_AGES = range(17, 100)


def stated_age(ctx: Context) -> int | None:
    """The age in the message that started the check (the NLU's `age` entity), if any."""
    value = ctx.parse.entity("age") if ctx.parse else None
    if value is None or not str(value).isdigit():
        return None
    age = int(value)
    return age if age in PLAUSIBLE_AGES else None


def check_eligibility(ctx: Context) -> None:
    """Start the eligibility check. A stated age of 40 or more gets a plain "no" at once
    (no NIK needed to learn that); a stated age under 40 is acknowledged, then the check
    starts, since the registry's birth date is what counts."""
    age = stated_age(ctx)
    if age is not None and age >= eligibility.MAX_AGE_EXCLUSIVE:
        ctx.say("eligibility_age_over", age=age,
                buttons=(ctx.button("faq/why_under_40"), ctx.button("human_handoff"),
                         ctx.button("help")))
        return
    if age is not None:
        ctx.say("eligibility_age_ok", age=age)
    FORM.start(ctx)


HANDLERS = {"check_eligibility": check_eligibility}
FORMS = {FORM.name: FORM}
