"""Script whole conversations through the real PTB bot and the fake Bot API.

    chat = Chat(fake, user_id=1001)
    chat.command("start").expect("Asisten Prokus")
    chat.press("Siapa yang bisa ikut?").expect("graduasi")
    chat.send("makasih").expect("Sama-sama")
"""

from __future__ import annotations

import asyncio
import threading

from telegram.ext import Application

from bot.polling import DurablePoller
from tests.fakes.telegram_api import FakeTelegram, SentMessage


class BotRunner:
    """Run a PTB Application (long polling) in a background thread with its own loop."""

    def __init__(self, app: Application) -> None:
        self.app = app
        # The bot's own durable polling (store in the inbox, then confirm), as in `prokus run`.
        self.poller = DurablePoller(app, app.bot_data["assistant"].sessions, timeout=1)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> BotRunner:
        self.thread.start()
        asyncio.run_coroutine_threadsafe(self._start(), self.loop).result(timeout=30)
        return self

    async def _start(self) -> None:
        self.stopping = asyncio.Event()
        await self.app.initialize()
        if self.app.post_init:
            await self.app.post_init(self.app)
        await self.app.start()
        self.poll = asyncio.ensure_future(self.poller.run(self.stopping))

    def stop(self) -> None:
        asyncio.run_coroutine_threadsafe(self._stop(), self.loop).result(timeout=30)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join(timeout=10)

    async def _stop(self) -> None:
        self.stopping.set()
        await self.poll
        from bot.telegram import stop_delivery

        if self.app.running:  # the order of bot.telegram.serve
            await self.app.stop()
        await stop_delivery(self.app)
        await self.app.shutdown()


class ConversationError(AssertionError):
    pass


class Chat:
    """One user's private chat with the bot; every step waits for the bot, then returns self."""

    def __init__(self, fake: FakeTelegram, user_id: int, timeout: float = 15.0) -> None:
        self.fake = fake
        self.user_id = user_id
        self.timeout = timeout
        self._seen = len(fake.messages(user_id))
        self.last: SentMessage | None = None

    # --- what the user does
    def send(self, text: str) -> Chat:
        self.fake.push_text(self.user_id, text)
        return self

    def edit(self, text: str, message_id: int | None = None) -> Chat:
        """Edit one of the user's messages (default: the last one) to `text`."""
        self.fake.push_edit(self.user_id, text, message_id=message_id)
        return self

    def command(self, name: str) -> Chat:
        self.fake.push_command(self.user_id, name)
        return self

    def share_contact(self, phone: str, own: bool = True) -> Chat:
        self.fake.push_contact(self.user_id, phone, contact_user_id=-1 if own else None)
        return self

    def press_contact_button(self) -> Chat:
        """Press the "share contact" keyboard button of the last message: Telegram then
        sends the user's own contact (with their user id)."""
        markup = (self.last.reply_markup if self.last else None) or {}
        for row in markup.get("keyboard", []):
            for button in row:
                if isinstance(button, dict) and button.get("request_contact"):
                    return self.share_contact(f"+62812{self.user_id:07d}"[:14], own=True)
        raise ConversationError(f"no contact button on the last message: {self.transcript()}")

    def sticker(self) -> Chat:
        self.fake.push_sticker(self.user_id)
        return self

    def press(self, label: str) -> Chat:
        """Press the button labelled `label` on the newest bot message that has it."""
        for sent in reversed(self.fake.messages(self.user_id)):
            markup = sent.reply_markup or {}
            for row in markup.get("inline_keyboard", []):
                for button in row:
                    if button["text"] == label:
                        self.fake.push_callback(self.user_id, sent.message_id,
                                                button["callback_data"])
                        return self
            for row in markup.get("keyboard", []):
                for button in row:
                    button = button if isinstance(button, dict) else {"text": button}
                    if button["text"] == label:
                        if button.get("request_contact"):
                            raise ConversationError("use share_contact() for a contact button")
                        return self.send(label)
        raise ConversationError(f"no button {label!r}; bot said: {self.transcript()}")

    # --- what the bot does
    def expect(self, contains: str, timeout: float | None = None) -> Chat:
        """Wait for a new bot message containing `contains`; later steps start after it."""

        def find():
            messages = self.fake.messages(self.user_id)
            for index in range(self._seen, len(messages)):
                if contains.lower() in messages[index].text.lower():
                    return index + 1
            return None

        found = self.fake.wait_for(find, timeout or self.timeout)
        if not found:
            raise ConversationError(
                f"no new bot message contains {contains!r}; bot said: {self.transcript()}"
            )
        self._seen = found
        self.last = self.fake.messages(self.user_id)[found - 1]
        return self

    def expect_silence(self, seconds: float = 1.5) -> Chat:
        """Assert the bot sends nothing new for `seconds`."""
        before = len(self.fake.messages(self.user_id))
        changed = self.fake.wait_for(
            lambda: len(self.fake.messages(self.user_id)) > before, seconds
        )
        if changed:
            raise ConversationError(f"expected silence; bot said: {self.transcript()}")
        return self

    def buttons(self) -> list[str]:
        """Labels of the buttons on the last expected message."""
        return self.last.button_labels() if self.last else []

    def transcript(self) -> list[str]:
        return [m.text for m in self.fake.messages(self.user_id)][-6:]
