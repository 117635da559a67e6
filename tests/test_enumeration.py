"""Harder enumeration (issue 16 item 5): a NIK and a name are not enough to learn from the
chat whether someone is a PKH graduate or how old they are."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select, update

from actions.identity import FLAG_ACTION
from actions.types import Contact
from db import registrations
from db.engine import make_sessionmaker
from db.models import AuditLog, Kpm, Registration, utcnow
from tests.chat_helpers import TODAY, Chat, Clock, load_registry, make_bot, make_nlu

BUDI, SITI = "3201051203900001", "3201055508920002"
BUDI_PHONE = "+6281234567890"


@pytest.fixture
def clock():
    return Clock(TODAY)


@pytest.fixture
def bot(sqlite_engine, texts, clock):
    load_registry(sqlite_engine)
    with make_sessionmaker(sqlite_engine).begin() as session:
        budi = next(k for k in session.scalars(select(Kpm)) if k.nik == BUDI)
        budi.no_hp = BUDI_PHONE
    return make_bot(sqlite_engine, make_nlu(), texts, clock)


def check_up_to_name(bot, texts, user: str, nik: str, name: str) -> Chat:
    return (Chat(bot, user).send("/cek").press(texts("consent_yes")).send(nik).send(name))


def audits(engine, action: str) -> list[str]:
    with make_sessionmaker(engine)() as session:
        return list(session.scalars(select(AuditLog.outcome).where(AuditLog.action == action)))


REVEALING = ("PKH", "graduasi", "umur", "usia", "tahun", "1990", "Maret")


def test_a_registry_phone_means_the_own_contact_is_asked_before_anything_is_shown(bot, texts):
    chat = check_up_to_name(bot, texts, "50", BUDI, "Budi Santoso")
    assert chat.text == texts("identity_ask_contact") and chat.replies[0].ask_contact
    assert texts("identity_contact_skip") in chat.labels()
    chat.send(contact=Contact("081234567890", user_id="50"))  # the same number, typed otherwise
    assert chat.text == texts("eligibility_ask_business")
    chat.press("Kuliner")
    assert "✅" in chat.text and "PKH" in chat.text


@pytest.mark.parametrize("how", ["other_number", "skip_button", "typed_no"])
def test_a_differing_or_missing_contact_reveals_nothing(bot, texts, sqlite_engine, how):
    chat = check_up_to_name(bot, texts, "50", BUDI, "Budi Santoso")
    if how == "other_number":
        chat.send(contact=Contact("+6285711112222", user_id="50"))
    elif how == "skip_button":
        chat.send(texts("identity_contact_skip"))
    else:
        chat.send("gak mau")
    assert chat.text == texts("eligibility_unconfirmed")
    assert not any(word in chat.text for word in REVEALING)
    assert chat.labels()  # register anyway, or a person
    assert audits(sqlite_engine, "contact_check") == [
        "differs" if how == "other_number" else "not_shared"]


def test_someone_elses_contact_and_typed_numbers_are_not_proof(bot, texts):
    chat = check_up_to_name(bot, texts, "50", BUDI, "Budi Santoso")
    chat.send(contact=Contact(BUDI_PHONE, user_id="999"))
    assert chat.text == texts("identity_contact_not_own")
    chat.send("081234567890")
    assert texts("identity_contact_hint") in chat.text or texts("eligibility_help_contact") \
        in chat.text
    assert "✅" not in chat.text


def test_without_a_registry_phone_the_check_is_as_before(bot, texts):
    chat = check_up_to_name(bot, texts, "50", SITI, "Siti Aminah")
    assert chat.text == texts("eligibility_ask_business")


def test_a_nik_tried_from_three_accounts_is_flagged_and_then_needs_a_contact(
        bot, texts, sqlite_engine, clock):
    for user in ("71", "72"):
        chat = check_up_to_name(bot, texts, user, SITI, "Siti Aminah")
        assert chat.text == texts("eligibility_ask_business")  # not flagged yet
    third = check_up_to_name(bot, texts, "73", SITI, "Siti Aminah")
    assert third.text == texts("identity_ask_contact")
    assert audits(sqlite_engine, FLAG_ACTION) == ["flagged"]
    third.send(contact=Contact("+6285700001111", user_id="73"))
    assert third.text == texts("eligibility_unconfirmed")
    # The real owner can still register (marked for the verifier), never locked out;
    # a day later the flag is gone.
    clock.now = TODAY + timedelta(days=1, hours=1)
    later = check_up_to_name(bot, texts, "74", SITI, "Siti Aminah")
    assert later.text == texts("eligibility_ask_business")


def test_status_of_someone_elses_registration_never_shows_the_reason(
        bot, texts, sqlite_engine):
    from tests.test_registration import reach

    reach(bot, "summary", user="80", answers={"nik": ("text", SITI),
                                              "name": ("text", "Siti Aminah")}).press("Kirim")
    with make_sessionmaker(sqlite_engine).begin() as session:
        session.execute(update(Registration).values(status="ditolak",
                                                    alasan="Masih menerima PKH aktif",
                                                    updated_at=utcnow()))
    own = Chat(bot, "80").send("/status")
    assert "Masih menerima PKH aktif" in own.text
    stranger = Chat(bot, "81").send("/status").press(texts("consent_yes")).send(SITI)
    stranger.send("Siti Aminah")
    assert "PRK-2026-000001" in stranger.text and "Masih menerima PKH aktif" not in stranger.text
    with make_sessionmaker(sqlite_engine)() as session:
        assert registrations.for_nik(session, SITI)[0].status == "ditolak"
