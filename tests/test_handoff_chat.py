"""Talking to a person, the chat side (issue 14), through the dialogue core: the offer, the
question, messages to the ticket, "selesai", the operator's reply and close, office hours,
the NLU down, stickers, commands during a handoff, auto-close after 3 working days, the
console channel, and not-understood messages kept for review."""

from __future__ import annotations

import io
from datetime import datetime, timedelta

import pytest
from sqlalchemy import select

from actions.context import MAIN_MENU, WIB
from actions.types import Turn
from bot.console import run as console_run
from bot.settings import Settings, SettingsError
from db import handoff, handoff_inbox
from db.engine import make_sessionmaker
from db.handoff import OfficeHours
from db.models import (
    HandoffMessage,
    HandoffTicket,
    NluMiss,
    OutboxItem,
    OutboxMessage,
    Registration,
    User,
    utcnow,
)
from tests.chat_helpers import Chat

BUDI = "3201051203900001"
MONDAY = datetime(2026, 11, 30, 10, 0, tzinfo=WIB)  # TODAY (chat_helpers) is a Saturday


@pytest.fixture(autouse=True)
def _rules(nlu):
    nlu.rules["bicara dengan orang"] = ("human_handoff", 0.93)
    nlu.rules["lapor"] = ("report_problem", 0.91)
    nlu.rules["kayaknya"] = ("greet", 0.45)


def tickets(engine) -> list[HandoffTicket]:
    with make_sessionmaker(engine)() as session:
        rows = list(session.scalars(select(HandoffTicket).order_by(HandoffTicket.id)))
        session.expunge_all()
        return rows


def messages(engine, ticket_id: int) -> list[HandoffMessage]:
    with make_sessionmaker(engine)() as session:
        rows = list(session.scalars(select(HandoffMessage).where(
            HandoffMessage.ticket_id == ticket_id).order_by(HandoffMessage.id)))
        session.expunge_all()
        return rows


def ask_person(bot, user: str, question: str = "Tanggal lahir saya salah di data") -> Chat:
    chat = Chat(bot, user).send("mau bicara dengan orang")
    return chat.press("Ya, sambungkan").send(question)


def test_offer_confirm_question_messages_then_selesai(bot, sqlite_engine, nlu, texts):
    chat = Chat(bot, "301").send("syarat ikut apa?")
    chat.send("mau bicara dengan orang")
    assert chat.text == texts("handoff_offer")
    assert "disamarkan" in chat.text and chat.labels() == ["Ya, sambungkan", "Tidak usah"]
    assert tickets(sqlite_engine) == []  # only an offer so far
    chat.press("Ya, sambungkan")
    assert chat.text == texts("handoff_ask_question")
    (ticket,) = tickets(sqlite_engine)
    assert ticket.status == "confirming" and ticket.topic == "human_handoff"
    context = messages(sqlite_engine, ticket.id)
    assert [m.author for m in context][:2] == ["riwayat", "asisten"]  # the last messages
    assert context[0].text == "syarat ikut apa?" and context[-1].text == texts("handoff_offer")

    chat.send(f"NIK saya {BUDI} hp 0812-3456-7890, tanggal lahir saya salah")
    assert "tiket #" in chat.text and '"selesai"' in chat.text
    # Saturday: outside office hours, with the next opening in WIB.
    assert texts("handoff_hours_closed", hours="Senin–Jumat, 08.00–16.00 WIB",
                 when="Senin, 30 November pukul 08.00 WIB") in chat.text
    (ticket,) = tickets(sqlite_engine)
    assert ticket.status == "waiting" and ticket.last_user_at is not None
    question = messages(sqlite_engine, ticket.id)[-1]
    assert question.sender == "user" and question.author is None
    assert BUDI not in question.text and "3456-7890" not in question.text
    assert "tanggal lahir saya salah" in question.text

    seen = len(nlu.seen)
    chat.send("halo kak, mohon dibantu ya")  # to the ticket, not the NLU (no greeting)
    assert chat.replies == [] and len(nlu.seen) == seen
    assert messages(sqlite_engine, ticket.id)[-1].text == "halo kak, mohon dibantu ya"

    chat.send("selesai")
    assert chat.text == texts("handoff_ended")
    assert chat.labels() == [texts(f"label/{i}") for i in MAIN_MENU]
    (ticket,) = tickets(sqlite_engine)
    assert (ticket.status, ticket.outcome, ticket.closed_by) == (
        "closed", handoff.ENDED, "user")
    assert chat.send("halo").text == texts("greet")  # the NLU again


