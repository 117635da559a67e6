"""The registration's address as official regions (issue 15 item 3): the NIK's kecamatan
offered, typed names matched (clear, close -> buttons, nothing close -> a hint), "Tidak ada
di daftar", codes stored; existing registrations matched by `prokus regions
match-registrations` and listed by `prokus regions unmatched`; the console's detail page.

The test databases' regions table is empty: this module loads it (once per module on
SQLite, copied per test; per test on PostgreSQL). Every test with `loaded_engine` runs on
both back-ends."""

from __future__ import annotations

import shutil
import uuid
from datetime import date
from pathlib import Path

import psycopg
import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.engine import make_url

from actions.types import Contact
from bot.cli import main
from db import region_matching, regions, registrations
from db.engine import make_engine, make_sessionmaker
from db.models import Kpm, Registration, utcnow
from tests.chat_helpers import Chat, load_registry, make_bot
from tests.conftest import PG_ADMIN_URL, _libpq
from tests.test_registration import GOOD, answer, form_state

BUDI = "3201051203900001"    # NIK issued in Kecamatan Babakan Madang, Kabupaten Bogor
SITI = "3201055508920002"    # the same kecamatan
BEFORE_ADDRESS = [step for step in GOOD if step[0] in ("consent", "nik", "name", "birth_date")]
AFTER_DESA = [step for step in GOOD if step[0] in ("business", "description", "months")]


@pytest.fixture(scope="module")
def loaded_file(tmp_path_factory, _sqlite_template) -> Path:
    """The migrated SQLite template with the regions loaded, once for this module."""
    path = tmp_path_factory.mktemp("registration-regions") / "loaded.db"
    shutil.copyfile(_sqlite_template, path)
    engine = make_engine(f"sqlite:///{path}")
    regions.load(engine)
    engine.dispose()
    return path


@pytest.fixture(scope="module")
def loaded_pg_template(_pg_template):
    """A PostgreSQL database migrated and loaded once for this module: each test's database
    is made from it (CREATE DATABASE ... TEMPLATE)."""
    name = f"prokus_regions_{uuid.uuid4().hex[:12]}"
    admin = _libpq(PG_ADMIN_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}" TEMPLATE "{_pg_template}"')
    engine = make_engine(make_url(admin).set(database=name).render_as_string(
        hide_password=False))
    regions.load(engine)
    engine.dispose()
    try:
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture
def loaded_engine(request, engine):
    """A migrated database with the regions loaded, on SQLite (a copy of the module's
    loaded file) and on PostgreSQL (a copy of the module's loaded database)."""
    engine.dispose()
    if engine.dialect.name == "sqlite":
        shutil.copyfile(request.getfixturevalue("loaded_file"), engine.url.database)
    else:
        template = request.getfixturevalue("loaded_pg_template")
        with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{engine.url.database}" WITH (FORCE)')
            conn.execute(f'CREATE DATABASE "{engine.url.database}" TEMPLATE "{template}"')
    regions.invalidate(engine)
    return engine



@pytest.fixture
def rbot(loaded_engine, nlu, texts, clock):
    load_registry(loaded_engine)
    return make_bot(loaded_engine, nlu, texts, clock)


def to_phone(bot, user: str = "50", nik: str = BUDI, name: str = "Budi Santoso") -> Chat:
    """Start /daftar and answer up to the phone step (the phone not yet answered)."""
    chat = Chat(bot, user).send("/daftar")
    for step, (kind, value) in BEFORE_ADDRESS:
        if step == "nik":
            value = nik
        elif step == "name":
            value = name
        answer(chat, kind, value)
    return chat


def share_phone(chat: Chat) -> Chat:
    return chat.send(contact=Contact("+6281234567890", user_id=chat.user))


def finish(chat: Chat) -> Chat:
    """Answer the steps after the desa: the summary is shown."""
    for _step, (kind, value) in AFTER_DESA:
        answer(chat, kind, value)
    return chat


def stored(engine) -> Registration:
    with make_sessionmaker(engine)() as session:
        return session.scalars(select(Registration)).one()


def address_of(reg: Registration) -> tuple:
    return (reg.kabupaten, reg.kode_kabupaten, reg.kecamatan, reg.kode_kecamatan, reg.desa,
            reg.kode_desa, reg.wilayah_status, reg.kode_wilayah)


