"""Mentor commands in chat: /jadwal_baru, /jadwal_saya, /ubah_jadwal, /batal_jadwal,
/peserta and /kirim. Every command and every answer checks the mentor role first; a
refusal is audited."""

from __future__ import annotations

from datetime import date, datetime, time
from zoneinfo import ZoneInfo

from actions import schedule
from actions.context import Context
from actions.forms import FORM_PREFIX, Form, Invalid
from actions.sanitize import clean_message
from actions.types import Button
from db import mentoring, repo
from db.models import Mentor, MentoringSession
from db.outbox import enqueue
from domain import dates, numbers, regions
from domain import schedule as rules

MIN_TEXT, MAX_TEXT = 5, 1000
TEXT_MAX = {"place": 120, "topic": 200}
# Long lists come in pages with "Sebelumnya" / "Berikutnya" buttons.
MENTEES_PER_PAGE = 20
SESSIONS_PER_PAGE = 10
MAX_PAGES = 50  # 1,000 mentees; a page number beyond the last shows the last page
MAX_SESSIONS = SESSIONS_PER_PAGE * MAX_PAGES
# Database ids fit a signed 32-bit integer (PostgreSQL's INTEGER): bound forged ids.
MAX_ID_DIGITS, MAX_ID = 10, 2**31 - 1
MENTEES_PAGE, SESSIONS_PAGE = "mentor_mentees_page_", "mentor_sessions_page_"
# Telegram shows about 40 characters of a button on a phone.
LABEL_MAX = 40
# A mentor's own menu: buttons; /ubah_jadwal and /batal_jadwal are named in the text.
MENTOR_MENU = ("mentor_new_session", "mentor_sessions", "mentor_mentees", "mentor_broadcast")


def mentor_of(ctx: Context) -> Mentor | None:
    """The user's mentor record (looked up once per turn)."""
    if "mentor" not in ctx.memo:
        ctx.memo["mentor"] = mentoring.mentor_for_user(ctx.session, ctx.user)
    return ctx.memo["mentor"]


def mentor_menu(ctx: Context, key: str = "mentor_menu") -> bool:
    """Show a mentor their own commands (text `key`, then the menu); False, saying nothing,
    for anyone who is not a mentor."""
    mentor = mentor_of(ctx)
    if mentor is None:
        return False
    ctx.say(key, name=mentor.nama)
    ctx.say("mentor_menu_commands", buttons=tuple(ctx.button(i) for i in MENTOR_MENU))
    return True


def short_label(head: str, tail: str, limit: int = LABEL_MAX) -> str:
    """`head` whole, then as much of `tail` as fits in `limit` characters, cut between
    words with "…" ("05/12 09.00 Mencatat keuangan…")."""
    tail = " ".join(tail.split())
    full = f"{head} {tail}".strip()
    if len(full) <= limit:
        return full
    room = limit - len(head) - 2  # the space after head, and the ellipsis
    if room <= 0:
        return head[:limit]
    cut = tail[:room]
    if tail[room] != " " and " " in cut:  # mid-word: back to the last whole word
        cut = cut.rsplit(" ", 1)[0]
    cut = cut.rstrip(" ,.;:-–—")
    return f"{head} {cut}…" if cut else head


def require_mentor(ctx: Context, command: str) -> Mentor | None:
    """The user's mentor record, or None after "tidak diizinkan" (audited)."""
    mentor = mentor_of(ctx)
    if mentor is None:
        repo.audit(ctx.session, f"user:{ctx.user.id}", "mentor_denied", "denied",
                   subject=command, at=ctx.now)
        ctx.say("mentor_only", buttons=ctx.main_menu())
    return mentor


def _confirm_buttons(ctx: Context, yes: str = "mentor_save",
                     no: str = "registration_cancel") -> tuple[Button, ...]:
    return (Button(ctx.texts(yes), f"{FORM_PREFIX}save"),
            Button(ctx.texts(no), f"{FORM_PREFIX}stop"))


