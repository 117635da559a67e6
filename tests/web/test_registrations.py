"""The verification queue over HTTP (in-process app): filters, exact search, masking,
region scoping, roles, status changes one by one and in bulk (compare-and-set, notices,
audit), the streamed and audited export, escaping and the friendly 404."""

from __future__ import annotations

import csv
import io
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select, update

from db import registrations
from db.engine import make_sessionmaker
from db.models import AuditLog, OutboxItem, OutboxMessage, Registration, User
from tests.chat_helpers import load_registry

BUDI = "3201051203900001"     # in the test registry (graduasi, 1990)
SITI = "3201055508920002"     # in the test registry (graduasi, 1992)
DEWI = "3374024101950003"     # in the test registry (aktif: not graduated), region 33.74
OTHER = "3201061506910007"    # not in the registry, region 32.01.06


def seed(engine, nik: str, nama: str = "Budi Santoso", *, born: date | None = None,
         sector: str = "kuliner", status: str | None = None,
         created_at: datetime | None = None, user: bool = True, **extra: object) -> str:
    """A registration submitted the way the bot submits it (db.registrations.submit), with
    a chat user to notify; returns its PRK number."""
    with make_sessionmaker(engine).begin() as session:
        user_id = None
        if user:
            account = User(channel="telegram", external_id=f"u{nik}")
            session.add(account)
            session.flush()
            user_id = account.id
        fields = {"nik": nik, "nama": nama, "tanggal_lahir": born or date(1990, 3, 12),
                  "no_hp": "+6281234567890", "kabupaten": "Kab. Bogor",
                  "kecamatan": "Cibinong", "desa": "Pakansari", "bidang_usaha": sector,
                  "deskripsi_usaha": "Jualan gorengan di depan sekolah",
                  "lama_usaha_bulan": 24, **extra}
        made = registrations.submit(session, fields, user_id, 2026).registration
        if status:
            made.status = status
        if created_at:
            made.created_at = created_at
        return made.number


def nik_of(i: int, region: str = "320105") -> str:
    """A valid NIK number i (born 12-03-1990, serial i)."""
    return f"{region}120390{i:04d}"


def status_of(engine, number: str) -> str:
    with make_sessionmaker(engine)() as session:
        return session.scalar(select(Registration.status).where(Registration.number == number))


def notices(engine, number: str) -> list[str]:
    with make_sessionmaker(engine)() as session:
        return list(session.scalars(select(OutboxMessage.text).join(
            OutboxItem, OutboxItem.message_id == OutboxMessage.id).where(
            OutboxMessage.reference == number)))


@pytest.fixture
def three(console):
    """Budi (32.01, diajukan), Siti (32.01, diverifikasi), Dewi (33.74, diajukan)."""
    load_registry(console.engine)
    return (seed(console.engine, BUDI),
            seed(console.engine, SITI, "Siti Aminah", born=date(1992, 8, 15),
                 sector="jasa", status="diverifikasi"),
            seed(console.engine, DEWI, "Dewi Lestari", born=date(1995, 1, 1)))


# ---------------------------------------------------------------------- the queue
def test_queue_lists_masked_niks_and_counts_per_status(console, three):
    console.signed_in("super")
    page = console.client.get("/registrations")
    assert page.status_code == 200
    html = page.text
    for number in three:
        assert number in html
    assert "3201********0001" in html and BUDI not in html and DEWI not in html
    assert 'data-status="diajukan"' in html
    assert ">3 pendaftaran<" in html.replace("\n", "")
    tabs = html.split('aria-label="Jumlah per status"')[1].split("</nav>")[0]
    assert "Diajukan <span class=\"count\">2</span>" in " ".join(tabs.split())
    assert "Diverifikasi <span class=\"count\">1</span>" in " ".join(tabs.split())