def asks_desa(text: str, texts) -> bool:
    """The desa question, with a real example of the kecamatan when it was matched."""
    head = texts("registration_ask_desa").split("Contoh:")[0]
    return text.startswith(head) and "Contoh:" in text


# ------------------------------------------------------------------ the NIK's kecamatan
def test_the_nik_offer_accepted_goes_to_the_desa_and_stores_the_codes(rbot, texts,
                                                                      loaded_engine):
    chat = share_phone(to_phone(rbot))
    assert chat.text == texts("region_offer", kecamatan="Babakan Madang",
                              kabupaten="Kabupaten Bogor", province="Jawa Barat")
    assert "Menurut NIK, alamat Anda di Kecamatan Babakan Madang, Kabupaten Bogor, " \
           "Jawa Barat. Masih tinggal di sana?" in chat.text
    assert chat.labels() == ["Ya", "Sudah pindah"]
    chat.press("Ya")
    # The example is a real desa of that kecamatan (the first by code), not a fixed one.
    assert chat.text == texts("registration_ask_desa_in", example="Cijayanti")
    chat.send("Sentul")
    assert chat.text == texts("registration_ask_business")
    summary = finish(chat).text
    for shown in ("Kabupaten Bogor", "Babakan Madang", "Sentul"):
        assert shown in summary
    assert texts("region_unlisted_mark") not in summary
    chat.press("Kirim")
    assert "PRK-2026-000001" in chat.text
    assert address_of(stored(loaded_engine)) == (
        "Kabupaten Bogor", "32.01", "Babakan Madang", "32.01.05", "Sentul", "32.01.05.2003",
        "cocok", "3201052003")


def test_the_offer_understands_typed_answers(rbot, texts):
    chat = share_phone(to_phone(rbot))
    assert asks_desa(chat.send("iya masih").text, texts)
    chat = share_phone(to_phone(rbot, user="51", nik=SITI, name="Siti Aminah"))
    assert chat.send("sudah pindah kak").text == texts("registration_ask_kabupaten")
    chat = share_phone(to_phone(rbot, user="52"))
    assert chat.send("entahlah").text == texts("region_offer_unclear")
    assert chat.send("tidak").text == texts("registration_ask_kabupaten")


def test_a_kabupaten_typed_at_the_offer_is_the_new_address(rbot, texts, loaded_engine):
    chat = share_phone(to_phone(rbot)).send("kota bandung")
    assert chat.text == texts("registration_ask_kecamatan")
    assert form_state(loaded_engine)["values"]["kode_kabupaten"] == "32.73"
    chat.send("kembali")
    assert chat.text == texts("registration_ask_kabupaten")
    chat.send("kembali")
    assert chat.labels() == ["Ya", "Sudah pindah"]


def test_kembali_from_the_desa_returns_to_the_offer(rbot, texts, loaded_engine):
    chat = share_phone(to_phone(rbot)).press("Ya").send("kembali")
    assert chat.labels() == ["Ya", "Sudah pindah"]
    state = form_state(loaded_engine)
    assert state["step"] == "address"
    assert "kabupaten" not in state["values"] and "kode_kecamatan" not in state["values"]
    chat.send("kembali")
    assert chat.text == texts("registration_ask_phone")


def test_a_nik_whose_kecamatan_the_table_lacks_types_the_kabupaten(rbot, texts, loaded_engine):
    with make_sessionmaker(loaded_engine).begin() as session:
        session.add(Kpm(nik="3201991203900009", nama="Tono Sugiarto",
                        tanggal_lahir=date(1990, 3, 12), jenis_kelamin="L",
                        kode_wilayah="3201052001", status_pkh="graduasi", updated_at=utcnow()))
    chat = share_phone(to_phone(rbot, nik="3201991203900009", name="Tono Sugiarto"))
    assert chat.text == texts("registration_ask_kabupaten")


