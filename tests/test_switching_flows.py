"""Issue 12 item 4: switching flows. Another form asked for while one runs is never
continued silently ("Hentikan cek dan mulai pendaftaran?"), a proven NIK and name are
carried from the check into the registration, an abandoned consent question ends politely,
"Daftar Prokus" is not offered to an account whose registration runs, and "cek status"
inside the status lookup does not contradict itself."""

from __future__ import annotations

import pytest
from sqlalchemy import select

from db.engine import make_sessionmaker
from db.models import AuditLog, Conversation
from tests.chat_helpers import Chat

BUDI = "3201051203900001"
DEWI = "3374024101950003"  # PKH aktif: not eligible


@pytest.fixture(autouse=True)
def _switch_words(nlu):
    nlu.rules["mau daftar"] = ("register_prokus", 0.95)
    nlu.rules["cek status"] = ("registration_status", 0.95)
    nlu.rules["cek kelayakan"] = ("check_eligibility", 0.95)


def form_of(engine):
    with make_sessionmaker(engine)() as session:
        states = session.scalars(select(Conversation.state)).all()
    forms = [s.get("form") for s in states if s.get("form")]
    return forms[0] if forms else None


def audit(engine):
    with engine.connect() as conn:
        return [(row.action, row.outcome) for row in conn.execute(
            select(AuditLog).order_by(AuditLog.id))]


def checked(bot, nik=BUDI, name="Budi Santoso", user="50"):
    """An eligibility check with NIK and name proven: at the business step."""
    return Chat(bot, user).send("/cek").send("ya").send(nik).send(name)


def submit_budi(bot, user="50"):
    chat = Chat(bot, user).send("/daftar").send("ya").send(BUDI).send("Budi Santoso")
    for answer in ("ya", "081234567891", "Bogor", "Cibinong", "Pakansari"):
        chat.send(answer)
    chat.send("Kuliner").send("jualan gorengan di depan sekolah").send("2 tahun")
    return chat.send("kirim")


# ------------------------------------------------------------------ check -> registration
@pytest.mark.parametrize("how", [{"text": "/daftar"}, {"payload": "/register_prokus"},
                                 {"text": "sy mau daftar"}, {"text": "Daftar Prokus"}])
def test_daftar_during_the_check_asks_before_switching(bot, texts, sqlite_engine, how):
    chat = checked(bot)
    if how.get("text") == "Daftar Prokus":  # the menu button, typed from the menu
        chat.send("menu")
    chat.send(**how)
    assert chat.text == texts("switch_ask/eligibility/registration/carry")
    assert chat.labels() == [texts("switch_yes"), texts("switch_no/eligibility")]
    assert form_of(sqlite_engine)["name"] == "eligibility"


def test_yes_carries_the_proven_nik_and_name_without_a_new_lookup(bot, texts, sqlite_engine):
    chat = checked(bot).send("/daftar")
    lookups = audit(sqlite_engine).count(("nik_lookup", "verified"))
    chat.press(texts("switch_yes"))
    assert chat.replies[0].text == texts("switch_stopped", form="cek kelayakan")
    assert "13 Maret 1990" not in chat.text  # Budi: 12 Maret 1990 from the NIK
    assert chat.replies[-1].text == texts("registration_ask_birth_date", date="12 Maret 1990")
    state = form_of(sqlite_engine)
    assert state["name"] == "registration" and state["step"] == "birth_date"
    assert state["values"] == {"nik": BUDI, "name": "Budi Santoso"}
    assert audit(sqlite_engine).count(("nik_lookup", "verified")) == lookups
    assert ("nik_carry_over", "verified") in audit(sqlite_engine)
    chat.send("kembali")  # back to the name: proven again
    assert chat.text == texts("registration_ask_name")
    assert form_of(sqlite_engine)["values"] == {"nik": BUDI}


def test_typed_yes_also_switches_and_no_continues_the_check(bot, texts, sqlite_engine):
    chat = checked(bot).send("/daftar").send("iya")
    assert form_of(sqlite_engine)["name"] == "registration"
    chat.send("batal")
    chat = checked(bot).send("/daftar").send("tidak")
    assert chat.text == texts("eligibility_ask_business")
    assert form_of(sqlite_engine)["name"] == "eligibility"
    chat.press("Kuliner")
    assert form_of(sqlite_engine) is None  # the result; nothing switched


def test_the_no_button_continues_the_check(bot, texts, sqlite_engine):
    chat = checked(bot).send("/daftar").press(texts("switch_no/eligibility"))
    assert chat.text == texts("eligibility_ask_business")
    assert form_of(sqlite_engine)["name"] == "eligibility"


def test_carried_over_rules_still_apply(bot, texts, sqlite_engine):
    chat = checked(bot, DEWI, "Dewi Lestari").send("/daftar").press(texts("switch_yes"))
    assert texts("registration_not_eligible") in chat.text
    assert form_of(sqlite_engine) is None