def test_office_hours_open_says_operators_are_working(bot, clock, texts):
    clock.now = MONDAY
    chat = ask_person(bot, "302")
    assert texts("handoff_hours_open", hours="Senin–Jumat, 08.00–16.00 WIB") in chat.text
    clock.now = MONDAY.replace(hour=16, minute=30)  # after closing: tomorrow at 08.00
    chat = ask_person(bot, "303")
    assert "Selasa, 1 Desember pukul 08.00 WIB" in chat.text


def test_the_second_miss_in_a_row_offers_a_person(bot, sqlite_engine, texts):
    chat = Chat(bot, "304").send("qwerty")
    assert chat.text == texts("fallback")
    assert texts("label/human_handoff") not in chat.labels()
    chat.send("zzz asdf")
    assert chat.text == texts("fallback_again")
    assert texts("label/human_handoff") in chat.labels()
    chat.press(texts("label/human_handoff"))
    assert chat.text == texts("handoff_offer")
    chat.send("iya kak").send("kenapa saya tidak bisa daftar")
    assert tickets(sqlite_engine)[0].status == "waiting"


def test_report_problem_offers_a_person_and_no_points_to_the_official_channels(
        bot, sqlite_engine, texts):
    chat = Chat(bot, "305").send("saya mau lapor ada yang minta uang")
    assert [r.text for r in chat.replies] == [texts("report_problem_intro"),
                                              texts("handoff_offer")]
    chat.send("tidak")
    assert chat.text == texts("report_problem") and tickets(sqlite_engine) == []
    chat.send("saya mau lapor lagi").press("Ya, sambungkan").send("ada yang minta 100 ribu")
    assert tickets(sqlite_engine)[0].topic == "report_problem"


def test_a_handoff_works_while_the_nlu_is_down(bot, sqlite_engine, nlu, texts):
    nlu.down = True
    chat = Chat(bot, "306").send("halo")
    assert chat.text == texts("nlu_down")
    chat.send("petugas")  # understood without the NLU
    assert chat.text == texts("handoff_offer")
    chat.send("ya").send("data saya salah, tolong dicek")
    assert "tiket #" in chat.text
    chat.send("ini foto KTP nya nanti saya kirim")
    assert chat.replies == []
    chat.send("/start")
    assert chat.labels() == [texts("handoff_continue"), texts("handoff_end")]
    chat.press(texts("handoff_end"))
    assert chat.text == texts("handoff_ended")
    (ticket,) = tickets(sqlite_engine)
    assert ticket.status == "closed"
    assert [m.text for m in messages(sqlite_engine, ticket.id) if m.sender == "user"][-2:] == [
        "data saya salah, tolong dicek", "ini foto KTP nya nanti saya kirim"]
    assert Chat(bot, "307").send("/petugas").text == texts("handoff_offer")


def test_a_sticker_during_a_handoff_gets_the_text_only_reply_and_is_noted(
        bot, sqlite_engine, texts):
    ask_person(bot, "308")
    replies = bot.handle(Turn("telegram", "308", unsupported="sticker"))
    assert [r.text for r in replies] == [texts("text_only")]
    replies = bot.handle(Turn("telegram", "308", unsupported="photo"))
    (ticket,) = tickets(sqlite_engine)
    noted = messages(sqlite_engine, ticket.id)[-2:]
    assert [(m.sender, m.kind) for m in noted] == [("user", "sticker"), ("user", "photo")]
    assert noted[1].text == "(mengirim foto)"
    assert ticket.status == "waiting"


def test_commands_during_a_handoff(bot, sqlite_engine, texts):
    chat = ask_person(bot, "309")
    chat.send("/menu")
    assert chat.text == texts("handoff_active", ticket=tickets(sqlite_engine)[0].id)
    chat.press(texts("handoff_continue"))
    assert chat.text == texts("handoff_continue_ok")
    chat.send("/daftar")  # would start a form whose answers would go to the ticket
    assert chat.text == texts("handoff_finish_first")
    chat.send(payload="/faq/cost")  # a menu button still answers
    assert chat.replies[0].text == texts("faq/cost")
    assert chat.replies[-1].text == texts("handoff_still_open")
    chat.send("Ya")  # not the form's consent: a message for the operator
    (ticket,) = tickets(sqlite_engine)
    assert ticket.status == "waiting"
    assert messages(sqlite_engine, ticket.id)[-1].text == "Ya"
    chat.send("/batal")
    assert chat.text == texts("handoff_ended")
    assert chat.send("/daftar").replies[0].text.startswith(
        texts("registration_consent").splitlines()[0][:20])


