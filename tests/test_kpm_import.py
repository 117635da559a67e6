"""`prokus kpm import`: validation, upsert by NIK, idempotence, rejects report; both DBs."""

from __future__ import annotations

import io
import sys
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import func, select

from db import repo
from db.engine import make_sessionmaker
from db.kpm_import import HEADER, RowError, import_csv, validate, write_demo
from db.models import Kpm

PROKUS = Path(sys.executable).with_name("prokus")
TODAY = date(2026, 11, 28)
GOOD = ["3201051203900001", "Budi Santoso", "1990-03-12", "L", "32.01.05.2001", "graduasi",
        "2024-06-30", "0812-3456-7890"]


def csv_text(*rows: list[str], header: list[str] = HEADER) -> str:
    return "\n".join(",".join(r) for r in [header, *rows]) + "\n"


def run_import(engine, text: str):
    rejects = io.StringIO()
    result = import_csv(make_sessionmaker(engine), io.StringIO(text), rejects, today=TODAY)
    return result, rejects.getvalue()


def test_valid_row_is_normalised():
    values, warnings = validate(GOOD, TODAY)
    assert values["kode_wilayah"] == "3201052001" and values["no_hp"] == "+6281234567890"
    assert values["tanggal_lahir"] == date(1990, 3, 12) and warnings == []


@pytest.mark.parametrize("column,value,reason", [
    (0, "320105120390001", "nik: nik_length"),
    (0, "9901051203900001", "nik: nik_province"),
    (1, "", "nama"),
    (2, "12-03-1990", "tanggal_lahir"),
    (2, "1990-02-30", "tanggal_lahir"),
    (2, "2030-01-01", "tanggal_lahir"),
    (3, "X", "jenis_kelamin"),
    (4, "320105", "kode_wilayah"),
    (5, "lulus", "status_pkh"),
    (6, "2027-01-01", "tanggal_graduasi"),
    (7, "12345", "no_hp"),
])
def test_invalid_values_are_rejected_with_a_reason(column, value, reason):
    row = GOOD[:]
    row[column] = value
    with pytest.raises(RowError) as error:
        validate(row, TODAY)
    assert str(error.value).startswith(reason)


def test_graduation_date_on_an_active_kpm_is_rejected():
    row = GOOD[:]
    row[5] = "aktif"
    with pytest.raises(RowError):
        validate(row, TODAY)


def test_nik_disagreeing_with_birth_date_or_sex_is_a_warning():
    row = GOOD[:]
    row[2], row[3] = "1991-03-12", "P"
    _, warnings = validate(row, TODAY)
    assert warnings == ["nik_date_mismatch", "nik_sex_mismatch"]


def test_import_upserts_and_a_second_import_changes_nothing(engine):
    other = ["3201055508920002", "Siti Aminah", "1992-08-15", "P", "3201052001", "aktif", "", ""]
    bad = GOOD[:]
    bad[0] = "123"
    text = csv_text(GOOD, bad, other)
    first, rejects = run_import(engine, text)
    assert (first.rows, first.inserted, first.rejected) == (3, 2, 1)
    assert "3,nik: nik_length" in rejects and "123" not in rejects.split("\n", 1)[1].split(",")[2:]
    with make_sessionmaker(engine)() as session:
        stamp = repo.find_kpm(session, "3201051203900001").updated_at
    second, _ = run_import(engine, text)
    assert (second.inserted, second.updated, second.unchanged) == (0, 0, 2)
    with make_sessionmaker(engine)() as session:
        assert repo.find_kpm(session, "3201051203900001").updated_at == stamp
    changed = other[:]
    changed[5], changed[6] = "graduasi", "2025-01-31"
    third, _ = run_import(engine, csv_text(GOOD, changed))
    assert (third.updated, third.unchanged) == (1, 1)
    with make_sessionmaker(engine)() as session:
        siti = repo.find_kpm(session, "3201055508920002")
        assert siti.status_pkh == "graduasi" and siti.tanggal_graduasi == date(2025, 1, 31)


def test_duplicate_nik_in_one_file_keeps_the_last_row(engine):
    later = GOOD[:]
    later[1] = "Budi Santoso Baru"
    result, _ = run_import(engine, csv_text(GOOD, later))
    assert result.duplicates_in_file == 1 and result.inserted == 1
    with make_sessionmaker(engine)() as session:
        assert repo.find_kpm(session, GOOD[0]).nama == "Budi Santoso Baru"


def test_wrong_header_is_a_clear_error(engine):
    with pytest.raises(RowError, match="unexpected header"):
        run_import(engine, csv_text(GOOD, header=["nik", "nama"]))


def test_a_row_with_missing_columns_is_rejected_whole(engine):
    result, rejects = run_import(engine, csv_text(GOOD[:5]))
    assert result.rejected == 1 and "expected 8 columns" in rejects
    with make_sessionmaker(engine)() as session:
        assert session.scalar(select(func.count()).select_from(Kpm)) == 0


def test_demo_rows_are_valid_unique_and_fake(engine):
    out = io.StringIO()
    write_demo(out, 3000)
    result, _ = run_import(engine, out.getvalue())
    assert (result.inserted, result.rejected, result.duplicates_in_file) == (3000, 0, 0)
    with make_sessionmaker(engine)() as session:
        names = session.scalars(select(Kpm.nama).limit(50)).all()
    assert all(n.startswith("Contoh ") and n.endswith("(FIKTIF)") for n in names)


def test_cli_import_reports_counts_and_rejects_file(tmp_path, sqlite_engine):
    from click.testing import CliRunner

    from bot.cli import main

    env = {"DATABASE_URL": sqlite_engine.url.render_as_string(hide_password=False)}
    source = tmp_path / "kpm.csv"
    bad = GOOD[:]
    bad[3] = "X"
    source.write_text(csv_text(GOOD, bad))
    runner = CliRunner()
    done = runner.invoke(main, ["kpm", "import", str(source)], env=env)
    assert done.exit_code == 0, done.output
    assert "inserted 1" in done.stdout and "rejected 1" in done.stdout
    assert (tmp_path / "kpm.rejected.csv").read_text().splitlines()[1].startswith(
        "3,jenis_kelamin")
    missing = runner.invoke(main, ["kpm", "import", str(tmp_path / "none.csv")], env=env)
    assert missing.exit_code != 0 and "does not exist" in missing.output


@pytest.mark.parametrize(("utc_now", "accepted"), [
    ("2026-03-01T18:30:00+00:00", True),   # 2 March 01:30 WIB: graduating on 2 March is today
    ("2026-03-01T16:59:00+00:00", False),  # 1 March 23:59 WIB: 2 March is still tomorrow
])
def test_import_dates_are_checked_against_today_in_wib(engine, monkeypatch, utc_now, accepted):
    """The registry's "today" is the Jakarta date, not the server's local date."""
    from datetime import datetime

    from db import kpm_import

    monkeypatch.setattr(kpm_import, "_utcnow", lambda: datetime.fromisoformat(utc_now))
    row = GOOD[:6] + ["2026-03-02", GOOD[7]]
    rejects = io.StringIO()
    result = import_csv(make_sessionmaker(engine), io.StringIO(csv_text(row)), rejects)
    assert (result.inserted, result.rejected) == ((1, 0) if accepted else (0, 1))
    assert accepted or "tanggal_graduasi: before birth or in the future" in rejects.getvalue()
