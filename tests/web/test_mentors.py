"""/mentors in the console: roles, CSRF, list with counts, add, disable (mentees unassigned,
sessions cancelled), assign with same-region suggestions, a mentor's coming sessions, and
the audit rows. The data helpers here are shared with test_broadcasts.py."""

from __future__ import annotations

from datetime import date, datetime, timedelta

from sqlalchemy import Engine, select

from db import mentoring
from db.engine import make_sessionmaker
from db.models import Assignment, Kpm, MentoringSession, OutboxMessage, Registration, User, utcnow
from db.repo import get_or_create_user


def registration(engine: Engine, number: int, *, status: str = "diterima",
                 telegram_id: str | None = None, nik: str | None = None,
                 name: str | None = None, channel: str = "telegram", active: bool = True,
                 kpm_region: str | None = None) -> str:
    """A registration PRK-2026-00000N (with a chat account unless telegram_id is None);
    `kpm_region` also adds its KPM registry record in that region."""
    nik = nik or f"320105{number:02d}0190{number:04d}"[:16]
    prk = f"PRK-2026-{number:06d}"
    with make_sessionmaker(engine).begin() as session:
        user_id = None
        if telegram_id is not None:
            user = get_or_create_user(session, channel, telegram_id)
            user.is_active = active
            session.flush()
            user_id = user.id
        session.add(Registration(
            number=prk, user_id=user_id, nik=nik, nama=name or f"Peserta {number}",
            tanggal_lahir=date(1990, 1, 1), no_hp="+6281234567890", kabupaten="Bogor",
            kecamatan="Cibinong", desa="Pakansari", bidang_usaha="kuliner",
            deskripsi_usaha="Warung makan", lama_usaha_bulan=12, status=status,
            kode_wilayah=nik[:6], created_at=utcnow(), updated_at=utcnow()))
        if kpm_region:
            session.add(Kpm(nik=nik, nama=name or f"Peserta {number}",
                            tanggal_lahir=date(1990, 1, 1), jenis_kelamin="P",
                            kode_wilayah=kpm_region, status_pkh="graduasi",
                            updated_at=utcnow()))
    return prk


def mentor(engine: Engine, telegram_id: str, name: str, region: str) -> int:
    with make_sessionmaker(engine).begin() as session:
        return mentoring.add_mentor(session, telegram_id, name, "+6281122223333", region).id


def assign(engine: Engine, mentor_id: int, number: str) -> None:
    with make_sessionmaker(engine).begin() as session:
        mentoring.assign(session, mentor_id, number)


def session_at(engine: Engine, mentor_id: int, starts_at: datetime, topic: str,
               place: str = "Balai Desa") -> None:
    with make_sessionmaker(engine).begin() as session:
        session.add(MentoringSession(mentor_id=mentor_id, starts_at=starts_at, tempat=place,
                                     topik=topic, status=mentoring.SCHEDULED,
                                     created_at=utcnow(), updated_at=utcnow()))


# ---------------------------------------------------------------------- tests
def test_a_verifier_gets_403_and_no_session_goes_to_login(console):
    assert console.client.get("/mentors").status_code == 303
    console.signed_in("vera", "verifier")
    assert console.client.get("/mentors").status_code == 403
    assert console.post("/mentors", {"telegram_id": "1", "name": "X", "phone": "0811",
                                     "region": "32"}).status_code == 403
    assert console.post("/mentors/assign", {"number": "PRK-2026-000001",
                                            "mentor_id": "1"}).status_code == 403


def test_post_without_csrf_is_refused(console):
    console.signed_in("koor", "coordinator")
    response = console.client.post("/mentors", data={"telegram_id": "900100", "name": "Andi",
                                                     "phone": "081122223333", "region": "73.71"})
    assert response.status_code == 403
    assert console.audit("mentor_add") == []


def test_empty_database_page(console):
    console.signed_in("koor", "coordinator")
    page = console.client.get("/mentors")
    assert page.status_code == 200
    assert "Belum ada pendamping" in page.text
    assert "sudah punya pendamping" in page.text