def test_before_the_name_is_proven_nothing_is_carried(bot, texts, sqlite_engine):
    chat = Chat(bot).send("/cek").send("ya").send(BUDI).send("/daftar")
    assert chat.text == texts("switch_ask/eligibility/registration")
    chat.press(texts("switch_yes"))
    assert chat.replies[-1].text == texts("registration_consent")
    assert form_of(sqlite_engine)["values"] == {}


# ------------------------------------------------------------------ other switches
def test_cek_during_the_registration_asks_then_switches(bot, texts, sqlite_engine):
    chat = Chat(bot).send("/daftar").send("ya").send(BUDI).send("/cek")
    assert chat.text == texts("switch_ask/registration/eligibility")
    assert chat.labels() == [texts("switch_yes"), texts("switch_no/registration")]
    chat.press(texts("switch_yes"))
    assert chat.replies[-1].text == texts("eligibility_consent")
    assert form_of(sqlite_engine) == {**form_of(sqlite_engine), "name": "eligibility",
                                      "values": {}}


def test_status_during_the_check_asks_then_starts_the_lookup(bot, texts, sqlite_engine):
    chat = Chat(bot).send("/cek").send("ya").send("/status")
    assert chat.text == texts("switch_ask/eligibility/status")
    assert form_of(sqlite_engine)["name"] == "eligibility"
    chat.press(texts("switch_yes"))
    assert chat.replies[-1].text == texts("status_consent")
    assert form_of(sqlite_engine)["name"] == "status"


# ------------------------------------------------------------------ "cek status" in /status
@pytest.mark.parametrize("steps", [["/status"], ["/status", "ya"]])
def test_cek_status_inside_the_status_lookup_is_consistent(bot, texts, sqlite_engine, steps):
    chat = Chat(bot)
    for step in steps:
        chat.send(step)
    chat.send("cek status")
    assert texts("status_none_for_account") not in chat.text
    assert chat.replies[0].text == texts("form_already_running", form="cek status")
    assert form_of(sqlite_engine)["step"] == ("consent" if len(steps) == 1 else "nik")


# ------------------------------------------------------------------ abandoned consent
def test_an_abandoned_consent_ends_politely(bot, texts, sqlite_engine):
    chat = Chat(bot).send("/daftar").send("halo")
    assert texts("registration_consent") not in chat.text
    assert chat.labels() == [texts("consent_yes"), texts("consent_no")]
    chat.send("prokus apa")  # a side question: answered, the consent waits
    assert form_of(sqlite_engine)["step"] == "consent"
    chat.send("makasih")
    assert chat.text == texts("consent_abandoned", command="/daftar")
    assert form_of(sqlite_engine) is None
    chat.send("makasih")  # now simply thanks, no consent again
    assert chat.text == texts("thanks")


def test_a_greeting_that_ends_an_abandoned_consent_does_not_say_we_go_on(bot, texts,
                                                                          sqlite_engine):
    """The second unclear answer is a greeting: the form ends, so no "Kita lanjutkan ya"
    before "tidak saya lanjutkan" (seen in the console chat)."""
    chat = Chat(bot).send("/daftar").send("makasih")
    assert form_of(sqlite_engine)["step"] == "consent"
    chat.send("halo")
    assert chat.text == texts("consent_abandoned", command="/daftar")
    assert form_of(sqlite_engine) is None


def test_one_unclear_consent_answer_still_waits(bot, texts, sqlite_engine):
    chat = Chat(bot).send("/cek").send("mungkin")
    assert chat.text == texts("consent_unclear")
    chat.send("ya")
    assert chat.text == texts("eligibility_ask_nik")


# ------------------------------------------------------------------ already registered
def test_the_menu_offers_status_instead_of_registering(bot, texts):
    chat = Chat(bot).send("menu")
    assert texts("label/register_prokus") in chat.labels()
    submit_budi(bot)
    chat.send("menu")
    assert texts("label/register_prokus") not in chat.labels()
    assert texts("label/registration_status") in chat.labels()
    other = Chat(bot, user="77").send("menu")
    assert texts("label/register_prokus") in other.labels()


def test_daftar_with_a_running_registration_says_so_before_consent(bot, texts, sqlite_engine):
    chat = submit_budi(bot).send("/daftar")
    assert chat.text.startswith(texts("registration_exists_account", status="")[:40])
    assert "PRK-2026-000001" in chat.text
    assert texts("registration_consent") not in chat.text
    assert texts("label/registration_status") in chat.labels()
    assert form_of(sqlite_engine) is None


def test_daftar_during_the_check_with_a_running_registration(bot, texts, sqlite_engine):
    submit_budi(bot)
    chat = Chat(bot).send("/cek").send("ya").send("/daftar")
    assert "PRK-2026-000001" in chat.text
    assert chat.replies[-1].text == texts("eligibility_ask_nik")
    assert form_of(sqlite_engine)["name"] == "eligibility"
