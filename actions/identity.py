"""Proving who someone is by NIK + full name against the KPM registry, shared by the
eligibility check, registration and the status lookup.

The reply never tells a stranger whether a NIK exists: an unknown NIK and a name that does
not match look the same, also while retrying. Every lookup is audited with the NIK masked,
and each account may look up at most LOOKUPS_PER_HOUR NIKs an hour (all features together).

The name may be typed NAME_TRIES times for one NIK in one form (names are compared by the
rule in domain/names.py). The first try is the lookup that counts toward the hourly limit
(audited as "nik_lookup"); the retries on the same NIK are audited as "nik_lookup_retry" and
do not count again, so a stranger still probes at most LOOKUPS_PER_HOUR NIKs an hour, with
NAME_TRIES names each. A new NIK, or the same one typed again, is a new lookup.

At the NIK step, "lupa NIK" / "nanti sy cari dulu" ends the form with a friendly pause, and
"nik itu apa" explains what a NIK is and asks again, both without the NLU.

Knowing someone's NIK and name must not be enough to learn from the chat whether they are
a PKH graduate or their age (issue 16 item 5). When the registry has a phone number for the
NIK, or the NIK was tried from FLAG_ACCOUNTS or more accounts within a day (flagged in the
audit log), a matching name is followed by the "contact" step: the user shares their own
Telegram contact. If it matches the registry's number the form goes on as before; if it
differs or is not shared, nothing from the registry is shown (`contact_done(confirmed=False)`
decides what the form does instead). A flagged NIK is then looked up only with a matching
contact, so a fraudster with many accounts learns nothing and cannot lock the owner out.
"""

from __future__ import annotations

import itertools
import re
from datetime import timedelta

from sqlalchemy import delete, distinct, func, select

from actions.context import Context
from actions.forms import FORM_PREFIX, MAX_TRIES, Form, Invalid
from actions.types import Button, Contact
from db import crypto, repo
from db.models import Kpm, NikAttempt
from domain import names
from domain import nik as nik_rules
from domain import phone as phone_rules

LOOKUPS_PER_HOUR = 5
LOOKUP_ACTION = "nik_lookup"
RETRY_ACTION = "nik_lookup_retry"
NAME_TRIES = 3
CONSENT_DIGITS = 10  # an answer to the consent question with this many digits is data
FLAG_ACCOUNTS = 3  # a NIK looked up from this many accounts in a day is flagged
FLAG_WINDOW = timedelta(days=1)
FLAG_ACTION = "nik_many_accounts"
CONTACT_ACTION = "contact_check"
CONTACT_STEP = "contact"
SKIP_CONTACT = f"{FORM_PREFIX}skip_contact"
# Typed at the contact step: the user does not want to share it.
_SKIP_WORDS = frozenset({"lewati", "lewat", "skip", "nanti", "ga", "gak", "gk", "nggak",
                         "enggak", "tidak", "tdk", "jangan", "ogah", "males", "malas"})
_FILLER = frozenset({"mau", "saya", "sy", "aku", "dulu", "aja", "saja", "deh", "ah", "kak"})
# The command that starts each NIK form again, named in the pause text.
FORM_COMMANDS = {"eligibility": "/cek", "registration": "/daftar", "status": "/status"}

# At the NIK step: "lupa nik", "sy gk hafal nik", "nik sy ga tau" (a pause) and "nik itu apa"
# (a question). Compared on lowercase words with repeated letters squeezed ("tauu" = "tau").
_NOT_LETTER = re.compile(r"[^a-z?\s]")
_REPEATS = re.compile(r"([a-z])\1+")


def _squeeze(word: str) -> str:
    return _REPEATS.sub(r"\1", word)


def _squeezed(words: str) -> frozenset[str]:
    return frozenset(_squeeze(w) for w in words.split())


