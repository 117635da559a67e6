"""Operator tools for registrations (`prokus registrations ...`) and what the applicant
sees afterwards: on SQLite and on PostgreSQL."""

from __future__ import annotations

import csv
import io

import pytest
from click.testing import CliRunner
from sqlalchemy import select, update

from actions.identity import NAME_TRIES
from bot.cli import main
from db import registrations
from db.engine import make_sessionmaker
from db.models import AuditLog, OutboxItem, OutboxMessage, Registration
from domain.registration import StatusChangeError
from tests.chat_helpers import TODAY, Chat, Clock, load_registry, make_bot, make_nlu
from tests.test_registration import reach

SITI = {"nik": ("text", "3201055508920002"), "name": ("text", "Siti Aminah")}


@pytest.fixture
def bot(engine, texts):
    load_registry(engine)
    return make_bot(engine, make_nlu(), texts, Clock(TODAY))


@pytest.fixture
def prokus(db_url):
    runner = CliRunner()

    def run(*args: str, ok: bool = True):
        result = runner.invoke(main, list(args), env={"DATABASE_URL": db_url,
                                                      "PROKUS_OPERATOR": "dinsos-bogor"})
        assert (result.exit_code == 0) == ok, result.output
        return result

    return run


def two_registrations(bot):
    reach(bot, "summary", user="50").press("Kirim")
    reach(bot, "summary", user="51", answers=SITI).press("Kirim")


def test_list_masks_nik_and_phone_and_filters_by_status(bot, prokus):
    two_registrations(bot)
    out = prokus("registrations", "list").output
    assert "PRK-2026-000001" in out and "PRK-2026-000002" in out
    assert "3201********0001" in out and "3201051203900001" not in out
    assert "+6281234567890" not in out
    prokus("registrations", "set-status", "PRK-2026-000002", "--status", "diverifikasi")
    rows = list(csv.DictReader(io.StringIO(
        prokus("registrations", "list", "--status", "diverifikasi", "--format", "csv").stdout)))
    assert [r["number"] for r in rows] == ["PRK-2026-000002"]


def test_export_has_full_data_and_is_audited(bot, prokus, engine, tmp_path):
    two_registrations(bot)
    target = tmp_path / "out.csv"
    prokus("registrations", "export", "--status", "diajukan", "--format", "csv",
           "--out", str(target))
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    assert [r["nik"] for r in rows] == ["3201051203900001", "3201055508920002"]
    assert rows[0]["no_hp"] == "0812 3456 7890" and rows[0]["lama_usaha_bulan"] == "24"
    assert rows[0]["created_at"].endswith("+00:00")
    with make_sessionmaker(engine)() as session:
        record = session.scalars(select(AuditLog).where(
            AuditLog.action == "registrations_export")).one()
    assert record.actor == "operator:dinsos-bogor" and record.detail["rows"] == 2


FORMULAS = {"deskripsi_usaha": '=HYPERLINK("http://contoh.invalid/x","klik")',
            "alasan": "+1+1", "desa": "-2+3", "kecamatan": "@SUM(A1:A9)",
            "kabupaten": "\t=1+1", "nama": "  =cmd|' /C calc'!A0"}


def test_export_and_csv_list_never_write_a_live_formula(bot, prokus, engine, tmp_path):
    """OWASP CSV injection: cells that start a formula are prefixed with ' ; phones are
    written as 0812 3456 7890 (text in a spreadsheet, leading zero kept)."""
    two_registrations(bot)
    with make_sessionmaker(engine).begin() as session:
        session.execute(update(Registration).where(Registration.number == "PRK-2026-000001")
                        .values(**FORMULAS))
    target = tmp_path / "out.csv"
    prokus("registrations", "export", "--out", str(target))
    rows = list(csv.DictReader(target.open(encoding="utf-8")))
    for column, value in FORMULAS.items():
        assert rows[0][column] == "'" + value, column
    assert rows[1]["desa"] == "Pakansari" and rows[1]["no_hp"] == "0812 3456 7890"
    for row in rows:
        for column, cell in row.items():
            assert not cell.lstrip().startswith(("=", "+", "-", "@")), (column, cell)
    listed = list(csv.DictReader(io.StringIO(
        prokus("registrations", "list", "--format", "csv").stdout)))
    assert listed[0]["nama"] == "'" + FORMULAS["nama"]
    assert listed[0]["no_hp"].startswith("'+62")  # masked, and escaped like any other cell


@pytest.mark.parametrize(("phone", "cell"), [
    ("+6281234567890", "0812 3456 7890"), ("+628123456789", "0812 3456 789"),
    ("+62812345678901", "0812 3456 7890 1"), ("+62812²3456789", "'+62812²3456789"),
    (None, ""),
])
def test_spreadsheet_phone(phone, cell):
    from bot.cli_registrations import spreadsheet_phone

    assert spreadsheet_phone(phone) == cell


