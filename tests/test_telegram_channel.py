"""The Telegram channel through the real PTB bot and the fake Bot API, with the keyword NLU
(no Rasa model needed): edited messages, long replies, commands for other bots."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from actions.types import Button, Reply, Turn
from bot.app import Assistant
from bot.render import utf16_len
from bot.telegram import addressed_to_other_bot, build_application
from db import repo
from db.models import Conversation
from tests.fakes.telegram_api import BOT_USERNAME
from tests.telegram_harness import BotRunner, Chat


def _run(fake, assistant) -> BotRunner:
    return BotRunner(build_application(fake.token, assistant, fake.base_url)).start()


@pytest.fixture
def bot(fake, assistant):
    runner = _run(fake, assistant)
    yield runner
    runner.stop()


class CannedAssistant(Assistant):
    """Answers every turn with the same replies, queued like real ones."""

    def __init__(self, assistant: Assistant, replies: list[Reply]) -> None:
        super().__init__(assistant.dialogue, assistant.sessions)
        self.replies = replies

    def _run(self, turn: Turn, parses, now) -> list[Reply]:
        with self.sessions.begin() as session:
            if turn.channel in self.outbox_channels:
                user = repo.get_or_create_user(session, turn.channel, turn.user_id)
                self._enqueue(session, turn, user.id, self.replies)
        return self.replies


def _states(assistant: Assistant) -> list[tuple[int, dict]]:
    with assistant.sessions() as session:
        return [(c.user_id, c.state) for c in session.scalars(select(Conversation))]


def test_an_edited_message_is_not_read_and_leaves_the_form_as_it_was(fake, bot, assistant,
                                                                      texts):
    chat = Chat(fake, 2001)
    chat.command("cek").expect("perlu NIK").press(texts("consent_yes")).expect("16 angka")
    before = _states(assistant)
    chat.edit("3201051203900001").expect(texts("edited_not_read"))  # "/cek" edited to a NIK
    assert _states(assistant) == before, "the edit changed nothing"
    chat.send("3201051203900001").expect("nama lengkap")  # the NIK step was still open
    assert texts("internal_error") not in fake.texts(2001)


def test_an_edited_live_location_or_group_message_gets_no_reply(fake, bot, texts):
    fake.push_location(2002)
    chat = Chat(fake, 2002).expect(texts("text_only"))
    fake.push_edit(2002, location={"latitude": -6.21, "longitude": 106.81, "live_period": 900})
    group = -100_2002
    fake.push_text(2002, "/start", chat_type="group", chat_id=group)
    fake.push_edit(2002, "/start lagi", chat_id=group)
    # One user's updates are handled in order: when "halo" is answered, the rest were too.
    chat.send("halo").expect(texts("greet"))
    assert fake.texts(group) == [texts("group_only", link=f"https://t.me/{BOT_USERNAME}")]
    assert fake.texts(2002) == [texts("text_only"), texts("greet")]


@pytest.mark.parametrize("line", ["Peserta dampingan nomor {n}: Contoh Nama (FIKTIF)",
                                  "🙏 {n} 👨‍👩‍👧 Peserta 🙏🙏🙏🙏🙏🙏🙏🙏🙏🙏🙏🙏🙏🙏🙏🙏🙏"])
def test_a_long_reply_arrives_in_parts_with_the_buttons_on_the_last(fake, assistant, line):
    lines: list[str] = []
    while utf16_len("\n".join(lines)) < 5800:
        lines.append(line.format(n=len(lines) + 1))
    text = "\n".join(lines)
    more = Button("Berikutnya", "/peserta:2")
    runner = _run(fake, CannedAssistant(assistant, [Reply(text, buttons=(more,))]))
    try:
        fake.push_text(2003, "/peserta")
        fake.wait_for(lambda: len(fake.messages(2003)) >= 2, 10)
        sent = fake.messages(2003)
    finally:
        runner.stop()
    assert len(sent) == 2, [m.text[:40] for m in sent]
    assert all(utf16_len(m.text) <= 4096 for m in sent)
    assert sent[0].text.split("\n") + sent[1].text.split("\n") == lines, "cut between lines"
    assert sent[0].reply_markup is None
    assert sent[1].button_labels() == ["Berikutnya"]


def test_commands_for_another_bot_are_not_answered_in_groups(fake, bot, texts):
    group = -100_2004
    fake.push_text(2004, "/daftar@OtherBot", chat_type="group", chat_id=group)
    fake.push_text(2004, f"/start@{BOT_USERNAME}", chat_type="group", chat_id=group)
    fake.push_text(2004, "/menu", chat_type="group", chat_id=group)
    Chat(fake, 2004).send("halo").expect(texts("greet"))  # in order: the rest were handled
    assert fake.texts(group) == [texts("group_only", link=f"https://t.me/{BOT_USERNAME}")] * 2


def test_a_command_for_another_bot_in_a_private_chat_is_unknown(fake, bot, texts):
    chat = Chat(fake, 2005)
    chat.send("/daftar@OtherBot").expect(texts("unknown_command"))
    assert chat.buttons() == Chat(fake, 2005).command("menu").expect(texts("menu")).buttons()
    chat.send(f"/daftar@{BOT_USERNAME.lower()}").expect("Pendaftaran Prokus gratis")
    assert sum("Pendaftaran Prokus gratis" in t for t in fake.texts(2005)) == 1


@pytest.mark.parametrize("text, ours", [
    ("/daftar@OtherBot", False), ("/daftar@otherbot extra", False),
    (f"/daftar@{BOT_USERNAME}", True), (f"/daftar@{BOT_USERNAME.upper()} x", True),
    ("/daftar", True), ("halo @OtherBot", True), ("", True), (None, True),
])
def test_addressed_to_other_bot(text, ours):
    assert addressed_to_other_bot(text, BOT_USERNAME) is not ours
