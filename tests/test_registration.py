"""Registration through the dialogue core (fake NLU, fixed clock, fake registry)."""

from __future__ import annotations

import threading
from datetime import date, datetime

import pytest
from sqlalchemy import func, select

from actions.context import WIB
from actions.identity import NAME_TRIES
from actions.types import Contact, Turn
from db.engine import make_sessionmaker
from db.models import AuditLog, Conversation, Registration
from nlu.client import Parse
from tests.chat_helpers import Chat, load_registry, make_bot

BUDI = "3201051203900001"

# A good answer for every step, in order: (kind, value).
GOOD = [
    ("consent", ("payload", "/form:yes")),
    ("nik", ("text", BUDI)),
    ("name", ("text", "budi santoso")),
    ("birth_date", ("payload", "/form:dob_ok")),
    ("phone", ("contact", "+6281234567890")),
    ("kabupaten", ("text", "kabupaten bogor")),
    ("kecamatan", ("text", "Cibinong")),
    ("desa", ("text", "Pakansari")),
    ("business", ("payload", "/form:sector:kuliner")),
    ("description", ("text", "Jualan gorengan dan es teh di depan sekolah")),
    ("months", ("text", "2 tahun")),
]
STEPS = [step for step, _ in GOOD] + ["summary"]


def answer(chat: Chat, kind: str, value: str) -> Chat:
    if kind == "payload":
        return chat.send(payload=value)
    if kind == "contact":
        return chat.send(contact=Contact(value, user_id=chat.user))
    return chat.send(value)


def reach(bot, step: str, user: str = "50", answers: dict | None = None) -> Chat:
    """Start /daftar and answer every step before `step` (with `answers` overriding)."""
    chat = Chat(bot, user).send("/daftar")
    for name, (kind, value) in GOOD:
        if name == step:
            return chat
        kind, value = (answers or {}).get(name, (kind, value))
        answer(chat, kind, value)
    assert step == "summary"
    return chat


def form_state(engine, user="50"):
    with make_sessionmaker(engine)() as session:
        states = session.scalars(select(Conversation.state)).all()
    forms = [s.get("form") for s in states if s.get("form")]
    return forms[0] if forms else None


def count_registrations(engine) -> int:
    with make_sessionmaker(engine)() as session:
        return session.scalar(select(func.count()).select_from(Registration))


def test_happy_path_from_consent_to_number(bot, texts, sqlite_engine):
    chat = Chat(bot).send("/daftar")
    assert chat.text == texts("registration_consent")
    chat.press(texts("consent_yes"))
    assert chat.text == texts("registration_ask_nik")
    chat.send("3201-0512-0390-0001")
    assert chat.text == texts("registration_ask_name")
    chat.send("Budi Santoso")
    assert chat.text == texts("registration_ask_birth_date", date="12 Maret 1990")
    chat.press(texts("birth_date_ok"))
    assert chat.text == texts("registration_ask_phone") and chat.replies[0].ask_contact
    chat.send(contact=Contact("6281234567890", user_id="50"))
    assert chat.text == texts("registration_ask_kabupaten")
    chat.send("kab. bogor")
    chat.send("cibinong")
    chat.send("pakansari")
    assert chat.text == texts("registration_ask_business") and len(chat.labels()) == 8
    chat.press("Kuliner")
    chat.send("Jualan gorengan dan es teh di depan SD")
    assert chat.text == texts("registration_ask_months")
    chat.send("1,5 tahun")
    summary = chat.text
    for shown in ("3201********0001", "Budi Santoso", "12 Maret 1990", "+6281234567890",
                  "Kab. Bogor", "Cibinong", "Pakansari", "Kuliner", "1 tahun 6 bulan",
                  "Jualan gorengan dan es teh di depan SD"):
        assert shown in summary
    assert BUDI not in summary  # the full NIK is not echoed
    assert chat.labels() == ["Kirim", "Ubah", "Batal"]
    chat.press("Kirim")
    assert texts("registration_submitted", number="PRK-2026-000001") == chat.replies[0].text
    with make_sessionmaker(sqlite_engine)() as session:
        reg = session.scalars(select(Registration)).one()
        actions = session.scalars(select(AuditLog.action).order_by(AuditLog.id)).all()
    assert (reg.number, reg.nik, reg.nama, reg.tanggal_lahir, reg.no_hp) == (
        "PRK-2026-000001", BUDI, "Budi Santoso", date(1990, 3, 12), "+6281234567890")
    assert (reg.kabupaten, reg.kecamatan, reg.desa, reg.bidang_usaha) == (
        "Kab. Bogor", "Cibinong", "Pakansari", "kuliner")
    assert (reg.lama_usaha_bulan, reg.status) == (18, "diajukan")
    assert actions == ["nik_lookup", "registration_submit"]
    assert form_state(sqlite_engine) is None  # NIK and answers dropped from the state