# ------------------------------------------------------------------ moved: typed names
def test_moved_typed_kabupaten_and_kecamatan_are_matched(rbot, texts, loaded_engine):
    chat = share_phone(to_phone(rbot)).press("Sudah pindah")
    assert chat.text == texts("registration_ask_kabupaten")
    chat.send("kota bandung")  # Kota Bandung 100, Kabupaten Bandung 92: clear
    assert chat.text == texts("registration_ask_kecamatan")
    chat.send("Kec. Coblong")
    assert asks_desa(chat.text, texts)
    chat.send("dago")
    summary = finish(chat).text
    assert "Kota Bandung" in summary and "Coblong" in summary and "Dago" in summary
    chat.press("Kirim")
    reg = stored(loaded_engine)
    assert (reg.kode_kabupaten, reg.kode_kecamatan, reg.wilayah_status) == (
        "32.73", "32.73.02", "cocok")
    assert reg.kode_desa.startswith("32.73.02.") and reg.kode_wilayah == \
        reg.kode_desa.replace(".", "")


def test_a_kabupaten_without_province_offers_both_bogors_with_their_province(rbot, texts):
    chat = share_phone(to_phone(rbot)).press("Sudah pindah").send("bogor")
    assert chat.text == texts("region_choose_kabupaten", typed="Bogor", where="")
    assert chat.labels() == ["Kabupaten Bogor, Jawa Barat", "Kota Bogor, Jawa Barat",
                             "Tidak ada di daftar"]
    chat.press("Kota Bogor, Jawa Barat")
    assert chat.text == texts("registration_ask_kecamatan")
    chat.send("bogor tengah")
    assert asks_desa(chat.text, texts)


def test_typing_the_kecamatan_instead_of_choosing_settles_the_kabupaten(rbot, texts,
                                                                       loaded_engine):
    chat = share_phone(to_phone(rbot)).send("bogor")  # typed at the offer: Kab. or Kota?
    assert chat.labels()[:2] == ["Kabupaten Bogor, Jawa Barat", "Kota Bogor, Jawa Barat"]
    chat.send("ciomas")  # a kecamatan of Kabupaten Bogor only
    assert asks_desa(chat.text, texts)
    values = form_state(loaded_engine)["values"]
    assert (values["kode_kabupaten"], values["kecamatan"]) == ("32.01", "Ciomas")
    chat.send("desa ciomas rahayu")
    assert chat.text == texts("registration_ask_business")
    assert form_state(loaded_engine)["values"]["desa"] == "Ciomas Rahayu"


def test_a_kabupaten_with_its_province_is_matched_within_it(rbot, texts, loaded_engine):
    chat = share_phone(to_phone(rbot)).press("Sudah pindah").send("banjar, kalsel")
    assert chat.text == texts("registration_ask_kecamatan")  # not Kota Banjar, Jawa Barat
    assert form_state(loaded_engine)["values"]["kode_kabupaten"] == "63.03"


def test_an_ambiguous_desa_offers_buttons_and_one_is_chosen(rbot, texts, loaded_engine):
    chat = share_phone(to_phone(rbot)).press("Sudah pindah")
    chat.send("Kabupaten Bogor").send("pamijahan")
    assert asks_desa(chat.text, texts)
    chat.send("Cibitung")
    assert chat.text == texts("region_choose_desa", typed="Cibitung",
                              where="Kecamatan Pamijahan")
    labels = chat.labels()
    assert labels[-1] == "Tidak ada di daftar" and 2 <= len(labels) - 1 <= 5
    assert {"Cibitung Wetan", "Cibitung Kulon"} <= set(labels)
    chat.send("Cibitung Kulon")  # typing a button's label is pressing it
    assert chat.text == texts("registration_ask_business")
    finish(chat).press("Kirim")
    reg = stored(loaded_engine)
    assert (reg.desa, reg.kode_desa, reg.kode_wilayah, reg.wilayah_status) == (
        "Cibitung Kulon", "32.01.17.2011", "3201172011", "cocok")


def test_not_in_the_list_keeps_the_typed_text_flagged(rbot, texts, loaded_engine):
    chat = share_phone(to_phone(rbot)).press("Ya")
    chat.send("Kampung Durian Runtuh")
    assert chat.text == texts("region_not_found_desa", typed="Kampung Durian Runtuh",
                              where="Kecamatan Babakan Madang", example="Cijayanti")
    assert chat.labels() == ["Tidak ada di daftar"]
    assert form_state(loaded_engine)["step"] == "desa"
    chat.press("Tidak ada di daftar")
    assert chat.text == texts("registration_ask_business")
    summary = finish(chat).text
    assert "Kampung Durian Runtuh (tidak ada di daftar)" in summary
    chat.press("Kirim")
    assert address_of(stored(loaded_engine)) == (
        "Kabupaten Bogor", "32.01", "Babakan Madang", "32.01.05", "Kampung Durian Runtuh",
        None, "tidak_ada", "320105")


