"""Personal data encrypted at rest (issue 16 item 1): sealed columns, blind-index lookups,
no clear NIK/phone/name in the database's bytes, wrong keys, corrupted rows, rotation."""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
from datetime import date
from pathlib import Path

import pytest
import sqlalchemy as sa
from click.testing import CliRunner
from sqlalchemy import select

from actions.responses import Responses
from bot.cli import main
from db import crypto, handoff, inbox, keys, registrations, repo
from db.engine import make_engine, make_sessionmaker
from db.migrate import downgrade, upgrade
from db.models import Conversation, DataKeyRecord, Kpm, Registration, utcnow
from tests.chat_helpers import TODAY, Chat, Clock, load_registry, make_bot, make_nlu
from tests.test_registration import BUDI, reach

PHONE = "6281234567890"


def cli(url: str, *args: str, key: str | None = None, ok: bool = True):
    env = {"DATABASE_URL": url}
    if key is not None:
        env["PROKUS_DATA_KEY"] = key
    result = CliRunner().invoke(main, list(args), env=env)
    assert (result.exit_code == 0) == ok, result.output
    return result


# ------------------------------------------------------------------ the cipher
def test_sealed_values_open_only_with_their_key_and_column():
    ring = crypto.Keyring([crypto.parse_key(crypto.generate_key())], "test")
    blob = ring.seal(b"3201051203900001", b"kpm.nik")
    assert b"3201051203900001" not in blob and ring.open(blob, b"kpm.nik") == b"3201051203900001"
    assert ring.seal(b"x", b"kpm.nik") != ring.seal(b"x", b"kpm.nik")  # random nonces
    with pytest.raises(crypto.UnreadableValue):
        ring.open(blob, b"kpm.nama")  # moved to another column
    tampered = blob[:-1] + bytes([blob[-1] ^ 1])
    with pytest.raises(crypto.UnreadableValue, match="authentication"):
        ring.open(tampered, b"kpm.nik")
    other = crypto.Keyring([crypto.parse_key(crypto.generate_key())], "test")
    with pytest.raises(crypto.UnreadableValue, match="not configured"):
        other.open(blob, b"kpm.nik")


def test_blind_index_is_keyed_and_every_configured_key_is_tried():
    new, old = crypto.generate_key(), crypto.generate_key()
    both = crypto.Keyring([crypto.parse_key(new), crypto.parse_key(old)], "test")
    only_old = crypto.Keyring([crypto.parse_key(old)], "test")
    assert both.blind(BUDI) != only_old.blind(BUDI)
    assert both.blinds(BUDI) == [both.blind(BUDI), only_old.blind(BUDI)]
    assert BUDI not in both.blind(BUDI) and len(both.blind(BUDI)) == 32


@pytest.mark.parametrize("text", ["", "abc", "00" * 16, "!" * 43])
def test_malformed_keys_are_refused_clearly(text):
    with pytest.raises(crypto.DataKeyError, match="data key"):
        crypto.load({"PROKUS_DATA_KEY": text or ","}, allow_dev=False)


def test_comparing_a_sealed_column_in_sql_is_an_error():
    with pytest.raises(TypeError, match="encrypted"):
        select(Registration).where(Registration.nik == BUDI)
    with pytest.raises(TypeError, match="encrypted"):
        select(Kpm).where(Kpm.nama.startswith("Budi"))
    with pytest.raises(TypeError, match="encrypted"):
        select(Kpm).where(Kpm.nik.in_([BUDI]))
    select(Registration).where(Registration.no_hp.is_(None))  # IS NULL is allowed


def test_without_a_key_a_development_key_is_made_and_named(tmp_path, caplog):
    env = {"PROKUS_DEV_KEY_FILE": str(tmp_path / "dev-key")}
    with caplog.at_level(logging.WARNING, logger="db.crypto"):
        ring = crypto.load(env)
    assert (tmp_path / "dev-key").stat().st_mode & 0o777 == 0o600
    assert "development key" in caplog.text and str(tmp_path / "dev-key") in caplog.text
    assert crypto.load(env).current.key_id == ring.current.key_id  # the same file next time


def test_postgresql_without_a_configured_key_is_refused():
    with pytest.raises(crypto.DataKeyError, match="must be set to run against PostgreSQL"):
        crypto.require_configured("postgresql://x@127.0.0.1/prokus", environ={})
    crypto.require_configured("sqlite:///data/prokus.db", environ={})


# ------------------------------------------------------------ nothing in clear text
def _register_and_touch_everything(engine) -> None:
    """A full registration through the core, a status notice, a handoff message with the
    NIK in it, and a raw Telegram update holding it: every place personal data goes."""
    load_registry(engine)
    bot = make_bot(engine, make_nlu(), Responses.load(), Clock(TODAY))
    chat = reach(bot, "summary")
    chat.press("Kirim")
    assert "PRK-2026-000001" in chat.text
    half = Chat(bot, "51").send("/daftar").press("Ya, saya setuju").send(BUDI)  # form running
    assert half.replies
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        registrations.set_status(session, "PRK-2026-000001", "diverifikasi", None, "op",
                                 notice=lambda r: f"Halo {r.nama}, pendaftaran {r.nik} "
                                                  "sudah diverifikasi.")
        user = session.scalars(select(Registration.user_id)).one()
        ticket = handoff.start(session, user, "registration", utcnow())
        handoff.submit_question(session, ticket, f"NIK saya {BUDI}, HP 0{PHONE[2:]}",
                                utcnow())
        inbox.store(session, [(987654321, "telegram:50",
                               {"message": {"text": f"nik {BUDI} budi santoso"}})], utcnow())


