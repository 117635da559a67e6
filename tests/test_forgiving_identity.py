"""Issue 12 (items 1 and 5): forgiving name step, regional and soft yes/no, and a polite
NIK step ("lupa NIK", "nik itu apa"), through the dialogue core (fake NLU, fixed clock)."""

from __future__ import annotations

from datetime import date

import pytest
from sqlalchemy import select

from actions.context import short_yes_no
from actions.identity import NAME_TRIES, asks_what_nik, nik_pause
from db.engine import make_sessionmaker
from db.models import AuditLog, Conversation, Kpm, utcnow
from tests.chat_helpers import Chat

BUDI = "3201051203900001"
RIZKI = "3201051203900007"
UNKNOWN = "3201051203909999"


@pytest.fixture
def rizki(bot, sqlite_engine):
    """A KPM with a three-part name, beside the small registry of chat_helpers."""
    with make_sessionmaker(sqlite_engine).begin() as session:
        session.add(Kpm(nik=RIZKI, nama="Muhammad Rizki Ramadhan", tanggal_lahir=date(1990, 3, 12),
                        jenis_kelamin="L", kode_wilayah="3201052001", status_pkh="graduasi",
                        updated_at=utcnow()))
    return RIZKI


def at_name(bot, nik=BUDI, user="50", command="/cek"):
    return Chat(bot, user).send(command).send("ya").send(nik)


def audit(engine):
    with engine.connect() as conn:
        return [(row.action, row.outcome, row.subject)
                for row in conn.execute(select(AuditLog).order_by(AuditLog.id))]


def form_of(engine, user="50"):
    with make_sessionmaker(engine)() as session:
        states = session.scalars(select(Conversation.state)).all()
    forms = [s.get("form") for s in states if s.get("form")]
    return forms[0] if forms else None


# ---------------------------------------------------------------- the name step
@pytest.mark.parametrize("typed", [
    "nama saya Budi Santoso", "Nama sy: budi santoso", "namaku budi santoso",
    "pak Budi Santoso", "saya Budi Santoso!", "BUDI  SANTOSO.",
    "nama abdi Budi Santoso", "nami kulo budi santoso", "jenengku Budi Santoso",
    "nama aye budi santoso",
])
def test_lead_ins_case_and_punctuation_are_ignored(bot, texts, typed):
    assert at_name(bot).send(typed).text == texts("eligibility_ask_business")


@pytest.mark.parametrize("typed", [
    "M. Rizki Ramadhan", "M Rizki Ramadhan", "Rizki Ramadhan", "muhamad rizki ramadan",
    "nama saya Moh. Rizki Ramadhan",
])
def test_agreed_partial_matches_pass(bot, texts, rizki, typed):
    assert at_name(bot, rizki).send(typed).text == texts("eligibility_ask_business")


def test_a_wrong_name_may_be_typed_again_on_the_same_nik(bot, texts, sqlite_engine):
    chat = at_name(bot).send("Bambang Pamungkas")
    assert chat.text == texts("name_retry", left=NAME_TRIES - 1)
    assert "Budi" not in chat.text and "Santoso" not in chat.text, "never the registry's name"
    chat.send("Budi Santoso")
    assert chat.text == texts("eligibility_ask_business")
    assert audit(sqlite_engine) == [
        ("nik_lookup", "name_mismatch", "3201********0001"),
        ("nik_lookup_retry", "verified", "3201********0001"),
    ]


def test_after_the_last_try_the_form_ends_as_before(bot, texts, sqlite_engine):
    chat = at_name(bot)
    for left in range(NAME_TRIES - 1, 0, -1):
        assert chat.send("Bambang Pamungkas").text == texts("name_retry", left=left)
    chat.send("Bambang Pamungkas")
    assert chat.text == texts("eligibility_not_verified")
    assert form_of(sqlite_engine) is None
    assert [a for a, _, _ in audit(sqlite_engine)] == (
        ["nik_lookup"] + ["nik_lookup_retry"] * (NAME_TRIES - 1))


def test_retries_look_the_same_for_an_unknown_nik_and_a_wrong_name(bot, sqlite_engine):
    unknown, wrong = at_name(bot, UNKNOWN, user="60"), at_name(bot, BUDI, user="61")
    for name in ("Budi Santoso", "Budi Santoso", "Siti Aminah"):
        unknown.send(name)
        wrong.send("Bambang Pamungkas" if name != "Siti Aminah" else name)
        assert unknown.replies == wrong.replies
    with sqlite_engine.connect() as conn:
        rows = conn.execute(select(AuditLog.actor, AuditLog.action)).all()
    actions = {actor: [a for who, a in rows if who == actor] for actor, _ in rows}
    assert len(actions) == 2 and len(set(map(tuple, actions.values()))) == 1


def test_retries_count_as_one_lookup_in_the_hourly_limit(bot, texts):
    for user_nik in ("3201051203900099", "3201051203900098", "3201051203900097",
                     "3201051203900096"):
        chat = at_name(bot, user_nik)
        for _ in range(NAME_TRIES):
            chat.send("Joko Susilo")
    chat = at_name(bot).send("Bambang Pamungkas")  # the fifth lookup
    assert chat.text == texts("name_retry", left=NAME_TRIES - 1)
    assert chat.send("Budi Santoso").text == texts("eligibility_ask_business"), (
        "a retry of the fifth lookup is not a sixth")
    assert Chat(bot).send("batal").send("/cek").text == texts("nik_rate_limited")


def test_a_new_nik_is_a_new_lookup_with_fresh_tries(bot, texts, sqlite_engine):
    chat = at_name(bot).send("Bambang Pamungkas").send("kembali")
    assert chat.text == texts("eligibility_ask_nik")
    chat.send(UNKNOWN).send("Budi Santoso")
    assert chat.text == texts("name_retry", left=NAME_TRIES - 1)
    assert [a for a, _, _ in audit(sqlite_engine)] == ["nik_lookup", "nik_lookup"]