def test_not_in_the_list_from_the_buttons_and_free_text_below_it(rbot, texts, loaded_engine):
    chat = share_phone(to_phone(rbot)).press("Sudah pindah").send("bogor")
    chat.press("Tidak ada di daftar")
    assert chat.text == texts("registration_ask_kecamatan")
    chat.send("Kecamatan Baru").send("Desa Baru")  # no parent code: kept as typed
    summary = finish(chat).text
    assert "Bogor (tidak ada di daftar)" in summary and "Kecamatan Baru" in summary
    chat.press("Kirim")
    assert address_of(stored(loaded_engine)) == (
        "Bogor", None, "Kecamatan Baru", None, "Desa Baru", None, "tidak_ada", BUDI[:6])


def test_a_typo_in_the_desa_is_a_clear_match(rbot, texts, loaded_engine):
    chat = share_phone(to_phone(rbot)).press("Ya").send("karang tenga")
    assert chat.text == texts("registration_ask_business")
    assert "Karang Tengah" in finish(chat).text
    chat.press("Kirim")
    assert stored(loaded_engine).kode_desa == "32.01.05.2004"


def test_the_free_text_guards_still_hold_with_regions(rbot, texts, loaded_engine):
    chat = share_phone(to_phone(rbot)).press("Ya")
    chat.send("halo")
    assert chat.replies[0].text == texts("form_greeting")
    chat.send("lanjut")
    assert chat.replies[0].text == texts("form_needs_answer")
    chat.send("3201")
    assert texts.raw("place_invalid").split("{")[0].strip()[:20] in chat.text \
        or "belum bisa saya terima" in chat.text
    assert "desa" not in form_state(loaded_engine)["values"]


def test_changing_the_kabupaten_asks_the_kecamatan_and_desa_again(rbot, texts, loaded_engine):
    chat = finish(share_phone(to_phone(rbot)).press("Ya").send("Sentul"))
    chat.press("Ubah").press(texts("field/kabupaten"))
    assert chat.text == texts("registration_ask_kabupaten")
    chat.send("kota bogor")
    assert chat.text == texts("registration_ask_kecamatan")
    chat.send("Bogor Tengah")
    assert asks_desa(chat.text, texts)
    chat.send("paledang")
    assert "Periksa lagi data Anda" in chat.text
    assert "Kota Bogor" in chat.text and "Bogor Tengah" in chat.text and "Sentul" not in chat.text
    chat.press("Ubah").press(texts("field/desa")).send("Tegallega")
    assert "Tegallega" in chat.text and chat.labels() == ["Kirim", "Ubah", "Batal"]
    chat.press("Kirim")
    reg = stored(loaded_engine)
    assert (reg.kode_kabupaten, reg.kode_kecamatan, reg.kode_desa[:8]) == (
        "32.71", "32.71.03", "32.71.03")


# ------------------------------------------------------------------ no regions table
def test_an_empty_regions_table_keeps_todays_free_text(bot, texts, sqlite_engine):
    chat = share_phone(to_phone(bot))
    assert chat.text == texts("registration_ask_kabupaten")  # no offer without the table
    chat.send("kab. bogor").send("cibinong").send("pakansari")
    finish(chat).press("Kirim")
    assert address_of(stored(sqlite_engine)) == (
        "Kab. Bogor", None, "Cibinong", None, "Pakansari", None, None, BUDI[:6])


# ------------------------------------------------------------------ the matching API
def test_codes_are_stored_and_old_rows_matched_in_python(loaded_engine, rbot):
    engine, bot = loaded_engine, rbot
    chat = share_phone(to_phone(bot)).press("Ya").send("cijayanti")
    finish(chat).press("Kirim")
    with make_sessionmaker(engine).begin() as session:
        reg = session.scalars(select(Registration)).one()
        assert (reg.kode_desa, reg.kode_wilayah, reg.wilayah_status) == (
            "32.01.05.2001", "3201052001", "cocok")
        old = seed(session, SITI, kabupaten="kab bogor", kecamatan="babakan madang",
                   desa="Sumur batu")
    with make_sessionmaker(engine).begin() as session:
        ids = region_matching.pending_ids(session)
        counts = region_matching.match_registrations(session, ids)
    assert (counts.seen, counts.matched) == (1, 1)
    with make_sessionmaker(engine)() as session:
        reg = session.scalars(select(Registration).where(Registration.number == old)).one()
        assert address_of(reg) == ("Kabupaten Bogor", "32.01", "Babakan Madang", "32.01.05",
                                   "Sumur Batu", "32.01.05.2002", "cocok", "3201052002")
        assert region_matching.pending_ids(session) == []