def test_typed_date_and_phone_and_a_nik_date_mismatch_warns(bot, texts, sqlite_engine):
    chat = reach(bot, "birth_date")
    chat.press(texts("birth_date_other"))
    assert chat.text == texts("registration_ask_birth_date_typed")
    chat.send("13 mar 1990")
    assert texts("registration_birth_date_warning", date="13 Maret 1990") in chat.text
    assert chat.replies[-1].text == texts("registration_ask_phone")
    chat.send("0812-3456-7891")
    assert chat.text == texts("registration_ask_kabupaten")
    for _, (kind, value) in GOOD[5:]:
        answer(chat, kind, value)
    assert "13 Maret 1990" in chat.text and "+6281234567891" in chat.text


def test_numbers_count_up_per_year(bot, clock):
    reach(bot, "summary").press("Kirim")
    chat = reach(bot, "summary", user="51", answers={
        "nik": ("text", "3201055508920002"), "name": ("text", "Siti Aminah")})
    assert "PRK-2026-000002" in chat.press("Kirim").text
    clock.now = datetime(2027, 1, 2, 9, 0, tzinfo=WIB)
    chat = reach(bot, "summary", user="52", answers={
        "nik": ("text", "3201050505900005"), "name": ("text", "Rina Marlina")})
    assert "PRK-2027-000001" in chat.press("Kirim").text


BAD = [
    ("consent", "mungkin", "consent_unclear"),
    ("nik", "12345", "nik_length"),
    ("nik", "99010512039000011", "nik_length"),
    ("nik", "9901051203900001", "nik_province"),
    ("name", "B4di 123", "name_invalid"),
    ("birth_date", "kemarin sore", "date_unreadable"),
    ("phone", "12345", "phone_invalid"),
    ("phone", "021 555 1234", "phone_invalid"),
    ("kabupaten", "3201", "place_invalid"),
    ("kecamatan", "@@", "place_invalid"),
    ("desa", "x", "place_invalid"),
    ("business", "main game", "sector_unclear"),
    ("description", "ok", "description_invalid"),
    ("months", "lama sekali", "months_unreadable"),
    ("months", "900 tahun", "months_too_many"),
    ("summary", "hmm entahlah", "summary_unclear"),
]


@pytest.mark.parametrize("step,bad,hint", BAD)
def test_each_bad_answer_gets_its_hint_and_the_step_waits(bot, texts, sqlite_engine, step, bad,
                                                           hint):
    chat = reach(bot, step)
    chat.send(bad)
    assert texts.raw(hint).split("{")[0].strip()[:25] in chat.text
    assert form_state(sqlite_engine)["step"] == step


def test_birth_date_errors_are_precise(bot, texts):
    chat = reach(bot, "birth_date")
    chat.press(texts("birth_date_other"))
    assert chat.send("31-02-1990").text == texts("date_impossible")
    chat.send("12/3/90")  # second try works: no explanation, no warning
    assert chat.text == texts("registration_ask_phone")


def test_future_birth_date_is_refused(bot, texts):
    chat = reach(bot, "birth_date")
    assert chat.send("01-01-2030").text == texts("date_future")


def test_two_failures_explain_with_an_example_and_offer_to_go_on_or_stop(bot, texts,
                                                                         sqlite_engine):
    chat = reach(bot, "phone")
    chat.send("123")
    chat.send("456")
    assert texts("registration_help_phone") in chat.text
    assert chat.labels() == [texts("form_continue"), texts("form_stop")]
    chat.press(texts("form_continue"))
    assert chat.text == texts("registration_ask_phone")
    chat.send("123").send("456").press(texts("form_stop"))
    assert chat.text == texts("registration_cancelled")
    assert form_state(sqlite_engine) is None


