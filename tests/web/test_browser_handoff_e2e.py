"""Issue 14 item 6, both halves joined: a user talks to the real PTB bot through the fake
Telegram Bot API while an operator works the ticket in headless Chromium on a live
`prokus serve`, both on the same SQLite file (`sqlite_engine`, which `live_server` serves).
An outbox worker (claiming, as `prokus run` starts beside the bot) delivers what the console
queues. The user asks for "petugas", confirms and writes a question with a NIK; the operator
sees the ticket with the NIK masked, takes it and replies (HTML, sent as plain text); the user
receives it, answers, the answer appears on the operator's page without a reload; the
operator closes with an outcome, the user is told, and "halo" gets the greeting again.
Screenshot: results/screenshots/handoff-e2e.png."""

from __future__ import annotations

import asyncio
import re
import threading

import pytest
from sqlalchemy import select

from actions.dialogue import Dialogue
from bot.app import Assistant
from bot.outbox_runner import worker_config
from bot.settings import Settings
from bot.telegram import build_application
from bot.telegram_sender import TelegramSender
from db.engine import make_sessionmaker
from db.models import HandoffMessage, HandoffTicket
from outbox.worker import Worker
from tests.chat_helpers import load_registry, make_nlu
from tests.telegram_harness import BotRunner, Chat

pytestmark = pytest.mark.browser

USER = 4301
NIK = "3201051203900001"
MASKED_NIK = "3201********0001"


class OutboxThread:
    """A claiming outbox worker on its own loop in a thread: what sends the console's
    replies and notices in production (the bot's own worker only sends turn replies)."""

    def __init__(self, sessions, fake) -> None:
        config = worker_config(Settings())
        config.poll_seconds = 0.1
        self.sender = TelegramSender(fake.token, fake.base_url)
        self.worker = Worker(sessions, self.sender, config)
        self.loop = asyncio.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)

    def start(self) -> OutboxThread:
        self.thread.start()
        self.stopping = asyncio.run_coroutine_threadsafe(self._event(), self.loop).result(5)
        self.task = asyncio.run_coroutine_threadsafe(self.worker.run(self.stopping), self.loop)
        return self

    @staticmethod
    async def _event() -> asyncio.Event:
        return asyncio.Event()

    def stop(self) -> None:
        self.loop.call_soon_threadsafe(self.stopping.set)
        try:
            self.task.result(timeout=20)
        finally:
            asyncio.run_coroutine_threadsafe(self.sender.close(), self.loop).result(5)
            self.loop.call_soon_threadsafe(self.loop.stop)
            self.thread.join(timeout=10)


@pytest.fixture
def nlu():
    return make_nlu()


@pytest.fixture
def bot_and_outbox(fake, sqlite_engine, texts, nlu, live_server):
    """The bot (real clock, like the live server) and the outbox worker, on the database
    file the live server serves."""
    load_registry(sqlite_engine)
    sessions = make_sessionmaker(sqlite_engine)
    assistant = Assistant(Dialogue(nlu, texts), sessions)
    bot = BotRunner(build_application(fake.token, assistant, fake.base_url)).start()
    outbox = OutboxThread(sessions, fake).start()
    yield
    try:
        outbox.stop()
    finally:
        bot.stop()


def _send_params(fake, text: str) -> list[dict]:
    return [p for p in fake.calls_to("sendMessage")
            if str(p.get("chat_id")) == str(USER) and p.get("text") == text]


def test_a_handoff_from_telegram_to_the_browser_and_back(
        fake, bot_and_outbox, live_server, browser_page, sqlite_engine, nlu, texts,
        screenshots):
    url, page = live_server.url, browser_page
    sessions = make_sessionmaker(sqlite_engine)
    chat = Chat(fake, USER, timeout=20)

    # --- the user, in Telegram: asks for a person, confirms, writes the question
    chat.send("petugas").expect("Sambungkan sekarang?")
    chat.press("Ya, sambungkan").expect(texts("handoff_ask_question")[:30])
    chat.send(f"Tanggal lahir saya di data salah, NIK {NIK}").expect("tiket #")
    found = re.search(r"tiket #(\d+)", chat.last.text)
    assert found, chat.last.text
    tid = int(found.group(1))

    # --- the operator, in the browser: the inbox lists it; the ticket shows the NIK masked
    live_server.login(page)
    page.click("nav.mainnav >> text=Kotak masuk")
    page.wait_for_url(f"{url}/inbox")
    row = page.locator(f"tr[data-ticket='{tid}']")
    assert row.count() == 1
    assert NIK not in page.content()
    page.click(f"tr[data-ticket='{tid}'] >> text=#{tid}")
    page.wait_for_url(re.compile(rf".*/inbox/{tid}(\?.*)?$"))
    conversation = page.inner_text("#percakapan")
    assert f"Tanggal lahir saya di data salah, NIK {MASKED_NIK}" in conversation
    assert NIK not in page.content()

    # take it, reply (with HTML: it must reach Telegram as plain text)
    page.click("#ambil")
    page.wait_for_selector(".flash-ok")
    assert "ditangani supervisor1" in page.inner_text("#status-tiket")
    answer = "Baik Bu, kami cek dulu <b>tanggal lahir</b> Anda ke dinas."
    page.fill("#balasan", answer)
    page.click("#kirim-balasan")
    page.wait_for_selector(".flash-ok")
    page.evaluate("window.__noReload = 'yes'")

    # --- the outbox worker delivers it to that chat, as plain text
    chat.expect(answer)
    assert chat.last.text == f"💬 Balasan petugas:\n{answer}"
    [params] = _send_params(fake, chat.last.text)
    assert params.get("parse_mode") in (None, "")
    assert "entities" not in chat.last.message or not chat.last.message["entities"]
    # the page shows it delivered, without a reload
    page.wait_for_selector("#percakapan li[data-sender=operator] [data-delivery=terkirim]")

    # --- the user answers: to the ticket, not to the NLU
    seen = len(nlu.seen)
    chat.send("Terima kasih, saya tunggu kabarnya").expect(texts("handoff_forwarded"))
    assert len(nlu.seen) == seen
    # --- the operator sees it appear without reloading
    page.wait_for_selector("#percakapan >> text=Terima kasih, saya tunggu kabarnya")
    assert page.evaluate("window.__noReload") == "yes"
    page.screenshot(path=str(screenshots / "handoff-e2e.png"), full_page=True)

    # --- the operator closes it with an outcome
    page.select_option("#hasil", "selesai")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("#tutup")
    page.wait_for_selector(".flash-ok")
    assert "Selesai" in page.inner_text("#status-tiket")

    # --- the user is told, and is back with the assistant
    chat.expect(texts("handoff_closed_by_operator")[:40])
    chat.send("halo").expect(texts("greet"))
    assert "halo" in nlu.seen[seen:]

    with sessions() as session:
        ticket = session.get(HandoffTicket, tid)
        assert (ticket.status, ticket.outcome, ticket.closed_by) == (
            "closed", "selesai", "operator:supervisor1")
        said = session.execute(select(HandoffMessage.sender, HandoffMessage.text)
                               .where(HandoffMessage.ticket_id == tid)
                               .order_by(HandoffMessage.id)).all()
    assert not any(NIK in (text or "") for _, text in said)
    assert ("operator", answer) in said
    assert ("user", "Terima kasih, saya tunggu kabarnya") in said