# ------------------------------------------------------------------ existing registrations
def seed(session, nik: str, kabupaten: str, kecamatan: str, desa: str) -> str:
    """A registration stored as text, the way it was before the regions (no codes)."""
    fields = {"nik": nik, "nama": "Contoh", "tanggal_lahir": date(1990, 3, 12),
              "no_hp": "+6281234567890", "kabupaten": kabupaten, "kecamatan": kecamatan,
              "desa": desa, "bidang_usaha": "kuliner",
              "deskripsi_usaha": "Jualan gorengan di depan sekolah", "lama_usaha_bulan": 24}
    return registrations.submit(session, fields, None, 2026).registration.number


def prokus(engine, *args: str):
    url = engine.url.render_as_string(hide_password=False)
    return CliRunner().invoke(main, list(args), env={"DATABASE_URL": url})


def test_match_registrations_and_unmatched_cli(loaded_engine):
    with make_sessionmaker(loaded_engine).begin() as session:
        full = seed(session, "3201051203900011", "Kab. Bogor", "babakan madang", "Desa Sentul")
        moved = seed(session, "3201051203900012", "kota bandung", "coblong", "Dago")
        partly = seed(session, "3201051203900013", "kabupaten bogor", "Kec. Babakan Madang",
                      "Kampung Durian Runtuh")
        nothing = seed(session, "3201051203900014", "Negeri Antah", "Berantah", "Entah")
        ambiguous = seed(session, "7371111203900015", "Bogor", "Bogor", "Paledang")
        settled = seed(session, "3201051203900016", "bogor", "ciomas", "ciomas rahayu")
    hint = prokus(loaded_engine, "regions", "load")  # says what to run next
    assert "6 registration(s) have no region codes yet" in hint.output
    done = prokus(loaded_engine, "regions", "match-registrations")
    assert done.exit_code == 0, done.output
    assert "6 without codes; matched 3, partly 1" in done.output
    assert "unmatched 2" in done.output
    with make_sessionmaker(loaded_engine)() as session:
        rows = {r.number: r for r in session.scalars(select(Registration))}
    assert address_of(rows[full]) == ("Kabupaten Bogor", "32.01", "Babakan Madang", "32.01.05",
                                      "Sentul", "32.01.05.2003", "cocok", "3201052003")
    assert rows[moved].kode_kabupaten == "32.73" and rows[moved].wilayah_status == "cocok"
    assert address_of(rows[partly]) == (
        "Kabupaten Bogor", "32.01", "Babakan Madang", "32.01.05", "Kampung Durian Runtuh",
        None, None, "320105")
    # "Bogor" names two kabupaten/kota and the NIK is from Sulawesi Selatan: not clear.
    assert address_of(rows[ambiguous]) == ("Bogor", None, "Bogor", None, "Paledang",
                                           None, None, "737111")
    # ... unless the kecamatan is under only one of them: Ciomas is in Kabupaten Bogor.
    assert address_of(rows[settled])[:4] == ("Kabupaten Bogor", "32.01", "Ciomas", "32.01.29")
    assert rows[settled].desa == "Ciomas Rahayu" and rows[settled].wilayah_status == "cocok"
    assert rows[nothing].kode_wilayah == "320105" and rows[nothing].kode_kabupaten is None

    again = prokus(loaded_engine, "regions", "match-registrations")  # idempotent
    assert "3 without codes; matched 0, partly 1" in again.output
    with make_sessionmaker(loaded_engine)() as session:
        assert {r.number: address_of(r) for r in session.scalars(select(Registration))} == {
            n: address_of(r) for n, r in rows.items()}

    listed = prokus(loaded_engine, "regions", "unmatched")
    assert listed.exit_code == 0, listed.output
    lines = [line.split("\t") for line in listed.stdout.splitlines()]
    assert lines == [
        [partly, "Kabupaten Bogor", "Babakan Madang", "Kampung Durian Runtuh", "32.01.05",
         "no_clear_match"],
        [nothing, "Negeri Antah", "Berantah", "Entah", "-", "no_clear_match"],
        [ambiguous, "Bogor", "Bogor", "Paledang", "-", "no_clear_match"],
    ]
    assert "3201051203900013" not in listed.output  # no NIK printed