def test_cancel_before_the_question_and_a_confirmation_left_alone(bot, sqlite_engine, clock,
                                                                   texts):
    chat = Chat(bot, "310").send("mau bicara dengan orang").press("Ya, sambungkan")
    chat.send("batal")
    assert chat.text == texts("handoff_cancelled")
    assert tickets(sqlite_engine)[0].outcome == handoff.CANCELLED
    chat.send("mau bicara dengan orang").press("Ya, sambungkan")
    clock.now += timedelta(hours=2)  # never wrote the question: the next message is the bot's
    assert chat.send("halo").text == texts("greet")
    assert tickets(sqlite_engine)[1].outcome == handoff.ABANDONED


def test_asking_for_a_person_in_a_form_keeps_the_form(bot, sqlite_engine, texts):
    chat = Chat(bot, "311").send("/cek").press(texts("consent_yes"))
    assert "16 angka" in chat.text
    chat.send("petugas")
    assert chat.text == texts("handoff_offer")
    chat.press("Tidak usah")
    assert chat.replies[0].text == texts("handoff_declined")
    assert texts("form_back") in chat.text and "16 angka" in chat.text
    chat.send("petugas").press("Ya, sambungkan").send("NIK saya tidak ditemukan")
    chat.send(BUDI)  # to the ticket (masked), not to the form
    (ticket,) = tickets(sqlite_engine)
    assert messages(sqlite_engine, ticket.id)[-1].text != BUDI
    chat.send("selesai")  # back with the assistant, where the form stopped
    assert texts("handoff_ended") in chat.text and "16 angka" in chat.text
    chat.send(BUDI)
    assert "nama lengkap" in chat.text.lower()


def operator(engine, ticket_id: int, action: str, text: str = "") -> None:
    with make_sessionmaker(engine).begin() as session:
        if action == "take":
            handoff_inbox.take(session, ticket_id, "rina", utcnow())
        elif action == "reply":
            handoff_inbox.reply(session, ticket_id, "rina", text, utcnow())
        else:
            handoff_inbox.close(session, ticket_id, "rina", "selesai", utcnow())


def test_operator_replies_and_closes_then_the_bot_answers_again(bot, sqlite_engine, nlu,
                                                                 texts):
    chat = ask_person(bot, "312")
    (ticket,) = tickets(sqlite_engine)
    operator(sqlite_engine, ticket.id, "take")
    operator(sqlite_engine, ticket.id, "reply", "Baik Bu, data akan kami cek.")
    chat.send("terima kasih pak")
    assert chat.text == texts("handoff_forwarded")  # the first message after the reply
    chat.send("ditunggu ya")
    assert chat.replies == []
    operator(sqlite_engine, ticket.id, "close")
    seen = len(nlu.seen)
    assert chat.send("halo").text == texts("greet") and len(nlu.seen) == seen + 1
    assert chat.send(payload="/handoff:end").text == texts("handoff_none")


def test_the_ticket_region_is_the_registration_region(bot, sqlite_engine):
    sessions = make_sessionmaker(sqlite_engine)
    Chat(bot, "313").send("/start")
    with sessions.begin() as session:
        user = session.scalars(select(User).where(User.external_id == "313")).one()
        session.add(Registration(
            number="PRK-2026-000009", user_id=user.id, nik=BUDI, nama="Budi Santoso",
            tanggal_lahir=datetime(1990, 3, 12).date(), no_hp="+6281234567890",
            kabupaten="Kabupaten Bogor", kecamatan="Cibinong", desa="Pakansari",
            kode_wilayah="3201052001", bidang_usaha="kuliner", deskripsi_usaha="Warung",
            lama_usaha_bulan=12, status="diajukan", created_at=utcnow(), updated_at=utcnow()))
    ask_person(bot, "313")
    assert tickets(sqlite_engine)[0].kode_wilayah == "3201052001"


# ---------------------------------------------------------------------- auto-close
def _waiting_ticket(engine, at: datetime, user: str = "320") -> int:
    with make_sessionmaker(engine).begin() as session:
        person = User(channel="telegram", external_id=user)
        session.add(person)
        session.flush()
        ticket = handoff.start(session, person.id, "human_handoff", at)
        handoff.submit_question(session, ticket, "halo, data saya salah", at)
        return ticket.id


