"""Prokus registration through conversation.

consent -> NIK -> full name (checked against the KPM registry) -> [own contact] -> any
active registration and the Prokus rules -> birth date (offered from the NIK) -> phone
(shared contact or typed) -> address offer -> kabupaten/kota -> kecamatan -> desa/kelurahan
-> business field -> description -> months running -> summary with Kirim / Ubah / Batal.

The address as official regions (issue 15): the kecamatan named by the NIK's first six
digits is offered ("Masih tinggal di sana?" Ya / Sudah pindah); "Ya" takes its kabupaten and
kecamatan and goes on to the desa. Otherwise kabupaten (across the country), kecamatan
(within the kabupaten) and desa (within the kecamatan) are typed and matched
(db.region_matching: a clear match is taken, close ones are offered as buttons with
"Tidak ada di daftar", nothing close gets a hint with a real example). "Tidak ada di
daftar" keeps the typed text, flagged for the verifier; the levels under it are then free
text. Without a loaded regions table (or for a kecamatan the table does not know) the
offer is skipped and the steps take free text as before.

Harder enumeration (issue 16 item 5): when the registry has a phone for the NIK (or the
NIK is flagged), the matching name is followed by the shared "contact" step (actions/
identity.py) before anything from the registry is shown. The user's own Telegram contact
matching the registry's number: the form goes on as before, with that number as the
registration's phone (the phone step is skipped). A different number or "Lewati": nothing
from the registry is revealed (no rules verdict, no birth date offered, the name kept as
typed, an active registration only said to exist), the phone is asked as usual, and the
registration can be submitted: it is stored with `kontak_berbeda`, and the verifier decides
(the rules are not checked again at submission for it).

Progress lives in the conversation state, so a restart loses nothing; "batal" saves
nothing; the rules are checked again at submission, which is atomic per NIK.
"""

from __future__ import annotations

import re
from datetime import date

from actions.context import WIB, Context
from actions.eligibility import BusinessStep, choose_sector, sector_buttons
from actions.forms import FORM_PREFIX, Invalid
from actions.identity import CONTACT_STEP, NikForm, actor, note_attempt
from actions.types import Button, Contact, Reply
from db import region_matching, registrations, repo
from db.models import Kpm, Registration
from domain import dates, eligibility, names
from domain import nik as nik_rules
from domain import phone as phone_rules
from domain import registration as rules

# Fields the user may change from the summary (NIK and name were proven together: to
# change them, start again).
EDITABLE = ("birth_date", "phone", "kabupaten", "kecamatan", "desa", "business",
            "description", "months")
SUBMIT_WORDS = {"kirim", "kirimkan", "kirim sekarang", "submit", "daftar", "sudah benar"}
MONTH_UNITS = {"bulan", "bln", "bulanan", "tahun", "thn", "taun", "th", "tahunan"}
EDIT_WORDS = {"ubah", "ganti", "edit", "perbaiki", "ada yang salah"}

# The address: its levels, button payloads and per-step keys of the form state.
ADDRESS = ("kabupaten", "kecamatan", "desa")
OFFER_YES, OFFER_MOVED = "addr_yes", "addr_moved"
REGION, UNLISTED = "region:", "none"  # /form:region:32.01.01 | /form:region:none
PENDING = "region_typed"  # the text typed when candidates were offered
CHOICES = "region_choices"  # the codes offered as buttons
CHAIN = "address_chain"   # a changed level asks the levels under it again
_MOVED = re.compile(r"\b(pindah|sudah tidak|sdh tidak|udah gak|udah ga|sudah bukan|"
                    r"bukan di sana|tidak lagi|gak lagi|ga lagi|nggak lagi)\b")
_STILL = re.compile(r"^(masih|msh|masih di sana|masih disana|masih di situ|ya masih|"
                    r"iya masih|betul|benar|bener)\b")


def status_line(ctx: Context, registration: Registration, with_reason: bool = True) -> str:
    """One registration for the user: number, date, status (and the reason when rejected,
    unless `with_reason` is False: never for a registration made from another account)."""
    text = ctx.texts("status_line", number=registration.number,
                     date=dates.indonesian(registration.created_at.astimezone(WIB).date()),
                     sector=ctx.texts(f"sector/{registration.bidang_usaha}"),
                     status=ctx.texts(f"status/{registration.status}"))
    if with_reason and registration.status == rules.REJECTED and registration.alasan:
        text += "\n" + ctx.texts("status_reason", reason=registration.alasan)
    return text