def test_filters_status_region_field_and_wib_dates(console, three):
    console.signed_in("super")
    budi, siti, dewi = three
    with make_sessionmaker(console.engine).begin() as session:  # Dewi came on 1 Nov, 23.30 WIB
        session.execute(update(Registration).where(Registration.number == dewi).values(
            created_at=datetime(2026, 11, 1, 16, 30, tzinfo=UTC)))

    def shown(query: str) -> set[str]:
        html = console.client.get(f"/registrations?{query}").text
        return {n for n in three if f">{n}</a>" in html}

    assert shown("status=diajukan") == {budi, dewi}
    assert shown("wilayah=32.01") == {budi, siti}
    assert shown("wilayah=3374") == {dewi}
    assert shown("bidang=jasa") == {siti}
    assert shown("dari=2026-11-01&sampai=2026-11-01") == {dewi}   # a WIB day
    assert shown("sampai=2026-10-31") == set()
    assert shown("status=diajukan&wilayah=32") == {budi}
    # the counts keep every status for the other filters
    html = " ".join(console.client.get("/registrations?status=diajukan&wilayah=32").text.split())
    assert "Diverifikasi <span class=\"count\">1</span>" in html
    bad = console.client.get("/registrations?status=x&wilayah=abc&dari=kemarin")
    assert bad.status_code == 200 and "Status tidak dikenal" in bad.text
    assert "Tanggal tidak terbaca" in bad.text


def test_search_is_exact_prk_number_or_full_nik(console, three):
    console.signed_in("super")
    budi, siti, dewi = three
    html = console.client.get(f"/registrations?q={SITI}").text
    assert f">{siti}</a>" in html and f">{budi}</a>" not in html
    cell = html.split('<td data-label="NIK" class="reg-mono">')[1].split("<")[0]
    assert cell == "3201********0002"  # the row shows it masked
    html = console.client.get(f"/registrations?q={dewi.lower()}").text
    assert f">{dewi}</a>" in html and f">{budi}</a>" not in html
    partial = console.client.get(f"/registrations?q={SITI[:10]}").text
    assert "NIK 16 digit" in partial and not any(f">{n}</a>" in partial for n in three)
    by_name = console.client.get("/registrations?q=Siti").text
    assert "Tidak ada pendaftaran" in by_name