def test_unanswered_tickets_close_after_three_working_days_skipping_the_weekend(
        sqlite_engine, texts):
    sessions = make_sessionmaker(sqlite_engine)
    friday = datetime(2026, 11, 27, 15, 0, tzinfo=WIB)
    ticket_id = _waiting_ticket(sqlite_engine, friday)
    answered = _waiting_ticket(sqlite_engine, friday, user="321")
    with sessions.begin() as session:
        session.get(HandoffTicket, answered).last_operator_at = friday + timedelta(hours=1)
    hours = OfficeHours.parse("Mon-Fri 08:00-16:00")

    def close_at(moment: datetime) -> int:
        with sessions.begin() as session:
            return handoff.auto_close_stale(session, moment, texts, hours)

    assert close_at(datetime(2026, 12, 1, 15, 0, tzinfo=WIB)) == 0  # Tuesday: 2 working days
    assert close_at(datetime(2026, 12, 2, 14, 59, tzinfo=WIB)) == 0
    assert close_at(datetime(2026, 12, 2, 15, 0, tzinfo=WIB)) == 1  # Wednesday 15.00
    assert close_at(datetime(2026, 12, 3, 15, 0, tzinfo=WIB)) == 0  # once only
    with sessions() as session:
        ticket = session.get(HandoffTicket, ticket_id)
        assert (ticket.status, ticket.outcome, ticket.closed_by) == (
            "closed", handoff.NO_ANSWER, "system")
        assert session.get(HandoffTicket, answered).status == "waiting"  # the operator spoke
        message, item = session.execute(
            select(OutboxMessage, OutboxItem).join(
                OutboxItem, OutboxItem.message_id == OutboxMessage.id)).one()
    assert message.kind == "handoff" and item.user_id == ticket.user_id
    assert message.text == texts("handoff_stale_closed", days=3)
    assert [b[1] for b in message.markup["buttons"]] == [f"/{i}" for i in MAIN_MENU] + [
        "/human_handoff"]


def test_a_question_asked_on_saturday_waits_until_wednesday(sqlite_engine, texts):
    saturday = datetime(2026, 11, 28, 10, 0, tzinfo=WIB)
    _waiting_ticket(sqlite_engine, saturday)
    with make_sessionmaker(sqlite_engine).begin() as session:
        wednesday = saturday + timedelta(days=4)  # Monday, Tuesday, Wednesday
        assert handoff.auto_close_stale(session, wednesday - timedelta(minutes=1), texts) == 0
        assert handoff.auto_close_stale(session, wednesday, texts) == 1


def test_a_user_message_after_an_operator_reply_starts_the_wait_again(sqlite_engine, texts):
    monday = MONDAY
    ticket_id = _waiting_ticket(sqlite_engine, monday)
    sessions = make_sessionmaker(sqlite_engine)
    with sessions.begin() as session:
        ticket = session.get(HandoffTicket, ticket_id)
        ticket.status, ticket.last_operator_at = "assigned", monday + timedelta(hours=1)
        handoff.add_user_message(session, ticket, "masih belum bisa", monday + timedelta(days=1))
    with sessions.begin() as session:  # Tuesday's message: 3 working days end Friday
        assert handoff.auto_close_stale(session, monday + timedelta(days=3, hours=1), texts) == 0
        assert handoff.auto_close_stale(session, monday + timedelta(days=4), texts) == 1


def test_the_background_job_closes_with_the_bots_clock_and_texts(bot, clock, sqlite_engine,
                                                                  texts):
    from bot.background import close_stale_handoffs

    ask_person(bot, "322")  # Saturday 10.00
    assert close_stale_handoffs(bot) == 0
    clock.now += timedelta(days=4)  # Wednesday 10.00
    assert close_stale_handoffs(bot) == 1
    assert tickets(sqlite_engine)[0].outcome == handoff.NO_ANSWER


# ---------------------------------------------------------------------- office hours
@pytest.mark.parametrize(("text", "days", "open_at", "closed_at"), [
    ("Mon-Fri 08:00-16:00", {0, 1, 2, 3, 4}, MONDAY, MONDAY.replace(hour=16)),
    ("Senin-Sabtu 07.30-15.00", {0, 1, 2, 3, 4, 5}, MONDAY - timedelta(days=2),
     MONDAY.replace(hour=7, minute=29)),
    ("Mon,Wed,Fri 08:00-12:00", {0, 2, 4}, MONDAY, MONDAY + timedelta(days=1)),
])
def test_office_hours(text, days, open_at, closed_at):
    hours = OfficeHours.parse(text)
    assert hours.days == days and hours.is_open(open_at) and not hours.is_open(closed_at)
    assert hours.next_opening(closed_at) > closed_at


