"""Harder enumeration in the registration (issue 16 item 5): when the registry has a phone
for the NIK, the user's own Telegram contact is asked after the name, before anything from
the registry is shown (the rules verdict, the birth date offered from the NIK, an active
registration's details). Confirmed: as before, the shared number is the phone. Differs or
skipped: nothing revealed; the registration can be submitted and is marked for the verifier."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from actions.types import Contact
from db.engine import make_sessionmaker
from db.models import AuditLog, Kpm, Registration
from nlu.client import Parse
from tests.test_registration import form_state

BUDI, AGUS, DEWI = "3201051203900001", "3201052811860004", "3374024101950003"
PHONES = {BUDI: "+6281234567890", AGUS: "+6281200000004", DEWI: "081300000003"}
OTHER_PHONE = "+6285700001111"
# What must not appear in any reply to someone whose contact is not confirmed: the rules
# verdict (PKH status, age) and the registry's birth date (also as the NIK's date).
AGUS_BORN = ("28 November 1986", "1986")
DEWI_BORN = ("1 Januari 1995", "1995")


@pytest.fixture
def registry(bot, sqlite_engine):
    """The test registry (tests/chat_helpers), with phones for Budi, Agus and Dewi; Agus
    (40 today) is too old and Dewi has not graduated from PKH, named in full as
    "Muhammad Agus Wibowo" for Agus, so a left-out first name can be seen."""
    with make_sessionmaker(sqlite_engine).begin() as session:
        for kpm in session.scalars(select(Kpm)):
            if kpm.nik in PHONES:
                kpm.no_hp = PHONES[kpm.nik]
            if kpm.nik == AGUS:
                kpm.nama = "Muhammad Agus Wibowo"
    return bot


def up_to_contact(chat, texts, nik: str, name: str):
    chat.send("/daftar").press(texts("consent_yes")).send(nik).send(name)
    assert chat.text == texts("identity_ask_contact") and chat.replies[0].ask_contact
    return chat


def leak_free(texts, replies: str, born: tuple[str, ...]) -> None:
    """No verdict and no birth date from the registry in `replies`."""
    assert texts("registration_not_eligible") not in replies
    assert "❌" not in replies and "✅ " not in replies.replace("terkirim ✅", "")
    for word in ("PKH aktif", "graduasi", "umur", "usia", *born):
        assert word not in replies, word
    head = texts.raw("registration_ask_birth_date").split("{")[0].strip()
    assert head not in replies  # the date offered from the NIK


def answer_rest(chat, texts, typed_date: str, phone: str | None):
    """From the typed birth date to the summary (no regions table: the address is typed)."""
    chat.send(typed_date)
    if phone is not None:
        assert chat.text == texts("registration_ask_phone") and chat.replies[0].ask_contact
        chat.send(phone)
    assert chat.text == texts("registration_ask_kabupaten")
    chat.send("kabupaten bogor").send("Cibinong").send("Pakansari").press("Kuliner")
    chat.send("Jualan gorengan dan es teh di depan sekolah").send("2 tahun")
    return chat


def stored(engine) -> list[Registration]:
    with make_sessionmaker(engine)() as session:
        return list(session.scalars(select(Registration)))


def audit_rows(engine) -> list[tuple[str, str]]:
    with make_sessionmaker(engine)() as session:
        return [(a.action, a.outcome) for a in
                session.scalars(select(AuditLog).order_by(AuditLog.id))]


# ------------------------------------------------------------------ confirmed
def test_a_matching_contact_goes_on_as_before_with_its_number_as_the_phone(
        registry, texts, sqlite_engine, chat_factory):
    chat = up_to_contact(chat_factory("50"), texts, BUDI, "budi santoso")
    chat.send(contact=Contact("081234567890", user_id="50"))
    assert chat.replies[0].text == texts("registration_contact_confirmed",
                                         phone="+6281234567890")
    assert chat.replies[-1].text == texts("registration_ask_birth_date", date="12 Maret 1990")
    chat.press(texts("birth_date_ok"))
    assert chat.text == texts("registration_ask_kabupaten")  # the phone step is skipped
    chat.send("kabupaten bogor").send("Cibinong").send("Pakansari").press("Kuliner")
    chat.send("Jualan gorengan dan es teh di depan sekolah").send("2 tahun")
    assert "+6281234567890" in chat.text and "Budi Santoso" in chat.text
    chat.press("Kirim")
    assert chat.replies[0].text == texts("registration_submitted", number="PRK-2026-000001")
    [reg] = stored(sqlite_engine)
    assert (reg.no_hp, reg.nama, reg.tanggal_lahir, reg.kontak_berbeda) == (
        "+6281234567890", "Budi Santoso", date(1990, 3, 12), False)
    assert audit_rows(sqlite_engine) == [("nik_lookup", "verified"), ("contact_check", "matched"),
                                         ("registration_submit", "submitted")]


def test_a_matching_contact_of_someone_too_old_gets_the_reason_as_before(
        registry, texts, chat_factory):
    chat = up_to_contact(chat_factory("50"), texts, AGUS, "Agus Wibowo")
    chat.send(contact=Contact(PHONES[AGUS], user_id="50"))
    assert texts("registration_not_eligible") in chat.text and "❌" in chat.text
    assert texts("registration_contact_confirmed", phone=PHONES[AGUS]) not in chat.text


def test_the_phone_can_still_be_changed_from_the_summary(registry, texts, sqlite_engine,
                                                         chat_factory):
    chat = up_to_contact(chat_factory("50"), texts, BUDI, "Budi Santoso")
    chat.send(contact=Contact(PHONES[BUDI], user_id="50")).press(texts("birth_date_ok"))
    chat.send("kabupaten bogor").send("Cibinong").send("Pakansari").press("Kuliner")
    chat.send("Jualan gorengan dan es teh di depan sekolah").send("2 tahun")
    chat.press("Ubah").press(texts("field/phone"))
    assert chat.text == texts("registration_ask_phone")
    chat.send("0813-1111-2222")
    assert "+6281311112222" in chat.text
    chat.press("Kirim")
    [reg] = stored(sqlite_engine)
    assert (reg.no_hp, reg.kontak_berbeda) == ("+6281311112222", False)


# ------------------------------------------------------------------ not confirmed
HOW = ["other_number", "skip_button", "typed_skip"]


def not_confirmed(chat, texts, how: str, user: str = "50"):
    if how == "other_number":
        chat.send(contact=Contact(OTHER_PHONE, user_id=user))
    elif how == "skip_button":
        chat.press(texts("identity_contact_skip"))
    else:
        chat.send("lewati aja")
    return chat


@pytest.mark.parametrize("how", HOW)
def test_too_old_but_not_confirmed_reveals_nothing_and_is_submitted_flagged(
        registry, texts, sqlite_engine, chat_factory, how):
    chat = up_to_contact(chat_factory("50"), texts, AGUS, "Agus Wibowo")
    seen = [chat.text]
    not_confirmed(chat, texts, how)
    seen.append(chat.text)
    assert chat.replies[0].text == texts("registration_contact_unconfirmed")
    assert chat.replies[-1].text == texts("registration_ask_birth_date_typed")
    chat.send("ya")  # no date to agree with
    seen.append(chat.text)
    assert chat.text == texts("date_unreadable")
    answer_rest(chat, texts, "12-03-1990", phone="081298765432")  # not his NIK's date
    seen.append(chat.text)
    summary = chat.text
    assert "Agus Wibowo" in summary and "Muhammad" not in summary  # the name as typed
    assert "+6281298765432" in summary and "12 Maret 1990" in summary
    chat.press("Kirim")
    seen.append(chat.text)
    assert chat.replies[0].text == texts("registration_submitted_check",
                                         number="PRK-2026-000001")
    leak_free(texts, "\n".join(seen), AGUS_BORN)
    [reg] = stored(sqlite_engine)
    assert (reg.kontak_berbeda, reg.nama, reg.no_hp, reg.status) == (
        True, "Agus Wibowo", "+6281298765432", "diajukan")
    outcome = "differs" if how == "other_number" else "not_shared"
    assert audit_rows(sqlite_engine) == [("nik_lookup", "verified"), ("contact_check", outcome),
                                         ("registration_submit", "submitted")]
    assert form_state(sqlite_engine) is None


def test_not_graduated_and_not_confirmed_is_submitted_without_a_verdict(
        registry, texts, sqlite_engine, chat_factory):
    chat = up_to_contact(chat_factory("50"), texts, DEWI, "dewi lestari")
    not_confirmed(chat, texts, "other_number")
    answer_rest(chat, texts, "1 januari 1995", phone=OTHER_PHONE)
    assert "Dewi Lestari" in chat.text
    chat.press("Kirim")
    assert texts("registration_not_eligible") not in chat.text
    assert "PRK-2026-000001" in chat.text
    [reg] = stored(sqlite_engine)
    assert (reg.kontak_berbeda, reg.tanggal_lahir) == (True, date(1995, 1, 1))


def test_an_active_registration_is_only_said_to_exist(registry, texts, sqlite_engine,
                                                      chat_factory):
    owner = up_to_contact(chat_factory("50"), texts, BUDI, "Budi Santoso")
    owner.send(contact=Contact(PHONES[BUDI], user_id="50")).press(texts("birth_date_ok"))
    owner.send("kabupaten bogor").send("Cibinong").send("Pakansari").press("Kuliner")
    owner.send("Jualan gorengan dan es teh di depan sekolah").send("2 tahun").press("Kirim")
    stranger = up_to_contact(chat_factory("51"), texts, BUDI, "Budi Santoso")
    not_confirmed(stranger, texts, "skip_button", user="51")
    assert stranger.text == texts("registration_contact_exists")
    assert "PRK-" not in stranger.text and "Kuliner" not in stranger.text
    assert form_state(sqlite_engine) is None  # (the owner's form is finished too)
    # The owner's own contact on another account: the details, as before.
    again = up_to_contact(chat_factory("52"), texts, BUDI, "Budi Santoso")
    again.send(contact=Contact(PHONES[BUDI], user_id="52"))
    assert "PRK-2026-000001" in again.text
    assert len(stored(sqlite_engine)) == 1


def test_without_a_registry_phone_nothing_changes(registry, texts, chat_factory):
    chat = chat_factory("50").send("/daftar").press(texts("consent_yes"))
    chat.send("3201055508920002").send("Siti Aminah")
    assert chat.text == texts("registration_ask_birth_date", date="15 Agustus 1992")


# ------------------------------------------------------------------ kembali, help
def test_back_from_the_typed_date_asks_the_contact_again_and_then_it_can_match(
        registry, texts, chat_factory):
    chat = up_to_contact(chat_factory("50"), texts, BUDI, "Budi Santoso")
    not_confirmed(chat, texts, "skip_button")
    assert chat.text.endswith(texts("registration_ask_birth_date_typed"))
    chat.send("kembali")
    assert chat.text == texts("identity_ask_contact") and chat.replies[0].ask_contact
    chat.send(contact=Contact(PHONES[BUDI], user_id="50"))
    assert chat.replies[-1].text == texts("registration_ask_birth_date", date="12 Maret 1990")
    chat.press(texts("birth_date_ok"))
    assert chat.text == texts("registration_ask_kabupaten")
    chat.send("kembali")  # the skipped phone step is not in the way back
    assert chat.text == texts("registration_ask_birth_date", date="12 Maret 1990")
    chat.send("kembali")
    assert chat.text == texts("identity_ask_contact")


def test_back_from_a_confirmed_contact_forgets_the_number(registry, texts, sqlite_engine,
                                                          chat_factory):
    chat = up_to_contact(chat_factory("50"), texts, BUDI, "Budi Santoso")
    chat.send(contact=Contact(PHONES[BUDI], user_id="50"))
    chat.send("kembali")
    assert chat.text == texts("identity_ask_contact")
    values = form_state(sqlite_engine)["values"]
    assert "phone" not in values and "contact" not in values
    not_confirmed(chat, texts, "typed_skip")
    chat.send("12-03-1990")
    assert chat.text == texts("registration_ask_phone")  # asked: the number is not kept


def test_back_from_the_contact_step_asks_the_name(registry, texts, chat_factory):
    chat = up_to_contact(chat_factory("50"), texts, BUDI, "Budi Santoso")
    chat.send("kembali")
    assert chat.text == texts("registration_ask_name")


def test_two_unclear_answers_at_the_contact_step_explain_it(registry, texts, chat_factory):
    chat = up_to_contact(chat_factory("50"), texts, BUDI, "Budi Santoso")
    chat.send("081234567890")
    assert chat.text == texts("identity_contact_hint")
    assert chat.replies[-1].ask_contact and chat.labels() == [texts("identity_contact_skip")]
    chat.send("0812 3456 7890")
    assert chat.text == texts("registration_help_contact")
    # The way on stays one tap: the contact keyboard and "Lewati", not go-on/stop buttons.
    assert chat.replies[-1].ask_contact and chat.labels() == [texts("identity_contact_skip")]
    chat.send(contact=Contact(PHONES[BUDI], user_id="999"))  # someone else's contact
    assert chat.text == texts("identity_contact_not_own")


@pytest.mark.parametrize("confidence,answered", [(0.65, True), (0.55, False)])
def test_a_question_at_the_contact_step_is_answered_then_asked_again(
        registry, texts, nlu, chat_factory, confidence, answered):
    """The ensemble's confidences are lower than DIET's alone: a question the NLU reads at
    0.6 or more is answered on the side (fresh conversation "modalnya nnti dikirim kemana
    kak" came at 0.75 and was refused at the old 0.75 bar)."""
    nlu.rules["modalnya"] = Parse("faq", confidence, response_selector={
        "faq": {"response": {"intent_response_key": "faq/capital_disbursement"}}})
    chat = up_to_contact(chat_factory("50"), texts, BUDI, "Budi Santoso")
    chat.send("modalnya nnti dikirim kemana kak")
    if answered:
        assert texts("faq/capital_disbursement") in chat.text
        assert chat.replies[-1].text == texts("identity_ask_contact")
    else:
        assert chat.text == texts("identity_contact_hint")
    # Either way the way on stays one tap.
    assert chat.replies[-1].ask_contact and chat.labels() == [texts("identity_contact_skip")]


# ------------------------------------------------------------------ carried over
def test_daftar_at_the_checks_contact_step_carries_nothing_over(
        registry, texts, nlu, chat_factory):
    """While the check's contact step is pending, the NIK is not carried into the
    registration: it starts from the beginning and proves NIK, name and contact itself."""
    nlu.rules["mau daftar"] = ("register_prokus", 0.95)
    chat = chat_factory("50").send("/cek").press(texts("consent_yes")).send(AGUS)
    chat.send("Agus Wibowo")
    assert chat.text == texts("identity_ask_contact")
    chat.send("sy mau daftar aja")
    assert chat.text == texts("switch_ask/eligibility/registration")
    chat.press(texts("switch_yes"))
    assert chat.replies[-1].text == texts("registration_consent")
    chat.press(texts("consent_yes")).send(AGUS).send("Agus Wibowo")
    assert chat.replies[-1].text == texts("identity_ask_contact")
    leak_free(texts, chat.text, AGUS_BORN)
    not_confirmed(chat, texts, "skip_button")
    leak_free(texts, chat.text, AGUS_BORN)
    assert chat.replies[-1].text == texts("registration_ask_birth_date_typed")


@pytest.fixture
def chat_factory(registry):
    from tests.chat_helpers import Chat

    return lambda user: Chat(registry, user)


# ------------------------------------------------------------------ flagged NIK
def test_a_nik_tried_from_three_accounts_needs_a_contact_to_register_too(
        registry, texts, sqlite_engine, chat_factory):
    siti = "3201055508920002"  # no registry phone: a flagged NIK cannot be confirmed
    for user in ("71", "72"):
        chat = chat_factory(user).send("/daftar").press(texts("consent_yes"))
        chat.send(siti).send("Siti Aminah")
        assert chat.text == texts("registration_ask_birth_date", date="15 Agustus 1992")
    third = chat_factory("73").send("/daftar").press(texts("consent_yes")).send(siti)
    third.send("Siti Aminah")
    assert third.text == texts("identity_ask_contact")
    third.send(contact=Contact(OTHER_PHONE, user_id="73"))
    assert third.replies[-1].text == texts("registration_ask_birth_date_typed")
    answer_rest(third, texts, "15-08-1992", phone=OTHER_PHONE).press("Kirim")
    assert "PRK-2026-000001" in third.text
    [reg] = stored(sqlite_engine)
    assert reg.kontak_berbeda and reg.user_id is not None


# ------------------------------------------------------------------ the console
def test_the_verifier_sees_the_contact_warning_and_the_queue_a_badge(sqlite_engine, clock):
    from tests.chat_helpers import load_registry
    from tests.web.conftest import Console
    from tests.web.test_registrations import seed

    load_registry(sqlite_engine)
    console = Console(sqlite_engine, clock).signed_in("super")
    flagged = seed(sqlite_engine, BUDI, kontak_berbeda=True)
    plain = seed(sqlite_engine, "3201055508920002", "Siti Aminah", born=date(1992, 8, 15))
    html = console.client.get(f"/registrations/{flagged}").text
    warning = "Kontak Telegram tidak cocok dengan data PKH / tidak dibagikan: pastikan " \
              "identitas pemohon"
    assert warning in html and "reg-contact-warning" in html
    html = console.client.get(f"/registrations/{plain}").text
    assert warning not in html and "kontak berbeda" not in html
    queue = console.client.get("/registrations").text
    assert queue.count(">kontak berbeda</span>") == 1
