"""Channel-free messages: a `Turn` comes in, `Reply` objects go out."""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True)
class Contact:
    """A shared phone contact; `user_id` is whose contact it is (None if unknown)."""

    phone: str
    user_id: str | None = None


@dataclass(frozen=True)
class Turn:
    """One incoming message from a user on some channel."""

    channel: str
    user_id: str
    text: str | None = None
    contact: Contact | None = None
    payload: str | None = None
    unsupported: str | None = None  # a sticker, photo, voice note...: what it was
    update_id: int | None = None  # the channel's id of the update, stored in the inbox

    @property
    def shares_own_contact(self) -> bool:
        return self.contact is not None and self.contact.user_id == self.user_id


@dataclass(frozen=True)
class Button:
    label: str
    payload: str


@dataclass(frozen=True)
class Reply:
    """One outgoing message: text, optional buttons, optionally a "share contact" request."""

    text: str
    buttons: tuple[Button, ...] = field(default=())
    ask_contact: bool = False
    remove_keyboard: bool = False  # hide the "share contact" keyboard shown earlier