_NEGATIONS = _squeezed("ga gak gk g nggak ngga enggak engga tidak tdk ndak nda belum blm kagak "
                       "kaga ora mboten teu henteu tak")
_KNOWING = _squeezed("hafal hapal apal tau tahu ingat inget bawa pegang nemu ketemu")
_PAUSE_WORDS = _squeezed("lupa nanti ntar entar ntr hilang ketinggalan gatau gtau gatahu "
                         "gaktau gktau nggatau gahafal gakhafal gkhafal")
_WHAT_WORDS = _squeezed("apa apaan apakah maksud maksudnya arti artinya gimana gmn bagaimana "
                        "dimana mana liat lihat liatnya lihatnya carinya ?")


def _words(text: str) -> list[str]:
    """Lowercase words (and "?"), each run of one letter squeezed ("tauu" -> "tau")."""
    return _squeeze(_NOT_LETTER.sub(" ", text.casefold()).replace("?", " ? ")).split()


def asks_what_nik(text: str) -> bool:
    """"nik itu apa", "apa itu NIK?", "nik liat dimana": a question about the NIK itself."""
    words = _words(text)
    return ("nik" in words or "nomor induk" in " ".join(words)) and bool(
        set(words) & _WHAT_WORDS)


def nik_pause(text: str) -> bool:
    """"lupa nik", "sy gk hafal nik", "nanti sy cari dulu", "nik sy ga tau": not now."""
    words = _words(text)
    if set(words) & _PAUSE_WORDS or {"cari", "dulu"} <= set(words):
        return True
    return any(w in _NEGATIONS and nxt in _KNOWING for w, nxt in itertools.pairwise(words))


def actor(ctx: Context) -> str:
    return f"user:{ctx.user.id}"


def rate_limited(ctx: Context) -> bool:
    since = ctx.now - timedelta(hours=1)
    return repo.count_recent(ctx.session, actor(ctx), LOOKUP_ACTION, since) >= LOOKUPS_PER_HOUR


def note_attempt(ctx: Context, nik: str) -> bool:
    """Remember that this account looked `nik` up; True when the NIK has been tried from
    FLAG_ACCOUNTS or more accounts within FLAG_WINDOW (each account that joins a flagged
    NIK is audited as FLAG_ACTION, with the NIK masked)."""
    hashes = crypto.blinds(nik)
    since = ctx.now - FLAG_WINDOW
    session = ctx.session
    session.execute(delete(NikAttempt).where(NikAttempt.nik_hash.in_(hashes),
                                             NikAttempt.at < since - FLAG_WINDOW))
    seen_before = session.scalar(select(func.count()).select_from(NikAttempt).where(
        NikAttempt.nik_hash.in_(hashes), NikAttempt.user_id == ctx.user.id,
        NikAttempt.at >= since)) or 0
    session.add(NikAttempt(nik_hash=hashes[0], user_id=ctx.user.id, at=ctx.now))
    session.flush()
    accounts = session.scalar(select(func.count(distinct(NikAttempt.user_id))).where(
        NikAttempt.nik_hash.in_(hashes), NikAttempt.at >= since)) or 0
    flagged = accounts >= FLAG_ACCOUNTS
    if flagged and not seen_before:
        repo.audit(session, actor(ctx), FLAG_ACTION, "flagged", subject=nik_rules.mask(nik),
                   detail={"accounts": accounts}, at=ctx.now)
    return flagged