@pytest.mark.parametrize("text", ["", "always", "Mon-Fri 16:00-08:00", "Xyz 08:00-16:00",
                                  "Mon-Fri 25:00-26:00"])
def test_wrong_office_hours_are_refused_by_the_settings(text):
    with pytest.raises(ValueError):
        OfficeHours.parse(text)
    if text.strip():
        with pytest.raises(SettingsError) as raised:
            Settings.from_env({"HANDOFF_OFFICE_HOURS": text}, env_file=None)
        assert "HANDOFF_OFFICE_HOURS" in str(raised.value)
    assert Settings.from_env({"HANDOFF_OFFICE_HOURS": "Mon-Sat 07:00-15:00"}
                             ).handoff_office_hours == "Mon-Sat 07:00-15:00"


# ---------------------------------------------------------------------- console channel
def test_console_users_are_handed_off_and_see_the_reply_on_their_next_turn(bot, sqlite_engine,
                                                                           texts):
    out = io.StringIO()
    console_run(bot, "c1", stdin=io.StringIO("petugas\n1\nData saya salah\n"), out=out)
    assert "tiket #" in out.getvalue()
    (ticket,) = tickets(sqlite_engine)
    operator(sqlite_engine, ticket.id, "take")
    operator(sqlite_engine, ticket.id, "reply", "Sudah kami cek, datanya benar.")
    out = io.StringIO()
    console_run(bot, "c1", stdin=io.StringIO("oke makasih\n"), out=out)
    shown = out.getvalue()
    assert shown.index("> oke makasih") < shown.index("Sudah kami cek, datanya benar.")
    assert shown.index("Balasan petugas") < shown.index(texts("handoff_forwarded"))
    with make_sessionmaker(sqlite_engine)() as session:
        assert set(session.scalars(select(OutboxItem.state))) == {"sent"}
    operator(sqlite_engine, ticket.id, "close")
    out = io.StringIO()
    console_run(bot, "c1", stdin=io.StringIO("halo\n"), out=out)
    shown = out.getvalue()
    assert shown.index(texts("handoff_closed_by_operator")[:40]) < shown.index(texts("greet"))


# ---------------------------------------------------------------------- review
def test_not_understood_and_low_confidence_turns_are_kept_for_review(bot, sqlite_engine):
    Chat(bot, "330").send(f"qwerty {BUDI}")
    Chat(bot, "330").send("kayaknya gitu")  # answered (greet) with confidence 0.45
    Chat(bot, "330").send("halo")  # confident: not kept
    with make_sessionmaker(sqlite_engine)() as session:
        kept = session.execute(select(NluMiss.reason, NluMiss.text)
                               .order_by(NluMiss.id)).all()
    assert [reason for reason, _ in kept] == ["fallback", "low_confidence"]
    assert BUDI not in kept[0][1]
    ask_person(bot, "331", "qwerty tolong")  # words written to a ticket are not reviewed
    with make_sessionmaker(sqlite_engine)() as session:
        assert len(session.scalars(select(NluMiss)).all()) == 2


# ---------------------------------------------------------------------- both back-ends
def test_the_path_on_both_back_ends(engine, texts):
    """SQLite and PostgreSQL: one ticket that is not closed per user (a second start finds
    the first), the question, the stale close, and a new ticket after it."""
    from tests.chat_helpers import Clock, make_bot, make_nlu

    clock = Clock(MONDAY)
    bot = make_bot(engine, make_nlu(), texts, clock)
    chat = Chat(bot, "340").send("petugas").send("ya").send("Data saya salah")
    assert "tiket #" in chat.text
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        user = session.scalars(select(User).where(User.external_id == "340")).one()
        assert handoff.start(session, user.id, "human_handoff", MONDAY) is None
    with sessions.begin() as session:
        assert handoff.auto_close_stale(session, MONDAY + timedelta(days=3), texts) == 1
    clock.now = MONDAY + timedelta(days=3, minutes=5)
    assert chat.send("halo").text == texts("greet")
    chat.send("petugas").send("ya").send("Masih salah")
    assert [t.status for t in tickets(engine)] == ["closed", "waiting"]