def _yes(ctx: Context, text: str | None, payload: str | None) -> bool:
    return payload == f"{FORM_PREFIX}save" or (
        payload is None and ctx.yes_no(text) == "affirm")


def read_date(ctx: Context, zone: ZoneInfo, text: str | None) -> date | Invalid:
    try:
        return rules.parse_session_date(text or "", ctx.now.astimezone(zone).date())
    except dates.DateError as error:
        return Invalid(error.key, {})


def read_time(text: str | None) -> rules.SessionTime | Invalid:
    """A clock time, with the zone the mentor wrote ("09.00 WIB") if any."""
    try:
        return rules.read_session_time(text or "")
    except dates.DateError as error:
        return Invalid(error.key, {})


def zone_of(mentor: Mentor, written: str | None) -> ZoneInfo:
    """The zone a typed time is in: the one written after it, else the mentor's."""
    return regions.ZONES[written] if written in regions.ZONES else regions.zone(
        mentor.kode_wilayah)


def note_time(ctx: Context, mentor: Mentor, start: datetime, written: rules.SessionTime
              ) -> None:
    """Say how a time in another zone, or "jam 12 malam", was read."""
    own = regions.zone_name(mentor.kode_wilayah)
    if written.zone is not None and written.zone != own:
        local = start.astimezone(regions.zone(mentor.kode_wilayah))
        ctx.say("session_time_converted", typed=f"{written.at:%H.%M} {written.zone}",
                local=f"{local:%H.%M} {own}")
    elif written.at == time(0, 0):
        ctx.say("session_time_midnight")


def page_number(text: str, pages: int) -> int:
    """A page number from a button, bounded to 1..pages: 1 if unreadable, the last page if
    beyond it (a number too long to be a page is never int()'d)."""
    value = numbers.fold_digits(text.strip())
    if not numbers.is_ascii_digits(value):
        return 1
    number = int(value) if len(value) <= 3 else pages
    return max(1, min(number, pages))


def page_buttons(ctx: Context, page: int, pages: int, payload: str) -> tuple[Button, ...]:
    """"Sebelumnya" / "Berikutnya" for page `page` of `pages`; `payload` + page number."""
    buttons = []
    if page > 1:
        buttons.append(Button(ctx.texts("page_previous"), f"{payload}{page - 1}"))
    if page < pages:
        buttons.append(Button(ctx.texts("page_next"), f"{payload}{page + 1}"))
    return tuple(buttons)


