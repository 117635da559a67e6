"""Region codes everywhere (issue 15 items 4 and 5): codes typed dotted or as digits,
checked against the loaded regions table by broadcasts, mentors, console accounts and the
KPM registry import; time zones stored on provinces agree with domain.regions."""

from __future__ import annotations

import io
from datetime import UTC, date, datetime

import pytest
from click.testing import CliRunner
from sqlalchemy import select
from sqlalchemy.orm import Session

from bot.cli import main
from db import broadcasts, regions
from db import operators as accounts
from db.engine import make_engine, make_sessionmaker
from db.kpm_import import HEADER, REGIONS_UNCHECKED, import_csv
from db.migrate import downgrade, upgrade
from db.models import Kpm, Mentor, Operator, Region, Registration, User
from domain import regions as zones

TODAY = date(2026, 11, 28)
PASSWORD = "rahasia-sekali-123"
# (telegram id, NIK, desa code): two in Kabupaten Bogor (two kecamatan), one in Kota
# Bandung (Jawa Barat too), one in Makassar.
PEOPLE = [
    ("810001", "3201051203900001", "3201052001"),
    ("810002", "3201015508920002", "3201011007"),
    ("810003", "3273011204850003", "3273011001"),
    ("810004", "7371114101880004", "7371111002"),
]


@pytest.fixture(scope="module")
def loaded_url(tmp_path_factory) -> str:
    """A SQLite database migrated and loaded once for this module."""
    url = f"sqlite:///{tmp_path_factory.mktemp('region-codes') / 'regions.db'}"
    upgrade(url)
    engine = make_engine(url)
    regions.load(engine)
    with Session(engine) as session, session.begin():
        for n, (telegram_id, nik, code) in enumerate(PEOPLE, start=1):
            user = User(channel="telegram", external_id=telegram_id)
            session.add(user)
            session.flush()
            session.add(Kpm(nik=nik, nama=f"Contoh {n}", tanggal_lahir=date(1990, 1, 1),
                            jenis_kelamin="L", kode_wilayah=code, status_pkh="graduasi"))
            session.add(Registration(
                number=f"PRK-2026-{n:06d}", user_id=user.id, nik=nik, nama=f"Contoh {n}",
                tanggal_lahir=date(1990, 1, 1), no_hp="+6281200000000", kabupaten="x",
                kecamatan="x", desa="x", bidang_usaha="warung", deskripsi_usaha="x",
                lama_usaha_bulan=12, status="diajukan", kode_wilayah=nik[:6]))
    engine.dispose()
    return url


@pytest.fixture(scope="module")
def session(loaded_url):
    engine = make_engine(loaded_url)
    with Session(engine) as s:
        yield s
    engine.dispose()


def prokus(url: str, *args: str, ok: bool = True, stdin: str | None = None):
    result = CliRunner().invoke(main, list(args), input=stdin,
                                env={"DATABASE_URL": url, "PROKUS_OPERATOR": "dinsos"})
    assert (result.exit_code == 0) == ok, result.output
    return result


# ------------------------------------------------------------------------ codes
@pytest.mark.parametrize("text,digits", [
    ("32", "32"), ("32.01", "3201"), ("3201", "3201"), (" 32.01.05 ", "320105"),
    ("320105", "320105"), ("32.01.05.2001", "3201052001"), ("3201052001", "3201052001"),
])
def test_normalise_code_takes_dotted_or_digits(text, digits):
    assert regions.normalise_code(text) == digits


@pytest.mark.parametrize("text", ["", "3", "320", "32.1", "32..01", "32.01.05.200",
                                  "320105200", "32-01", "abc", "32.01.", "٣٢"])
def test_normalise_code_refuses_what_is_not_shaped_like_a_code(text):
    with pytest.raises(ValueError, match="not a region code"):
        regions.normalise_code(text)


def test_known_finds_a_region_by_either_spelling(session):
    assert regions.loaded(session)
    assert regions.known(session, "32.01").name == "Kabupaten Bogor"
    assert regions.known(session, "3201").code == "32.01"
    assert regions.known(session, "32.01.05").level == "kecamatan"
    assert regions.known(session, "32.99") is None
    assert regions.known(session, "not a code") is None
    assert regions.check_code(session, "32.01.05") == "320105"
    with pytest.raises(regions.UnknownRegion, match="unknown region code 32.99"):
        regions.check_code(session, "3299")


