"""A whole handoff through Telegram (issue 14 item 6): the real PTB bot and the fake Bot API.
The user asks for a person, confirms and writes; an operator takes the ticket, replies and
closes it through db.handoff_inbox (what the web console calls); the outbox worker delivers
the reply, the user answers, and after the close the user is back with the bot."""

from __future__ import annotations

import asyncio

import pytest
from sqlalchemy import select

from bot.outbox_runner import worker_config
from bot.settings import Settings
from bot.telegram import build_application
from bot.telegram_sender import TelegramSender
from db import handoff_inbox
from db.engine import make_sessionmaker
from db.models import HandoffMessage, HandoffTicket, OutboxItem, OutboxMessage, utcnow
from outbox.worker import Worker
from tests.chat_helpers import TODAY, Clock, load_registry, make_bot, make_nlu
from tests.telegram_harness import BotRunner, Chat

USER = 4101


@pytest.fixture
def nlu():
    fake = make_nlu()
    fake.rules["bicara dengan orang"] = ("human_handoff", 0.93)
    return fake


@pytest.fixture
def runner(fake, sqlite_engine, texts, nlu):
    load_registry(sqlite_engine)
    assistant = make_bot(sqlite_engine, nlu, texts, Clock(TODAY))
    bot = BotRunner(build_application(fake.token, assistant, fake.base_url)).start()
    yield bot
    bot.stop()


def deliver(sessions, fake) -> None:
    """Run one outbox worker until nothing is due (the bot's own worker in production)."""
    async def go():
        sender = TelegramSender(fake.token, fake.base_url)
        config = worker_config(Settings())
        config.rate, config.poll_seconds, config.reply_grace_seconds = 200.0, 0.05, 0.0
        try:
            await asyncio.wait_for(Worker(sessions, sender, config).run(
                asyncio.Event(), until_idle=True), 30)
        finally:
            await sender.close()

    asyncio.run(go())


def the_ticket(sessions) -> HandoffTicket:
    with sessions() as session:
        ticket = session.scalars(select(HandoffTicket)).one()
        session.expunge(ticket)
        return ticket


def test_a_full_handoff_through_telegram(fake, runner, sqlite_engine, nlu, texts):
    sessions = make_sessionmaker(sqlite_engine)
    chat = Chat(fake, USER)
    chat.send("mau bicara dengan orang").expect("Sambungkan sekarang?")
    assert chat.buttons() == ["Ya, sambungkan", "Tidak usah"]
    chat.press("Ya, sambungkan").expect(texts("handoff_ask_question")[:30])
    chat.send("Tanggal lahir saya di data salah, NIK 3201051203900001").expect("tiket #")
    assert "Senin, 30 November pukul 08.00 WIB" in chat.last.text  # Saturday: closed
    ticket = the_ticket(sessions)
    assert ticket.status == "waiting"

    # A sticker: the usual text-only reply, and the ticket notes it.
    fake.push_sticker(USER)
    chat.expect(texts("text_only"))

    # The operator takes the ticket and replies; the outbox worker delivers the reply.
    with sessions.begin() as session:
        handoff_inbox.take(session, ticket.id, "rina", utcnow())
        handoff_inbox.reply(session, ticket.id, "rina", "Baik Bu, akan kami cek ke dinas.",
                            utcnow())
    deliver(sessions, fake)
    chat.expect("Baik Bu, akan kami cek ke dinas.")
    assert chat.last.text.startswith("💬 Balasan petugas")

    # The user answers: to the ticket, not the NLU.
    seen = len(nlu.seen)
    chat.send("Terima kasih, saya tunggu").expect(texts("handoff_forwarded"))
    assert len(nlu.seen) == seen
    with sessions() as session:
        said = session.execute(select(HandoffMessage.sender, HandoffMessage.kind,
                                      HandoffMessage.text)
                               .where(HandoffMessage.ticket_id == ticket.id)
                               .order_by(HandoffMessage.id)).all()
    from_user = [(kind, text) for sender, kind, text in said if sender == "user"]
    assert from_user[-2:] == [("sticker", "(mengirim stiker)"),
                              ("text", "Terima kasih, saya tunggu")]
    assert not any("3201051203900001" in text for _, _, text in said)

    # The operator closes the ticket; the user is told, then talks to the bot again.
    with sessions.begin() as session:
        handoff_inbox.close(session, ticket.id, "rina", "selesai", utcnow())
    deliver(sessions, fake)
    chat.expect(texts("handoff_closed_by_operator")[:40])
    chat.send("halo").expect(texts("greet"))
    assert the_ticket(sessions).status == "closed"
    with sessions() as session:
        states = session.execute(select(OutboxMessage.kind, OutboxItem.state).join(
            OutboxItem, OutboxItem.message_id == OutboxMessage.id)
            .where(OutboxMessage.kind == "handoff")).all()
    assert states and {state for _, state in states} == {"sent"}


def test_ending_the_handoff_from_telegram_with_selesai(fake, runner, sqlite_engine, texts):
    chat = Chat(fake, USER + 1)
    chat.command("petugas").expect("Sambungkan sekarang?")
    chat.send("ya").expect(texts("handoff_ask_question")[:30])
    chat.send("Pendaftaran saya ditolak, kenapa?").expect("tiket #")
    chat.command("start").expect(texts("handoff_active")[:30])
    assert chat.buttons() == [texts("handoff_continue"), texts("handoff_end")]
    chat.send("selesai").expect(texts("handoff_ended")[:40])
    chat.send("halo").expect(texts("greet"))