def test_someone_elses_contact_is_refused(bot, texts):
    chat = reach(bot, "phone")
    chat.send(contact=Contact("+6281299990000", user_id="999"))
    assert chat.text == texts("phone_not_own")
    assert chat.replies[0].ask_contact, "the contact button is offered again"
    chat.send(contact=Contact("+6281299990000", user_id=None))  # no owner: not provably own
    assert texts("phone_not_own") in chat.text


def test_a_contact_at_another_step_is_not_kept(bot, texts, sqlite_engine):
    chat = reach(bot, "kabupaten")
    chat.send(contact=Contact("+6281299990000", user_id="50"))
    assert texts("form_contact_not_needed") in chat.text
    assert form_state(sqlite_engine)["step"] == "kabupaten"


@pytest.mark.parametrize("step", STEPS)
def test_batal_at_every_step_saves_nothing(bot, texts, sqlite_engine, step):
    chat = reach(bot, step)
    chat.send("batal")
    assert chat.text == texts("registration_cancelled")
    assert form_state(sqlite_engine) is None
    assert count_registrations(sqlite_engine) == 0


@pytest.mark.parametrize("step", STEPS)
def test_side_question_at_every_step_then_the_step_again(bot, texts, sqlite_engine, step):
    chat = reach(bot, step)
    question = [r.text for r in chat.replies][-1]
    chat.send("apa saja syaratnya?")
    assert chat.replies[0].text == texts("faq/requirements")
    assert texts("form_back") in chat.text
    assert chat.replies[-1].text == question
    assert form_state(sqlite_engine)["step"] == step


@pytest.mark.parametrize("step", ["nik", "phone", "desa", "summary"])
def test_help_command_mid_form_answers_and_resumes(bot, texts, step):
    chat = reach(bot, step)
    question = chat.replies[-1].text
    chat.send("/bantuan")
    assert chat.replies[0].text == texts("help")
    assert chat.replies[-1].text == question


@pytest.mark.parametrize("step", ["name", "kecamatan", "months", "summary"])
def test_restart_in_the_middle_loses_nothing(sqlite_engine, nlu, texts, clock, step):
    load_registry(sqlite_engine)
    first = make_bot(sqlite_engine, nlu, texts, clock)
    question = reach(first, step).replies[-1].text
    restarted = make_bot(sqlite_engine, nlu, texts, clock)  # a new process, same database
    chat = Chat(restarted).send("/start")
    assert chat.text == texts("form_resume_offer")
    chat.press(texts("form_resume"))
    assert chat.replies[-1].text == question
    # and the rest of the answers finish the registration
    remaining = [] if step == "summary" else GOOD[STEPS.index(step):]
    for _step, (kind, value) in remaining:
        answer(chat, kind, value)
    assert "PRK-2026-000001" in chat.press("Kirim").text


def test_start_over_from_the_resume_offer(bot, texts):
    chat = reach(bot, "desa").send("/start")
    chat.press(texts("form_restart"))
    assert chat.text == texts("registration_consent")


def test_change_a_field_from_the_summary_and_come_back(bot, texts):
    chat = reach(bot, "summary").press("Ubah")
    assert chat.text == texts("registration_ask_edit")
    assert texts("field/phone") in chat.labels() and len(chat.labels()) == 8
    chat.press(texts("field/phone"))
    assert chat.text == texts("registration_ask_phone")
    chat.send("085711112222")
    assert "+6285711112222" in chat.text and chat.labels() == ["Kirim", "Ubah", "Batal"]
    chat.send("ubah").send("desa").send("Sukamaju")  # typed words work too
    assert "Sukamaju" in chat.text and "Pakansari" not in chat.text
    chat.press("Ubah").press(texts("field/birth_date")).press(texts("birth_date_other"))
    chat.send("12-03-1990")
    assert "12 Maret 1990" in chat.text and chat.labels()[0] == "Kirim"


def test_unknown_nik_and_wrong_name_get_the_identical_reply(bot, texts, sqlite_engine):
    unknown = reach(bot, "name", answers={"nik": ("text", "3201051203900099")})
    mismatch = reach(bot, "name", user="51")
    for _ in range(NAME_TRIES):  # the same replies at every try (issue 12)
        unknown.send("Budi Santoso")
        mismatch.send("Bambang Pamungkas")
        assert unknown.text == mismatch.text
    assert unknown.text == texts("eligibility_not_verified")
    assert form_state(sqlite_engine) is None
    with make_sessionmaker(sqlite_engine)() as session:
        subjects = session.scalars(select(AuditLog.subject).order_by(AuditLog.id)).all()
    assert subjects == ["3201********0099", "3201********0001"] * NAME_TRIES