# ------------------------------------------------------------------- broadcasts
@pytest.mark.parametrize("target,people", [
    ("region:32", {"810001", "810002", "810003"}),          # province
    ("region:32.01", {"810001", "810002"}),                 # kabupaten, dotted
    ("region:3201", {"810001", "810002"}),                  # kabupaten, digits
    ("region:32.01.05", {"810001"}),                        # kecamatan
    ("region:320101", {"810002"}),
    ("region:73.71", {"810004"}),
])
def test_a_region_broadcast_reaches_the_prefix(session, target, people):
    found = broadcasts.resolve(session, target)
    reached = set(session.scalars(select(User.external_id).where(User.id.in_(found.user_ids))))
    assert reached == people
    assert found.target == "region:" + target.split(":")[1].replace(".", "")


@pytest.mark.parametrize("code", ["32.99", "3299", "32.01.99", "73.71.11.9999"])
def test_a_region_broadcast_to_an_unknown_code_is_refused(session, code):
    with pytest.raises(broadcasts.BroadcastError, match="unknown region code") as caught:
        broadcasts.resolve(session, f"region:{code}")
    assert caught.value.code == "target_region"


def test_the_cli_names_the_unknown_region_code(loaded_url):
    out = prokus(loaded_url, "broadcast", "send", "--to", "region:32.99", "--text", "Info",
                 "--yes", ok=False).output
    assert "unknown region code 32.99" in out and "--to" in out
    out = prokus(loaded_url, "broadcast", "send", "--to", "region:32.01.05", "--text", "Info",
                 "--yes", "--no-wait").output
    assert "registrants in region 320105: 1 recipient(s)" in out


def test_without_the_table_a_region_broadcast_works_as_before(engine):
    with Session(engine) as s:
        assert not regions.loaded(s)
        assert broadcasts.resolve(s, "region:32.99").user_ids == []


# ---------------------------------------------------------- mentors and accounts
def test_a_mentor_region_is_checked_against_the_table(loaded_url, session):
    out = prokus(loaded_url, "mentors", "add", "--telegram-id", "820001", "--name", "Andi",
                 "--phone", "0811-2222-3333", "--region", "73.99", ok=False).output
    assert "unknown region code 73.99" in out and "--region" in out
    out = prokus(loaded_url, "mentors", "add", "--telegram-id", "820001", "--name", "Andi",
                 "--phone", "0811-2222-3333", "--region", "73.71.11").output
    assert "(WITA)" in out
    session.expire_all()
    andi = [m for m in session.scalars(select(Mentor)) if m.nama == "Andi"]  # name sealed
    assert [m.kode_wilayah for m in andi] == ["737111"]


def test_an_operator_region_is_checked_and_stored_as_digits(loaded_url, session):
    out = prokus(loaded_url, "operators", "add", "sari", "--role", "verifier", "--region",
                 "32.99", "--password-stdin", ok=False, stdin=PASSWORD + "\n").output
    assert "unknown region code 32.99" in out and "--region" in out
    out = prokus(loaded_url, "operators", "add", "sari", "--role", "verifier", "--region",
                 "32.01.05", "--password-stdin", stdin=PASSWORD + "\n").output
    assert "region 32.01.05" in out
    session.expire_all()
    sari = session.scalar(select(Operator).where(Operator.username == "sari"))
    assert sari.kode_wilayah == "320105"  # the console's verifier scope: a digits prefix
    with pytest.raises(accounts.OperatorError) as caught:
        accounts.add_operator(session, "budi", "verifier", PASSWORD, "3299",
                              now=sari.created_at)
    assert caught.value.code == "region_invalid"
    session.rollback()


def test_without_the_table_regions_are_checked_on_their_shape_only(engine):
    with Session(engine) as s:
        account = accounts.add_operator(s, "budi", "verifier", PASSWORD, "32.99",
                                        now=datetime(2026, 1, 1, tzinfo=UTC))
        assert account.kode_wilayah == "3299"


