"""Forgiving form steps (issue 12, item 3 and "menu" inside a form): greetings, navigation
words and questions are never stored as answers; "kembali" goes back one step in every
form; after a pause the form says where the user is; lead-ins before a phone or NIK;
durations and dates as people write them."""

from __future__ import annotations

from datetime import date, timedelta

import pytest

from actions.dialogue import Dialogue, is_greeting, is_question
from actions.forms import PAUSE
from domain import dates, nik, phone
from domain import registration as rules
from tests.chat_helpers import TODAY, Chat
from tests.test_registration import BUDI, GOOD, STEPS, answer, form_state, reach

SITI = "3201055508920002"


def question_at(bot, step: str, user: str) -> tuple[str, list[str]]:
    """The text and button labels a fresh user sees when `step` is asked."""
    chat = reach(bot, step, user=user)
    return chat.replies[-1].text, chat.labels()


# ------------------------------------------------------------------ words, not answers
@pytest.mark.parametrize("text", ["halo", "Hai!", "assalamualaikum", "pagi kak",
                                  "Selamat siang bu 🙏", "assalamualaikum wr wb", "P"])
def test_greetings_are_recognised(text):
    assert is_greeting(text)


@pytest.mark.parametrize("text", ["Pakansari", "Cibinong", "Kabupaten Bogor", "halo 0812",
                                  "Jualan gorengan di depan sekolah", "Sukamana", "Pagilaran"])
def test_answers_are_not_greetings(text):
    assert not is_greeting(text)


@pytest.mark.parametrize("text", ["pendaftaran sy yg kemarin gmn", "kapan cair?",
                                  "apa syaratnya", "biayanya berapa", "ini gimana ya kak",
                                  "sy mau nanya dong", "bagaimana"])
def test_questions_are_recognised(text):
    assert is_question(text)


@pytest.mark.parametrize("text", ["Sukamana", "Desa Sukamana", "Cibinong", "Kabupaten Bogor",
                                  "Jualan bakso keliling, kadang di mana ramai",
                                  "Apakusuma Raya", "Siapa Saja", "Mana Jaya"])
def test_answers_with_question_letters_are_not_questions(text):
    assert not is_question(text)


@pytest.mark.parametrize("step,text", [("kabupaten", "assalamualaikum"), ("kecamatan", "halo"),
                                       ("desa", "pagi kak"), ("description", "Hai kak")])
def test_a_greeting_at_a_free_text_step_is_greeted_back_not_stored(bot, texts, sqlite_engine,
                                                                   step, text):
    chat = reach(bot, step)
    question = chat.replies[-1].text
    chat.send(text)
    assert chat.replies[0].text == texts("form_greeting")
    assert chat.replies[-1].text == question
    state = form_state(sqlite_engine)
    assert state["step"] == step and step not in state["values"]


def test_a_greeting_at_the_name_step_of_the_check_is_not_a_name(bot, texts, sqlite_engine):
    chat = Chat(bot).send("/cek").send("ya").send(BUDI).send("halo kak")
    assert chat.replies[0].text == texts("form_greeting")
    assert chat.replies[-1].text == texts("eligibility_ask_name")
    assert form_state(sqlite_engine)["step"] == "name"


@pytest.mark.parametrize("text", ["lanjut", "Lanjutkan", "skip", "lewati"])
def test_navigation_words_are_not_a_place(bot, texts, sqlite_engine, text):
    chat = reach(bot, "kecamatan").send(text)
    assert chat.replies[0].text == texts("form_needs_answer")
    assert chat.replies[-1].text == texts("registration_ask_kecamatan")
    assert "kecamatan" not in form_state(sqlite_engine)["values"]


@pytest.mark.parametrize("step,text", [
    ("desa", "pendaftaran sy yg kemarin gmn"), ("kecamatan", "trus gimana?"),
    ("kabupaten", "kapan cairnya"), ("description", "ini diisi apa"),
])
def test_a_question_the_nlu_cannot_answer_is_not_stored(bot, texts, sqlite_engine, step, text):
    chat = reach(bot, step).send(text)
    assert chat.replies[0].text == texts("form_question_unclear")
    assert chat.replies[-1].text == texts(f"registration_ask_{step}")
    state = form_state(sqlite_engine)
    assert state["step"] == step and step not in state["values"]
    chat.send(text)  # the same question again is still not an answer
    assert step not in form_state(sqlite_engine)["values"]


