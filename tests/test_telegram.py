"""End-to-end: the real PTB bot, the real NLU model, and the fake Bot API over HTTP."""

from __future__ import annotations

import time

import pytest

from actions.context import MAIN_MENU
from actions.dialogue import Dialogue
from bot.app import Assistant
from bot.telegram import COMMANDS, build_application
from db.demo import demo_rows, today_wib
from db.engine import make_sessionmaker
from domain import dates
from nlu.client import NLUClient
from tests.fakes.tcp_proxy import TcpProxy
from tests.fakes.telegram_api import BOT_USERNAME
from tests.telegram_harness import BotRunner, Chat

pytestmark = pytest.mark.nlu


@pytest.fixture
def nlu_proxy(nlu_server_url):
    proxy = TcpProxy(int(nlu_server_url.rsplit(":", 1)[1]))
    proxy.start()
    yield proxy
    proxy.stop()


@pytest.fixture
def bot(fake, nlu_proxy, sqlite_engine, texts):
    client = NLUClient(nlu_proxy.url, timeout=3.0, retries=1)
    assistant = Assistant(Dialogue(client, texts), make_sessionmaker(sqlite_engine))
    runner = BotRunner(build_application(fake.token, assistant, fake.base_url)).start()
    yield runner
    runner.stop()
    client.close()


def test_start_greets_with_privacy_notice_menu_and_commands(fake, bot, texts):
    chat = Chat(fake, 1001)
    chat.command("start").expect("Asisten Prokus").expect("PIN, OTP")
    assert len(chat.last.text.splitlines()) == 2
    assert chat.buttons() == [texts(f"label/{intent}") for intent in MAIN_MENU]
    registered = fake.api_getmycommands({"scope": {"type": "all_private_chats"}})
    assert [c["command"] for c in registered] == [name for name, _ in COMMANDS]
    chat.command("menu").expect(texts("menu"))
    chat.command("bantuan").expect(texts("help").splitlines()[0])
    chat.command("batal").expect(texts("cancel_idle"))


def test_free_text_is_understood_typing_shown_only_when_the_turn_is_slow(
        fake, nlu_proxy, sqlite_engine, texts):
    """A quick turn sends no "typing..." (one API call less per turn); a turn still
    running after the delay (here: a slow NLU) shows it."""

    class SlowNLU(NLUClient):
        delay = 0.0

        def parse(self, text, *args, **kwargs):
            time.sleep(self.delay)
            return super().parse(text, *args, **kwargs)

    client = SlowNLU(nlu_proxy.url, timeout=3.0, retries=1)
    assistant = Assistant(Dialogue(client, texts), make_sessionmaker(sqlite_engine))
    runner = BotRunner(build_application(fake.token, assistant, fake.base_url,
                                         typing_delay=0.3)).start()
    try:
        Chat(fake, 1002).send("halo kak").expect(texts("greet"))
        assert (1002, "typing") not in fake.chat_actions
        client.delay = 0.8
        Chat(fake, 1012).send("halo kak").expect(texts("greet"))
        assert (1012, "typing") in fake.chat_actions
    finally:
        runner.stop()
        client.close()


def test_button_press_answers_callback_marks_choice_and_replies(fake, bot, texts):
    chat = Chat(fake, 1003).command("start").expect("PIN, OTP")
    menu_message = chat.last
    chat.press("Siapa yang bisa ikut?").expect("graduasi")

    def edited_menu():
        return next(m for m in fake.messages(1003) if m.message_id == menu_message.message_id)

    # (answered and marked while the turn runs: the reply need not wait for them)
    fake.wait_for(lambda: fake.callback_answers and edited_menu().edits, timeout=5)
    assert fake.callback_answers, "the callback query was answered"
    edited = edited_menu()
    assert edited.edits, "the menu message was edited"
    assert edited.text.endswith("➡️ Siapa yang bisa ikut?")
    assert edited.reply_markup is None, "its buttons were removed"


def test_typing_a_menu_label_works_like_pressing_it(fake, bot, texts):
    Chat(fake, 1004).command("start").expect("PIN").send("Apa itu Prokus?").expect(
        texts("faq/what_is_prokus").splitlines()[0]
    )


@pytest.mark.parametrize("push", ["push_sticker", "push_photo", "push_voice",
                                  "push_document", "push_location"])
def test_non_text_messages_get_a_polite_text_only_reply(fake, bot, texts, push):
    getattr(fake, push)(1005)
    Chat(fake, 1005, timeout=10).expect(texts("text_only"))


def test_shared_contact_outside_a_form(fake, bot, texts):
    Chat(fake, 1006).share_contact("+6281234567890").expect(texts("contact_not_needed"))


def test_emoji_only_and_unknown_command(fake, bot, texts):
    Chat(fake, 1007).send("🙏🙏").expect(texts("no_words")).send("/hapus").expect(
        texts("unknown_command")
    )


