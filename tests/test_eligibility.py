"""The eligibility check through the dialogue core (fake NLU, fixed clock)."""

from __future__ import annotations

from datetime import datetime

import pytest
from sqlalchemy import select

from actions.context import WIB
from actions.identity import NAME_TRIES
from actions.types import Contact, Turn
from db import repo
from db.engine import make_sessionmaker
from db.models import AuditLog, Conversation, User
from tests.chat_helpers import TODAY, Chat, make_bot


def check(bot, nik, name, sector_label="Kuliner", user="50"):
    chat = Chat(bot, user).send("/cek").send("ya").send(nik).send(name)
    if sector_label:
        chat.press(sector_label)
    return chat


def test_happy_path_shows_each_criterion_and_offers_registration(bot, texts):
    chat = Chat(bot).send("/cek")
    assert chat.text == texts("eligibility_consent")
    chat.press(texts("consent_yes"))
    assert chat.text == texts("eligibility_ask_nik")
    chat.send("3201 0512 0390 0001")
    assert chat.text == texts("eligibility_ask_name")
    chat.send("budi santoso")
    assert chat.text == texts("eligibility_ask_business")
    assert len(chat.labels()) == 8
    chat.press("Jasa")
    assert "✅ Sudah graduasi dari PKH" in chat.text
    assert "✅ Usia 36 tahun, di bawah 40 tahun" in chat.text
    assert "✅ Punya usaha di bidang Jasa" in chat.text
    assert texts("eligibility_pass") in chat.text
    assert texts("label/register_prokus") in chat.labels()


def test_business_field_from_everyday_words(bot):
    chat = check(bot, "3201051203900001", "Budi Santoso", sector_label=None)
    chat.send("saya jualan gorengan")
    assert "✅ Punya usaha di bidang Kuliner" in chat.text


def test_each_failing_criterion_says_why(bot, texts):
    chat = check(bot, "3374024101950003", "Dewi Lestari", sector_label="Belum punya usaha")
    assert "❌ Belum graduasi dari PKH" in chat.text
    assert "✅ Usia 31 tahun" in chat.text
    assert "❌ Belum punya usaha" in chat.text
    assert texts("eligibility_fail") in chat.text
    assert texts("label/human_handoff") in chat.labels()


def test_40th_birthday_is_not_under_40_but_the_day_before_is(bot, clock):
    assert "❌ Usia 40 tahun" in check(bot, "3201052811860004", "Agus Wibowo").text
    clock.now = datetime(2026, 11, 27, 23, 59, tzinfo=WIB)
    assert "✅ Usia 39 tahun" in check(bot, "3201052811860004", "Agus Wibowo", user="51").text


def test_womans_nik_and_29_february(bot):
    assert "✅ Sudah graduasi" in check(bot, "3201055508920002", "Siti Aminah").text
    chat = check(bot, "3201056902000006", "Putri Kabisat", user="52")
    assert "✅ Usia 26 tahun" in chat.text


def test_nik_date_disagreeing_with_registry_is_a_warning_not_a_rejection(bot, texts):
    chat = check(bot, "3201050505900005", "Rina Marlina")  # NIK says 1990, registry 1991
    assert texts("nik_date_warning") in chat.text
    assert texts("eligibility_pass") in chat.text


@pytest.mark.parametrize("bad,expected", [
    ("320105120390001", "NIK harus 16 angka, Anda mengirim 15"),
    ("9901051203900001", "(99) bukan kode provinsi"),
    ("3201053002900001", "bukan tanggal yang ada"),
    ("3201051203900000", "tidak boleh 0000"),
    ("nik saya ini 3201051203900001x", "NIK hanya berisi angka"),
])
def test_bad_niks_get_precise_hints_and_the_form_waits(bot, texts, bad, expected):
    chat = Chat(bot).send("/cek").send("ya").send(bad)
    assert expected in chat.text
    chat.send("3201051203900001")
    assert chat.text == texts("eligibility_ask_name")


def test_two_failures_explain_with_an_example_and_offer_to_stop(bot, texts):
    chat = Chat(bot).send("/cek").send("ya").send("12345678").send("123456789")
    assert texts("eligibility_help_nik") in chat.text
    assert chat.labels() == [texts("form_continue"), texts("form_stop")]
    chat.press(texts("form_continue"))
    assert chat.text == texts("eligibility_ask_nik")
    chat.send("1234567").send("1234567").press(texts("form_stop"))
    assert chat.text == texts("eligibility_cancelled")


