"""The dialogue core: one turn in, replies out; the user's state lives in the database."""

from __future__ import annotations

import hashlib
import hmac
import logging
import os
import re
import time
from collections.abc import Callable
from dataclasses import replace
from datetime import datetime
from typing import Protocol

from sqlalchemy.orm import Session

from actions import (
    eligibility,
    fallback,
    faq,
    handoff,
    mentor_tools,
    mentoring,
    privacy,
    registration,
    smalltalk,
    status,
    support,
)
from actions.context import POLITE_TAILS, WIB, Context
from actions.forms import FORM_PREFIX, Form, Invalid
from actions.identity import NikForm
from actions.responses import Responses
from actions.sanitize import MAX_CHARS, Problem, check
from actions.types import Button, Reply, Turn
from db import nlu_review, registrations, repo
from db.handoff import OfficeHours
from db.handoff import office_hours as default_office_hours
from db.models import User
from nlu.client import NLUUnavailable, Parse

log = logging.getLogger(__name__)

Handler = Callable[[Context], None]

# Telegram-style commands and what they mean.
COMMANDS = {
    "/start": "start",
    "/menu": "menu",
    "/bantuan": "help",
    "/help": "help",
    "/batal": "cancel",
    "/cek": "check_eligibility",
    "/daftar": "register_prokus",
    "/status": "registration_status",
    "/jadwal": "mentoring_schedule",
    "/pendamping": "mentor_contact",
    "/jadwal_baru": "mentor_new_session",
    "/jadwal_saya": "mentor_sessions",
    "/ubah_jadwal": "mentor_edit_session",
    "/batal_jadwal": "mentor_cancel_session",
    "/peserta": "mentor_mentees",
    "/kirim": "mentor_broadcast",
    "/petugas": "human_handoff",
    "/data_saya": privacy.MY_DATA,
    "/hapus_data": privacy.DELETE,
}

# A turn answered from an NLU intent below this confidence is kept for review (issue 14).
REVIEW_CONFIDENCE = 0.6
# Sources of turns the dialogue did not understand (kept for review as "fallback").
NOT_UNDERSTOOD_SOURCES = {"question_unclear"}

# Outcomes that do not count as understanding the user (they keep the miss counter).
NOT_UNDERSTOOD = {"nlu_fallback", "other", "unknown_command", "bad_input", "nlu_unavailable"}

# Words that always mean "show me the menu" / "stop", whatever the NLU thinks.
MENU_WORDS = {"menu", "menu utama", "kembali ke menu"}
CANCEL_WORDS = {"batal", "batalkan", "btl", "cancel", "stop", "berhenti", "ga jadi", "gak jadi",
                "nggak jadi", "tidak jadi", "gajadi", "keluar"}

# While a form runs, these intents are answered on the side and the form then resumes.
# The bar was 0.75 when DIET alone gave near-1.0 confidences; the ensemble's are lower. On
# the pooled tuning sets (1,086 messages) 0.75 answered 84 % of real questions on the side
# (3 wrong), 0.6 answers 93 % (9 wrong, 1 of them not a question); measured afterwards on
# the untouched fresh set 5: 82 % -> 88 %, wrong 3 -> 4 (docs/nlu.md).
SIDE_INTENTS_MIN_CONFIDENCE = 0.6
NOT_SIDE = {"inform", "affirm", "deny", "greet", "thanks", "nlu_fallback", "out_of_scope",
            "goodbye"}


class NLU(Protocol):
    def parse(self, text: str) -> Parse: ...


# At a free-text step (a name, a place, a description) an answer can sound like a topic the
# NLU knows ("jualan gorengan di depan SD" is close to "which business fields?"), so there
# a message is only taken as a side question when it is phrased as one.
QUESTION_WORDS = {"apa", "apakah", "bagaimana", "gimana", "gmn", "gmana", "bgmn", "berapa",
                  "brp", "kapan", "kpn", "siapa", "dimana", "mana", "kenapa", "knp", "mengapa",
                  "bisakah", "bolehkah", "tanya", "nanya", "jelaskan", "bantuan", "tolong",
                  "petugas", "jadwal", "status", "menu"}