def test_add_mentor_audited_and_listed_with_counts(console):
    console.signed_in("koor", "coordinator")
    response = console.post("/mentors", {"telegram_id": "900100", "name": "  Andi   Pendamping ",
                                         "phone": "0811-2222-3333", "region": "73.71"},
                            page="/mentors")
    assert response.status_code == 303 and response.headers["location"] == "/mentors"
    page = console.client.get("/mentors").text
    assert "Pendamping Andi Pendamping ditambahkan (WITA)" in page
    assert "73.71" in page and "+6281122223333" in page
    (row,) = console.audit("mentor_add")
    assert row.actor == "operator:koor" and row.detail["via"] == "web"
    assert row.detail["region"] == "7371" and row.subject.startswith("mentor:")
    # the same account again: a clear error next to the field, nothing written
    again = console.post("/mentors", {"telegram_id": "900100", "name": "Lagi",
                                      "phone": "081122223333", "region": "73"}, page="/mentors")
    assert again.status_code == 400 and "sudah menjadi pendamping aktif" in again.text
    assert len(console.audit("mentor_add")) == 1


def test_add_mentor_errors_and_html_is_escaped(console):
    console.signed_in("koor", "coordinator")
    bad = console.post("/mentors", {"telegram_id": "abc", "name": "X", "phone": "0811",
                                    "region": "32"}, page="/mentors")
    assert bad.status_code == 400 and "ID Telegram berupa angka" in bad.text
    bad = console.post("/mentors", {"telegram_id": "5", "name": "X", "phone": "12345",
                                    "region": "32"}, page="/mentors")
    assert "Nomor HP tidak valid" in bad.text
    bad = console.post("/mentors", {"telegram_id": "5", "name": "X", "phone": "081122223333",
                                    "region": "00"}, page="/mentors")
    assert "Kode wilayah tidak dikenal" in bad.text
    ok = console.post("/mentors", {"telegram_id": "5", "name": "<b>Andi</b>",
                                   "phone": "081122223333", "region": "32"}, page="/mentors")
    assert ok.status_code == 303
    page = console.client.get("/mentors").text
    assert "<b>Andi</b>" not in page and "&lt;b&gt;Andi&lt;/b&gt;" in page


def test_assign_suggests_the_same_region_first_and_audits(console, sqlite_engine):
    far = mentor(sqlite_engine, "900200", "Budi Jauh", "7371")
    near = mentor(sqlite_engine, "900100", "Citra Dekat", "3201")
    prk = registration(sqlite_engine, 1, telegram_id="700001")   # NIK 320105...
    registration(sqlite_engine, 2, status="diajukan", telegram_id="700002")
    console.signed_in("koor", "coordinator")
    page = console.client.get("/mentors").text
    assert prk in page and "PRK-2026-000002" not in page  # only accepted ones wait
    row = page[page.index(f'data-number="{prk}"'):]
    row = row[:row.index("</tr>")]
    assert "Wilayah yang sama (disarankan)" in row
    assert row.index("Citra Dekat") < row.index("Wilayah lain") < row.index("Budi Jauh")
    response = console.post("/mentors/assign", {"number": prk.lower(), "mentor_id": str(near)},
                            page="/mentors")
    assert response.status_code == 303
    page = console.client.get("/mentors").text
    assert f"{prk} ditugaskan ke Citra Dekat" in page
    (row,) = console.audit("mentor_assign")
    assert row.subject == prk and row.detail["mentor"] == near and row.detail["previous"] is None
    with make_sessionmaker(sqlite_engine)() as session:
        assert session.get(Assignment, 1).mentor_id == near
    # moving to the other mentor is recorded with the previous one
    console.post("/mentors/assign", {"number": prk, "mentor_id": str(far)}, page="/mentors")
    assert console.audit("mentor_assign")[-1].detail["previous"] == near
    # a registration that is not accepted: a clear message, no audit row
    console.post("/mentors/assign", {"number": "PRK-2026-000002", "mentor_id": str(far)},
                 page="/mentors")
    assert "Hanya pendaftaran berstatus diterima" in console.client.get("/mentors").text
    assert len(console.audit("mentor_assign")) == 2