def test_keyset_pages_of_fifty(console):
    console.signed_in("super")
    for i in range(1, 121):
        seed(console.engine, nik_of(i), user=False,
             created_at=datetime(2026, 11, 1, tzinfo=UTC).replace(minute=i % 60, hour=i // 60))
    first = console.client.get("/registrations").text
    assert first.count('name="pilih"') == 50 and 'rel="prev"' not in first
    seen: list[str] = []
    page, pages = first, 0
    while True:
        pages += 1
        cells = page.split('<td data-label="Nomor"><a ')[1:]
        seen += [cell.split(">")[1].split("<")[0] for cell in cells]
        if 'rel="next"' not in page:
            break
        link = page.split('rel="next" href="')[1].split('"')[0].replace("&amp;", "&")
        page = console.client.get(link).text
    assert pages == 3 and len(seen) == 120 and len(set(seen)) == 120
    back = page.split('rel="prev" href="')[1].split('"')[0].replace("&amp;", "&")
    assert console.client.get(back).text.count('name="pilih"') == 50
    oldest = console.client.get("/registrations?urut=lama").text
    assert oldest.index("PRK-2026-000001") < oldest.index("PRK-2026-000002")


def test_htmx_gets_only_the_results(console, three):
    console.signed_in("super")
    partial = console.client.get("/registrations?status=diajukan",
                                 headers={"HX-Request": "true", "HX-Target": "hasil"})
    assert partial.status_code == 200
    assert partial.text.lstrip().startswith('<div id="hasil"') and "<html" not in partial.text


def test_every_role_reads_an_empty_queue(console):
    for role in ("verifier", "coordinator", "supervisor"):
        console.client.cookies.clear()
        console.signed_in(f"kosong-{role}", role)
        page = console.client.get("/registrations")
        assert page.status_code == 200 and "Tidak ada pendaftaran" in page.text


# ---------------------------------------------------------------------- region scoping
def test_a_verifier_sees_only_their_region(console, three):
    budi, siti, dewi = three
    console.signed_in("verif-bogor", "verifier", region="32.01")
    html = console.client.get("/registrations").text
    assert f">{budi}</a>" in html and f">{siti}</a>" in html and f">{dewi}</a>" not in html
    assert "Diajukan <span class=\"count\">1</span>" in " ".join(html.split())
    assert f">{dewi}</a>" not in console.client.get("/registrations?wilayah=33").text
    assert f">{dewi}</a>" not in console.client.get(f"/registrations?q={DEWI}").text
    assert console.client.get(f"/registrations/{budi}").status_code == 200
    hidden = console.client.get(f"/registrations/{dewi}")
    assert hidden.status_code == 404 and "Halaman tidak ditemukan" in hidden.text
    refused = console.post(f"/registrations/{dewi}/status",
                           {"status": "diverifikasi", "seen": "diajukan"},
                           page="/registrations")
    assert refused.status_code == 404
    done = console.post("/registrations/bulk", {"tindakan": "diverifikasi",
                                                "pilih": [f"{budi}:diajukan",
                                                          f"{dewi}:diajukan"]},
                        page="/registrations")
    assert done.status_code == 303
    assert status_of(console.engine, budi) == "diverifikasi"
    assert status_of(console.engine, dewi) == "diajukan" and notices(console.engine, dewi) == []
    summary = console.client.get(done.headers["location"]).text
    assert "1 diterapkan, 1 dilewati" in summary and "tidak ditemukan di wilayah Anda" in summary
    assert console.client.get("/registrations/export.csv").status_code == 403


def test_a_supervisor_with_a_region_still_sees_everything(console, three):
    console.signed_in("super-bogor", "supervisor", region="32.01")
    html = console.client.get("/registrations").text
    assert all(f">{n}</a>" in html for n in three)


# ---------------------------------------------------------------------- detail
def test_detail_compares_with_the_registry(console, three):
    console.signed_in("super")
    budi, _siti, dewi = three
    html = console.client.get(f"/registrations/{budi.lower()}").text
    assert "Budi Santoso" in html and BUDI in html and "12-03-1990" in html
    assert "✅ Sudah graduasi dari PKH" in html and "Usia 36 tahun" in html
    assert "Tidak ada peringatan" in html and "lewat asisten" in html
    assert "Verifikasi" in html and 'name="seen" value="diajukan"' in html
    html = console.client.get(f"/registrations/{dewi}").text
    assert "❌ Belum graduasi dari PKH" in html


def test_detail_shows_the_bots_warnings(console):
    load_registry(console.engine)
    console.signed_in("super")
    # stated birth date differs from the NIK's; name typed differently from the registry
    number = seed(console.engine, BUDI, "Joko Susilo", born=date(1990, 3, 13),
                  sector="perlu_dinilai")
    html = console.client.get(f"/registrations/{number}").text
    assert "berbeda dengan tanggal di NIK" in html
    assert "Nama yang diisi tidak cocok" in html
    assert "Bidang usaha belum jelas" in html and "⏳" in html
    lone = seed(console.engine, OTHER, "Tono", born=date(1991, 6, 15))
    html = console.client.get(f"/registrations/{lone}").text
    assert "tidak ada di data KPM" in html


def test_unknown_or_malformed_number_is_a_friendly_404(console):
    console.signed_in("super")
    for path in ("/registrations/PRK-2026-999999", "/registrations/bukan-nomor"):
        page = console.client.get(path)
        assert page.status_code == 404 and "Halaman tidak ditemukan" in page.text


# ---------------------------------------------------------------------- status changes
def test_reject_needs_a_reason_and_the_reason_is_escaped(console, three):
    console.signed_in("super")
    budi = three[0]
    refused = console.post(f"/registrations/{budi}/status",
                           {"status": "ditolak", "seen": "diajukan", "alasan": "  "},
                           page=f"/registrations/{budi}")
    assert refused.status_code == 303
    page = console.client.get(refused.headers["location"]).text
    assert "alasan penolakan wajib diisi" in page
    assert status_of(console.engine, budi) == "diajukan" and notices(console.engine, budi) == []

    evil = '<script>alert("x")</script><b>Usaha</b> belum jalan'
    done = console.post(f"/registrations/{budi}/status",
                        {"status": "ditolak", "seen": "diajukan", "alasan": evil},
                        page=f"/registrations/{budi}")
    assert done.status_code == 303
    html = console.client.get(f"/registrations/{budi}").text
    assert "<script>alert" not in html and "<b>Usaha" not in html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt;&lt;b&gt;Usaha" in html
    assert status_of(console.engine, budi) == "ditolak"
    [notice] = notices(console.engine, budi)
    assert evil in notice  # the applicant's Telegram text is plain text, sent as is
    [record] = console.audit("registration_status")
    assert record.actor == "operator:super" and record.detail["nik"] == "3201********0001"
    assert record.detail["via"] == "web" and record.outcome == "ditolak"


def test_verify_then_accept_writes_notices_and_history(console, three):
    console.signed_in("super")
    budi = three[0]
    for new, seen in (("diverifikasi", "diajukan"), ("diterima", "diverifikasi")):
        response = console.post(f"/registrations/{budi}/status",
                                {"status": new, "seen": seen}, page=f"/registrations/{budi}")
        assert response.status_code == 303
    assert status_of(console.engine, budi) == "diterima"
    texts = notices(console.engine, budi)
    assert len(texts) == 2 and "diterima" in texts[1]
    html = console.client.get(f"/registrations/{budi}").text
    assert html.count("oleh operator:super") == 2 and "Status ini sudah final" in html


def test_a_stale_form_is_refused_with_a_message(console_any):
    """Two verifiers opened the same registration; the second one's click comes after the
    first one's change: it is not applied on top, and the second verifier is told why."""
    console = console_any
    console.signed_in("verif-a", "verifier")
    number = seed(console.engine, BUDI)
    page = console.client.get(f"/registrations/{number}").text
    assert 'name="seen" value="diajukan"' in page
    with make_sessionmaker(console.engine).begin() as session:   # the other verifier
        registrations.set_status(session, number, "diverifikasi", None, "operator:verif-b",
                                 lambda r: "ok")
    response = console.post(f"/registrations/{number}/status",
                            {"status": "ditolak", "seen": "diajukan", "alasan": "Data palsu"},
                            page=f"/registrations/{number}")
    assert response.status_code == 303
    html = console.client.get(response.headers["location"]).text
    assert "sudah diubah petugas lain menjadi “Diverifikasi”" in html
    assert status_of(console.engine, number) == "diverifikasi"
    assert len(notices(console.engine, number)) == 1
    [skip] = console.audit("registration_skip")
    assert skip.outcome == "stale" and skip.actor == "operator:verif-a"
    assert skip.detail["current"] == "diverifikasi"


def test_bulk_each_registration_its_own_outcome(console, three):
    console.signed_in("super")
    budi, siti, dewi = three
    response = console.post("/registrations/bulk", {
        "tindakan": "diverifikasi", "kembali": "status=diajukan&bogus=1",
        "pilih": [f"{budi}:diajukan", f"{siti}:diverifikasi", f"{dewi}:diajukan"]},
        page="/registrations")
    assert response.headers["location"] == "/registrations?status=diajukan"
    assert [status_of(console.engine, n) for n in three] == ["diverifikasi"] * 3
    summary = console.client.get(response.headers["location"]).text
    assert "Verifikasi: 2 diterapkan, 1 dilewati." in summary
    assert f"{siti}: statusnya sudah “Diverifikasi”" in summary
    changes = console.audit("registration_status")
    assert sorted(r.subject for r in changes) == sorted([budi, dewi])
    assert {r.actor for r in changes} == {"operator:super"}
    assert [r.subject for r in console.audit("registration_skip")] == [siti]
    assert len(notices(console.engine, budi)) == 1 and len(notices(console.engine, dewi)) == 1


def test_bulk_reject_needs_a_reason_and_a_selection(console, three):
    console.signed_in("super")
    budi = three[0]
    for data, message in (({"tindakan": "ditolak", "pilih": f"{budi}:diajukan"},
                           "Alasan penolakan wajib diisi"),
                          ({"tindakan": "diverifikasi"}, "Centang dulu")):
        response = console.post("/registrations/bulk", data, page="/registrations")
        assert message in console.client.get(response.headers["location"]).text
    assert status_of(console.engine, budi) == "diajukan"
    assert console.audit("registration_status") == []


def test_coordinators_read_but_do_not_change(console, three):
    console.signed_in("koor", "coordinator")
    budi = three[0]
    assert console.client.get(f"/registrations/{budi}").status_code == 200
    assert 'name="pilih"' not in console.client.get("/registrations").text
    refused = console.post(f"/registrations/{budi}/status",
                           {"status": "diverifikasi", "seen": "diajukan"}, page="/registrations")
    assert refused.status_code == 403
    refused = console.post("/registrations/bulk", {"tindakan": "diverifikasi",
                                                   "pilih": f"{budi}:diajukan"},
                           page="/registrations")
    assert refused.status_code == 403 and status_of(console.engine, budi) == "diajukan"


def test_a_post_without_the_csrf_token_is_refused(console, three):
    console.signed_in("super")
    response = console.client.post(f"/registrations/{three[0]}/status",
                                   data={"status": "diverifikasi", "seen": "diajukan"})
    assert response.status_code == 403 and status_of(console.engine, three[0]) == "diajukan"


# ---------------------------------------------------------------------- export
def test_export_is_for_supervisors_streamed_masked_and_audited(console, three):
    budi, siti, dewi = three
    with make_sessionmaker(console.engine).begin() as session:
        session.execute(update(Registration).where(Registration.number == siti).values(
            deskripsi_usaha='=HYPERLINK("http://contoh.invalid","klik")', desa="-2+3"))
    for role in ("verifier", "coordinator"):
        console.client.cookies.clear()
        console.signed_in(f"bukan-{role}", role)
        refused = console.client.get("/registrations/export.csv")
        assert refused.status_code == 403 and "Akses ditolak" in refused.text
    assert console.audit("registrations_export") == []
    console.client.cookies.clear()
    console.signed_in("super")
    with console.client.stream("GET", "/registrations/export.csv?wilayah=32.01") as response:
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("text/csv")
        assert "attachment" in response.headers["content-disposition"]
        assert "content-length" not in response.headers  # streamed, not built in memory
        body = b"".join(response.iter_bytes()).decode("utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert [r["number"] for r in rows] == [budi, siti]
    assert rows[0]["nik"] == "3201********0001" and BUDI not in body
    assert "+6281234567890" not in body and "0812 3456 7890" not in body
    assert rows[1]["deskripsi_usaha"].startswith("'=HYPERLINK") and rows[1]["desa"] == "'-2+3"
    [record] = console.audit("registrations_export")
    assert record.actor == "operator:super" and record.outcome == "ok"
    assert record.detail["rows"] == 2 and record.detail["filters"] == {"wilayah": "32.01"}
    assert record.detail["masked"] is True and record.detail["via"] == "web"


def test_the_export_reads_in_batches(console):
    """queue.stream yields row by row from batches (yield_per), oldest first."""
    from db import registration_queue as queue

    numbers = [seed(console.engine, nik_of(i), user=False) for i in range(1, 8)]
    with make_sessionmaker(console.engine)() as session:
        streamed = [r.number for r in queue.stream(session, queue.Filter(), batch=3)]
        assert streamed == numbers
        assert session.scalar(select(func.count()).select_from(AuditLog)) == 0