def pages_of(count: int, size: int) -> int:
    return min(MAX_PAGES, max(1, -(-count // size)))


def read_text(field: str, text: str | None) -> str | Invalid:
    """A place or topic: 3 characters up to its limit, with letters."""
    value = " ".join((text or "").split())
    if 3 <= len(value) <= TEXT_MAX[field] and any(c.isalpha() for c in value):
        return value
    return Invalid(f"session_{field}_invalid", {})


class MentorForm(Form):
    """A mentor's form: the role is checked again on every answer (it may have been taken
    away meanwhile), then `take` gets the mentor record."""

    command = ""

    def answer(self, ctx: Context, text: str | None, payload: str | None) -> Invalid | None:
        mentor = mentor_of(ctx)
        if mentor is None:
            self.finish(ctx)
            require_mentor(ctx, self.command)
            return None
        return self.take(ctx, mentor, text, payload)

    def take(self, ctx: Context, mentor: Mentor, text: str | None,
             payload: str | None) -> Invalid | None:
        raise NotImplementedError

    def start_command(self, ctx: Context) -> None:
        """Start the form for mentors only."""
        if require_mentor(ctx, self.command) is not None:
            self.start(ctx)


class _SessionForm(MentorForm):
    """Picking one of the mentor's coming sessions, shared by change and cancel."""

    def picked(self, ctx: Context, mentor: Mentor, payload: str | None
               ) -> MentoringSession | None:
        prefix = f"{FORM_PREFIX}pick:"
        ident = payload.removeprefix(prefix) if payload and payload.startswith(prefix) else ""
        number = numbers.read_int(ident, max_digits=MAX_ID_DIGITS, low=1, high=MAX_ID)
        item = ctx.session.get(MentoringSession, number) if number is not None else None
        if item is None or item.mentor_id != mentor.id or item.status != mentoring.SCHEDULED:
            return None  # not theirs (a forged button), or gone meanwhile
        return item

    def ask_pick(self, ctx: Context, key: str) -> None:
        """One button per coming session, SESSIONS_PER_PAGE at a time."""
        mentor = mentor_of(ctx)
        sessions = mentoring.upcoming(ctx.session, mentor.id, ctx.now,
                                      limit=MAX_SESSIONS) if mentor else []
        if not sessions:
            self.finish(ctx)
            ctx.say("mentor_no_sessions", buttons=(ctx.button("mentor_new_session"),))
            return
        zone = regions.zone(mentor.kode_wilayah)
        pages = pages_of(len(sessions), SESSIONS_PER_PAGE)
        page = min(self.data(ctx).get("page", 1), pages)
        shown = sessions[(page - 1) * SESSIONS_PER_PAGE:page * SESSIONS_PER_PAGE]
        ctx.say(key, buttons=tuple(
            Button(short_label(f"{s.starts_at.astimezone(zone):%d/%m %H.%M}", s.topik),
                   f"{FORM_PREFIX}pick:{s.id}") for s in shown) + page_buttons(
            ctx, page, pages, f"{FORM_PREFIX}page:"))

    def turn_page(self, ctx: Context, payload: str | None) -> bool:
        """Show another page of sessions when a page button was pressed."""
        prefix = f"{FORM_PREFIX}page:"
        if not payload or not payload.startswith(prefix):
            return False
        self.data(ctx)["page"] = page_number(payload.removeprefix(prefix), MAX_PAGES)
        self.ask(ctx)
        return True

    def current(self, ctx: Context) -> MentoringSession | None:
        """The picked session, or None after saying it is gone (ends the form)."""
        item = ctx.session.get(MentoringSession, self.data(ctx)["values"]["session"])
        if item is None or item.status != mentoring.SCHEDULED:
            self.finish(ctx)
            ctx.say("mentor_session_gone")
            return None
        return item


class NewSessionForm(MentorForm):
    name = "session_new"
    command = "/jadwal_baru"
    intents = frozenset({"mentor_new_session"})
    steps = ("date", "time", "place", "topic", "confirm")
    free_text_steps = frozenset({"place", "topic"})
    question_ok_steps = frozenset({"topic"})  # "bagaimana mencatat kas" is a topic

    def start_of(self, ctx: Context, mentor: Mentor) -> datetime:
        values = self.data(ctx)["values"]
        return rules.starts_at(date.fromisoformat(values["date"]),
                               time.fromisoformat(values["time"]),
                               zone_of(mentor, values.get("zone")))

    def ask(self, ctx: Context) -> None:
        step = self.step(ctx)
        mentor = mentor_of(ctx)
        if step != "confirm" or mentor is None:
            ctx.say(f"session_ask_{step}")
            return
        values = self.data(ctx)["values"]
        ctx.say("session_confirm",
                when=schedule.when_text(ctx.texts, self.start_of(ctx, mentor),
                                        mentor.kode_wilayah),
                place=values["place"], topic=values["topic"],
                count=len(mentoring.mentee_user_ids(ctx.session, mentor.id)),
                buttons=_confirm_buttons(ctx))

    def take(self, ctx: Context, mentor: Mentor, text: str | None,
             payload: str | None) -> Invalid | None:
        step = self.step(ctx)
        values = self.data(ctx)["values"]
        if step == "date":
            day = read_date(ctx, regions.zone(mentor.kode_wilayah), text)
            if isinstance(day, Invalid):
                return day
            values["date"] = day.isoformat()
            self.goto(ctx, "time")
            return None
        if step == "time":
            typed = read_time(text)
            if isinstance(typed, Invalid):
                return typed
            values["time"] = typed.at.strftime("%H:%M")
            values["zone"] = typed.zone
            start = self.start_of(ctx, mentor)
            if start <= ctx.now:
                values.pop("time")
                return Invalid("session_in_past", {})
            note_time(ctx, mentor, start, typed)
            self.goto(ctx, "place")
            return None
        if step in ("place", "topic"):
            value = read_text(step, text)
            if isinstance(value, Invalid):
                return value
            values[step] = value
            self.goto(ctx, "topic" if step == "place" else "confirm")
            return None
        if not _yes(ctx, text, payload):
            return Invalid("session_confirm_unclear", {})
        start = self.start_of(ctx, mentor)
        if start <= ctx.now:  # the time passed while the form waited
            ctx.say("session_in_past")
            self.goto(ctx, "date")
            return None
        item, told = schedule.create(ctx.session, ctx.texts, mentor, start, values["place"],
                                     values["topic"], actor=f"user:{ctx.user.id}",
                                     now=ctx.now)
        self.finish(ctx)
        ctx.say("session_saved", session=schedule.session_text(ctx.texts, item,
                                                               mentor.kode_wilayah),
                count=told, buttons=(ctx.button("mentor_sessions"),))
        return None


class EditSessionForm(_SessionForm):
    name = "session_edit"
    command = "/ubah_jadwal"
    intents = frozenset({"mentor_edit_session"})
    steps = ("pick", "field", "value", "confirm")
    free_text_steps = frozenset({"value"})
    question_ok_steps = frozenset({"value"})  # a new topic may be phrased as a question
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
            mentor = mentor_of(ctx)
            item = self.current(ctx)
            if item is not None and mentor is not None:
                ctx.say("session_change_confirm", session=self._preview(ctx, item, mentor),
                        buttons=_confirm_buttons(ctx))

    def _changes(self, ctx: Context, item: MentoringSession, mentor: Mentor) -> dict:
        values = self.data(ctx)["values"]
        field = values["field"]
        if field in ("place", "topic"):
            return {"tempat" if field == "place" else "topik": values["new"]}
        zone = regions.zone(mentor.kode_wilayah)
        local = item.starts_at.astimezone(zone)
        day = date.fromisoformat(values["new"]) if field == "date" else local.date()
        at = time.fromisoformat(values["new"]) if field == "time" else local.time()
        if field == "time":  # the time may be written in another zone: "09.00 WIB"
            zone = zone_of(mentor, values.get("new_zone"))
        return {"starts_at": rules.starts_at(day, at, zone)}

    def _preview(self, ctx: Context, item: MentoringSession, mentor: Mentor) -> str:
        current = {"starts_at": item.starts_at, "tempat": item.tempat, "topik": item.topik}
        changed = MentoringSession(**(current | self._changes(ctx, item, mentor)))
        return schedule.session_text(ctx.texts, changed, mentor.kode_wilayah)

    def take(self, ctx: Context, mentor: Mentor, text: str | None,
             payload: str | None) -> Invalid | None:
        step = self.step(ctx)
        values = self.data(ctx)["values"]
        if step == "pick":
            if self.turn_page(ctx, payload):
                return None
            item = self.picked(ctx, mentor, payload)
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
        item = self.current(ctx)
        if item is None:
            return None
        if step == "value":
            invalid = self._value(ctx, item, mentor, text)
            if invalid is None:
                self.goto(ctx, "confirm")
            return invalid
        if not _yes(ctx, text, payload):
            return Invalid("session_confirm_unclear", {})
        changes = self._changes(ctx, item, mentor)
        starts = changes.get("starts_at")
        if starts is not None and starts <= ctx.now:
            ctx.say("session_in_past")  # the time passed while the form waited
            self.goto(ctx, "value")
            return None
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
        if field == "date":
            value = read_date(ctx, regions.zone(mentor.kode_wilayah), text)
        elif field == "time":
            value = read_time(text)
        else:
            value = read_text(field, text)
        if isinstance(value, Invalid):
            return value
        if isinstance(value, rules.SessionTime):
            values["new"], values["new_zone"] = value.at.strftime("%H:%M"), value.zone
        else:
            values["new"] = value.isoformat() if isinstance(value, date) else value
        starts = self._changes(ctx, item, mentor).get("starts_at")
        if starts is not None and starts <= ctx.now:
            values.pop("new")
            return Invalid("session_in_past", {})
        if isinstance(value, rules.SessionTime) and starts is not None:
            note_time(ctx, mentor, starts, value)
        return None


class CancelSessionForm(_SessionForm):
    name = "session_cancel"
    command = "/batal_jadwal"
    intents = frozenset({"mentor_cancel_session"})
    steps = ("pick", "confirm")

    def ask(self, ctx: Context) -> None:
        if self.step(ctx) == "pick":
            self.ask_pick(ctx, "session_pick_cancel")
            return
        mentor = mentor_of(ctx)
        item = self.current(ctx)
        if item is not None and mentor is not None:
            ctx.say("session_cancel_confirm",
                    session=schedule.session_text(ctx.texts, item, mentor.kode_wilayah),
                    buttons=_confirm_buttons(ctx, "mentor_cancel_yes", "mentor_cancel_no"))

    def take(self, ctx: Context, mentor: Mentor, text: str | None,
             payload: str | None) -> Invalid | None:
        if self.step(ctx) == "pick":
            if self.turn_page(ctx, payload):
                return None
            item = self.picked(ctx, mentor, payload)
            if item is None:
                return Invalid("session_pick_unclear", {})
            self.data(ctx)["values"]["session"] = item.id
            self.goto(ctx, "confirm")
            return None
        if not _yes(ctx, text, payload):
            return Invalid("session_confirm_unclear", {})
        item = self.current(ctx)
        if item is None:
            return None
        self.finish(ctx)
        told = schedule.cancel(ctx.session, ctx.texts, mentor, item,
                               actor=f"user:{ctx.user.id}", now=ctx.now)
        ctx.say("session_cancelled", count=told)
        return None


class BroadcastForm(MentorForm):
    """/kirim: write a message, see a preview, confirm; a report follows when it is done."""

    name = "mentor_broadcast"
    command = "/kirim"
    intents = frozenset({"mentor_broadcast"})
    steps = ("text", "confirm")
    verbatim_steps = frozenset({"text"})  # "Siapa yang bisa hadir?" is the message itself

    def ask(self, ctx: Context) -> None:
        mentor = mentor_of(ctx)
        if self.step(ctx) == "text" or mentor is None:
            ctx.say("broadcast_ask_text")
            return
        ctx.say("broadcast_preview", text=self.data(ctx)["values"]["text"],
                count=len(mentoring.mentee_user_ids(ctx.session, mentor.id)),
                buttons=_confirm_buttons(ctx, "registration_submit"))

    def take(self, ctx: Context, mentor: Mentor, text: str | None,
             payload: str | None) -> Invalid | None:
        if self.step(ctx) == "text":
            # The message keeps its line breaks (the core's text has them squeezed).
            value = clean_message(ctx.turn.text) if ctx.turn.text else (text or "").strip()
            if not MIN_TEXT <= len(value) <= MAX_TEXT:
                return Invalid("broadcast_text_invalid", {"min": MIN_TEXT, "max": MAX_TEXT})
            self.data(ctx)["values"]["text"] = value
            self.goto(ctx, "confirm")
            return None
        if not _yes(ctx, text, payload):
            return Invalid("session_confirm_unclear", {})
        users = mentoring.mentee_user_ids(ctx.session, mentor.id)
        body = ctx.texts("broadcast_from_mentor", mentor=mentor.nama,
                         text=self.data(ctx)["values"]["text"])
        self.finish(ctx)
        if not users:
            ctx.say("broadcast_no_mentees")
            return None
        message = enqueue(ctx.session, "broadcast", body, users,
                          created_by=f"user:{ctx.user.id}", reference=f"mentor:{mentor.id}",
                          report_to=ctx.user.id)
        repo.audit(ctx.session, f"user:{ctx.user.id}", "broadcast_queued", "ok",
                   subject=f"message:{message.id}", detail={"recipients": len(users)},
                   at=ctx.now)
        ctx.say("broadcast_queued", count=len(users))
        return None


NEW, EDIT, CANCEL, BROADCAST = (NewSessionForm(), EditSessionForm(), CancelSessionForm(),
                                BroadcastForm())


def my_sessions(ctx: Context, page: int = 1) -> None:
    """List the mentor's upcoming sessions, SESSIONS_PER_PAGE at a time."""
    mentor = require_mentor(ctx, "/jadwal_saya")
    if mentor is None:
        return
    sessions = mentoring.upcoming(ctx.session, mentor.id, ctx.now, limit=MAX_SESSIONS)
    if not sessions:
        ctx.say("mentor_no_sessions", buttons=(ctx.button("mentor_new_session"),))
        return
    pages = pages_of(len(sessions), SESSIONS_PER_PAGE)
    page = min(page, pages)
    first = (page - 1) * SESSIONS_PER_PAGE
    items = "\n\n".join(f"{i}. " + schedule.session_text(ctx.texts, s, mentor.kode_wilayah)
                        for i, s in enumerate(sessions[first:first + SESSIONS_PER_PAGE],
                                              start=first + 1))
    if pages > 1:
        items += "\n\n" + ctx.texts("page_of", page=page, pages=pages)
    ctx.say("mentor_sessions", items=items, buttons=page_buttons(
        ctx, page, pages, f"/{SESSIONS_PAGE}") + (
        ctx.button("mentor_new_session"), ctx.button("mentor_edit_session"),
        ctx.button("mentor_cancel_session")))


def my_mentees(ctx: Context, page: int = 1) -> None:
    """List the mentor's mentees with their registration and phone, a page at a time."""
    mentor = require_mentor(ctx, "/peserta")
    if mentor is None:
        return
    people = mentoring.mentees(ctx.session, mentor.id)
    if not people:
        ctx.say("mentor_no_mentees")
        return
    pages = pages_of(len(people), MENTEES_PER_PAGE)
    page = min(page, pages)
    first = (page - 1) * MENTEES_PER_PAGE
    lines = [ctx.texts("mentee_line", name=r.nama, number=r.number, desa=r.desa,
                       phone=r.no_hp, sector=ctx.texts(f"sector/{r.bidang_usaha}"))
             for r in people[first:first + MENTEES_PER_PAGE]]
    if pages > 1:
        lines.append(ctx.texts("page_of", page=page, pages=pages))
    ctx.say("mentor_mentees", count=len(people), items="\n".join(lines),
            buttons=page_buttons(ctx, page, pages, f"/{MENTEES_PAGE}"))


def _page_handler(show, page: int):
    """A handler showing page `page` of a list (page buttons are commands such as
    "/mentor_mentees_page_2": the core routes a payload by its whole name)."""

    def handler(ctx: Context) -> None:
        show(ctx, page)

    handler.__doc__ = f"Show page {page} of {show.__name__}."
    return handler


HANDLERS = {
    "mentor_new_session": NEW.start_command,
    "mentor_edit_session": EDIT.start_command,
    "mentor_cancel_session": CANCEL.start_command,
    "mentor_broadcast": BROADCAST.start_command,
    "mentor_sessions": my_sessions,
    "mentor_mentees": my_mentees,
    # Pages 2..MAX_PAGES of the lists; a forged larger number is an unknown command.
    **{f"{MENTEES_PAGE}{n}": _page_handler(my_mentees, n) for n in range(2, MAX_PAGES + 1)},
    **{f"{SESSIONS_PAGE}{n}": _page_handler(my_sessions, n) for n in range(2, MAX_PAGES + 1)},
}
FORMS = {f.name: f for f in (NEW, EDIT, CANCEL, BROADCAST)}