def test_a_place_with_question_letters_inside_is_an_answer(bot, texts, sqlite_engine):
    chat = reach(bot, "desa").send("Sukamana")
    assert chat.text == texts("registration_ask_business")
    assert form_state(sqlite_engine)["values"]["desa"] == "Sukamana"


def test_a_question_while_the_nlu_is_down_is_held_once_then_taken(bot, nlu, texts,
                                                                 sqlite_engine):
    chat = reach(bot, "desa")
    nlu.down = True
    chat.send("Mana Jaya")
    assert texts("nlu_down_in_form") in chat.text
    assert "desa" not in form_state(sqlite_engine)["values"]
    chat.send("Mana Jaya")
    assert form_state(sqlite_engine)["values"]["desa"] == "Mana Jaya"


def test_the_issue_conversation_never_reaches_the_summary_with_chat(bot, clock, texts,
                                                                   sqlite_engine):
    """A user back the next day types "halo" and asks about "kemarin": nothing is stored."""
    chat = reach(bot, "kecamatan")
    clock.now = TODAY + timedelta(days=1)
    chat.send("halo")
    assert texts("registration_ask_kecamatan") in chat.text
    chat.send("pendaftaran sy yg kemarin gmn")
    assert chat.replies[0].text == texts("form_question_unclear")
    chat.send("kembali")
    assert chat.text == texts("registration_ask_kabupaten")
    values = form_state(sqlite_engine)["values"]
    assert "kabupaten" not in values and "kecamatan" not in values


# ------------------------------------------------------------------ kembali
PREVIOUS = dict(zip(STEPS[1:], STEPS[:-1], strict=True))


@pytest.mark.parametrize("step", STEPS[1:])
def test_kembali_goes_to_the_previous_step_with_its_buttons(bot, texts, sqlite_engine, step):
    previous = PREVIOUS[step]
    expected_text, expected_labels = question_at(bot, previous, user="60")
    chat = reach(bot, step).send("kembali")
    assert chat.replies[-1].text == expected_text
    assert chat.labels() == expected_labels
    state = form_state(sqlite_engine)
    assert state["step"] == previous
    assert previous not in state["values"]  # asked again, answered again


@pytest.mark.parametrize("word", ["balik", "Sebelumnya", "mundur", "back", "kembali."])
def test_other_words_for_back(bot, texts, sqlite_engine, word):
    reach(bot, "desa").send(word)
    assert form_state(sqlite_engine)["step"] == "kecamatan"


def test_kembali_at_the_first_step_says_there_is_none(bot, texts, sqlite_engine):
    chat = Chat(bot).send("/daftar").send("kembali")
    assert chat.replies[0].text == texts("form_no_previous")
    assert chat.replies[-1].text == texts("registration_consent")
    assert form_state(sqlite_engine)["step"] == "consent"


def test_kembali_twice_then_forward_again_to_the_summary(bot, texts, sqlite_engine):
    chat = reach(bot, "desa").send("kembali").send("kembali")
    assert chat.text == texts("registration_ask_kabupaten")
    chat.send("Kota Bogor").send("Bogor Tengah")
    for _, (kind, value) in GOOD[7:]:
        answer(chat, kind, value)
    assert "Kota Bogor" in chat.text and "Bogor Tengah" in chat.text and "Pakansari" in chat.text


def test_going_back_to_the_nik_restarts_the_identity_part(bot, texts, sqlite_engine):
    """A name proven for one NIK never stays with another NIK."""
    chat = reach(bot, "phone").send("kembali").send("kembali").send("kembali")
    assert chat.text == texts("registration_ask_nik")
    assert form_state(sqlite_engine)["values"] == {}
    chat.send(SITI)
    assert "name" not in form_state(sqlite_engine)["values"]
    chat.send("Siti Aminah")
    assert "15 Agustus 1992" in chat.text
    for _, (kind, value) in GOOD[3:]:
        answer(chat, kind, value)
    assert "Siti Aminah" in chat.text and "Budi" not in chat.text