def test_group_chats_get_commands_only(fake, bot, texts):
    group = -100123
    fake.push_text(1008, "halo semua", chat_type="group", chat_id=group)
    fake.push_text(1008, "/start", chat_type="group", chat_id=group)
    # One user's updates are handled in order: once this is answered, the group's were too.
    Chat(fake, 1008).send("halo kak").expect(texts("greet"))
    assert fake.texts(group) == [texts("group_only", link=f"https://t.me/{BOT_USERNAME}")], (
        "the plain group message got no answer")


def test_nlu_down_and_back(fake, bot, nlu_proxy, texts):
    chat = Chat(fake, 1009)
    chat.send("halo kak").expect(texts("greet"))
    nlu_proxy.stop()
    chat.send("halo kak").expect(texts("nlu_down"))
    assert chat.buttons(), "the apology comes with the main menu"
    nlu_proxy.start()
    chat.send("halo kak").expect(texts("greet"))


def test_429_is_waited_out_then_delivered_once(fake, bot, texts):
    fake.inject("429", method="sendMessage", chat_id=1010, retry_after=1, count=1)
    started = time.monotonic()
    Chat(fake, 1010).send("halo kak").expect(texts("greet"))
    assert time.monotonic() - started >= 1.0, "the bot waited retry_after"
    assert fake.texts(1010).count(texts("greet")) == 1
    assert len([c for c in fake.calls_to("sendMessage") if c["chat_id"] == 1010]) == 2


def test_a_user_who_blocked_the_bot_does_not_stop_others(fake, bot, texts):
    fake.block(1011)
    fake.push_text(1011, "halo kak")
    Chat(fake, 1012).send("halo kak").expect(texts("greet"))
    assert fake.texts(1011) == []