def test_not_found_and_name_mismatch_get_the_identical_reply(bot, sqlite_engine):
    unknown = check(bot, "3201051203909999", "Budi Santoso", sector_label=None, user="60")
    mismatch = check(bot, "3201051203900001", "Bukan Budi", sector_label=None, user="61")
    assert unknown.replies == mismatch.replies
    with sqlite_engine.connect() as conn:
        stmt = select(AuditLog.outcome).order_by(AuditLog.id)
        outcomes = [row.outcome for row in conn.execute(stmt)]
    assert sorted(outcomes) == ["name_mismatch", "not_found"]


def test_lookups_are_audited_with_masked_nik_only(bot, sqlite_engine):
    check(bot, "3201051203900001", "Budi Santoso")
    with sqlite_engine.connect() as conn:
        audit = conn.execute(select(AuditLog)).one()
        states = [str(row.state) for row in conn.execute(select(Conversation))]
    assert audit.subject == "3201********0001" and audit.outcome == "verified"
    assert audit.actor.startswith("user:") and audit.action == "nik_lookup"
    assert not any("3201051203900001" in s for s in states), "the NIK is forgotten after the check"


def not_verified(bot, nik, user="50"):
    """A lookup that fails: every try at the name step used (issue 12: NAME_TRIES)."""
    chat = Chat(bot, user).send("/cek").send("ya").send(nik)
    for _ in range(NAME_TRIES):
        chat.send("Joko Susilo")
    return chat


def test_at_most_five_nik_checks_per_hour(bot, texts, clock):
    for _ in range(5):
        not_verified(bot, "3201051203909999")
    assert Chat(bot).send("/cek").text == texts("nik_rate_limited")
    assert Chat(bot, user="70").send("/cek").text == texts("eligibility_consent"), "per user"
    clock.now = datetime(2026, 11, 28, 11, 1, tzinfo=WIB)
    assert Chat(bot).send("/cek").text == texts("eligibility_consent"), "an hour later"


def test_limit_also_holds_for_a_form_started_before_it_was_reached(bot, texts, sqlite_engine):
    chat = Chat(bot).send("/cek").send("ya").send("3201051203909999")  # paused at the name step
    with make_sessionmaker(sqlite_engine).begin() as session:  # five lookups meanwhile
        user_id = session.scalars(select(User.id)).one()
        for _ in range(5):
            repo.audit(session, f"user:{user_id}", "nik_lookup", "not_found",
                       subject="3201********9998", at=TODAY)
    assert chat.send("Budi Santoso").text == texts("nik_rate_limited")


def test_no_consent_means_no_nik_question(bot, texts, sqlite_engine):
    chat = Chat(bot).send("/cek").press(texts("consent_no"))
    assert chat.text == texts("eligibility_no_consent")
    with sqlite_engine.connect() as conn:
        assert conn.execute(select(AuditLog)).all() == []


@pytest.mark.parametrize("steps", [["/cek"], ["/cek", "ya"], ["/cek", "ya", "3201051203900001"],
                                   ["/cek", "ya", "3201051203900001", "Budi Santoso"]])
def test_batal_at_every_step(bot, texts, steps):
    chat = Chat(bot)
    for step in steps:
        chat.send(step)
    chat.send("batal")
    assert chat.text == texts("eligibility_cancelled")
    assert Chat(bot).send("halo").text == texts("greet"), "the form is gone"


def test_side_question_is_answered_then_the_form_asks_again(bot, texts):
    chat = Chat(bot).send("/cek").send("ya").send("syaratnya apa aja?")
    assert texts("faq/requirements") in chat.text
    assert chat.replies[-1].text == texts("eligibility_ask_nik")
    chat.send("3201051203900001").send("apa syarat umurnya?")  # at the free-text name step
    assert texts("faq/requirements") in chat.text
    assert chat.replies[-1].text == texts("eligibility_ask_name")


def test_a_restart_loses_nothing_and_start_offers_to_continue(sqlite_engine, nlu, texts, clock,
                                                              bot):
    Chat(bot).send("/cek").send("ya").send("3201051203900001")
    restarted = make_bot(sqlite_engine, nlu, texts, clock)
    chat = Chat(restarted).send("/start")
    assert chat.text == texts("form_resume_offer")
    chat.press(texts("form_resume"))
    assert chat.text == texts("eligibility_ask_name")
    chat.send("Budi Santoso")
    assert chat.text == texts("eligibility_ask_business")


def test_contact_and_stickers_of_text_inside_the_form(bot, texts):
    chat = Chat(bot).send("/cek").send("ya").send(contact=Contact("+6281234567890", "50"))
    assert texts("form_contact_not_needed") in chat.text
    chat.send("🙏")
    assert texts("no_words") in chat.text and chat.replies[-1].text == texts("eligibility_ask_nik")
    chat.replies = bot.handle(Turn("telegram", "50", unsupported="sticker"))
    assert chat.replies[0].text == texts("text_only")
    assert chat.replies[-1].text == texts("eligibility_ask_nik")