def test_kembali_while_changing_a_field_returns_to_the_choice_then_the_summary(
        bot, texts, sqlite_engine):
    chat = reach(bot, "summary")
    chat.press("Ubah").press(texts("field/desa"))
    assert chat.text == texts("registration_ask_desa")
    chat.send("kembali")
    assert chat.text == texts("registration_ask_edit")
    chat.send("kembali")
    assert "Periksa lagi data Anda" in chat.text and "Pakansari" in chat.text
    assert "editing" not in form_state(sqlite_engine)


def test_kembali_in_the_eligibility_check_forgets_the_proven_name(bot, texts, sqlite_engine):
    chat = Chat(bot).send("/cek").send("ya").send(BUDI).send("Budi Santoso")
    assert form_state(sqlite_engine)["step"] == "business"
    chat.send("kembali")
    assert chat.text == texts("eligibility_ask_name")
    assert form_state(sqlite_engine)["values"] == {"nik": BUDI}


def test_kembali_in_the_status_lookup(bot, texts, sqlite_engine):
    chat = Chat(bot).send("/status").send("ya").send(BUDI).send("kembali")
    assert chat.replies[-1].text == texts("eligibility_ask_nik")
    chat.send("kembali")
    assert chat.replies[-1].text == texts("status_consent")
    assert form_state(sqlite_engine)["values"] == {}


@pytest.mark.parametrize("word", ["ulang", "mulai ulang", "Dari awal"])
def test_starting_again_is_offered_not_stored(bot, texts, sqlite_engine, word):
    chat = reach(bot, "kecamatan").send(word)
    assert chat.text == texts("form_resume_offer")
    assert chat.labels() == [texts("form_resume"), texts("form_restart"), texts("form_stop")]
    assert "kecamatan" not in form_state(sqlite_engine)["values"]
    chat.press(texts("form_restart"))
    assert chat.text == texts("registration_consent")


# ------------------------------------------------------------------ pauses
def test_after_a_pause_the_step_is_restated_before_an_answer(bot, clock, texts,
                                                             sqlite_engine):
    chat = reach(bot, "kecamatan")
    clock.now = TODAY + PAUSE + timedelta(minutes=1)
    chat.send("Cibinong")
    assert texts("registration_ask_kecamatan") in chat.text
    assert chat.text.startswith(texts("form_paused", form="pendaftaran", question="")[:30])
    assert chat.labels() == [texts("form_resume"), texts("form_restart"), texts("form_stop")]
    assert "kecamatan" not in form_state(sqlite_engine)["values"]
    chat.send("Cibinong")  # now it is the answer
    assert chat.text == texts("registration_ask_desa")
    assert form_state(sqlite_engine)["values"]["kecamatan"] == "Cibinong"


def test_no_restatement_within_the_pause(bot, clock, texts):
    chat = reach(bot, "kecamatan")
    clock.now = TODAY + PAUSE - timedelta(minutes=1)
    assert chat.send("Cibinong").text == texts("registration_ask_desa")


def test_after_a_pause_the_buttons_resume_restart_or_stop(bot, clock, texts, sqlite_engine):
    chat = reach(bot, "business")
    clock.now = TODAY + timedelta(hours=5)
    chat.send("halo")
    chat.press(texts("form_resume"))
    assert chat.text == texts("registration_ask_business") and len(chat.labels()) == 8
    clock.now += timedelta(hours=5)
    chat.send("jualan bakso").press(texts("form_restart"))
    assert chat.text == texts("registration_consent")
    clock.now += timedelta(hours=5)
    chat.send("ya").press(texts("form_stop"))
    assert form_state(sqlite_engine) is None


def test_a_button_after_a_pause_is_taken_at_once(bot, clock, texts, sqlite_engine):
    chat = reach(bot, "business")
    clock.now = TODAY + timedelta(hours=5)
    chat.send(payload="/form:sector:kuliner")
    assert chat.text == texts("registration_ask_description")