def test_mentor_page_shows_coming_sessions_and_mentees(console, sqlite_engine, clock):
    andi = mentor(sqlite_engine, "900100", "Andi Pendamping", "7371")
    prk = registration(sqlite_engine, 1, telegram_id="700001", name="Budi Santoso")
    assign(sqlite_engine, andi, prk)
    session_at(sqlite_engine, andi, clock.now + timedelta(days=2), "Mencatat keuangan usaha")
    session_at(sqlite_engine, andi, clock.now - timedelta(days=2), "Sesi yang sudah lewat")
    console.signed_in("sup", "supervisor")
    listing = console.client.get("/mentors").text
    assert "berikutnya" in listing
    page = console.client.get(f"/mentors/{andi}")
    assert page.status_code == 200
    assert "Mencatat keuangan usaha" in page.text and "Sesi yang sudah lewat" not in page.text
    assert "WITA" in page.text and "Budi Santoso" in page.text and prk in page.text
    assert console.client.get("/mentors/999").status_code == 404
    assert console.client.get("/mentors/abc").status_code == 404


def test_disable_unassigns_mentees_cancels_sessions_and_refuses_new_ones(
        console, sqlite_engine, clock):
    andi = mentor(sqlite_engine, "900100", "Andi Pendamping", "3201")
    prk = registration(sqlite_engine, 1, telegram_id="700001")
    assign(sqlite_engine, andi, prk)
    session_at(sqlite_engine, andi, clock.now + timedelta(days=3), "Pemasaran")
    console.signed_in("koor", "coordinator")
    response = console.post(f"/mentors/{andi}/disable", page="/mentors")
    assert response.status_code == 303
    page = console.client.get("/mentors").text
    assert "dinonaktifkan. 1 peserta kini belum punya pendamping" in page
    assert "1 pertemuan mendatang dibatalkan" in page and "Nonaktif" in page
    waiting = page[page.index('id="waiting-table"'):]
    assert prk in waiting and "Belum ada pendamping aktif" in waiting  # no active mentor left
    (row,) = console.audit("mentor_disable")
    assert row.detail["unassigned"] == 1 and row.detail["sessions_cancelled"] == 1
    with make_sessionmaker(sqlite_engine)() as session:
        assert session.scalars(select(Assignment)).all() == []
        item = session.scalars(select(MentoringSession)).one()
        assert item.status == mentoring.CANCELLED
        assert session.scalar(select(User.role).where(User.external_id == "900100")) == "kpm"
        notice = session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "session")).one()
        assert "Pemasaran" in notice.text
    # no new mentees for a disabled mentor; disabling twice is a clear message
    console.post("/mentors/assign", {"number": prk, "mentor_id": str(andi)}, page="/mentors")
    assert "pendamping nonaktif tidak menerima peserta baru" in console.client.get(
        "/mentors").text
    console.post(f"/mentors/{andi}/disable", page="/mentors")
    assert "Pendamping itu sudah nonaktif" in console.client.get("/mentors").text
    assert len(console.audit("mentor_disable")) == 1
    # adding the same account again makes the mentor active again
    console.post("/mentors", {"telegram_id": "900100", "name": "Andi Pendamping",
                              "phone": "081122223333", "region": "3201"}, page="/mentors")
    with make_sessionmaker(sqlite_engine)() as session:
        assert mentoring.is_active(session, mentoring.mentor_by_id(session, andi))


def test_disable_from_the_cli(db_url, engine):
    from click.testing import CliRunner

    from bot.cli import main

    andi = mentor(engine, "900100", "Andi Pendamping", "3201")
    prk = registration(engine, 1, telegram_id="700001")
    assign(engine, andi, prk)
    env = {"DATABASE_URL": db_url, "PROKUS_OPERATOR": "dinsos"}
    result = CliRunner().invoke(main, ["mentors", "disable", str(andi), "--yes"], env=env)
    assert result.exit_code == 0, result.output
    assert "1 mentee(s) unassigned" in result.output and f"{prk} needs a new mentor" in \
        result.output
    listing = CliRunner().invoke(main, ["mentors", "list"], env=env).output
    assert "(disabled)" in listing
    again = CliRunner().invoke(main, ["mentors", "disable", str(andi), "--yes"], env=env)
    assert again.exit_code != 0 and "already disabled" in again.output
    refused = CliRunner().invoke(main, ["mentors", "assign", str(andi), prk], env=env)
    assert refused.exit_code != 0 and "disabled" in refused.output


def test_region_match_levels():
    assert mentoring.region_match("3201", "320105") == 4
    assert mentoring.region_match("320105", "320105") == 6
    assert mentoring.region_match("32", "320105") == 2
    assert mentoring.region_match("3201052001", "320105") == 6
    assert mentoring.region_match("7371", "320105") == 0
    assert mentoring.region_match("3201", None) == 0
