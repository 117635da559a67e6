"""Proving who someone is by NIK + full name against the KPM registry, shared by the
eligibility check, registration and the status lookup.

The reply never tells a stranger whether a NIK exists: an unknown NIK and a name that does
not match look the same. Every lookup is audited with the NIK masked, and each account may
look up at most LOOKUPS_PER_HOUR NIKs an hour (all features together).
"""

from __future__ import annotations

from datetime import timedelta

from actions.context import Context
from actions.forms import FORM_PREFIX, Form, Invalid
from actions.types import Button
from db import repo
from db.models import Kpm
from domain import names
from domain import nik as nik_rules

LOOKUPS_PER_HOUR = 5
LOOKUP_ACTION = "nik_lookup"


def actor(ctx: Context) -> str:
    return f"user:{ctx.user.id}"


def rate_limited(ctx: Context) -> bool:
    since = ctx.now - timedelta(hours=1)
    return repo.count_recent(ctx.session, actor(ctx), LOOKUP_ACTION, since) >= LOOKUPS_PER_HOUR


def verify(ctx: Context, nik: str, typed_name: str, purpose: str) -> Kpm | None:
    """The registry record when NIK and name match, else None; the lookup is audited."""
    kpm = repo.find_kpm(ctx.session, nik)
    matched = kpm is not None and names.same_person(typed_name, kpm.nama)
    outcome = "verified" if matched else ("name_mismatch" if kpm else "not_found")
    repo.audit(ctx.session, actor(ctx), LOOKUP_ACTION, outcome, subject=nik_rules.mask(nik),
               detail={"purpose": purpose}, at=ctx.now)
    return kpm if matched else None


class NikForm(Form):
    """The steps every NIK form starts with: consent first (PDP: nothing is asked before
    the user agrees), then the NIK, checked for shape with a precise hint. Subclasses
    name their texts with `consent_key` / `no_consent_key` and go on from "name"."""

    consent_key = ""
    no_consent_key = ""
    retry_intent = ""  # offered (with a person) when NIK and name do not match

    def start(self, ctx: Context) -> None:
        if rate_limited(ctx):
            ctx.say("nik_rate_limited", buttons=ctx.main_menu())
            return
        super().start(ctx)

    def ask_consent(self, ctx: Context) -> None:
        ctx.say(self.consent_key, buttons=(
            Button(ctx.texts("consent_yes"), f"{FORM_PREFIX}yes"),
            Button(ctx.texts("consent_no"), f"{FORM_PREFIX}no"),
        ))

    def no_consent_buttons(self, ctx: Context) -> tuple[Button, ...]:
        return ctx.main_menu()

    def _consent(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        choice = payload or ctx.yes_no(text)
        if choice in (f"{FORM_PREFIX}yes", "affirm"):
            self.goto(ctx, "nik")
            return None
        if choice in (f"{FORM_PREFIX}no", "deny"):
            self.finish(ctx)
            ctx.say(self.no_consent_key, buttons=self.no_consent_buttons(ctx))
            return None
        return Invalid("consent_unclear", {})

    def identify(self, ctx: Context, text: str | None) -> Kpm | Invalid | None:
        """Check the typed full name with the NIK against the registry. Returns the record,
        Invalid for a name that cannot be one, or None after ending the form with a reply
        (limit reached, or not verified: the same reply for an unknown NIK and a wrong
        name)."""
        if not text or not names.plausible(text):
            return Invalid("name_invalid", {})
        nik = self.data(ctx)["values"]["nik"]
        if rate_limited(ctx):
            self.finish(ctx)
            ctx.say("nik_rate_limited", buttons=ctx.main_menu())
            return None
        kpm = verify(ctx, nik, text, purpose=self.name)
        if kpm is None:
            self.finish(ctx)
            ctx.say("eligibility_not_verified", buttons=(
                ctx.button(self.retry_intent), ctx.button("human_handoff")))
        return kpm

    def _nik(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        try:
            parsed = nik_rules.parse(text or "")
        except nik_rules.NikError as error:
            return Invalid(error.key, error.values)
        self.data(ctx)["values"]["nik"] = parsed.value
        self.goto(ctx, "name")
        return None