def _assert_no_clear_personal_data(blob: bytes) -> None:
    lowered = blob.lower()
    for secret in (BUDI, PHONE, "0" + PHONE[2:], "budi santoso", "siti aminah"):
        assert secret.encode() not in lowered, f"{secret} found in clear text"


def test_a_sqlite_file_holds_no_nik_phone_or_name_in_clear_text(sqlite_engine):
    _register_and_touch_everything(sqlite_engine)
    path = Path(sqlite_engine.url.database)
    sqlite_engine.dispose()
    blob = b"".join(p.read_bytes() for p in path.parent.glob(path.name + "*"))
    assert len(blob) > 100_000
    _assert_no_clear_personal_data(blob)


@pytest.mark.postgres
def test_a_pg_dump_holds_no_nik_phone_or_name_in_clear_text(request, postgres_url):
    if shutil.which("pg_dump") is None:
        pytest.skip("pg_dump is not installed")
    upgrade(postgres_url)
    engine = make_engine(postgres_url)
    try:
        _register_and_touch_everything(engine)
    finally:
        engine.dispose()
    dump = subprocess.run(["pg_dump", "--data-only", postgres_url.replace("+psycopg", "")],
                          check=True, capture_output=True).stdout
    assert b"COPY public.registrations" in dump and len(dump) > 10_000
    _assert_no_clear_personal_data(dump)
    assert b"\\\\x01" in dump or b"\\x01" in dump  # sealed values are there, as bytea


def test_the_sealed_values_read_back_through_the_models(engine):
    _register_and_touch_everything(engine)
    with make_sessionmaker(engine)() as session:
        reg = registrations.active_for_nik(session, BUDI)
        assert (reg.nik, reg.nama, reg.no_hp, reg.tanggal_lahir) == (
            BUDI, "Budi Santoso", "+" + PHONE, date(1990, 3, 12))
        assert repo.find_kpm(session, BUDI).nama == "Budi Santoso"
        raw = session.execute(sa.text("SELECT nik, nik_hash FROM registrations")).one()
        assert BUDI.encode() not in bytes(raw[0]) and raw[1] == crypto.blind(BUDI)


# ------------------------------------------------------------ wrong keys, bad rows
def test_a_wrong_key_stops_the_commands_with_a_clear_error(engine):
    url = engine.url.render_as_string(hide_password=False)
    load_registry(engine)
    cli(url, "keys", "status")  # registers the current key and its canary
    wrong = crypto.generate_key()
    out = cli(url, "keys", "status", key=wrong, ok=False).output
    assert "not configured" in out and "wrong key" in out and "Traceback" not in out
    out = cli(url, "db", "demo", key="not-a-key", ok=False).output
    assert "data key" in out and "Traceback" not in out


def test_a_corrupted_row_is_reported_and_skipped_while_others_are_served(engine, caplog):
    load_registry(engine)
    siti = "3201055508920002"
    with engine.begin() as conn:
        blob = conn.execute(sa.text("SELECT nama FROM kpm WHERE nik_hash = :h"),
                            {"h": crypto.blind(siti)}).scalar_one()
        broken = bytes(blob)[:-3] + b"\x00\x00\x00"
        conn.execute(sa.text("UPDATE kpm SET nama = :b WHERE nik_hash = :h"),
                     {"b": broken, "h": crypto.blind(siti)})
    with make_sessionmaker(engine)() as session, caplog.at_level(logging.ERROR, "db.crypto"):
        assert repo.find_kpm(session, siti) is None
        assert repo.find_kpm(session, BUDI).nama == "Budi Santoso"
    assert "unreadable sealed value in kpm.nama" in caplog.text
    url = engine.url.render_as_string(hide_password=False)
    out = cli(url, "keys", "check", ok=False).output
    assert f"kpm\t{crypto.blind(siti)}\tnama\tauthentication failed" in out


def test_the_bot_answers_a_corrupted_registry_record_like_an_unknown_nik(sqlite_engine, texts):
    load_registry(sqlite_engine)
    with sqlite_engine.begin() as conn:
        conn.execute(sa.text("UPDATE kpm SET tanggal_lahir = x'0102'"))
    bot = make_bot(sqlite_engine, make_nlu(), texts, Clock(TODAY))
    corrupted = Chat(bot, "60").send("/cek").press(texts("consent_yes")).send(BUDI)
    corrupted.send("Budi Santoso")
    unknown = Chat(bot, "61").send("/cek").press(texts("consent_yes")).send("3201051203900009")
    unknown.send("Budi Santoso")
    assert corrupted.text == unknown.text and corrupted.text


