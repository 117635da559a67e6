"""What a handler receives: the turn, the user, their state, the session, a way to reply."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.orm import Session

from actions.responses import Responses
from actions.types import Button, Reply, Turn
from db.models import User
from nlu.client import Parse

# The main menu: (label key in responses.yml, payload). Payloads are "/intent".
MAIN_MENU: tuple[tuple[str, str], ...] = (
    ("menu_what_is_prokus", "/faq/what_is_prokus"),
    ("menu_requirements", "/faq/requirements"),
    ("menu_help", "/help"),
)


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

    def main_menu(self) -> tuple[Button, ...]:
        return tuple(Button(self.texts(label), payload) for label, payload in MAIN_MENU)