def looks_like_question(text: str) -> bool:
    words = set(text.casefold().replace("?", " ? ").split())
    return "?" in words or bool(words & QUESTION_WORDS)


# The KPM forms one can switch between, by the intent that starts each.
SWITCH_TARGETS = {"check_eligibility": "eligibility", "register_prokus": "registration",
                  "registration_status": "status"}
# Words that may ask for another form ("sy mau daftar"): at a free-text or business step such
# a message goes to the NLU before it is taken as an answer. No name or place has them.
SWITCH_WORDS = {"daftar", "mendaftar", "didaftar", "pendaftaran", "kelayakan", "layak"}


def mentions_switch(text: str) -> bool:
    """"sy mau daftar", "cek kelayakan aja": may ask for another form."""
    return bool(set(_words(text)) & SWITCH_WORDS)


# What is never taken as the answer at a free-text step. Only whole words count ("Sukamana"
# is a village, "mana" is a question word).
_WORD = re.compile(r"[a-z']+")
# Interrogatives that real answers do not start or end with; slang ones anywhere.
INTERROGATIVES = {"apa", "apakah", "bagaimana", "bagaimanakah", "berapa", "kapan", "siapa",
                  "dimana", "mana", "kenapa", "mengapa", "bisakah", "bolehkah", "gimana"}
SLANG_INTERROGATIVES = {"gmn", "gmana", "gmna", "bgmn", "gimana", "gimn", "brp", "kpn", "knp",
                        "tanya", "nanya", "bertanya"}
# Words that may close a question after its question word ("gmn ya kak").
PARTICLES = POLITE_TAILS | {"yah", "yaa", "kah", "tuh", "gan"}
GREETINGS = {"halo", "hallo", "haloo", "hai", "hay", "haii", "hi", "hii", "hello",
             "helo", "hey", "hei", "assalamualaikum", "assalamu'alaikum", "asalamualaikum",
             "assalamualaikom", "assalammualaikum", "asslm", "askum", "salam", "pagi", "siang",
             "sore", "malam", "permisi", "punten", "sampurasun", "misi", "p", "ping",
             "swastiastu", "shalom", "tes", "test"}
# Words that may come with a greeting ("selamat pagi kak", "assalamualaikum wr wb").
GREETING_EXTRAS = PARTICLES | {"selamat", "met", "wr", "wb", "warahmatullahi", "wabarakatuh",
                               "kakak", "ka", "admin", "mimin", "ibu", "bapak", "mba", "bang",
                               "sis", "bro", "semua", "teh", "akang", "kang", "om", "juga",
                               "dek", "adik", "bos", "all", "sobat", "yang", "baik", "ini"}
# Going back one step; starting the form again; words that only move on.
BACK_WORDS = {"kembali", "balik", "sebelumnya", "mundur", "back", "kembali dulu",
              "balik dulu", "mundur dulu", "langkah sebelumnya", "ke langkah sebelumnya",
              "kembali ke langkah sebelumnya", "kembali ke sebelumnya", "balik lagi",
              "pertanyaan sebelumnya", "sebelumnya aja", "kembali aja", "balik aja"}
RESTART_WORDS = {"ulang", "ulangi", "mulai ulang", "mulai lagi", "ulang dari awal",
                 "mulai dari awal", "dari awal", "ulang lagi", "restart", "reset"}
NAV_WORDS = {"lanjut", "lanjutkan", "next", "skip", "lewati", "lewat", "selanjutnya",
             "terus", "oke lanjut", "ok lanjut", "lanjut aja", "lanjut kak", "lanjut dong",
             "berikutnya", "langkah berikutnya"}


def _words(text: str) -> list[str]:
    return _WORD.findall(text.casefold().replace("’", "'"))


def _plain(text: str) -> str:
    """Lower case, single spaces, no punctuation around: for matching short commands."""
    return " ".join(_words(text))


