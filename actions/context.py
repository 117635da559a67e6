"""What a handler receives: the turn, the user, their state, the session, a way to reply."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session

from actions.responses import Responses
from actions.types import Button, Reply, Turn
from db.models import User
from domain import regions
from nlu.client import Parse

WIB = ZoneInfo("Asia/Jakarta")
# Short yes/no answers, also Javanese, Sundanese, Betawi and slang (compared after
# `_yes_no_form`: lowercase, no punctuation or emoji, repeated letters squeezed).
YES_WORDS = {
    "ya", "iya", "iyaa", "iyah", "iye", "iyo", "y", "yes", "yup", "yups", "yoi", "yo",
    "setuju", "saya setuju", "sy setuju", "aku setuju", "boleh", "ok", "oke", "okey", "okay",
    "baik", "lanjut", "lanjutkan", "mau", "saya mau", "betul", "benar", "bener", "sip", "siap",
    "gas", "gaskan", "silakan", "silahkan", "tentu", "pasti", "sudah benar",
    "nggih", "enggih", "inggih", "injih", "leres", "hooh", "ho oh", "monggo", "mangga",
    "muhun", "sumuhun", "enya", "heeh", "he eh", "sok", "sok atuh", "mangga atuh", "hayu",
    "hayuk", "ayo", "ayok", "gaskeun", "oke siap", "ok siap", "iya bisa", "correct", "ok correct",
}
NO_WORDS = {
    "tidak", "tdk", "nggak", "ngga", "gak", "ga", "gk", "g", "enggak", "engga", "ndak", "nda",
    "no", "nope", "jangan", "belum", "blm", "tidak mau", "gak mau", "ga mau", "gk mau",
    "nggak mau", "ngga mau", "enggak mau", "gamau", "tidak setuju", "ga setuju", "gak setuju",
    "tidak dulu", "gak dulu", "ga dulu", "nggak dulu", "ngga dulu", "belum dulu",
    "nanti", "nanti saja", "nanti aja", "ntar", "ntar aja", "entar", "entar aja", "nanti dulu",
    "lain kali", "lain kali saja", "lain waktu", "ga usah", "gak usah", "tidak usah",
    "nggak usah", "gausah", "mboten", "ora", "ora usah", "emoh", "wegah", "henteu", "teu",
    "moal", "embung", "alim", "kagak", "kaga", "ogah",
}
# Words that may follow a yes or no without changing it: "iya kak", "ngga dulu deh".
POLITE_TAILS = {
    "kak", "ka", "kakak", "bu", "buk", "pak", "mas", "mbak", "mba", "teh", "kang", "min",
    "admin", "deh", "dah", "aja", "saja", "ya", "dong", "sih", "lah", "nih", "dulu", "ah",
    "mah", "atuh", "wae", "mawon", "kok", "terima kasih", "makasih", "trims", "sudah", "udah",
}
_NOT_WORD = re.compile(r"[^\w\s]|_")
_REPEATS = re.compile(r"(\w)\1+")


def _yes_no_form(text: str) -> str:
    """Lowercase words without punctuation or emoji, each run of one letter squeezed to one
    ("Iyaaa!!" -> "iya", "he'eh" -> "heh", "nggak" -> "ngak"): both sides compare alike."""
    text = _NOT_WORD.sub(" ", text.casefold().replace("'", "").replace("’", ""))
    return " ".join(_REPEATS.sub(r"\1", text).split())


def _forms(words: set[str]) -> frozenset[str]:
    return frozenset(_yes_no_form(w) for w in words)


_YES, _NO, _TAILS = _forms(YES_WORDS), _forms(NO_WORDS), _forms(POLITE_TAILS)
MAX_YES_NO_WORDS = 6


def short_yes_no(text: str | None) -> str | None:
    """"affirm" or "deny" for a short answer: a yes or no word (or phrase) first, then only
    more of the same or polite words ("iya kak", "ngga dulu deh", "ya kak 🙏"); None for
    anything else, such as a sentence that merely contains one of the words."""
    words = _yes_no_form(text or "").split()
    if not words or len(words) > MAX_YES_NO_WORDS:
        return None
    found: set[str] = set()
    i, first = 0, True
    while i < len(words):
        for size in range(min(3, len(words) - i), 0, -1):
            phrase = " ".join(words[i:i + size])
            kind = ("affirm" if phrase in _YES else "deny" if phrase in _NO else None)
            if kind and (first or phrase not in _TAILS):
                found.add(kind)
                break
            if not first and phrase in _TAILS:
                break
        else:
            return None
        i, first = i + size, False
    return found.pop() if len(found) == 1 else None


# The main menu: intents offered as buttons (payload "/intent", label "label/<intent>").
MAIN_MENU: tuple[str, ...] = (
    "faq/what_is_prokus", "faq/requirements", "check_eligibility", "register_prokus",
    "faq/cost", "help",
)


class NeedParse(Exception):  # noqa: N818 - a signal, not an error
    """The turn needs the NLU's parse of `text`: the caller ends the transaction, asks the
    NLU (no database transaction stays open during an NLU call) and runs the turn again."""

    def __init__(self, text: str) -> None:
        super().__init__("NLU parse needed")
        self.text = text


@dataclass
class Context:
    """Handlers only read from here and append replies (like rasa-sdk's dispatcher)."""

    turn: Turn
    user: User
    state: dict[str, Any]
    session: Session
    texts: Responses
    intent: str = ""
    parse: Parse | None = None
    replies: list[Reply] = field(default_factory=list)
    now: datetime = field(default_factory=lambda: datetime.now(WIB))
    # NLU parses fetched before this run of the turn; None: the NLU was unavailable.
    parses: dict[str, Parse | None] = field(default_factory=dict)
    memo: dict[str, Any] = field(default_factory=dict)  # lookups made once per turn

    @property
    def zone(self) -> ZoneInfo:
        """The user's time zone: from the NIK being used in a form (its province), else WIB."""
        nik = ((self.state.get("form") or {}).get("values") or {}).get("nik")
        return regions.zone(nik[:2]) if isinstance(nik, str) and len(nik) == 16 else WIB

    @property
    def today(self) -> date:
        """Today's date where the user lives (WIB, WITA or WIT)."""
        return self.now.astimezone(self.zone).date()

    def parse_text(self, text: str) -> Parse | None:
        """The NLU's parse of `text` (the first one asked for in this turn); None when the
        NLU is unavailable. Raises NeedParse when it has not been fetched yet."""
        if self.parse is None:
            if text not in self.parses:
                raise NeedParse(text)
            self.parse = self.parses[text]
        return self.parse

    def yes_no(self, text: str | None) -> str | None:
        """"affirm", "deny" or None, from common words first, then the NLU."""
        word = short_yes_no(text)
        if word is not None:
            return word
        parse = self.parse_text(text) if text else None
        if parse and parse.intent in ("affirm", "deny") and parse.confidence >= 0.6:
            return parse.intent
        return None

    def say(
        self,
        key: str,
        buttons: tuple[Button, ...] = (),
        ask_contact: bool = False,
        **values: object,
    ) -> None:
        """Append the text named `key` (from responses.yml) as a reply."""
        self.replies.append(Reply(self.texts(key, **values), buttons, ask_contact))

    def button(self, intent: str) -> Button:
        """A button that triggers `intent`, labelled from responses.yml."""
        return Button(self.texts(f"label/{intent}"), f"/{intent}")

    def active_registrations(self) -> list[Any]:
        """This account's registrations that are still running (looked up once per turn)."""
        if "active_registrations" not in self.memo:
            from db import registrations  # (kept out of the module's import time)
            from domain.registration import ACTIVE

            found = registrations.for_user(self.session, self.user.id) if (
                self.session is not None and self.user is not None
                and self.user.id is not None) else []
            self.memo["active_registrations"] = [r for r in found if r.status in ACTIVE]
        return self.memo["active_registrations"]

    def main_menu(self) -> tuple[Button, ...]:
        """The menu; someone whose registration is running gets "Status pendaftaran" in
        place of "Daftar Prokus"."""
        registered = bool(self.active_registrations())
        return tuple(self.button("registration_status" if registered
                                 and intent == "register_prokus" else intent)
                     for intent in MAIN_MENU)