def test_prokus_run_serves_telegram_and_stops_cleanly(fake, nlu_server_url, tmp_path, texts):
    """The production entry point (`make run` -> `prokus run`) against the fake Bot API."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    prokus = str(Path(sys.executable).with_name("prokus"))
    env = dict(os.environ, TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_URL=fake.base_url,
               NLU_URL=nlu_server_url, DATABASE_URL=f"sqlite:///{tmp_path}/run.db")
    subprocess.run([prokus, "db", "upgrade"], env=env, check=True, capture_output=True)
    process = subprocess.Popen([prokus, "run"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        assert fake.wait_for(lambda: fake.calls_to("getUpdates"), 30), "the bot polls"
        Chat(fake, 1013).command("start").expect("Asisten Prokus").send("halo kak").expect(
            texts("greet"))
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert fake.token.split(":")[1] not in stderr, "the token never reaches the logs"


def test_eligibility_check_through_telegram_buttons(fake, bot, sqlite_engine, texts):
    from db.demo import load_demo

    with make_sessionmaker(sqlite_engine).begin() as session:
        load_demo(session)
    nik = demo_rows()[0][0]  # Budi's NIK follows his birth date, relative to today
    chat = Chat(fake, 1014)
    chat.command("cek").expect("perlu NIK").press(texts("consent_yes")).expect("16 angka")
    chat.send(nik).expect("nama lengkap")
    # The registry has Budi's phone: his own Telegram contact must match before the result.
    chat.send("Contoh Budi Santoso").expect("memastikan ini benar Anda")
    assert chat.last.reply_markup["keyboard"][0][0]["request_contact"] is True
    chat.share_contact("+6281200000001").expect("bidangnya")
    assert texts("sector/kuliner") in chat.buttons()
    chat.press(texts("sector/kuliner")).expect("✅ Sudah graduasi").expect("memenuhi syarat")
    assert texts("label/register_prokus") in chat.buttons()


def test_registration_through_telegram_with_the_contact_button(fake, bot, sqlite_engine, texts):
    from sqlalchemy import select

    from db.demo import load_demo
    from db.models import Registration

    with make_sessionmaker(sqlite_engine).begin() as session:
        load_demo(session)
    nik, _, rina = demo_rows()[4]  # no phone in the registry: no contact confirmation
    today = today_wib()
    chat = Chat(fake, 1015)
    chat.send("sy mau dftr gmn caranya").expect("Pendaftaran Prokus gratis")
    chat.press(texts("consent_yes")).expect("Langkah 1 dari 10")
    chat.send(nik).expect("Langkah 2 dari 10")
    chat.send("Contoh Rina Marlina").expect(dates.indonesian(rina.born(today)))
    chat.press(texts("birth_date_ok")).expect("Langkah 4 dari 10")
    assert chat.last.reply_markup["keyboard"][0][0]["request_contact"] is True
    chat.fake.push_contact(1015, "+6281299990000", contact_user_id=4242)  # someone else's
    chat.expect(texts("phone_not_own")[:30])
    chat.press_contact_button().expect("Langkah 5 dari 10")
    assert chat.last.reply_markup == {"remove_keyboard": True}, "contact button hidden again"
    chat.send("Kota Bogor").expect("Langkah 6 dari 10")
    chat.send("Bogor Tengah").expect("Langkah 7 dari 10")
    chat.send("Paledang").expect("Langkah 8 dari 10")
    chat.press(texts("sector/jasa")).expect("Langkah 9 dari 10")
    chat.send("apa saja syaratnya?").expect(texts("form_back")).expect("Langkah 9 dari 10")
    chat.send("Jasa menjahit dan permak pakaian di rumah").expect("Langkah 10 dari 10")
    chat.send("3 tahun").expect("Periksa lagi data Anda")
    assert "Nomor HP: +62812" in chat.last.text and "Paledang" in chat.last.text
    chat.press("Kirim").expect(f"PRK-{today.year}-").expect_silence(0.5)
    chat.command("status").expect("Status: diajukan")
    with make_sessionmaker(sqlite_engine)() as session:
        registration = session.scalars(select(Registration)).one()
    assert registration.no_hp.startswith("+62812") and registration.bidang_usaha == "jasa"
    assert registration.number in chat.last.text


def test_prokus_run_delivers_the_outbox_and_mentor_tools(fake, nlu_server_url, tmp_path, texts):
    """`prokus run` sends from the outbox in the same process: a registration status notice
    queued by an operator, and a mentor's new session typed in Telegram reaching the
    mentee; mentors see their commands in their own chat."""
    import os
    import signal
    import subprocess
    import sys
    from datetime import date, datetime
    from pathlib import Path

    from db import mentoring, registrations
    from db.engine import make_engine
    from db.migrate import upgrade
    from db.models import Registration, utcnow
    from db.repo import get_or_create_user

    url = f"sqlite:///{tmp_path}/run.db"
    upgrade(url)
    engine = make_engine(url)
    with make_sessionmaker(engine).begin() as session:
        mentee = get_or_create_user(session, "telegram", "1016")
        session.flush()
        session.add(Registration(
            number="PRK-2026-000001", user_id=mentee.id, nik="3201051203900001",
            nama="Budi Santoso", tanggal_lahir=date(1990, 3, 12), no_hp="+6281234567890",
            kabupaten="Kabupaten Bogor", kecamatan="Cibinong", desa="Pakansari",
            bidang_usaha="kuliner", deskripsi_usaha="Warung makan", lama_usaha_bulan=12,
            status="diverifikasi", created_at=utcnow(), updated_at=utcnow()))
        session.flush()
        registrations.set_status(session, "PRK-2026-000001", "diterima", None, "operator:t",
                                 lambda r: texts("status_notice/diterima", number=r.number))
        mentor = mentoring.add_mentor(session, "900100", "Andi Pendamping", "+6281122223333",
                                      "3201")
        mentoring.assign(session, mentor.id, "PRK-2026-000001")
    engine.dispose()
    fake.add_chats([1016, 900100])
    prokus = str(Path(sys.executable).with_name("prokus"))
    env = dict(os.environ, TELEGRAM_BOT_TOKEN=fake.token, TELEGRAM_API_URL=fake.base_url,
               NLU_URL=nlu_server_url, DATABASE_URL=url)
    process = subprocess.Popen([prokus, "run"], env=env, stdout=subprocess.PIPE,
                               stderr=subprocess.PIPE, text=True)
    try:
        notice = texts("status_notice/diterima", number="PRK-2026-000001")
        assert fake.wait_for(lambda: notice in fake.texts(1016), 30), "the notice was sent"
        scope = {"scope": {"type": "chat", "chat_id": 900100}}
        assert fake.wait_for(lambda: any(c["command"] == "jadwal_baru"
                                         for c in fake.api_getmycommands(scope)), 30)
        from datetime import timedelta

        from actions.context import WIB
        from domain.dates import indonesian

        day = (datetime.now(WIB) + timedelta(days=7)).date()
        mentor_chat = Chat(fake, 900100)
        mentor_chat.command("jadwal_baru").expect("Tanggal berapa").send(indonesian(day))
        mentor_chat.expect("Jam berapa").send("09.00").expect("Di mana").send(
            "Balai Desa Pakansari").expect("topik").send("Mencatat keuangan usaha")
        mentor_chat.expect("1 peserta").press(texts("mentor_save")).expect("Jadwal tersimpan")
        assert fake.wait_for(lambda: any("Jadwal pendampingan baru" in t
                                         for t in fake.texts(1016)), 30)
        Chat(fake, 1016).command("jadwal").expect(
            f"{indonesian(day, weekday=True)}, pukul 09.00 WIB")
        Chat(fake, 1016).command("jadwal_baru").expect("tidak diizinkan")
    finally:
        process.send_signal(signal.SIGINT)
        _, stderr = process.communicate(timeout=30)
    assert process.returncode == 0, stderr
    assert fake.texts(1016).count(notice) == 1