def test_registration_and_status_retry_the_name_too(bot, texts):
    chat = at_name(bot, command="/daftar").send("Budi")
    assert chat.text == texts("name_retry", left=NAME_TRIES - 1)
    assert texts("registration_ask_birth_date_typed") not in chat.send(
        "nama saya Budi Santoso").text
    assert "12 Maret 1990" in chat.text
    status = at_name(bot, "3201050505900005", user="70", command="/status").send("Rina Susanti")
    assert status.text == texts("name_retry", left=NAME_TRIES - 1)
    assert status.send("bu Rina Marlina").text == texts("status_none_for_nik")


@pytest.mark.parametrize("typed", ["12345", "nama saya"])
def test_what_cannot_be_a_name_is_no_lookup(bot, texts, sqlite_engine, typed):
    assert at_name(bot).send(typed).text == texts("name_invalid")
    assert audit(sqlite_engine) == []


# ---------------------------------------------------------------- yes and no
YES = ["leres", "nggih", "enggih", "inggih", "injih", "iya kak", "iyah", "yoi", "yup", "sip",
       "siap", "gas", "boleh deh", "oke deh", "ok kak", "muhun", "sumuhun", "enya", "heeh",
       "he'eh", "bener", "betul", "setuju", "iyaaa", "ya kak 🙏", "Iya, saya setuju!", "Sip!!"]
NO = ["ngga dulu deh", "nggak dulu", "nanti aja", "nanti saja", "lain kali", "emoh", "ora",
      "mboten", "henteu", "teu", "moal", "kagak", "ogah", "gak mau", "belum dulu",
      "tidak dulu", "gk!!", "Nggak ya kak", "ga usah bu"]
NEITHER = ["ya tidak", "ya tapi nanti", "gak apa apa", "iya saya mau tanya dulu",
           "saya ora ngerti", "nanti sy cari dulu", "boleh saya tanya syaratnya", "",
           "betul betul tidak tahu"]


@pytest.mark.parametrize("text", YES)
def test_short_yes(text):
    assert short_yes_no(text) == "affirm"


@pytest.mark.parametrize("text", NO)
def test_short_no(text):
    assert short_yes_no(text) == "deny"


@pytest.mark.parametrize("text", NEITHER)
def test_longer_sentences_are_not_yes_or_no(text):
    assert short_yes_no(text) is None


@pytest.mark.parametrize("text", ["leres", "iya kak", "sumuhun", "oke deh", "siap 🙏"])
def test_regional_yes_at_the_consent_of_the_check(bot, texts, nlu, text):
    assert Chat(bot).send("/cek").send(text).text == texts("eligibility_ask_nik")
    assert text not in nlu.seen


@pytest.mark.parametrize("text", ["ngga dulu deh", "nanti aja", "emoh", "ora", "henteu"])
def test_soft_no_at_the_consent_of_the_check(bot, texts, text):
    assert Chat(bot).send("/cek").send(text).text == texts("eligibility_no_consent")


@pytest.mark.parametrize("text,expected", [
    ("nggih", "registration_ask_nik"), ("yoi", "registration_ask_nik"),
    ("nggak dulu", "registration_no_consent"), ("kagak", "registration_no_consent"),
])
def test_regional_answers_at_the_consent_of_registration(bot, texts, text, expected):
    assert Chat(bot).send("/daftar").send(text).text == texts(expected)


def test_a_sentence_with_a_yes_word_is_not_consent(bot, texts):
    chat = Chat(bot).send("/cek").send("iya saya mau tanya dulu")
    assert chat.text == texts("consent_unclear")


def test_leres_confirms_the_birth_date(bot, texts):
    chat = at_name(bot, command="/daftar").send("Budi Santoso").send("leres")
    assert chat.text == texts("registration_ask_phone")


def test_mboten_at_the_birth_date_asks_for_it(bot, texts):
    chat = at_name(bot, command="/daftar").send("Budi Santoso").send("mboten")
    assert chat.text == texts("registration_ask_birth_date_typed")


# ---------------------------------------------------------------- the NIK step
@pytest.mark.parametrize("text", ["sy gk hafal nik", "nanti sy cari dulu", "lupa nik",
                                  "nik sy ga tau", "Maaf, NIK saya lupaa", "ktp sy ketinggalan"])
@pytest.mark.parametrize("command", ["/cek", "/daftar", "/status"])
def test_not_knowing_the_nik_is_a_polite_pause(bot, texts, sqlite_engine, nlu, text, command):
    chat = Chat(bot).send(command).send("ya").send(text)
    assert chat.text == texts("nik_pause", command=command)
    assert "NIK hanya berisi angka" not in chat.text
    assert form_of(sqlite_engine) is None and text not in nlu.seen


@pytest.mark.parametrize("text", ["nik itu apa", "nik apa ya", "apa itu NIK?", "NIK tuh apaan",
                                  "nik liat dimana"])
def test_asking_what_a_nik_is_explains_and_asks_again(bot, texts, nlu, text):
    chat = Chat(bot).send("/daftar").send("ya").send(text)
    assert chat.text == texts("faq/what_is_nik") + "\n" + texts("registration_ask_nik")
    assert text not in nlu.seen
    assert chat.send(BUDI).text == texts("registration_ask_name")


def test_nik_words_that_are_neither(bot, texts):
    assert not nik_pause("3201 0512") and not asks_what_nik("nik saya 3201")
    chat = Chat(bot).send("/cek").send("ya").send("nik saya 32010512x")
    assert "NIK hanya berisi angka" in chat.text
