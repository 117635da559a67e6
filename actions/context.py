"""What a handler receives: the turn, the user, their state, the session, a way to reply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from actions.responses import Responses
from actions.types import Button, Reply, Turn
from db.models import User
from nlu.client import Parse

# The main menu: intents offered as buttons (payload "/intent", label "label/<intent>").
MAIN_MENU: tuple[str, ...] = ("faq/what_is_prokus", "faq/requirements", "faq/cost", "help")


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
