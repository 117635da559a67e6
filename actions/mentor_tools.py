"""Mentor commands in chat: /jadwal_baru, /jadwal_saya, /ubah_jadwal, /batal_jadwal,
/peserta and /kirim. Every command checks the mentor role first; a refusal is audited."""

from __future__ import annotations

from datetime import date, datetime, time

from actions import schedule
from actions.context import Context
from actions.forms import FORM_PREFIX, Form, Invalid
from actions.types import Button
from db import mentoring, repo
from db.models import Mentor, MentoringSession
from db.outbox import enqueue
from domain import dates, regions
from domain import schedule as rules

MIN_TEXT, MAX_TEXT = 5, 1000
PLACE_MAX, TOPIC_MAX = 120, 200


def require_mentor(ctx: Context, command: str) -> Mentor | None:
    """The user's mentor record, or None after "tidak diizinkan" (audited)."""
    mentor = mentoring.mentor_for_user(ctx.session, ctx.user)
    if mentor is None:
        repo.audit(ctx.session, f"user:{ctx.user.id}", "mentor_denied", "denied",
                   subject=command, at=ctx.now)
        ctx.say("mentor_only", buttons=ctx.main_menu())
    return mentor


def _mentor(ctx: Context) -> Mentor | None:
    return mentoring.mentor_for_user(ctx.session, ctx.user)


def _save_buttons(ctx: Context) -> tuple[Button, ...]:
    return (Button(ctx.texts("mentor_save"), f"{FORM_PREFIX}save"),
            Button(ctx.texts("registration_cancel"), f"{FORM_PREFIX}stop"))


def _yes(ctx: Context, text: str | None, payload: str | None) -> bool:
    return payload == f"{FORM_PREFIX}save" or (
        payload is None and ctx.yes_no(text) == "affirm")


def _clean(text: str | None, longest: int) -> str | None:
    value = " ".join((text or "").split())
    return value if 3 <= len(value) <= longest and any(c.isalpha() for c in value) else None


class _SessionSteps(Form):
    """Steps shared by the session forms: date, time, place, topic, picking a session."""

    def _zone(self, ctx: Context):
        mentor = _mentor(ctx)
        return regions.zone(mentor.kode_wilayah if mentor else "31")

    def _date(self, ctx: Context, text: str | None) -> Invalid | None:
        try:
            day = rules.parse_session_date(text or "", ctx.now.astimezone(self._zone(ctx)).date())
        except dates.DateError as error:
            return Invalid(error.key, {})
        self.data(ctx)["values"]["date"] = day.isoformat()
        return None

    def _time(self, ctx: Context, text: str | None) -> Invalid | None:
        try:
            at = rules.parse_session_time(text or "")
        except dates.DateError as error:
            return Invalid(error.key, {})
        values = self.data(ctx)["values"]
        start = rules.starts_at(date.fromisoformat(values["date"]), at, self._zone(ctx))
        if start <= ctx.now:
            return Invalid("session_in_past", {})
        values["time"] = at.strftime("%H:%M")
        return None

    def start_of(self, ctx: Context) -> datetime:
        values = self.data(ctx)["values"]
        return rules.starts_at(date.fromisoformat(values["date"]),
                               time.fromisoformat(values["time"]), self._zone(ctx))

    def _pick(self, ctx: Context, payload: str | None) -> MentoringSession | None:
        prefix = f"{FORM_PREFIX}pick:"
        mentor = _mentor(ctx)
        if mentor is None or not payload or not payload.startswith(prefix):
            return None
        ident = payload.removeprefix(prefix)
        item = ctx.session.get(MentoringSession, int(ident)) if ident.isdigit() else None
        if item is None or item.mentor_id != mentor.id or item.status != mentoring.SCHEDULED:
            return None  # not theirs, or gone meanwhile
        return item

    def ask_pick(self, ctx: Context, key: str) -> None:
        mentor = _mentor(ctx)
        sessions = mentoring.upcoming(ctx.session, mentor.id, ctx.now) if mentor else []
        if not sessions:
            self.finish(ctx)
            ctx.say("mentor_no_sessions", buttons=(Button(ctx.texts("label/mentor_new_session"),
                                                          "/mentor_new_session"),))
            return
        zone = regions.zone(mentor.kode_wilayah)
        ctx.say(key, buttons=tuple(
            Button(f"{s.starts_at.astimezone(zone):%d/%m %H.%M} {s.topik}"[:40],
                   f"{FORM_PREFIX}pick:{s.id}") for s in sessions))


