"""Prokus registration through conversation.

consent -> NIK -> full name (checked against the KPM registry, then the Prokus rules and
any active registration) -> birth date (offered from the NIK) -> phone (shared contact or
typed) -> kabupaten/kota -> kecamatan -> desa/kelurahan -> business field -> description ->
months running -> summary with Kirim / Ubah / Batal.

Progress lives in the conversation state, so a restart loses nothing; "batal" saves
nothing; the rules are checked again at submission, which is atomic per NIK.
"""

from __future__ import annotations

import re
from datetime import date

from actions.context import WIB, Context
from actions.eligibility import BusinessStep, choose_sector, sector_buttons
from actions.forms import FORM_PREFIX, Invalid
from actions.identity import NikForm, actor
from actions.types import Button, Contact, Reply
from db import registrations, repo
from db.models import Kpm, Registration
from domain import dates, eligibility
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


def status_line(ctx: Context, registration: Registration) -> str:
    """One registration for the user: number, date, status (and reason when rejected)."""
    text = ctx.texts("status_line", number=registration.number,
                     date=dates.indonesian(registration.created_at.astimezone(WIB).date()),
                     sector=ctx.texts(f"sector/{registration.bidang_usaha}"),
                     status=ctx.texts(f"status/{registration.status}"))
    if registration.status == rules.REJECTED and registration.alasan:
        text += "\n" + ctx.texts("status_reason", reason=registration.alasan)
    return text


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
    steps = ("consent", "nik", "name", "birth_date", "phone", "kabupaten", "kecamatan",
             "desa", "business", "description", "months", "summary", "edit")
    free_text_steps = frozenset({"name", "kabupaten", "kecamatan", "desa", "description"})

    def values(self, ctx: Context) -> dict:
        return self.data(ctx)["values"]

    def on_back(self, ctx: Context) -> None:
        """Going back leaves a change from the summary, and offers the NIK's date again."""
        self.data(ctx).pop("editing", None)
        self.data(ctx).pop("typing_date", None)

    def advance(self, ctx: Context) -> None:
        """Go to the next step, or back to the summary when the user was changing a field."""
        data = self.data(ctx)
        if data.pop("editing", False):
            self.goto(ctx, "summary")
            return
        self.goto(ctx, self.steps[self.steps.index(data["step"]) + 1])

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
        elif step == "birth_date":
            self._ask_birth_date(ctx)
        elif step == "phone":
            ctx.say("registration_ask_phone", ask_contact=True)
        elif step == "business":
            ctx.say("registration_ask_business", buttons=sector_buttons(ctx))
        elif step == "summary":
            self._show_summary(ctx)
        elif step == "edit":
            ctx.say("registration_ask_edit", buttons=tuple(
                Button(ctx.texts(f"field/{f}"), f"{FORM_PREFIX}edit:{f}") for f in EDITABLE))
        else:
            ctx.say(f"registration_ask_{step}")

    def _ask_birth_date(self, ctx: Context) -> None:
        implied = nik_birth_date(self.values(ctx)["nik"], ctx.today)
        if implied is None or self.data(ctx).get("typing_date"):
            ctx.say("registration_ask_birth_date_typed")
            return
        ctx.say("registration_ask_birth_date", date=dates.indonesian(implied), buttons=(
            Button(ctx.texts("birth_date_ok"), f"{FORM_PREFIX}dob_ok"),
            Button(ctx.texts("birth_date_other"), f"{FORM_PREFIX}dob_other"),
        ))

    def _show_summary(self, ctx: Context) -> None:
        v = self.values(ctx)
        ctx.say("registration_summary",
                nik=nik_rules.mask(v["nik"]), name=v["name"],
                birth_date=dates.indonesian(date.fromisoformat(v["birth_date"])),
                phone=v["phone"], kabupaten=v["kabupaten"], kecamatan=v["kecamatan"],
                desa=v["desa"], sector=ctx.texts(f"sector/{v['business']}"),
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
        self.matched(ctx, kpm)
        return None

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

    def start_verified(self, ctx: Context, nik: str) -> None:
        """Start at the name step with a NIK whose name was proven in this conversation (the
        eligibility check) and go on as after a match: no new lookup is counted; the carry
        over is audited. Consent was given with the question that offered the switch."""
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
        if payload == f"{FORM_PREFIX}dob_ok" or (
                payload is None and ctx.yes_no(text) == "affirm"
                and not self.data(ctx).get("typing_date")):
            born = nik_birth_date(v["nik"], ctx.today)
            if born is None:
                return Invalid("date_unreadable", {})
        elif payload is None and ctx.yes_no(text) == "deny":
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
        if not nik_rules.parse(v["nik"]).matches_birth_date(born):
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

    def _place(self, ctx: Context, text: str | None) -> Invalid | None:
        place = rules.clean_place(text or "")
        if place is None:
            return Invalid("place_invalid", {"what": ctx.texts(f"field/{self.step(ctx)}")})
        self.values(ctx)[self.step(ctx)] = place
        self.advance(ctx)
        return None

    def _kabupaten(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        return self._place(ctx, text)

    def _kecamatan(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        return self._place(ctx, text)

    def _desa(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        return self._place(ctx, text)

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
        """Check the rules again with today's registry data, then submit atomically."""
        v = self.values(ctx)
        kpm = repo.find_kpm(ctx.session, v["nik"])
        criteria = eligibility.evaluate(kpm.status_pkh if kpm else "", kpm.tanggal_lahir
                                        if kpm else date.min, v["business"], ctx.today)
        if kpm is None or not eligibility.eligible(criteria):
            self.finish(ctx)
            self._not_eligible(ctx, [c for c in criteria if not c.ok])
            repo.audit(ctx.session, actor(ctx), "registration_submit", "not_eligible",
                       subject=nik_rules.mask(v["nik"]), at=ctx.now)
            return
        fields = {
            "nik": v["nik"], "nama": v["name"],
            "tanggal_lahir": date.fromisoformat(v["birth_date"]), "no_hp": v["phone"],
            "kabupaten": v["kabupaten"], "kecamatan": v["kecamatan"], "desa": v["desa"],
            "bidang_usaha": v["business"], "deskripsi_usaha": v["description"],
            "lama_usaha_bulan": v["months"],
        }
        result = registrations.submit(ctx.session, fields, ctx.user.id, ctx.today.year)
        ctx.memo.pop("active_registrations", None)
        self.finish(ctx)
        repo.audit(ctx.session, actor(ctx), "registration_submit",
                   "submitted" if result.created else "duplicate",
                   subject=result.registration.number,
                   detail={"nik": nik_rules.mask(v["nik"])}, at=ctx.now)
        if result.created:
            ctx.say("registration_submitted", number=result.registration.number,
                    buttons=(ctx.button("registration_status"), ctx.button("faq/mentoring_what")))
        else:
            ctx.say("registration_exists", status=status_line(ctx, result.registration),
                    buttons=ctx.main_menu())


FORM = RegistrationForm()


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