def typed_name(text: str) -> str:
    """The name as the user typed it, without lead-ins ("nama saya ..."); all lowercase is
    capitalised word by word ("budi santoso" -> "Budi Santoso")."""
    name = names.tidy(names.without_lead_ins(text))
    if name.islower():
        name = " ".join(word[:1].upper() + word[1:] for word in name.split())
    return name


def nik_birth_date(nik: str, today: date) -> date | None:
    """The birth date the NIK implies, with the century that gives an adult's age."""
    candidates = [d for d in nik_rules.parse(nik).birth_dates()
                  if 15 <= eligibility.age_on(d, today) <= 100]
    return max(candidates) if candidates else None


class RegistrationForm(BusinessStep, NikForm):
    name = "registration"
    consent_key = "registration_consent"
    no_consent_key = "registration_no_consent"
    retry_intent = "register_prokus"
    intents = frozenset({"register_prokus"})
    steps = ("consent", "nik", "name", CONTACT_STEP, "birth_date", "phone", "address",
             "kabupaten", "kecamatan", "desa", "business", "description", "months", "summary",
             "edit")
    free_text_steps = frozenset({"name", "kabupaten", "kecamatan", "desa", "description"})

    def values(self, ctx: Context) -> dict:
        return self.data(ctx)["values"]

    def unconfirmed(self, ctx: Context) -> bool:
        """The contact step was asked and not passed: nothing from the registry is shown."""
        return self.values(ctx).get("contact") == "differs"

    def on_back(self, ctx: Context) -> None:
        """Going back leaves a change from the summary, and offers the NIK's date again."""
        self.data(ctx).pop("editing", None)
        self.data(ctx).pop("typing_date", None)
        self.data(ctx).pop(PENDING, None)
        self.data(ctx).pop(CHOICES, None)
        self.data(ctx).pop(CHAIN, None)

    def advance(self, ctx: Context) -> None:
        """Go to the next step, or back to the summary when the user was changing a field
        (a changed kabupaten or kecamatan first asks the levels under it again)."""
        data = self.data(ctx)
        data.pop(PENDING, None)
        data.pop(CHOICES, None)
        step = data["step"]
        if data.get("editing") and data.pop(CHAIN, False):
            self.goto(ctx, ADDRESS[ADDRESS.index(step) + 1])
            return
        if data.pop("editing", False):
            self.goto(ctx, "summary")
            return
        following = self.steps[self.steps.index(step) + 1]
        if following == CONTACT_STEP:  # asked only through confirm_contact
            following = "birth_date"
        if following == "phone" and self.values(ctx).get("contact") == "ok" \
                and self.values(ctx).get("phone"):
            following = "address"  # the confirmed contact is the phone
        if following == "address" and self._nik_place(ctx) is None:
            following = "kabupaten"
        self.goto(ctx, following)

    # ------------------------------------------------------------------ asking
    def ask(self, ctx: Context) -> None:
        step = self.step(ctx)
        if step == "consent":
            if ctx.memo.pop("for_other", False):
                self.data(ctx)["for_other"] = True
            if self.data(ctx).get("for_other"):
                ctx.say("registration_consent_other", buttons=self.consent_buttons(ctx))
            else:
                self.ask_consent(ctx)
        elif step == CONTACT_STEP:
            self.ask_contact(ctx)
        elif step == "birth_date":
            self._ask_birth_date(ctx)
        elif step == "phone":
            ctx.say("registration_ask_phone", ask_contact=True)
        elif step == "address":
            self._ask_address(ctx)
        elif step == "business":
            ctx.say("registration_ask_business", buttons=sector_buttons(ctx))
        elif step == "summary":
            self._show_summary(ctx)
        elif step == "edit":
            ctx.say("registration_ask_edit", buttons=tuple(
                Button(ctx.texts(f"field/{f}"), f"{FORM_PREFIX}edit:{f}") for f in EDITABLE))
        elif step == "desa" and (example := self._desa_example(ctx)):
            ctx.say("registration_ask_desa_in", example=example)
        else:
            ctx.say(f"registration_ask_{step}")

    def _desa_example(self, ctx: Context) -> str | None:
        """A real desa of the chosen kecamatan for the question's example (None when the
        kecamatan was not matched: the general example then)."""
        matched, parent = self._parent(ctx, "desa")
        if not matched or parent is None or ctx.session is None:
            return None
        return region_matching.example_child(ctx.session, parent, "desa")

    def _ask_birth_date(self, ctx: Context) -> None:
        implied = nik_birth_date(self.values(ctx)["nik"], ctx.today)
        if implied is None or self.data(ctx).get("typing_date") or self.unconfirmed(ctx):
            ctx.say("registration_ask_birth_date_typed")
            return
        ctx.say("registration_ask_birth_date", date=dates.indonesian(implied), buttons=(
            Button(ctx.texts("birth_date_ok"), f"{FORM_PREFIX}dob_ok"),
            Button(ctx.texts("birth_date_other"), f"{FORM_PREFIX}dob_other"),
        ))

    def _show_summary(self, ctx: Context) -> None:
        v = self.values(ctx)
        place = {level: v[level] + (" " + ctx.texts("region_unlisted_mark")
                                    if v.get(f"{level}_unlisted") else "")
                 for level in ADDRESS}
        ctx.say("registration_summary",
                nik=nik_rules.mask(v["nik"]), name=v["name"],
                birth_date=dates.indonesian(date.fromisoformat(v["birth_date"])),
                phone=v["phone"], kabupaten=place["kabupaten"], kecamatan=place["kecamatan"],
                desa=place["desa"], sector=ctx.texts(f"sector/{v['business']}"),
                description=v["description"], months=self._months_text(ctx, v["months"]),
                buttons=(Button(ctx.texts("registration_submit"), f"{FORM_PREFIX}submit"),
                         Button(ctx.texts("registration_edit"), f"{FORM_PREFIX}edit"),
                         Button(ctx.texts("registration_cancel"), f"{FORM_PREFIX}stop")))

    @staticmethod
    def _months_text(ctx: Context, months: int) -> str:
        if months == 0:
            return ctx.texts("months_under_one")
        years, rest = divmod(months, 12)
        if years and rest:
            return ctx.texts("months_years_and_months", years=years, months=rest)
        if years:
            return ctx.texts("months_years", years=years)
        return ctx.texts("months_months", months=months)

    # ------------------------------------------------------------------ answers
    def answer(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        return getattr(self, f"_{self.step(ctx)}")(ctx, text, payload)

    def no_consent_buttons(self, ctx: Context) -> tuple[Button, ...]:
        return (ctx.button("faq/requirements"), ctx.button("human_handoff"))

    def _name(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        kpm = self.identify(ctx, text)
        if not isinstance(kpm, Kpm):
            return kpm
        if self.data(ctx).get("contact_needed"):
            # Kept for a registration whose contact is not confirmed (the registry's
            # spelling would tell a stranger more than they typed).
            self.values(ctx)["typed_name"] = typed_name(text or "")
            self.confirm_contact(ctx, "birth_date")
            return None
        self.data(ctx).pop("contact_needed", None)
        self.matched(ctx, kpm)
        return None

    def contact_done(self, ctx: Context, confirmed: bool, next_step: str | None) -> None:
        """After the contact step. Confirmed: the shared number is the phone, and the form
        goes on as after a match (active registration, rules, birth date offered...). Not
        confirmed: nothing from the registry is shown; an active registration for the NIK
        is only said to exist; otherwise the form goes on, the birth date and phone typed."""
        v = self.values(ctx)
        kpm = repo.find_kpm(ctx.session, v["nik"])
        if confirmed and kpm is not None:
            v["phone"] = v.get("shared_phone")
            before = len(ctx.replies)
            self.matched(ctx, kpm)
            if "form" in ctx.state:  # going on: say that the number is taken
                ctx.replies.insert(before, Reply(ctx.texts("registration_contact_confirmed",
                                                           phone=v["phone"])))
            return
        if registrations.active_for_nik(ctx.session, v["nik"]) is not None:
            self.finish(ctx)
            ctx.say("registration_contact_exists", buttons=(ctx.button("human_handoff"),
                                                            *ctx.main_menu()))
            return
        v["name"] = v.get("typed_name") or (kpm.nama if kpm is not None else "")
        ctx.say("registration_contact_unconfirmed")
        self.advance(ctx)

    def matched(self, ctx: Context, kpm: Kpm) -> None:
        """After NIK and name are proven: the active-registration check and the Prokus rules,
        then the next step (also for a NIK and name carried over from the check)."""
        v = self.values(ctx)
        existing = registrations.active_for_nik(ctx.session, v["nik"])
        if existing is not None:
            self.finish(ctx)
            ctx.say("registration_exists", status=status_line(ctx, existing),
                    buttons=ctx.main_menu())
            return
        failed = [c for c in eligibility.evaluate(kpm.status_pkh, kpm.tanggal_lahir, None,
                                                  ctx.today) if c.key != "business" and not c.ok]
        if failed:
            self.finish(ctx)
            self._not_eligible(ctx, failed)
            return
        # Keep the registry's spelling (the match is proven now), never what was typed.
        v["name"] = kpm.nama
        self.advance(ctx)

    def start_verified(self, ctx: Context, nik: str, contact_confirmed: bool = False) -> None:
        """Start at the name step with a NIK whose name was proven in this conversation (the
        eligibility check) and go on as after a match: no new lookup is counted; the carry
        over is audited. Consent was given with the question that offered the switch. When
        the NIK needs the contact step and the caller does not say it was passed, it is
        asked (again) before anything from the registry is shown."""
        kpm = repo.find_kpm(ctx.session, nik)
        if kpm is None:  # gone from the registry since: start from the beginning
            register(ctx)
            return
        ctx.state["form"] = {"name": self.name, "step": "name", "values": {"nik": nik},
                             "tries": {}, "step_keys": ["nik"],
                             "history": [{"step": "consent", "keys": []},
                                         {"step": "nik", "keys": []}]}
        repo.audit(ctx.session, actor(ctx), "nik_carry_over", "verified",
                   subject=nik_rules.mask(nik), detail={"purpose": self.name}, at=ctx.now)
        if not contact_confirmed and (kpm.no_hp or note_attempt(ctx, nik)):
            self.data(ctx)["contact_needed"] = True
            self.confirm_contact(ctx, "birth_date")
            return
        self.matched(ctx, kpm)

    def _not_eligible(self, ctx: Context, failed: list[eligibility.Criterion]) -> None:
        lines = [ctx.texts("registration_not_eligible")]
        lines += [f"❌ {ctx.texts(f'criterion/{c.key}/fail', **c.values)}" for c in failed]
        ctx.replies.append(Reply("\n".join(lines)))
        ctx.say("eligibility_fail", buttons=(ctx.button("human_handoff"), *ctx.main_menu()))

    def _birth_date(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        v = self.values(ctx)
        if payload == f"{FORM_PREFIX}dob_other":
            self.data(ctx)["typing_date"] = True
            self.ask(ctx)
            return None
        offered = not self.unconfirmed(ctx)  # else the date is only typed
        if offered and (payload == f"{FORM_PREFIX}dob_ok" or (
                payload is None and ctx.yes_no(text) == "affirm"
                and not self.data(ctx).get("typing_date"))):
            born = nik_birth_date(v["nik"], ctx.today)
            if born is None:
                return Invalid("date_unreadable", {})
        elif offered and payload is None and ctx.yes_no(text) == "deny":
            self.data(ctx)["typing_date"] = True
            self.ask(ctx)
            return None
        else:
            try:
                born = dates.parse_birth_date(text or "", ctx.today)
            except dates.DateError as error:
                return Invalid(error.key, {})
        self.data(ctx).pop("typing_date", None)
        v["birth_date"] = born.isoformat()
        if offered and not nik_rules.parse(v["nik"]).matches_birth_date(born):
            # (Not when unconfirmed: the warning would let a stranger probe the age.)
            ctx.say("registration_birth_date_warning", date=dates.indonesian(born))
        self.advance(ctx)
        return None

    def _phone(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        number = phone_rules.normalise(text or "")
        if number is None:
            return Invalid("phone_invalid", {}, ask_contact=True)
        self.values(ctx)["phone"] = number
        self.advance(ctx)
        return None

    def contact(self, ctx: Context, contact: Contact) -> Invalid | None:
        if self.step(ctx) != "phone":
            return super().contact(ctx, contact)
        if not ctx.turn.shares_own_contact:
            return Invalid("phone_not_own", {}, ask_contact=True)
        number = phone_rules.normalise(contact.phone)
        if number is None:
            return Invalid("phone_invalid", {}, ask_contact=True)
        self.values(ctx)["phone"] = number
        self.advance(ctx)
        return None

    # ------------------------------------------------------------------ address
    def _nik_place(self, ctx: Context) -> region_matching.NikPlace | None:
        """The kecamatan of the NIK when the regions table has it (None: no offer)."""
        nik = self.values(ctx).get("nik")
        if not nik or ctx.session is None:
            return None
        return region_matching.nik_place(ctx.session, nik)

    def _ask_address(self, ctx: Context) -> None:
        place = self._nik_place(ctx)
        if place is None:  # the table was emptied meanwhile: type the kabupaten instead
            self.data(ctx)["step"] = "kabupaten"
            self.ask(ctx)
            return
        ctx.say("region_offer", kecamatan=place.kecamatan.name, kabupaten=place.kabupaten.name,
                province=place.province.name, buttons=(
                    Button(ctx.texts("region_offer_yes"), f"{FORM_PREFIX}{OFFER_YES}"),
                    Button(ctx.texts("region_offer_moved"), f"{FORM_PREFIX}{OFFER_MOVED}")))

    def _address(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        choice = _offer_choice(ctx, text, payload)
        if choice is None and payload is None and self._names_a_kabupaten(ctx, text):
            # A kabupaten/kota typed instead of Ya / Sudah pindah ("kab bogor"): the address
            # now, taken as the answer to the kabupaten step.
            before = len(ctx.replies)
            self.goto(ctx, "kabupaten")
            del ctx.replies[before:]
            return self._place(ctx, text, None)
        if choice is None:
            return Invalid("region_offer_unclear", {})
        place = self._nik_place(ctx)
        if choice == "moved" or place is None:
            self.goto(ctx, "kabupaten")
            return None
        v = self.values(ctx)
        for level, region in (("kabupaten", place.kabupaten), ("kecamatan", place.kecamatan)):
            v[level], v[f"kode_{level}"] = region.name, region.code
        self.goto(ctx, "desa")
        return None

    @staticmethod
    def _names_a_kabupaten(ctx: Context, text: str | None) -> bool:
        """Whether `text` is close to a kabupaten/kota name (not a question or a remark)."""
        place = rules.clean_place(text or "")
        outcome = region_matching.find(ctx.session, place, None, "kabupaten") if place else None
        return outcome is not None and (outcome.clear is not None or bool(outcome.close))

    def _parent(self, ctx: Context, level: str) -> tuple[bool, str | None]:
        """Whether `level` is matched against the regions table, and under which code (None:
        the whole country, for a kabupaten). Under an unmatched level the text is free."""
        if level == "kabupaten":
            return ctx.session is not None and region_matching.regions.loaded(ctx.session), None
        code = self.values(ctx).get(f"kode_{ADDRESS[ADDRESS.index(level) - 1]}")
        return code is not None, code

    def _place(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        """A kabupaten, kecamatan or desa: a button of the candidates offered, or typed text
        matched within its parent (or kept as typed without a regions table)."""
        level, data = self.step(ctx), self.data(ctx)
        if payload is not None and payload.startswith(f"{FORM_PREFIX}{REGION}"):
            chosen = payload.removeprefix(f"{FORM_PREFIX}{REGION}")
            pending = data.get(PENDING)
            if chosen == UNLISTED:
                if not pending:
                    self.ask(ctx)
                    return None
                return self._take(ctx, level, pending, None, unlisted=True)
            region = region_matching.regions.get(ctx.session, chosen)
            matched, parent = self._parent(ctx, level)
            if region is None or region.level != level or (
                    parent is not None and region.parent_code != parent):
                ctx.say("form_button_expired")
                self.ask(ctx)
                return None
            return self._take(ctx, level, region.name, region.code)
        matched, parent = self._parent(ctx, level)
        if matched and level == "kabupaten" and "," in (text or ""):
            # "Banjar, Kalsel": a kabupaten/kota with its province, matched within it.
            head, _, tail = (text or "").partition(",")
            province = region_matching.find(ctx.session, tail, None, "province")
            if province is not None and province.clear is not None:
                text, parent = head, province.clear.code
        place = rules.clean_place(text or "")
        if place is None:
            return Invalid("place_invalid", {"what": ctx.texts(f"field/{level}")})
        outcome = region_matching.find(ctx.session, place, parent, level) if matched else None
        if outcome is None:  # no regions table, or under a level not in the list: as typed
            return self._take(ctx, level, place, None)
        if outcome.clear is not None:
            return self._take(ctx, level, outcome.clear.name, outcome.clear.code)
        if self._child_of_a_choice(ctx, level, place):
            return None
        data[PENDING] = place
        data[CHOICES] = [c.code for c in outcome.close]
        unlisted = Button(ctx.texts("region_unlisted"), f"{FORM_PREFIX}{REGION}{UNLISTED}")
        where = self._where(ctx, level, parent)
        if outcome.close:
            ctx.say(f"region_choose_{level}", typed=place, where=where,
                    buttons=(*self._choices(ctx, level, outcome.close), unlisted))
            return None
        example = region_matching.example_child(ctx.session, parent, level) or ""
        if level == "kabupaten":
            example = ctx.texts("region_example_kabupaten")
        ctx.say(f"region_not_found_{level}", typed=place, where=where, example=example,
                buttons=(unlisted,))
        return None

    def _child_of_a_choice(self, ctx: Context, level: str, place: str) -> bool:
        """Candidates were offered ("bogor": Kabupaten or Kota Bogor) and the user typed the
        next level instead of choosing ("ciomas"): when it clearly names a region under
        exactly one of the candidates, that candidate and the region are both taken."""
        choices = self.data(ctx).get(CHOICES) or []
        if level == "desa" or not choices:
            return False
        child = ADDRESS[ADDRESS.index(level) + 1]
        settled = region_matching.by_child(ctx.session, choices, place, child)
        if settled is None:
            return False
        parent, region = settled
        before = len(ctx.replies)
        self._take(ctx, level, parent.name, parent.code)
        del ctx.replies[before:]  # the question of the level just answered too
        self._take(ctx, child, region.name, region.code)
        return True

    @staticmethod
    def _where(ctx: Context, level: str, parent: str | None) -> str:
        """The parent as it is named in a hint ("Kabupaten Bogor", "Kecamatan Cibinong")."""
        if parent is None:
            return ""
        region = region_matching.regions.get(ctx.session, parent)
        if region is None:
            return ""
        return region.name if level == "kecamatan" else f"Kecamatan {region.name}"

    @staticmethod
    def _choices(ctx: Context, level: str, candidates) -> list[Button]:
        """One button per candidate; a kabupaten/kota (matched across the country) shows its
        province, a name that repeats shows its code."""
        labels = []
        for candidate in candidates:
            label = candidate.name
            if level == "kabupaten":
                province = region_matching.regions.get(ctx.session, candidate.code[:2])
                label = f"{candidate.name}, {province.name}" if province else label
            labels.append(label)
        return [Button(label if labels.count(label) == 1 else f"{label} ({c.code})",
                       f"{FORM_PREFIX}{REGION}{c.code}")
                for label, c in zip(labels, candidates, strict=True)]

    def _take(self, ctx: Context, level: str, name: str, code: str | None,
              unlisted: bool = False) -> None:
        """Keep one level of the address (an official name with its code, or the text as
        typed) and go on. Changing a kabupaten or kecamatan from the summary asks the
        levels under it again when its code changed."""
        v, data = self.values(ctx), self.data(ctx)
        before = v.get(f"kode_{level}")
        v[level] = name[:rules.PLACE_MAX]
        v.pop(f"kode_{level}", None)
        v.pop(f"{level}_unlisted", None)
        if code is not None:
            v[f"kode_{level}"] = code
        if unlisted:
            v[f"{level}_unlisted"] = True
        if data.get("editing") and level != "desa" and (code != before or unlisted):
            for lower in ADDRESS[ADDRESS.index(level) + 1:]:
                for key in (lower, f"kode_{lower}", f"{lower}_unlisted"):
                    v.pop(key, None)
            data[CHAIN] = True
        self.advance(ctx)

    def _kabupaten(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        return self._place(ctx, text, payload)

    def _kecamatan(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        return self._place(ctx, text, payload)

    def _desa(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        return self._place(ctx, text, payload)

    def _business(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        sector = choose_sector(self, ctx, text, payload)
        if not isinstance(sector, str):
            return sector
        if sector == eligibility.NO_BUSINESS:
            self.finish(ctx)
            self._not_eligible(ctx, [eligibility.Criterion("business", False, {})])
            return None
        if sector == eligibility.REVIEW:  # registered as it is; a petugas judges the field
            ctx.say("sector_review_note")
        self.values(ctx)["business"] = sector
        self.advance(ctx)
        return None

    def _description(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        description = rules.clean_description(text or "")
        if description is None:
            return Invalid("description_invalid", {"min": rules.DESCRIPTION_MIN,
                                                   "max": rules.DESCRIPTION_MAX})
        self.values(ctx)["description"] = description
        self.advance(ctx)
        return None

    def _months(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        unit_for = self.data(ctx).pop("months_number", None)
        if unit_for is not None and (text or "").casefold().strip(" .!") in MONTH_UNITS:
            text = f"{unit_for} {text}"  # "3" then "tahun": the answer to "bulan atau tahun?"
        duration = rules.parse_months(text or "", ctx.today)
        if duration.months is None:
            if duration.key == "months_unit":
                self.data(ctx)["months_number"] = duration.values.get("n")
            return Invalid(duration.key or "months_unreadable", dict(duration.values))
        self.values(ctx)["months"] = duration.months
        self.advance(ctx)
        return None

    def _summary(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        lowered = (text or "").casefold().strip(" .!")
        if payload == f"{FORM_PREFIX}submit" or lowered in SUBMIT_WORDS or (
                payload is None and ctx.yes_no(text) == "affirm"):
            self.submit(ctx)
            return None
        if payload == f"{FORM_PREFIX}edit" or lowered in EDIT_WORDS:
            self.goto(ctx, "edit")
            return None
        return Invalid("summary_unclear", {})

    def _edit(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        prefix = f"{FORM_PREFIX}edit:"
        field = payload.removeprefix(prefix) if payload and payload.startswith(prefix) else None
        if field is None and text:  # a typed field name, e.g. "nomor hp" or "desa"
            lowered = text.casefold().strip()
            field = next((f for f in EDITABLE if lowered == ctx.texts(f"field/{f}").casefold()
                          or lowered == f), None)
        if field not in EDITABLE:
            return Invalid("edit_unclear", {})
        self.data(ctx)["editing"] = True
        self.data(ctx).pop("typing_date", None)
        self.goto(ctx, field)
        return None

    # ------------------------------------------------------------------ submission
    def submit(self, ctx: Context) -> None:
        """Check the rules again with today's registry data, then submit atomically. A
        registration whose contact was not confirmed is not checked here (the verdict would
        tell what the registry holds): it is stored with `kontak_berbeda` for the verifier."""
        v = self.values(ctx)
        unconfirmed = self.unconfirmed(ctx)
        kpm = repo.find_kpm(ctx.session, v["nik"])
        criteria = eligibility.evaluate(kpm.status_pkh if kpm else "", kpm.tanggal_lahir
                                        if kpm else date.min, v["business"], ctx.today)
        if not unconfirmed and (kpm is None or not eligibility.eligible(criteria)):
            self.finish(ctx)
            self._not_eligible(ctx, [c for c in criteria if not c.ok])
            repo.audit(ctx.session, actor(ctx), "registration_submit", "not_eligible",
                       subject=nik_rules.mask(v["nik"]), at=ctx.now)
            return
        codes = {f"kode_{level}": v.get(f"kode_{level}") for level in ADDRESS}
        if any(v.get(f"{level}_unlisted") for level in ADDRESS):
            wilayah_status = region_matching.UNLISTED
        elif all(codes.values()):
            wilayah_status = region_matching.MATCHED
        else:
            wilayah_status = None  # typed without a regions table
        fields = {
            "nik": v["nik"], "nama": v["name"],
            "tanggal_lahir": date.fromisoformat(v["birth_date"]), "no_hp": v["phone"],
            "kabupaten": v["kabupaten"], "kecamatan": v["kecamatan"], "desa": v["desa"],
            "bidang_usaha": v["business"], "deskripsi_usaha": v["description"],
            "lama_usaha_bulan": v["months"], **codes, "wilayah_status": wilayah_status,
            "kode_wilayah": region_matching.kode_wilayah(v["nik"], codes.values()),
            "kontak_berbeda": unconfirmed,
        }
        result = registrations.submit(ctx.session, fields, ctx.user.id, ctx.today.year)
        ctx.memo.pop("active_registrations", None)
        self.finish(ctx)
        repo.audit(ctx.session, actor(ctx), "registration_submit",
                   "submitted" if result.created else "duplicate",
                   subject=result.registration.number,
                   detail={"nik": nik_rules.mask(v["nik"]), "kontak_berbeda": unconfirmed},
                   at=ctx.now)
        if result.created and unconfirmed:
            ctx.say("registration_submitted_check", number=result.registration.number,
                    buttons=(ctx.button("registration_status"), ctx.button("human_handoff")))
        elif result.created:
            ctx.say("registration_submitted", number=result.registration.number,
                    buttons=(ctx.button("registration_status"), ctx.button("faq/mentoring_what")))
        elif unconfirmed:
            ctx.say("registration_contact_exists", buttons=(ctx.button("human_handoff"),
                                                            *ctx.main_menu()))
        else:
            ctx.say("registration_exists", status=status_line(ctx, result.registration),
                    buttons=ctx.main_menu())


FORM = RegistrationForm()


def _offer_choice(ctx: Context, text: str | None, payload: str | None) -> str | None:
    """"yes" (still lives in the NIK's kecamatan), "moved", or None (unclear)."""
    if payload is not None:
        return {f"{FORM_PREFIX}{OFFER_YES}": "yes",
                f"{FORM_PREFIX}{OFFER_MOVED}": "moved"}.get(payload)
    lowered = (text or "").casefold().strip(" .!")
    if _MOVED.search(lowered):
        return "moved"
    if _STILL.search(lowered):
        return "yes"
    return {"affirm": "yes", "deny": "moved"}.get(ctx.yes_no(text) or "")


def tell_registered(ctx: Context, buttons: bool = True) -> bool:
    """When this account already has a registration that is running, say so with its status
    (and the status button) and return True."""
    active = ctx.active_registrations()
    if not active:
        return False
    ctx.say("registration_exists_account",
            status="\n\n".join(status_line(ctx, r) for r in active),
            buttons=(ctx.button("registration_status"), ctx.button("help")) if buttons else ())
    return True


_FAMILY = (r"ibu|ibuk|bu|mamah|mama|mamak|emak|mak|bapak|bpk|pak|ayah|suami|istri|bini|"
           r"anak|adik|adek|kakak|kak|orang ?tua|ortu|mertua|nenek|kakek|mbah|saudara|"
           r"sodara|tetangga|teman|temen|keluarga|orang lain")
_FOR_OTHER = re.compile(
    rf"\b(daftar(in|kan|ken)|mendaftarkan|bantu(in)? daftar|bantu mendaftar)\b.*\b({_FAMILY})\b"
    rf"|\bdaftar\w*\b.*\b(untuk|buat|utk|bwt)\s+({_FAMILY})\b")


def for_someone_else(text: str | None) -> bool:
    """"sy mau daftarin ibu sy", "daftar prokus buat suami": registering another person."""
    return bool(text) and _FOR_OTHER.search(text.casefold()) is not None


def register(ctx: Context) -> None:
    """Start the registration form, unless this account's registration is running. Someone
    registering a family member is told first what is allowed, and asked for the KPM's
    own consent."""
    if tell_registered(ctx):
        return
    if for_someone_else(ctx.turn.text):
        ctx.memo["for_other"] = True
        ctx.say("registration_for_other")
    FORM.start(ctx)


HANDLERS = {"register_prokus": register}
FORMS = {FORM.name: FORM}