class NewSessionForm(_SessionSteps):
    name = "session_new"
    intents = frozenset({"mentor_new_session"})
    steps = ("date", "time", "place", "topic", "confirm")
    free_text_steps = frozenset({"place", "topic"})

    def ask(self, ctx: Context) -> None:
        step = self.step(ctx)
        if step == "confirm":
            values = self.data(ctx)["values"]
            mentor = _mentor(ctx)
            ctx.say("session_confirm", when=schedule.when_text(
                ctx.texts, self.start_of(ctx), mentor.kode_wilayah if mentor else "31"),
                place=values["place"], topic=values["topic"],
                count=len(mentoring.mentee_user_ids(ctx.session, mentor.id)) if mentor else 0,
                buttons=_save_buttons(ctx))
        else:
            ctx.say(f"session_ask_{step}")

    def answer(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        step = self.step(ctx)
        values = self.data(ctx)["values"]
        if step in ("date", "time"):
            invalid = self._date(ctx, text) if step == "date" else self._time(ctx, text)
            if invalid is None:
                self.goto(ctx, "time" if step == "date" else "place")
            return invalid
        if step in ("place", "topic"):
            value = _clean(text, PLACE_MAX if step == "place" else TOPIC_MAX)
            if value is None:
                return Invalid(f"session_{step}_invalid", {})
            values[step] = value
            self.goto(ctx, "topic" if step == "place" else "confirm")
            return None
        if not _yes(ctx, text, payload):
            return Invalid("session_confirm_unclear", {})
        mentor = _mentor(ctx)
        if mentor is None:
            self.finish(ctx)
            require_mentor(ctx, "/jadwal_baru")
            return None
        start = self.start_of(ctx)
        if start <= ctx.now:
            self.data(ctx)["values"].pop("time", None)
            self.goto(ctx, "date")
            return Invalid("session_in_past", {})
        item, told = schedule.create(ctx.session, ctx.texts, mentor, start, values["place"],
                                     values["topic"], actor=f"user:{ctx.user.id}",
                                     now=ctx.now)
        self.finish(ctx)
        ctx.say("session_saved", session=schedule.session_text(ctx.texts, item,
                                                               mentor.kode_wilayah),
                count=told, buttons=(ctx.button("mentor_sessions"),))
        return None


class EditSessionForm(_SessionSteps):
    name = "session_edit"
    intents = frozenset({"mentor_edit_session"})
    steps = ("pick", "field", "value", "confirm")
    free_text_steps = frozenset({"value"})
    FIELDS = ("date", "time", "place", "topic")

    def ask(self, ctx: Context) -> None:
        step = self.step(ctx)
        values = self.data(ctx)["values"]
        if step == "pick":
            self.ask_pick(ctx, "session_pick_edit")
        elif step == "field":
            ctx.say("session_ask_field", buttons=tuple(
                Button(ctx.texts(f"session_field/{f}"), f"{FORM_PREFIX}field:{f}")
                for f in self.FIELDS))
        elif step == "value":
            ctx.say(f"session_ask_{values['field']}")
        else:
            item = ctx.session.get(MentoringSession, values["session"])
            mentor = _mentor(ctx)
            ctx.say("session_change_confirm", session=self._preview(ctx, item, mentor),
                    buttons=_save_buttons(ctx))

    def _changes(self, ctx: Context, item: MentoringSession, mentor: Mentor) -> dict:
        values = self.data(ctx)["values"]
        field = values["field"]
        if field in ("place", "topic"):
            return {"tempat" if field == "place" else "topik": values["new"]}
        zone = regions.zone(mentor.kode_wilayah)
        local = item.starts_at.astimezone(zone)
        day = date.fromisoformat(values["new"]) if field == "date" else local.date()
        at = time.fromisoformat(values["new"]) if field == "time" else local.time()
        return {"starts_at": rules.starts_at(day, at, zone)}

    def _preview(self, ctx: Context, item: MentoringSession, mentor: Mentor) -> str:
        changed = MentoringSession(starts_at=item.starts_at, tempat=item.tempat,
                                   topik=item.topik)
        for key, value in self._changes(ctx, item, mentor).items():
            setattr(changed, key, value)
        return schedule.session_text(ctx.texts, changed, mentor.kode_wilayah)

    def answer(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        step = self.step(ctx)
        values = self.data(ctx)["values"]
        mentor = _mentor(ctx)
        if mentor is None:
            self.finish(ctx)
            require_mentor(ctx, "/ubah_jadwal")
            return None
        if step == "pick":
            item = self._pick(ctx, payload)
            if item is None:
                return Invalid("session_pick_unclear", {})
            values["session"] = item.id
            self.goto(ctx, "field")
            return None
        if step == "field":
            prefix = f"{FORM_PREFIX}field:"
            field = payload.removeprefix(prefix) if payload and payload.startswith(prefix) \
                else None
            if field not in self.FIELDS:
                return Invalid("session_field_unclear", {})
            values["field"] = field
            self.goto(ctx, "value")
            return None
        item = ctx.session.get(MentoringSession, values["session"])
        if item is None or item.status != mentoring.SCHEDULED:
            self.finish(ctx)
            ctx.say("mentor_session_gone")
            return None
        if step == "value":
            invalid = self._value(ctx, item, mentor, text)
            if invalid is None:
                self.goto(ctx, "confirm")
            return invalid
        if not _yes(ctx, text, payload):
            return Invalid("session_confirm_unclear", {})
        changes = self._changes(ctx, item, mentor)
        if "starts_at" in changes and changes["starts_at"] <= ctx.now:
            self.goto(ctx, "value")
            return Invalid("session_in_past", {})
        told = schedule.change(ctx.session, ctx.texts, mentor, item,
                               actor=f"user:{ctx.user.id}", now=ctx.now, **changes)
        self.finish(ctx)
        ctx.say("session_changed", session=schedule.session_text(ctx.texts, item,
                                                                 mentor.kode_wilayah),
                count=told)
        return None

    def _value(self, ctx: Context, item: MentoringSession, mentor: Mentor,
               text: str | None) -> Invalid | None:
        values = self.data(ctx)["values"]
        field = values["field"]
        zone = regions.zone(mentor.kode_wilayah)
        if field == "date":
            try:
                day = rules.parse_session_date(text or "", ctx.now.astimezone(zone).date())
            except dates.DateError as error:
                return Invalid(error.key, {})
            values["new"] = day.isoformat()
        elif field == "time":
            try:
                values["new"] = rules.parse_session_time(text or "").strftime("%H:%M")
            except dates.DateError as error:
                return Invalid(error.key, {})
        else:
            value = _clean(text, PLACE_MAX if field == "place" else TOPIC_MAX)
            if value is None:
                return Invalid(f"session_{field}_invalid", {})
            values["new"] = value
        changes = self._changes(ctx, item, mentor)
        if "starts_at" in changes and changes["starts_at"] <= ctx.now:
            values.pop("new", None)
            return Invalid("session_in_past", {})
        return None


class CancelSessionForm(_SessionSteps):
    name = "session_cancel"
    intents = frozenset({"mentor_cancel_session"})
    steps = ("pick", "confirm")

    def ask(self, ctx: Context) -> None:
        if self.step(ctx) == "pick":
            self.ask_pick(ctx, "session_pick_cancel")
            return
        item = ctx.session.get(MentoringSession, self.data(ctx)["values"]["session"])
        mentor = _mentor(ctx)
        ctx.say("session_cancel_confirm",
                session=schedule.session_text(ctx.texts, item, mentor.kode_wilayah),
                buttons=(Button(ctx.texts("mentor_cancel_yes"), f"{FORM_PREFIX}save"),
                         Button(ctx.texts("mentor_cancel_no"), f"{FORM_PREFIX}stop")))

    def answer(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        mentor = _mentor(ctx)
        if mentor is None:
            self.finish(ctx)
            require_mentor(ctx, "/batal_jadwal")
            return None
        values = self.data(ctx)["values"]
        if self.step(ctx) == "pick":
            item = self._pick(ctx, payload)
            if item is None:
                return Invalid("session_pick_unclear", {})
            values["session"] = item.id
            self.goto(ctx, "confirm")
            return None
        if not _yes(ctx, text, payload):
            return Invalid("session_confirm_unclear", {})
        item = ctx.session.get(MentoringSession, values["session"])
        self.finish(ctx)
        if item is None or item.status != mentoring.SCHEDULED:
            ctx.say("mentor_session_gone")
            return None
        told = schedule.cancel(ctx.session, ctx.texts, mentor, item,
                               actor=f"user:{ctx.user.id}", now=ctx.now)
        ctx.say("session_cancelled", count=told)
        return None


class BroadcastForm(Form):
    """/kirim: write a message, see a preview, confirm; a report follows when it is done."""

    name = "mentor_broadcast"
    intents = frozenset({"mentor_broadcast"})
    steps = ("text", "confirm")
    verbatim_steps = frozenset({"text"})  # "Siapa yang bisa hadir?" is the message itself

    def ask(self, ctx: Context) -> None:
        if self.step(ctx) == "text":
            ctx.say("broadcast_ask_text")
            return
        mentor = _mentor(ctx)
        count = len(mentoring.mentee_user_ids(ctx.session, mentor.id)) if mentor else 0
        ctx.say("broadcast_preview", text=self.data(ctx)["values"]["text"], count=count,
                buttons=(Button(ctx.texts("registration_submit"), f"{FORM_PREFIX}save"),
                         Button(ctx.texts("registration_cancel"), f"{FORM_PREFIX}stop")))

    def answer(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        mentor = _mentor(ctx)
        if mentor is None:
            self.finish(ctx)
            require_mentor(ctx, "/kirim")
            return None
        if self.step(ctx) == "text":
            value = (text or "").strip()
            if not MIN_TEXT <= len(value) <= MAX_TEXT:
                return Invalid("broadcast_text_invalid", {"min": MIN_TEXT, "max": MAX_TEXT})
            self.data(ctx)["values"]["text"] = value
            self.goto(ctx, "confirm")
            return None
        if not _yes(ctx, text, payload) and (text or "").casefold().strip() != "kirim":
            return Invalid("session_confirm_unclear", {})
        users = mentoring.mentee_user_ids(ctx.session, mentor.id)
        body = ctx.texts("broadcast_from_mentor", mentor=mentor.nama,
                         text=self.data(ctx)["values"]["text"])
        self.finish(ctx)
        if not users:
            ctx.say("broadcast_no_mentees")
            return None
        message = enqueue(ctx.session, "broadcast", body, users,
                          created_by=f"user:{ctx.user.id}", reference=f"mentor:{mentor.id}")
        message.report_to = ctx.user.id
        repo.audit(ctx.session, f"user:{ctx.user.id}", "broadcast_queued", "ok",
                   subject=f"message:{message.id}", detail={"recipients": len(users)},
                   at=ctx.now)
        ctx.say("broadcast_queued", count=len(users))
        return None


NEW, EDIT, CANCEL, BROADCAST = NewSessionForm(), EditSessionForm(), CancelSessionForm(), \
    BroadcastForm()


def _starter(form: Form, command: str):
    def start(ctx: Context) -> None:
        if require_mentor(ctx, command) is not None:
            form.start(ctx)
    start.__doc__ = f"Start {command} for mentors."
    return start


def my_sessions(ctx: Context) -> None:
    """List the mentor's upcoming sessions."""
    mentor = require_mentor(ctx, "/jadwal_saya")
    if mentor is None:
        return
    sessions = mentoring.upcoming(ctx.session, mentor.id, ctx.now)
    if not sessions:
        ctx.say("mentor_no_sessions", buttons=(ctx.button("mentor_new_session"),))
        return
    items = "\n\n".join(f"{i}. " + schedule.session_text(ctx.texts, s, mentor.kode_wilayah)
                        for i, s in enumerate(sessions, start=1))
    ctx.say("mentor_sessions", items=items, buttons=(
        ctx.button("mentor_new_session"), ctx.button("mentor_edit_session"),
        ctx.button("mentor_cancel_session")))


def my_mentees(ctx: Context) -> None:
    """List the mentor's mentees with their registration and phone."""
    mentor = require_mentor(ctx, "/peserta")
    if mentor is None:
        return
    people = mentoring.mentees(ctx.session, mentor.id)
    if not people:
        ctx.say("mentor_no_mentees")
        return
    lines = [ctx.texts("mentee_line", name=r.nama, number=r.number, desa=r.desa,
                       phone=r.no_hp, sector=ctx.texts(f"sector/{r.bidang_usaha}"))
             for r in people]
    ctx.say("mentor_mentees", count=len(people), items="\n".join(lines))


HANDLERS = {
    "mentor_new_session": _starter(NEW, "/jadwal_baru"),
    "mentor_edit_session": _starter(EDIT, "/ubah_jadwal"),
    "mentor_cancel_session": _starter(CANCEL, "/batal_jadwal"),
    "mentor_broadcast": _starter(BROADCAST, "/kirim"),
    "mentor_sessions": my_sessions,
    "mentor_mentees": my_mentees,
}
FORMS = {f.name: f for f in (NEW, EDIT, CANCEL, BROADCAST)}