def is_greeting(text: str) -> bool:
    """"halo", "pagi kak", "assalamualaikum wr wb": a greeting and nothing else."""
    if any(ch.isdigit() for ch in text):
        return False
    words = _words(text)
    return bool(words) and any(w in GREETINGS for w in words) and all(
        w in GREETINGS or w in GREETING_EXTRAS for w in words)


def is_question(text: str) -> bool:
    """A message phrased as a question: a "?", a slang question word anywhere, or a
    question word that starts or ends it ("pendaftaran sy yg kemarin gmn") unless every
    word is capitalised like a name ("Siapa Saja")."""
    if "?" in text:
        return True
    words = _words(text)
    if not words:
        return False
    if set(words) & SLANG_INTERROGATIVES:
        return True
    typed = text.split()
    if len(typed) > 1 and all(w[:1].isupper() for w in typed):
        return False  # "Siapa Saja", "Mana Jaya": written as a name, not asked
    while len(words) > 1 and words[-1] in PARTICLES:
        words.pop()
    return words[0] in INTERROGATIVES or words[-1] in INTERROGATIVES


_NOT_WORDS = {"ga", "gak", "gk", "g", "nggak", "ngga", "ngak", "tidak", "tdk", "enggak", "engga"}
_JADI_WORDS = {"jadi", "jd", "jdi"}


def is_cancel(text: str) -> bool:
    """"batal", "stop", "gak jadi", "gk jd deh"...: understood without the NLU, so it works
    when it is down. A polite tail ("deh", "aja", "kak") may follow."""
    words = [w for w in text.casefold().replace("!", " ").replace(".", " ").split()]
    while len(words) > 1 and words[-1] in POLITE_TAILS:
        words.pop()
    if " ".join(words) in CANCEL_WORDS:
        return True
    return len(words) == 2 and words[0] in _NOT_WORDS and words[1] in _JADI_WORDS


# The key of the per-user log tag: set at start-up from PROKUS_LOG_SECRET or the local
# secret file (bot.logging.install_tag_key); until then a random key of this process.
_tag_key: bytes = os.urandom(32)


def set_tag_key(key: bytes) -> None:
    """Use `key` for user_tag (the same key gives the same tags across processes)."""
    global _tag_key
    if len(key) < 16:
        raise ValueError("the log tag key must have at least 16 bytes")
    _tag_key = key


def user_tag(turn: Turn) -> str:
    """A short, stable tag for logs: an HMAC of the user's id with a secret key, so no raw
    Telegram id is in the logs and a known id cannot be hashed to find its lines."""
    message = f"{turn.channel}:{turn.user_id}".encode()
    return hmac.new(_tag_key, message, hashlib.sha256).hexdigest()[:12]