# ------------------------------------------------------------------- rotation
def test_rotation_reseals_everything_and_lookups_work_throughout(engine, monkeypatch):
    url = engine.url.render_as_string(hide_password=False)
    old = os.environ["PROKUS_DATA_KEY"].split(",")[0]
    _register_and_touch_everything(engine)
    cli(url, "keys", "status", key=old)
    new = crypto.generate_key()
    sessions = make_sessionmaker(engine)

    monkeypatch.setenv("PROKUS_DATA_KEY", f"{new},{old}")  # step 2: new first, old readable
    crypto.use(None)
    with sessions() as session:  # found before the rotation, by the old key's blind index
        assert repo.find_kpm(session, BUDI).nama == "Budi Santoso"
        assert registrations.active_for_nik(session, BUDI).number == "PRK-2026-000001"
    out = cli(url, "keys", "rotate", key=f"{new},{old}").output
    assert f"re-sealed under {crypto.fingerprint_of(new)}" in out
    assert f"retired keys: {crypto.fingerprint_of(old)}" in out

    monkeypatch.setenv("PROKUS_DATA_KEY", new)  # step 4: the old key removed
    crypto.use(None)
    with sessions() as session:
        assert repo.find_kpm(session, BUDI).nama == "Budi Santoso"
        reg = registrations.active_for_nik(session, BUDI)
        assert (reg.nama, reg.no_hp) == ("Budi Santoso", "+" + PHONE)
        states = [c.state for c in session.scalars(select(Conversation))]
        assert any(s.get("form") for s in states) and not any(
            crypto.is_unreadable(s) for s in states)
        retired = session.scalars(select(DataKeyRecord.key_id)
                                  .where(DataKeyRecord.retired_at.is_not(None))).all()
        assert retired == [crypto.fingerprint_of(old)]
        counts = keys.usage(session)
    assert all(set(c) <= {crypto.fingerprint_of(new)} for c in counts.values())
    cli(url, "keys", "check", key=new)
    cli(url, "keys", "status", key=old, ok=False)  # the old key alone no longer fits


# ------------------------------------------------------------------- migration
def test_migration_0014_seals_existing_clear_rows(db_url):
    upgrade(db_url, "0013")
    eng = make_engine(db_url)
    try:
        with eng.begin() as conn:
            conn.execute(sa.text(
                "INSERT INTO kpm (nik, nama, tanggal_lahir, jenis_kelamin, kode_wilayah, "
                "status_pkh, updated_at) VALUES (:n, 'Budi Santoso', :d, 'L', '3201052001', "
                "'graduasi', :u)"), {"n": BUDI, "d": date(1990, 3, 12), "u": utcnow()})
            conn.execute(sa.text("INSERT INTO users (id, channel, external_id, role, is_active,"
                                 " created_at, last_seen_at) VALUES (7, 'telegram', '7', 'kpm',"
                                 " true, :u, :u)"), {"u": utcnow()})
            conn.execute(sa.text(
                "INSERT INTO registrations (number, user_id, nik, nama, tanggal_lahir, no_hp, "
                "kabupaten, kecamatan, desa, bidang_usaha, deskripsi_usaha, lama_usaha_bulan, "
                "status, created_at, updated_at) VALUES ('PRK-2026-000001', 7, :n, "
                "'Budi Santoso', :d, '+6281234567890', 'Kab. Bogor', 'Cibinong', 'Pakansari', "
                "'kuliner', 'gorengan', 12, 'diajukan', :u, :u)"),
                {"n": BUDI, "d": date(1990, 3, 12), "u": utcnow()})
    finally:
        eng.dispose()
    upgrade(db_url)
    eng = make_engine(db_url)
    try:
        with make_sessionmaker(eng)() as session:
            assert repo.find_kpm(session, BUDI).tanggal_lahir == date(1990, 3, 12)
            reg = registrations.active_for_nik(session, BUDI)
            assert (reg.nama, reg.desa, reg.no_hp) == ("Budi Santoso", "Pakansari",
                                                       "+6281234567890")
            raw = session.execute(sa.text("SELECT nama FROM registrations")).scalar_one()
            assert b"Budi" not in bytes(raw)
    finally:
        eng.dispose()
    downgrade(db_url, "0013")  # back to clear text (development only), and up again
    eng = make_engine(db_url)
    try:
        with eng.connect() as conn:
            assert conn.execute(sa.text("SELECT nama FROM registrations")).scalar_one() \
                == "Budi Santoso"
    finally:
        eng.dispose()
    upgrade(db_url)


@pytest.mark.postgres
@pytest.mark.parametrize("command", [["serve", "--port", "18999"], ["worker", "--until-idle"],
                                     ["keys", "status"]])
def test_the_services_refuse_postgresql_without_a_configured_key(postgres_url, command):
    upgrade(postgres_url)
    result = CliRunner().invoke(main, command, env={
        "DATABASE_URL": postgres_url, "PROKUS_DATA_KEY": "", "PROKUS_DATA_KEY_FILE": "",
        "TELEGRAM_BOT_TOKEN": "123:abc"})
    assert result.exit_code != 0
    assert "must be set to run against PostgreSQL" in result.output, result.output