# ------------------------------------------------------------------ menu inside a form
@pytest.mark.parametrize("word", ["menu", "/menu", "Menu utama"])
def test_menu_inside_a_form_offers_to_continue_it(bot, texts, sqlite_engine, word):
    chat = reach(bot, "desa").send(word)
    assert chat.replies[0].text == texts("form_menu", form="pendaftaran")
    labels = chat.labels()
    assert labels[0] == texts("form_resume_named", form="pendaftaran") == "Lanjutkan pendaftaran"
    assert texts("label/faq/requirements") in labels
    assert chat.replies[0].buttons[0].payload == "/form:resume"
    chat.press("Lanjutkan pendaftaran")
    assert chat.text == texts("registration_ask_desa")
    assert form_state(sqlite_engine)["step"] == "desa"


def test_menu_inside_the_check_names_the_check(bot, texts):
    chat = Chat(bot).send("/cek").send("ya").send("menu")
    assert chat.labels()[0] == "Lanjutkan cek kelayakan"


def test_every_form_has_a_name_for_its_continue_button(fake_nlu, texts):
    for name in Dialogue(fake_nlu, texts).forms:
        assert f"form_name/{name}" in texts


# ------------------------------------------------------------------ lead-ins
@pytest.mark.parametrize("typed", ["no hp 0812-3456-7890", "nomor hp: 081234567890",
                                   "hp sy 081234567890", "no wa +6281234567890",
                                   "No. HP 0812 3456 7890", "nohp:081234567890"])
def test_phone_lead_ins_are_dropped(typed):
    assert phone.normalise(typed) == "+6281234567890"


@pytest.mark.parametrize("typed", ["no hp", "hp sy 0812", "nomor saya ya"])
def test_phone_lead_ins_alone_are_still_refused(typed):
    assert phone.normalise(typed) is None


@pytest.mark.parametrize("typed", ["nik sy 3201051203900001", "NIK saya 3201051203900001",
                                   "nik: 3201-0512-0390-0001", "no ktp 3201 0512 0390 0001",
                                   "NIKnya 3201051203900001"])
def test_nik_lead_ins_are_dropped(typed):
    assert nik.parse(typed).value == BUDI


def test_lead_ins_in_the_conversation(bot, texts, sqlite_engine):
    chat = reach(bot, "nik").send("nik sy 3201051203900001")
    assert chat.text == texts("registration_ask_name")
    chat = reach(bot, "phone", user="61").send("no hp 0812-3456-7890")
    assert chat.text == texts("registration_ask_kabupaten")


# ------------------------------------------------------------------ durations and dates
TODAY_DATE = date(2026, 11, 28)


@pytest.mark.parametrize("text,months", [
    ("3 taun", 36), ("3 thn", 36), ("3thn", 36), ("setahun lebih", 12), ("baru 3 bln", 3),
    ("sejak 2020", 72), ("sejak thn 2020", 72), ("dari maret 2024", 32),
    ("satu setengah tahun", 18), ("dua setengah tahun", 30), ("setengah tahun", 6),
    ("2,5 thn", 30), ("1 tahun 3 bulan", 15), ("1 thn lebih 3 bln", 15),
    ("dua belas bulan", 12), ("lebih dari setahun", 12), ("kurang dari sebulan", 0),
    ("± 6 bulan", 6), ("hampir 2 tahun", 24), ("baru 10 hari", 0),
])
def test_durations_as_people_write_them(text, months):
    assert rules.parse_months(text, TODAY_DATE).months == months


@pytest.mark.parametrize("text,n", [("3", "3"), ("8", "8"), ("2,5", "2,5"), ("  12 ", "12")])
def test_a_bare_number_asks_for_the_unit(text, n):
    assert rules.parse_months(text, TODAY_DATE) == rules.Duration(None, "months_unit", {"n": n})


@pytest.mark.parametrize("text,key", [
    ("sejak 2030", "months_unreadable"), ("sejak 1900", "months_too_many"),
    ("belum setahun", "months_unreadable"), ("tahun bulan", "months_unreadable"),
])
def test_durations_that_cannot_be_read(text, key):
    assert rules.parse_months(text, TODAY_DATE).key == key


def test_since_a_year_needs_today():
    assert rules.parse_months("sejak 2020").months is None


def test_a_bare_number_in_the_conversation_asks_for_the_unit(bot, texts, sqlite_engine):
    chat = reach(bot, "months").send("3")
    assert chat.text == texts("months_unit", n="3")
    assert "months" not in form_state(sqlite_engine)["values"]
    chat.send("3 taun")
    assert "Lama usaha: 3 tahun" in chat.text
    chat = reach(bot, "months", user="62").send("sejak 2020")
    assert "Lama usaha: 6 tahun" in chat.text