def test_unmatched_lists_the_applicants_not_in_the_list_choice(rbot, loaded_engine):
    chat = share_phone(to_phone(rbot)).press("Ya").send("Kampung Durian Runtuh")
    finish(chat.press("Tidak ada di daftar")).press("Kirim")
    listed = prokus(loaded_engine, "regions", "unmatched")
    assert listed.stdout.splitlines() == [
        "PRK-2026-000001\tKabupaten Bogor\tBabakan Madang\tKampung Durian Runtuh\t32.01.05\t"
        "tidak_ada"]
    matched = prokus(loaded_engine, "regions", "match-registrations")
    assert "0 without codes" in matched.output  # the applicant's choice is kept


def test_match_registrations_needs_a_loaded_table(sqlite_engine):
    done = prokus(sqlite_engine, "regions", "match-registrations")
    assert done.exit_code == 1 and "regions load" in done.output


def test_cli_help_of_the_new_commands():
    for args in (["regions", "match-registrations"], ["regions", "unmatched"]):
        done = CliRunner().invoke(main, [*args, "--help"])
        assert done.exit_code == 0, done.output
    text = CliRunner().invoke(main, ["regions", "unmatched", "--help"]).output
    assert "NUMBER<TAB>KABUPATEN<TAB>KECAMATAN<TAB>DESA<TAB>CODE<TAB>WHY" in text
    assert "tidak_ada" in text and "no_clear_match" in text


# ------------------------------------------------------------------ the console
def test_the_console_shows_the_official_names_codes_and_the_flag(rbot, loaded_engine, clock):
    from tests.web.conftest import Console

    chat = share_phone(to_phone(rbot)).press("Ya").send("cijayanti")
    finish(chat).press("Kirim")
    chat = share_phone(to_phone(rbot, user="51", nik=SITI, name="Siti Aminah")).press("Ya")
    finish(chat.send("Kampung Durian Runtuh").press("Tidak ada di daftar")).press("Kirim")
    console = Console(loaded_engine, clock)
    console.signed_in("super")
    html = console.client.get("/registrations/PRK-2026-000001").text
    assert "Cijayanti" in html and "32.01.05.2001" in html and "Babakan Madang" in html
    assert "32.01.05" in html and "Kabupaten Bogor" in html and "32.01" in html
    assert "tidak ada di daftar" not in html
    assert "Wilayah alamat (kode resmi)" in html and "32..0" not in html
    html = console.client.get("/registrations/PRK-2026-000002").text
    assert "Kampung Durian Runtuh" in html and "tidak ada di daftar" in html
    assert "Tidak ada di daftar" in html  # the warning for the verifier
    # The region filter works on the matched codes: the desa 32.01.05.2001 is under
    # 32.01 and 32.01.05, not under 32.01.06 or 32.73.
    for region, found in (("32.01", True), ("32.01.05", True), ("3201052001", True),
                          ("32.01.06", False), ("32.73", False)):
        page = console.client.get(f"/registrations?wilayah={region}").text
        assert ("PRK-2026-000001" in page) == found, region


def test_a_verifier_of_a_kecamatan_sees_a_matched_registration(rbot, loaded_engine, clock):
    from tests.web.conftest import Console

    chat = share_phone(to_phone(rbot)).press("Sudah pindah")
    finish(chat.send("kota bandung").send("coblong").send("dago")).press("Kirim")
    console = Console(loaded_engine, clock)
    console.signed_in("verif-coblong", "verifier", region="32.73.02")
    assert console.client.get("/registrations/PRK-2026-000001").status_code == 200
    other = Console(loaded_engine, clock)
    other.signed_in("verif-babakan", "verifier", region="32.01.05")
    assert other.client.get("/registrations/PRK-2026-000001").status_code == 404