class Dialogue:
    """Route each turn to one handler; build once at start-up, share across turns."""

    def __init__(self, nlu: NLU, texts: Responses, threshold: float = 0.3,
                 clock: Callable[[], datetime] = lambda: datetime.now(WIB),
                 office_hours: OfficeHours | None = None) -> None:
        self.nlu = nlu
        self.texts = texts
        self.threshold = threshold
        self.clock = clock
        self.office_hours = office_hours or default_office_hours()
        self.handlers: dict[str, Handler] = {
            **smalltalk.HANDLERS, **support.HANDLERS, **fallback.HANDLERS,
            **eligibility.HANDLERS, **registration.HANDLERS, **status.HANDLERS,
            **mentoring.HANDLERS, **mentor_tools.HANDLERS, **handoff.HANDLERS,
            **privacy.HANDLERS,
        }
        self.forms: dict[str, Form] = {**eligibility.FORMS, **registration.FORMS,
                                       **status.FORMS, **mentor_tools.FORMS}

    def respond(self, session: Session, turn: Turn,
                parses: dict[str, Parse | None] | None = None,
                now: datetime | None = None, user: User | None = None) -> list[Reply]:
        """Handle one turn inside the caller's session; the caller commits (and may pass
        the turn's user when it has looked it up already).

        Raises NeedParse when the turn needs an NLU parse not in `parses`: the caller rolls
        back, fetches it with `parse()` outside any transaction and calls again (with the
        same `now`, so the second run sees the same clock).
        """
        started = time.perf_counter()
        user = user or repo.get_or_create_user(session, turn.channel, turn.user_id)
        state = repo.load_state(session, user)
        ctx = Context(turn=turn, user=user, state=state, session=session, texts=self.texts,
                      now=now or self.clock(), parses=parses or {})
        line = handoff.incoming(ctx)  # (read before the turn changes the offered buttons)
        cleared = privacy.cleared_notice(ctx)  # retention cleared an unfinished form
        position = privacy.form_position(state)
        source = handoff.route(ctx, self)
        if cleared is not None:  # said first, then the turn as usual
            ctx.replies.insert(0, cleared)
        if source is not None:  # a handoff's turn: no form, no NLU
            self._remember(ctx, touch_form=False)
        else:
            form = self.forms.get(state.get("form", {}).get("name", ""))
            if form is not None:
                source = self._form_turn(ctx, form)
            else:
                source = self._understand(ctx)
                if len(ctx.replies) == (cleared is not None):
                    self._dispatch(ctx)
            self._review(ctx, source)
            self._remember(ctx)
            handoff.remember(ctx, line)
        privacy.note_consent(ctx, position)
        privacy.after_turn(ctx)
        repo.save_state(session, user, state)
        log.info(
            "turn",
            extra={
                "user": user_tag(turn),
                "channel": turn.channel,
                "source": source,
                "intent": ctx.intent,
                "form": (state.get("form") or {}).get("name"),
                "confidence": round(ctx.parse.confidence, 3) if ctx.parse else None,
                "ms": round((time.perf_counter() - started) * 1000, 1),
            },
        )
        return ctx.replies

    def parse(self, text: str) -> Parse | None:
        """The NLU's parse of `text`, or None when it is unavailable (call outside any
        database transaction)."""
        try:
            return self.nlu.parse(text)
        except NLUUnavailable:
            return None

    @staticmethod
    def _hide_contact_keyboard(ctx: Context) -> None:
        """After a reply that showed the "share contact" keyboard, the next reply without
        buttons hides it again (the state remembers it is shown, across turns)."""
        shown = ctx.state.pop("contact_keyboard", False)
        for index, reply in enumerate(ctx.replies):
            if reply.ask_contact:
                shown = True
            elif shown and not reply.buttons:
                ctx.replies[index] = replace(reply, remove_keyboard=True)
                shown = False
        if shown:
            ctx.state["contact_keyboard"] = True

    @staticmethod
    def _review(ctx: Context, source: str) -> None:
        """Keep a turn the dialogue did not understand, or answered from an NLU intent with
        low confidence, for operators to label (stored masked)."""
        parse = ctx.parse
        text, problem = check(ctx.turn.text)
        if parse is None or problem is not None or not text:
            return
        if (source == "nlu" and ctx.intent == "nlu_fallback") or source in NOT_UNDERSTOOD_SOURCES:
            reason = "fallback"
        elif source == "nlu" and parse.confidence < REVIEW_CONFIDENCE:
            reason = "low_confidence"
        else:
            return
        nlu_review.record_miss(ctx.session, text, parse, reason, ctx.now)

    # The dialogue core as the handoff sees it (actions.handoff.Core).
    def intent_of(self, token: str) -> str:
        return self._intent_from_slash(token)

    def dispatch(self, ctx: Context) -> None:
        self._dispatch(ctx)

    def resume_form(self, ctx: Context) -> bool:
        """Ask a running form's question again after a handoff's turn; False if none."""
        form = self.forms.get((ctx.state.get("form") or {}).get("name", ""))
        if form is None:
            return False
        ctx.say("form_back")
        form.ask(ctx)
        return True

    def _remember(self, ctx: Context, touch_form: bool = True) -> None:
        self._hide_contact_keyboard(ctx)
        # Only the buttons of the latest reply can be chosen by typing their label.
        ctx.state["buttons"] = [[b.label, b.payload] for r in ctx.replies for b in r.buttons]
        # A form button is accepted while its form stays at the step that offered it.
        form = ctx.state.get("form")
        if form is not None and touch_form:
            Form.touch(ctx)
            offered = {b.payload for r in ctx.replies for b in r.buttons
                       if b.payload.startswith(FORM_PREFIX)}
            if form.get("offered_at") != form.get("step"):
                form["offered_at"], form["offered"] = form.get("step"), []
            form["offered"] = sorted(set(form.get("offered", [])) | offered)
        ctx.state["last_intent"] = ctx.intent
        if ctx.intent not in NOT_UNDERSTOOD:
            ctx.state.pop("misses", None)
        elif ctx.session is not None and ctx.user is not None and ctx.user.id is not None:
            # Counted for the console's dashboard; the message text is not kept here.
            repo.audit(ctx.session, f"user:{ctx.user.id}", "not_understood", ctx.intent,
                       at=ctx.now)

    # ------------------------------------------------------------------ understanding
    def _understand(self, ctx: Context) -> str:
        """Set `ctx.intent` from the payload, a command, a button label or the NLU.

        Returns where the intent came from; may already append replies (bad input).
        """
        turn = ctx.turn
        if turn.payload:
            if turn.payload.startswith(FORM_PREFIX):  # a button of a form that has ended
                ctx.intent = "form_expired"
                ctx.say("form_expired", buttons=ctx.main_menu())
                return "payload"
            ctx.intent = self._intent_from_slash(turn.payload)
            return "payload"
        if turn.contact is not None:
            ctx.intent = "contact"
            ctx.say("contact_not_needed", buttons=ctx.main_menu())
            return "contact"
        text = self._readable_text(ctx, buttons=ctx.main_menu())
        if text is None:
            ctx.intent = "bad_input"
            return "bad_input"
        if text.startswith("/"):
            ctx.intent = self._intent_from_slash(text.split()[0].split("@")[0])
            return "command"
        payload = self._button_for(ctx, text)
        if payload:
            ctx.intent = self._intent_from_slash(payload)
            return "button_label"
        if text.casefold() in MENU_WORDS:
            ctx.intent = "menu"
            return "keyword"
        if is_cancel(text):
            ctx.intent = "cancel"
            return "keyword"
        if handoff.asks_for_person(text):
            ctx.intent = "human_handoff"
            return "keyword"
        if (own := privacy.keyword(text)) is not None:
            ctx.intent = own
            return "keyword"
        if registration.for_someone_else(text):
            ctx.intent = "register_prokus"
            return "keyword"
        if faq.unofficial_links(text):
            # Whatever is asked about a link that is not *.go.id, the fraud warning comes
            # first: a registration must never start from "is this link real?".
            ctx.intent = "faq/fraud"
            return "keyword"
        if ctx.parse_text(text) is None:
            ctx.intent = "nlu_unavailable"
            ctx.say("nlu_down", buttons=ctx.main_menu())
            return "nlu"
        ctx.intent = self._intent_from_parse(ctx.parse)
        return "nlu"

    @staticmethod
    def _readable_text(ctx: Context, buttons: tuple[Button, ...] = ()) -> str | None:
        """The turn's cleaned text, or None after a polite reply to input we cannot read
        (a sticker or photo, empty text, too long, only emoji)."""
        if ctx.turn.unsupported:
            ctx.say("text_only", buttons=buttons)
            return None
        text, problem = check(ctx.turn.text)
        if problem is None:
            return text
        values = {"limit": MAX_CHARS} if problem is Problem.TOO_LONG else {}
        ctx.say(problem.value, buttons=buttons, **values)
        return None

    @staticmethod
    def _button_for(ctx: Context, text: str) -> str | None:
        """The payload of an offered button whose label the user typed."""
        lowered = text.casefold()
        return next((p for label, p in ctx.state.get("buttons", [])
                     if lowered == label.casefold()), None)

    def _intent_from_slash(self, token: str) -> str:
        if token in COMMANDS:
            return COMMANDS[token]
        name = token.lstrip("/")
        return name if name in self.handlers or faq.is_faq(name) else "unknown_command"

    def _intent_from_parse(self, parse: Parse) -> str:
        if parse.intent == "nlu_fallback" or parse.confidence < self.threshold:
            return "nlu_fallback"
        if parse.intent == "faq":
            return parse.faq_key or "nlu_fallback"
        return parse.intent

    def _dispatch(self, ctx: Context) -> None:
        if faq.is_faq(ctx.intent):
            faq.answer(ctx)
        elif ctx.intent in self.handlers:
            self.handlers[ctx.intent](ctx)
        elif ctx.intent == "unknown_command":
            ctx.say("unknown_command", buttons=ctx.main_menu())
        else:
            fallback.fallback(ctx)

    # ------------------------------------------------------------------ forms
    def _form_turn(self, ctx: Context, form: Form) -> str:
        """Give the active form the turn; cancel, side questions and /start are handled
        here so that every form behaves the same."""
        turn = ctx.turn
        ctx.intent = f"form:{form.name}"
        if turn.contact is not None:
            return self._checked(ctx, form, form.contact(ctx, turn.contact))
        payload = turn.payload
        text = None
        if payload is None:
            text = self._readable_text(ctx)
            if text is None:
                form.ask(ctx)
                return "bad_input"
            if text.startswith("/"):
                payload = text.split()[0].split("@")[0]
            else:
                payload = self._button_for(ctx, text)
        if payload is not None:
            return self._form_payload(ctx, form, payload)
        assert text is not None
        if is_cancel(text):
            form.cancel(ctx)
            return "cancel"
        if text.casefold() in MENU_WORDS:
            return self._side(ctx, form, "menu")
        if handoff.asks_for_person(text):
            return self._side(ctx, form, "human_handoff")
        if ctx.state.get("last_intent") == "switch_offer" and form.data(ctx).get("switch"):
            # The answer to "stop this and start that?"
            choice = ctx.yes_no(text)
            if choice == "affirm":
                return self._switch(ctx, form)
            if choice == "deny":
                form.data(ctx).pop("switch", None)
                form.ask(ctx)
                return "resume"
        plain = _plain(text)
        if plain in BACK_WORDS:
            if not form.back(ctx):
                ctx.say("form_no_previous")
                form.ask(ctx)
                return "back_first"
            return "back"
        if plain in RESTART_WORDS:
            self._resume_offer(ctx)
            return "resume_offer"
        if form.paused(ctx):
            return self._restate(ctx, form)
        step = form.step(ctx)
        if step in form.verbatim_steps:
            return self._checked(ctx, form, form.answer(ctx, text, None))
        if is_greeting(text):
            greeting = len(ctx.replies)
            ctx.say("form_greeting")
            if step == "consent" and isinstance(form, NikForm):
                form.reject(ctx, Invalid("consent_unclear", {}))  # counts as not answered
                if "form" not in ctx.state:  # that ended it: no "we go on" before the end
                    del ctx.replies[greeting]
            else:
                form.ask(ctx)
            return "greeting"
        looks_like_data = sum(ch.isdigit() for ch in text) >= 6
        if step in form.free_text_steps and not looks_like_data:
            if plain in NAV_WORDS:
                ctx.say("form_needs_answer")
                form.ask(ctx)
                return "navigation"
            question = is_question(text) and step not in form.question_ok_steps
            if question or looks_like_question(text) or mentions_switch(text):
                side = self._side_intent(ctx, text)
                if side:
                    return self._side(ctx, form, side)
                if ctx.parse is None and form.data(ctx).get("held") != text:
                    # The NLU is away: a question cannot be told from an answer. Ask once;
                    # the same text again is taken as the answer.
                    form.data(ctx)["held"] = text
                    ctx.say("nlu_down_in_form")
                    form.ask(ctx)
                    return "nlu_unavailable"
                if ctx.parse is not None and question:
                    # A question the NLU cannot answer is never stored as an answer.
                    form.data(ctx).pop("held", None)
                    ctx.say("form_question_unclear")
                    form.ask(ctx)
                    return "question_unclear"
        form.data(ctx).pop("held", None)
        invalid = form.answer(ctx, text, None)
        if invalid is not None and not looks_like_data and step not in form.free_text_steps:
            side = self._side_intent(ctx, text)
            if side:
                return self._side(ctx, form, side)
        return self._checked(ctx, form, invalid)

    def _resume_offer(self, ctx: Context) -> None:
        ctx.say("form_resume_offer", buttons=self._resume_buttons())

    def _resume_buttons(self) -> tuple[Button, ...]:
        return (Button(self.texts("form_resume"), f"{FORM_PREFIX}resume"),
                Button(self.texts("form_restart"), f"{FORM_PREFIX}restart"),
                Button(self.texts("form_stop"), f"{FORM_PREFIX}stop"))

    def _restate(self, ctx: Context, form: Form) -> str:
        """After a pause, say where the user is (the step's question) with Lanjutkan /
        Mulai ulang / Batal, instead of taking this message as an answer."""
        before = len(ctx.replies)
        form.ask(ctx)
        if "form" not in ctx.state:  # asking found the form could not go on (it said why)
            return "form"
        question = "\n".join(r.text for r in ctx.replies[before:])
        del ctx.replies[before:]
        ctx.say("form_paused", form=self.texts(f"form_name/{form.name}"), question=question,
                buttons=self._resume_buttons())
        return "paused"

    @staticmethod
    def _checked(ctx: Context, form: Form, invalid: Invalid | None) -> str:
        if invalid is None:
            return "form"
        form.reject(ctx, invalid)
        return "form_invalid"

    def _form_payload(self, ctx: Context, form: Form, payload: str) -> str:
        if payload.startswith(FORM_PREFIX):
            offered = form.data(ctx).get("offered")
            # (A form saved before buttons were recorded has no list: accept its buttons.)
            if offered is not None and payload not in offered:
                # A button of an earlier step or an earlier form: never act on the form
                # that runs now; ask its current question again.
                ctx.say("form_button_expired")
                form.ask(ctx)
                return "stale_button"
            action = payload.removeprefix(FORM_PREFIX)
            if action == "stop":
                form.cancel(ctx)
                return "cancel"
            if action in ("continue", "resume"):
                form.data(ctx).pop("switch", None)
                form.ask(ctx)
                return "resume"
            if action == "switch":
                return self._switch(ctx, form)
            if action == "restart":
                form.finish(ctx)
                form.start(ctx)
                return "restart"
            return self._checked(ctx, form, form.answer(ctx, None, payload))
        intent = self._intent_from_slash(payload)
        if intent == "cancel":
            form.cancel(ctx)
            return "cancel"
        if intent == "start":
            self._resume_offer(ctx)
            return "resume_offer"
        if intent in form.intents:  # asked to start what is already running
            form.ask(ctx)
            return "resume"
        return self._side(ctx, form, intent)

    def _switch_offer(self, ctx: Context, form: Form, intent: str) -> str | None:
        """Another KPM form asked for while one runs: never continue silently. The same
        form: say it is running and ask on. A registration that already runs for this
        account: told on the side (None: the status is answered as a side question).
        Otherwise ask "stop this and start that?"."""
        target = SWITCH_TARGETS[intent]
        running = self.texts(f"form_name/{form.name}")
        if target == form.name:  # asked to start what is already running
            ctx.say("form_already_running", form=running)
            form.ask(ctx)
            return "resume"
        if intent == "registration_status" and (
                form.name == "registration"
                or registrations.for_user(ctx.session, ctx.user.id)):
            # Shown at once (no form needed), or, in the middle of a registration, "this
            # account has none yet" on the side: a NIK lookup would add nothing there (the
            # registration itself tells about one running for its NIK).
            return None
        if intent == "register_prokus" and registration.tell_registered(ctx, buttons=False):
            ctx.intent = intent
            ctx.say("form_back")
            form.ask(ctx)
            return "side"
        data = form.data(ctx)
        data["switch"] = intent
        ctx.intent = "switch_offer"
        key = f"switch_ask/{form.name}/{target}"
        if target == "registration" and self._verified_nik(form, ctx):
            key += "/carry"
        ctx.say(key, buttons=(Button(self.texts("switch_yes"), f"{FORM_PREFIX}switch"),
                              Button(self.texts(f"switch_no/{form.name}"),
                                     f"{FORM_PREFIX}continue")))
        return "switch_offer"

    @staticmethod
    def _verified_nik(form: Form, ctx: Context) -> str | None:
        """The NIK whose name the eligibility check has proven (it then holds the birth
        date from the registry), else None."""
        data = form.data(ctx)
        values = data.get("values") or {}
        if form.name == "eligibility" and values.get("born") and values.get("nik") \
                and "after_contact" not in data:  # not while its contact step is pending
            return values["nik"]
        return None

    def _switch(self, ctx: Context, form: Form) -> str:
        """End the running form and start the one asked for (a proven NIK and name carried
        from the check into the registration)."""
        intent = form.data(ctx).pop("switch", None)
        if intent not in SWITCH_TARGETS:  # nothing was offered: go on with the form
            form.ask(ctx)
            return "resume"
        nik = self._verified_nik(form, ctx)
        confirmed = (form.data(ctx).get("values") or {}).get("contact") == "ok"
        ctx.say("switch_stopped", form=self.texts(f"form_name/{form.name}"))
        form.finish(ctx)
        ctx.intent = intent
        if intent == "register_prokus" and nik:
            registration.FORM.start_verified(ctx, nik, contact_confirmed=confirmed)
        else:
            self.handlers[intent](ctx)
        return "switch"

    def _starts_form(self, intent: str) -> bool:
        return any(intent in form.intents for form in self.forms.values())

    def _side_intent(self, ctx: Context, text: str) -> str | None:
        """A confident intent that is a question on the side (or cancel), else None."""
        parse = ctx.parse_text(text)
        if parse is None or parse.confidence < SIDE_INTENTS_MIN_CONFIDENCE:
            return None
        intent = self._intent_from_parse(parse)
        return None if intent in NOT_SIDE else intent

    def _side(self, ctx: Context, form: Form, intent: str) -> str:
        """Answer a side question (or cancel), then ask the pending form question again."""
        if intent == "cancel":
            form.cancel(ctx)
            return "cancel"
        if intent in SWITCH_TARGETS and form.name in SWITCH_TARGETS.values():
            offered = self._switch_offer(ctx, form, intent)
            if offered:
                return offered
        ctx.intent = intent
        if intent in handoff.OFFER_INTENTS:
            # The offer keeps its buttons; the form waits (asked again after "Tidak usah",
            # or after the handoff ends).
            self._dispatch(ctx)
            return "handoff_offer"
        if intent in privacy.DELETE_INTENTS:
            # /hapus_data keeps its buttons and the form waits; "Ya, hapus" erases the form
            # with the rest; after "Batal" the form's question comes again.
            self._dispatch(ctx)
            if intent == privacy.CANCEL and "form" in ctx.state:
                ctx.say("form_back")
                form.ask(ctx)
            return "privacy"
        if intent == "menu":
            # The menu, with a first button that takes the user back into the form.
            label = self.texts("form_resume_named",
                               form=self.texts(f"form_name/{form.name}"))
            ctx.say("form_menu", form=self.texts(f"form_name/{form.name}"),
                    buttons=(Button(label, f"{FORM_PREFIX}resume"), *ctx.main_menu()))
            return "menu"
        if intent == "unknown_command":
            ctx.say("unknown_command")
        elif faq.is_faq(intent) or intent in self.handlers and not self._starts_form(intent):
            self._dispatch(ctx)
            # Side answers keep their text but not their buttons: the form's come next.
            ctx.replies[:] = [Reply(r.text) for r in ctx.replies]
        ctx.say("form_back")
        form.ask(ctx)
        return "side"