@pytest.mark.parametrize("nik,name,reason", [
    ("3374024101950003", "Dewi Lestari", "❌ Belum graduasi dari PKH"),
    ("3201052811860004", "Agus Wibowo", "❌ Usia 40 tahun"),
])
def test_ineligible_people_are_told_why_and_nothing_is_submitted(bot, texts, sqlite_engine, nik,
                                                                 name, reason):
    chat = reach(bot, "name", answers={"nik": ("text", nik)}).send(name)
    assert texts("registration_not_eligible") in chat.text and reason in chat.text
    assert form_state(sqlite_engine) is None and count_registrations(sqlite_engine) == 0


def test_no_business_yet_is_not_eligible(bot, texts, sqlite_engine):
    chat = reach(bot, "business").press("Belum punya usaha")
    assert "❌ Belum punya usaha" in chat.text
    assert count_registrations(sqlite_engine) == 0


def test_rules_are_checked_again_at_submission(bot, texts, sqlite_engine, clock):
    # Agus turns 40 on 28 November 2026: he starts the day before and submits a day later.
    clock.now = datetime(2026, 11, 27, 20, 0, tzinfo=WIB)
    chat = reach(bot, "summary", answers={"nik": ("text", "3201052811860004"),
                                          "name": ("text", "Agus Wibowo")})
    clock.now = datetime(2026, 11, 28, 8, 0, tzinfo=WIB)
    chat.press("Kirim")
    assert "❌ Usia 40 tahun" in chat.text
    assert count_registrations(sqlite_engine) == 0


def test_second_registration_for_a_nik_shows_the_first(bot, texts, sqlite_engine):
    reach(bot, "summary").press("Kirim")
    other_account = reach(bot, "name", user="77").send("Budi Santoso")
    assert "PRK-2026-000001" in other_account.text
    assert texts("status/diajukan") in other_account.text
    assert count_registrations(sqlite_engine) == 1


def test_a_stale_kirim_button_does_nothing(bot, texts, sqlite_engine):
    chat = reach(bot, "summary")
    chat.press("Kirim")
    chat.send(payload="/form:submit")
    assert chat.text == texts("form_expired")
    assert count_registrations(sqlite_engine) == 1


def test_concurrent_identical_submissions_make_one_registration(engine, nlu, texts, clock):
    """Two accounts with the same NIK press "Kirim" at the same moment (SQLite and PG)."""
    load_registry(engine)
    bot = make_bot(engine, nlu, texts, clock)
    reach(bot, "summary", user="61")
    reach(bot, "summary", user="62")
    barrier = threading.Barrier(2)
    results: dict[str, str] = {}

    def press(user: str) -> None:
        barrier.wait()
        replies = bot.handle(Turn("telegram", user, payload="/form:submit"))
        results[user] = "\n".join(r.text for r in replies)

    threads = [threading.Thread(target=press, args=(u,)) for u in ("61", "62")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30)
    assert count_registrations(engine) == 1
    submitted = [u for u, text in results.items() if texts("registration_submitted",
                                                           number="PRK-2026-000001") in text]
    existing = [u for u, text in results.items()
                if "sudah punya pendaftaran" in text and "PRK-2026-000001" in text]
    assert len(submitted) == 1 and len(existing) == 1, results


def test_rate_limit_is_shared_with_the_eligibility_check(bot, texts):
    for user_nik in ("3201051203900099", "3201051203900098", "3201051203900097",
                     "3201051203900096", "3201051203900095"):
        chat = Chat(bot).send("/cek").send("ya").send(user_nik)
        for _ in range(NAME_TRIES):
            chat.send("Budi Santoso")
    assert Chat(bot).send("/daftar").text == texts("nik_rate_limited")


def test_registration_is_in_the_menu_and_words_start_it(bot, texts, nlu):
    nlu.rules["mau dftr"] = ("register_prokus", 0.93)
    assert texts("label/register_prokus") in Chat(bot).send("/start").labels()
    assert Chat(bot, "90").send("sy mau dftr gmn caranya").text == texts("registration_consent")


