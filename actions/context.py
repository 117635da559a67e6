"""What a handler receives: the turn, the user, their state, the session, a way to reply."""

from __future__ import annotations

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
YES_WORDS = {"ya", "iya", "iyaa", "y", "yes", "setuju", "saya setuju", "boleh", "ok", "oke",
             "baik", "lanjut", "nggih", "muhun", "siap", "mau", "betul", "benar"}
NO_WORDS = {"tidak", "tdk", "nggak", "ngga", "gak", "ga", "gk", "enggak", "engga", "no",
            "jangan", "tidak setuju", "ndak", "mboten", "moal", "belum", "tidak mau"}

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
        lowered = (text or "").casefold().strip(" .!")
        if lowered in YES_WORDS:
            return "affirm"
        if lowered in NO_WORDS:
            return "deny"
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

    def main_menu(self) -> tuple[Button, ...]:
        return tuple(self.button(intent) for intent in MAIN_MENU)