# -------------------------------------------------------------------- KPM import
def csv_text(*rows: list[str]) -> str:
    return "\n".join(",".join(r) for r in [HEADER, *rows]) + "\n"


GOOD = ["3201051203900009", "Budi Santoso", "1990-03-12", "L", "32.01.05.2001", "graduasi",
        "2024-06-30", "0812-3456-7890"]


def run_import(url_or_engine, text: str):
    engine = make_engine(url_or_engine) if isinstance(url_or_engine, str) else url_or_engine
    rejects = io.StringIO()
    result = import_csv(make_sessionmaker(engine), io.StringIO(text), rejects, today=TODAY)
    return result, rejects.getvalue()


def test_an_unknown_kode_wilayah_is_a_rejected_row_with_the_reason(loaded_url):
    unknown = GOOD[:]
    unknown[0], unknown[4] = "3201051203900010", "32.01.05.2999"
    result, rejects = run_import(loaded_url, csv_text(GOOD, unknown))
    assert (result.rows, result.inserted, result.rejected) == (2, 1, 1)
    assert not result.regions_unchecked
    assert result.reasons == {"kode_wilayah": 1}
    assert "3,kode_wilayah: unknown 32.01.05.2999," in rejects


def test_the_cli_import_reports_unknown_codes(loaded_url, tmp_path):
    unknown = GOOD[:]
    unknown[0], unknown[4] = "3201051203900011", "3201052999"
    source = tmp_path / "kpm.csv"
    source.write_text(csv_text(GOOD, unknown))
    out = prokus(loaded_url, "kpm", "import", str(source)).output
    assert "rejected 1" in out and "kode_wilayah 1" in out
    assert REGIONS_UNCHECKED not in out
    assert "kode_wilayah: unknown 32.01.05.2999" in (tmp_path / "kpm.rejected.csv").read_text()


def test_with_an_empty_table_the_import_warns_and_imports_as_before(db_url, engine, tmp_path):
    unknown = GOOD[:]
    unknown[0], unknown[4] = "3201051203900010", "32.01.05.2999"
    result, _ = run_import(engine, csv_text(GOOD, unknown))
    assert (result.inserted, result.rejected, result.regions_unchecked) == (2, 0, True)
    source = tmp_path / "kpm.csv"
    source.write_text(csv_text(GOOD))
    out = prokus(db_url, "kpm", "import", str(source)).output
    assert out.count(REGIONS_UNCHECKED) == 1 and "unchanged 1" in out


# ------------------------------------------------------------------------- zones
def test_every_province_stores_the_zone_of_domain_regions(session):
    provinces = session.execute(select(Region.code, Region.zone)
                                .where(Region.level == "province")).all()
    assert len(provinces) == 38
    for code, zone in provinces:
        assert zone == zones.zone_name(code), code
    assert {zone for _, zone in provinces} == {"WIB", "WITA", "WIT"}
    assert session.scalar(select(Region.zone).where(Region.code == "32.01")) is None


@pytest.mark.parametrize("code,zone", [
    ("32.01", "WIB"), ("3201052001", "WIB"), ("73.71", "WITA"), ("51", "WITA"),
    ("91.71.01.1001", "WIT"), ("96", "WIT"), ("99", None),
])
def test_zone_of_reads_the_province(session, code, zone):
    assert regions.zone_of(session, code) == zone
    if zone is not None:
        assert zones.zone_name(code) == zone


def test_migration_0012_gives_an_already_loaded_table_its_zones(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    upgrade(url, "0011")
    engine = make_engine(url)
    with engine.begin() as conn:
        conn.exec_driver_sql(
            "INSERT INTO regions (code, parent_code, level, kind, name, name_norm, digits) "
            "VALUES ('73', NULL, 'province', NULL, 'Sulawesi Selatan', 'sulawesi selatan', "
            "'73'), ('73.71', '73', 'kabupaten', 'kota', 'Kota Makassar', 'makassar', '7371')")
    upgrade(url)
    with Session(engine) as s:
        assert regions.zone_of(s, "73.71") == "WITA"
        assert s.get(Region, "73.71").zone is None
    downgrade(url, "0011")
    engine.dispose()