def test_a_description_that_sounds_like_a_topic_is_still_the_answer(bot, nlu, texts):
    nlu.rules["es teh"] = Parse(
        "faq", 0.97,
        response_selector={"faq": {"response": {"intent_response_key": "faq/business_sectors"}}})
    chat = reach(bot, "description").send("Jualan es teh dan gorengan di depan SD")
    assert chat.text == texts("registration_ask_months")
    chat = reach(bot, "kabupaten", user="51").send("es teh itu bidang apa?")  # a real question
    assert chat.replies[0].text == texts("faq/business_sectors")


def test_status_asked_mid_registration_keeps_the_form(bot, texts, sqlite_engine):
    chat = reach(bot, "desa").send("/status")
    assert chat.replies[0].text == texts("status_none_for_account")
    assert chat.replies[-1].text == texts("registration_ask_desa")
    assert form_state(sqlite_engine)["name"] == "registration"


@pytest.mark.parametrize("step", ["consent", "phone", "kecamatan", "months", "summary"])
def test_asking_for_the_schedule_mid_form_is_answered_then_resumed(bot, nlu, texts, step):
    nlu.rules["jadwal"] = ("mentoring_schedule", 0.92)
    chat = reach(bot, step)
    question = chat.replies[-1].text
    chat.send("jadwal pendampingan kapan?")
    assert chat.replies[0].text != question and texts("form_back") in chat.text
    assert chat.replies[-1].text == question


def test_the_registry_name_is_stored_not_the_typed_one(bot, texts, sqlite_engine):
    chat = reach(bot, "name")
    chat.send("BUDI   santosa")  # one typo, odd capitals: still the same person
    assert "Budi Santoso" not in chat.text  # nothing of the registry shown at this step
    for _, (kind, value) in GOOD[3:]:
        answer(chat, kind, value)
    assert "Budi Santoso" in chat.text  # the summary, after the proven match
    chat.press("Kirim")
    with make_sessionmaker(sqlite_engine)() as session:
        assert session.scalars(select(Registration.nama)).one() == "Budi Santoso"


@pytest.mark.parametrize("typed", ["0812²3456789", "08123456789①", "0812³4567890",
                                   "+62" + "8" * 3000, "٠٨١٢٣٤٥٦٧٨٩٠", "０８１２３４５６７８９０"])
def test_a_phone_with_look_alike_digits_is_refused_and_other_scripts_are_ascii(
        bot, texts, sqlite_engine, typed):
    chat = reach(bot, "phone").send(typed)
    if typed[1] in "٨８":
        assert chat.text == texts("registration_ask_kabupaten")
        assert form_state(sqlite_engine)["values"]["phone"] == "+6281234567890"
    else:
        assert chat.text == texts("phone_invalid")
        assert "phone" not in form_state(sqlite_engine)["values"]


@pytest.mark.parametrize("typed", ["NaN", "inf", "infinity tahun", "9" * 309, "9" * 400 + " bulan",
                                   "² tahun"])
def test_absurd_durations_get_a_hint_not_an_error(bot, texts, sqlite_engine, typed):
    chat = reach(bot, "months").send(typed)
    assert chat.text in (texts("months_unreadable"), texts("months_too_many"))
    assert "months" not in form_state(sqlite_engine)["values"]


@pytest.mark.parametrize("typed", ["Budi 😀 Santoso", "Budi Santoso 🙏", "Budi <b>Santoso</b>"])
def test_a_name_with_emoji_or_symbols_gets_the_name_hint(bot, texts, sqlite_engine, typed):
    assert reach(bot, "name").send(typed).text == texts("name_invalid")
    assert form_state(sqlite_engine)["step"] == "name"


def test_nik_in_arabic_indic_digits_is_kept_in_ascii(bot, texts, sqlite_engine):
    reach(bot, "nik").send(BUDI.translate(str.maketrans("0123456789", "٠١٢٣٤٥٦٧٨٩")))
    assert form_state(sqlite_engine)["values"]["nik"] == BUDI

def test_nik_with_a_superscript_digit_gets_the_digits_hint(bot, texts, sqlite_engine):
    assert reach(bot, "nik").send("320105120390000²").text == texts("nik_not_digits")
    assert "nik" not in form_state(sqlite_engine)["values"]