def verify(ctx: Context, nik: str, typed_name: str, purpose: str,
           action: str = LOOKUP_ACTION) -> Kpm | None:
    """The registry record when NIK and name match, else None; the lookup is audited (as
    `action`: LOOKUP_ACTION counts toward the hourly limit, RETRY_ACTION does not)."""
    kpm = repo.find_kpm(ctx.session, nik)
    matched = kpm is not None and names.same_person(typed_name, kpm.nama)
    outcome = "verified" if matched else ("name_mismatch" if kpm else "not_found")
    repo.audit(ctx.session, actor(ctx), action, outcome, subject=nik_rules.mask(nik),
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
        ctx.say(self.consent_key, buttons=self.consent_buttons(ctx))

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
        if text and sum(ch.isdigit() for ch in text) >= CONSENT_DIGITS:
            # A NIK (or phone) sent before saying yes: not read, not kept; ask again.
            return Invalid("consent_nik_first", {})
        return Invalid("consent_unclear", {})

    def reject(self, ctx: Context, invalid: Invalid) -> None:
        """At the consent step, an answer that is neither yes nor no (nor a side question)
        gets the yes/no buttons again; the second one ends the form politely, so an abandoned
        consent question is not asked after every later message."""
        if self.step(ctx) == CONTACT_STEP:
            self._reject_contact(ctx, invalid)
            return
        if self.step(ctx) != "consent":
            super().reject(ctx, invalid)
            return
        tries = self.data(ctx)["tries"]
        if invalid.key != "consent_nik_first":  # someone sending their NIK means to go on
            tries["consent"] = tries.get("consent", 0) + 1
        if tries.get("consent", 0) >= MAX_TRIES:
            self.finish(ctx)
            ctx.say("consent_abandoned", command=FORM_COMMANDS.get(self.name, "/start"),
                    buttons=ctx.main_menu())
            return
        ctx.say(invalid.key, buttons=self.consent_buttons(ctx), **invalid.values)

    def consent_buttons(self, ctx: Context) -> tuple[Button, ...]:
        return (Button(ctx.texts("consent_yes"), f"{FORM_PREFIX}yes"),
                Button(ctx.texts("consent_no"), f"{FORM_PREFIX}no"))

    def identify(self, ctx: Context, text: str | None) -> Kpm | Invalid | None:
        """Check the typed full name with the NIK against the registry. Returns the record,
        Invalid for a name that cannot be one, or None after replying: a polite retry (up
        to NAME_TRIES names per NIK, one lookup), or the form ended (limit reached, or not
        verified). An unknown NIK and a wrong name get the same replies at every try."""
        if not text or not names.plausible(names.without_lead_ins(text)):
            return Invalid("name_invalid", {})
        data = self.data(ctx)
        nik = data["values"]["nik"]
        lookup = data.get("lookup")
        retry = (isinstance(lookup, dict) and lookup.get("nik") == nik
                 and 0 < lookup.get("tries", 0) < NAME_TRIES)
        if not retry:
            if rate_limited(ctx):
                self.finish(ctx)
                ctx.say("nik_rate_limited", buttons=ctx.main_menu())
                return None
            lookup = {"nik": nik, "tries": 0, "flagged": note_attempt(ctx, nik)}
        assert isinstance(lookup, dict)
        kpm = verify(ctx, nik, text, purpose=self.name,
                     action=RETRY_ACTION if retry else LOOKUP_ACTION)
        if kpm is not None:
            data.pop("lookup", None)
            data["contact_needed"] = bool(kpm.no_hp) or bool(lookup.get("flagged"))
            return kpm
        lookup["tries"] += 1
        if lookup["tries"] >= NAME_TRIES:
            self.finish(ctx)
            ctx.say("eligibility_not_verified", buttons=(
                ctx.button(self.retry_intent), ctx.button("human_handoff")))
            return None
        data["lookup"] = lookup
        ctx.say("name_retry", left=NAME_TRIES - lookup["tries"])
        return None

    def _nik(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        try:
            parsed = nik_rules.parse(text or "")
        except nik_rules.NikError as error:
            if text and sum(ch.isdigit() for ch in text) < 6:
                if asks_what_nik(text):
                    ctx.say("faq/what_is_nik")
                    self.ask(ctx)
                    return None
                if nik_pause(text):
                    self.finish(ctx)
                    ctx.say("nik_pause", command=FORM_COMMANDS.get(self.name, "/start"),
                            buttons=ctx.main_menu())
                    return None
            return Invalid(error.key, error.values)
        data = self.data(ctx)
        data.pop("lookup", None)  # a NIK typed (again) is a new lookup
        data["values"]["nik"] = parsed.value
        self.goto(ctx, "name")
        return None

    # --- the contact step (issue 16 item 5)
    def confirm_contact(self, ctx: Context, next_step: str) -> None:
        """After a matching name: ask for the user's own contact when the registry has a
        phone for the NIK (or the NIK is flagged), else go on to `next_step` at once."""
        data = self.data(ctx)
        if not data.pop("contact_needed", False):
            self.goto(ctx, next_step)
            return
        data["after_contact"] = next_step
        self.goto(ctx, CONTACT_STEP)

    def ask_contact(self, ctx: Context) -> None:
        ctx.say("identity_ask_contact", ask_contact=True, buttons=self._skip_buttons(ctx))

    @staticmethod
    def _skip_buttons(ctx: Context) -> tuple[Button, ...]:
        return (Button(ctx.texts("identity_contact_skip"), SKIP_CONTACT),)

    def _reject_contact(self, ctx: Context, invalid: Invalid) -> None:
        """A typed answer at the contact step: the hint (from the second try on, the
        explanation) with the "share contact" keyboard and "Lewati" again every time, so the
        way on is always one tap (the generic go-on/stop buttons would hide both)."""
        tries = self.data(ctx)["tries"]
        tries[CONTACT_STEP] = tries.get(CONTACT_STEP, 0) + 1
        key = invalid.key
        if tries[CONTACT_STEP] >= MAX_TRIES and self.example(ctx) in ctx.texts:
            tries[CONTACT_STEP] = 0
            key = self.example(ctx)
        ctx.say(key, ask_contact=True, buttons=self._skip_buttons(ctx), **invalid.values)

    def contact(self, ctx: Context, contact: Contact) -> Invalid | None:
        if self.step(ctx) != CONTACT_STEP:
            return super().contact(ctx, contact)
        if not ctx.turn.shares_own_contact:
            return Invalid("identity_contact_not_own", {}, ask_contact=True)
        data = self.data(ctx)
        nik = data["values"]["nik"]
        shared = phone_rules.normalise(contact.phone)
        kpm = repo.find_kpm(ctx.session, nik)
        registry = phone_rules.normalise(kpm.no_hp) if kpm is not None and kpm.no_hp else None
        confirmed = shared is not None and shared == registry
        repo.audit(ctx.session, actor(ctx), CONTACT_ACTION,
                   "matched" if confirmed else "differs", subject=nik_rules.mask(nik),
                   detail={"purpose": self.name}, at=ctx.now)
        if shared is not None:
            data["values"]["shared_phone"] = shared
        self._contact_result(ctx, confirmed)
        return None

    def _contact(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        words = set((text or "").casefold().replace(".", " ").split()) - _FILLER
        if payload == SKIP_CONTACT or (words and words <= _SKIP_WORDS) or (
                text and text.strip() == ctx.texts("identity_contact_skip")):
            nik = self.data(ctx)["values"]["nik"]
            repo.audit(ctx.session, actor(ctx), CONTACT_ACTION, "not_shared",
                       subject=nik_rules.mask(nik), detail={"purpose": self.name}, at=ctx.now)
            self._contact_result(ctx, False)
            return None
        return Invalid("identity_contact_hint", {}, ask_contact=True)

    def _contact_result(self, ctx: Context, confirmed: bool) -> None:
        data = self.data(ctx)
        data["values"]["contact"] = "ok" if confirmed else "differs"
        self.contact_done(ctx, confirmed, data.pop("after_contact", None))

    def contact_done(self, ctx: Context, confirmed: bool, next_step: str | None) -> None:
        """What the form does after the contact step (subclasses): by default go on."""
        if next_step:
            self.goto(ctx, next_step)