@pytest.mark.parametrize("text", ["1997-03-15", "150397", "15031997", "tgl 15 bln 3 thn 1997",
                                  "15 maret 97", "tanggal lahir: 15-03-1997", "tgl 15/3/1997"])
def test_more_dates_as_people_write_them(text):
    assert dates.parse_birth_date(text, TODAY_DATE) == date(1997, 3, 15)


@pytest.mark.parametrize("text,key", [("1997-02-30", "date_impossible"),
                                      ("tgl 15", "date_unreadable"),
                                      ("2027-01-01", "date_future")])
def test_more_bad_dates(text, key):
    with pytest.raises(dates.DateError) as error:
        dates.parse_birth_date(text, TODAY_DATE)
    assert error.value.key == key


@pytest.mark.parametrize("text", ["gk jd deh", "ga jadi aja", "gak jd kak", "batal deh",
                                  "stop dulu", "nggak jadi"])
def test_soft_cancel_words_stop_the_form(bot, text):
    from actions.dialogue import is_cancel

    assert is_cancel(text)
    chat = Chat(bot).send("/daftar").send("ya").send(text)
    assert "batal" in chat.text.lower() or "dibatalkan" in chat.text.lower()


@pytest.mark.parametrize("text", ["jadi penjahit", "gak tau", "batal nikah"])
def test_words_that_only_look_like_cancel_are_not(text):
    from actions.dialogue import is_cancel

    assert not is_cancel(text)


@pytest.mark.parametrize("unit,months", [("tahun", 36), ("bulan", 3), ("thn", 36)])
def test_a_bare_number_then_its_unit_is_the_duration(bot, unit, months, sqlite_engine):
    from tests.test_registration import reach

    chat = reach(bot, "months")
    chat.send("3")
    assert "bulan atau" in chat.text.lower() or "tahun" in chat.text.lower()
    chat.send(unit)
    from sqlalchemy import select

    from db.engine import make_sessionmaker
    from db.models import Conversation

    with make_sessionmaker(sqlite_engine)() as session:
        form = session.scalars(select(Conversation.state)).one()["form"]
    assert form["step"] == "summary" and form["values"]["months"] == months


# ------------------------------------------------- found by the held-out conversations
@pytest.mark.parametrize(("typed", "months"), [
    ("udh 2 taunan", 24), ("setaun", 12), ("dua tahun setengah", 30), ("2 tahun setengah", 30),
    ("setengah tahun", 6), ("1 taon", 12),
])
def test_more_everyday_durations_are_read(typed, months):
    from domain.registration import parse_months

    assert parse_months(typed).months == months


@pytest.mark.parametrize("typed", ["usaha nya blm ada kak, baru niat", "belum buka usaha",
                                   "masih rencana", "blm ada usaha"])
def test_no_business_yet_in_a_sentence(typed):
    from actions.eligibility import NO_BUSINESS_PHRASE

    assert NO_BUSINESS_PHRASE.search(typed)


@pytest.mark.parametrize("typed", ["gak ada modal", "jualan gorengan", "tidak mau"])
def test_other_sentences_are_not_no_business(typed):
    from actions.eligibility import NO_BUSINESS_PHRASE

    assert not NO_BUSINESS_PHRASE.search(typed)


def test_a_nik_sent_before_consent_is_not_read_and_consent_is_asked_again(bot, texts):
    chat = Chat(bot).send("/daftar")
    chat.send("3201051203900001")
    assert chat.text == texts("consent_nik_first")
    assert form_state_of(bot) == "consent", "still asking; the NIK was not taken"
    chat.send("3201051203900001")  # again: still not counted as an abandoned consent
    assert chat.text == texts("consent_nik_first")
    chat.send("sok atuh")  # Sundanese: go ahead
    assert "NIK" in chat.text and form_state_of(bot) == "nik"


def form_state_of(bot) -> str | None:
    from db.models import Conversation

    with bot.sessions() as session:
        states = [c.state for c in session.query(Conversation).all()]
    forms = [s["form"] for s in states if s.get("form")]
    return forms[0]["step"] if forms else None