def test_status_change_is_audited_and_the_notice_is_queued(bot, prokus, engine, texts):
    two_registrations(bot)
    prokus("registrations", "set-status", "prk-2026-000001", "--status", "diverifikasi")
    prokus("registrations", "set-status", "PRK-2026-000001", "--status", "ditolak",
           "--reason", "Usaha belum berjalan saat survei")
    with make_sessionmaker(engine)() as session:
        audits = session.scalars(select(AuditLog).where(
            AuditLog.action == "registration_status").order_by(AuditLog.id)).all()
        notices = session.execute(select(OutboxMessage.text, OutboxItem.state,
                                         OutboxItem.user_id, Registration.user_id)
                                  .join(OutboxItem).join(Registration,
                                                         Registration.number
                                                         == OutboxMessage.reference)
                                  .order_by(OutboxMessage.id)).all()
    assert [(a.outcome, a.detail["from"], a.actor) for a in audits] == [
        ("diverifikasi", "diajukan", "operator:dinsos-bogor"),
        ("ditolak", "diverifikasi", "operator:dinsos-bogor")]
    assert all(a.detail["nik"] == "3201********0001" for a in audits)
    assert [n.state for n in notices] == ["pending", "pending"]
    assert all(n[2] == n[3] for n in notices)  # to the account that registered
    assert notices[1].text == texts("status_notice/ditolak", number="PRK-2026-000001",
                                    reason="Usaha belum berjalan saat survei")
    # the applicant sees the status with its reason, and may register again
    chat = Chat(bot, "50").send("/status")
    assert "Status: ditolak" in chat.text and "Alasan: Usaha belum berjalan saat survei" in \
        chat.text
    assert "PRK-2026-000003" in reach(bot, "summary", user="50").press("Kirim").text


@pytest.mark.parametrize("args,message", [
    (["PRK-2026-000001", "--status", "diterima"], "cannot go from 'diajukan' to 'diterima'"),
    (["PRK-2026-000001", "--status", "ditolak"], "needs --reason"),
    (["PRK-2026-000099", "--status", "diverifikasi"], "no registration 'PRK-2026-000099'"),
    (["nomor-salah", "--status", "diverifikasi"], "expected a number like PRK-2026-000123"),
    (["PRK-2026-000001", "--status", "selesai"], "Invalid value for '--status'"),
])
def test_bad_status_changes_are_clear_errors_and_change_nothing(bot, prokus, engine, args,
                                                                message):
    two_registrations(bot)
    result = prokus("registrations", "set-status", *args, ok=False)
    assert message in result.output and "Traceback" not in result.output
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(Registration.status).where(
            Registration.number == "PRK-2026-000001")) == "diajukan"
        assert session.scalars(select(OutboxItem)).all() == []


def test_final_statuses_cannot_change(bot, engine):
    two_registrations(bot)
    with make_sessionmaker(engine).begin() as session:
        registrations.set_status(session, "PRK-2026-000001", "diverifikasi", None, "op",
                                 lambda r: "x")
        registrations.set_status(session, "PRK-2026-000001", "diterima", None, "op",
                                 lambda r: "x")
    with make_sessionmaker(engine).begin() as session, pytest.raises(StatusChangeError):
        registrations.set_status(session, "PRK-2026-000001", "ditolak", "late", "op",
                                 lambda r: "x")


def test_status_for_another_account_needs_nik_and_name(bot, texts):
    two_registrations(bot)
    stranger = Chat(bot, "88").send("/status")
    assert stranger.text == texts("status_consent")
    stranger.press(texts("consent_yes")).send("3201051203900001").send("Budi Santoso")
    assert "PRK-2026-000001" in stranger.text and "PRK-2026-000002" not in stranger.text
    wrong = Chat(bot, "89").send("/status").send("ya").send("3201051203900001")
    unknown = Chat(bot, "90").send("/status").send("ya").send("3201051203900077")
    for _ in range(NAME_TRIES):
        wrong.send("Budi S")
        unknown.send("Budi")
        assert wrong.text == unknown.text
    assert wrong.text == texts("eligibility_not_verified")
    none_yet = Chat(bot, "91").send("/status").send("ya").send("3201050505900005")
    assert none_yet.send("Rina Marlina").text == texts("status_none_for_nik")


def test_registrations_cli_on_an_empty_database(prokus, engine):
    result = prokus("registrations", "list")
    assert "No registrations." in result.output


def test_batal_during_the_status_lookup(bot, texts):
    chat = Chat(bot, "92").send("/status").send("ya").send("batal")
    assert chat.text == texts("status_cancelled")
