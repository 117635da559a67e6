"""The dashboard `/` over HTTP: charts on an empty database, figures and links to the
queue, a region-scoped verifier, and the 60-second cache shared by concurrent operators."""

from __future__ import annotations

import threading
from datetime import UTC, date, datetime, timedelta

from db import dashboard as dash
from db import repo
from db.engine import make_sessionmaker
from db.models import Registration
from web.routes import home

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)  # 10.00 WIB, the console fixture's clock
_serial = iter(range(1, 1_000_000))


def registration(region: str = "320105", status: str = "diajukan", field: str = "kuliner",
                 days_ago: int = 1) -> Registration:
    n = next(_serial)
    at = NOW - timedelta(days=days_ago)
    return Registration(
        number=f"PRK-2026-{n:06d}", nik=f"{region}120390{n % 10_000:04d}", nama="Contoh Orang",
        tanggal_lahir=date(1990, 3, 12), no_hp="081234567890", kabupaten="Bogor",
        kecamatan="Cibinong", desa="Pakansari", bidang_usaha=field,
        deskripsi_usaha="Jualan gorengan", lama_usaha_bulan=24, status=status,
        kode_wilayah=region, created_at=at, updated_at=at)


def seed(console) -> None:
    with make_sessionmaker(console.engine).begin() as session:
        session.add_all([registration(), registration(status="diterima", field="jasa"),
                         registration(region="337402", status="ditolak"),
                         registration(region="737111", days_ago=120)])
        repo.audit(session, "user:7", "not_understood", "nlu_fallback", at=NOW)
        repo.audit(session, "user:7", "nik_lookup", "found", subject="3201********0001",
                   detail={"purpose": "eligibility"}, at=NOW)


def test_the_dashboard_works_on_an_empty_database(console):
    console.signed_in("sup")
    page = console.client.get("/")
    assert page.status_code == 200
    assert page.text.count("<svg") == 7  # every chart, each saying there is no data yet
    assert "Belum ada pendaftaran dalam periode ini" in page.text
    assert "Belum ada siaran" in page.text and 'aria-label="Jumlah pendaftaran' in page.text
    assert "Yang bisa Anda buka" in page.text and 'href="/kpm/import"' in page.text


def test_figures_charts_and_links_to_the_queue(console):
    seed(console)
    console.signed_in("sup")
    page = console.client.get("/")
    assert page.status_code == 200
    assert 'href="/registrations?status=diajukan"' in page.text
    assert 'href="/registrations?status=diterima"' in page.text
    assert 'class="chart chart-bar"' in page.text and 'class="chart chart-hbar"' in page.text
    assert 'class="chart chart-line"' in page.text  # eligibility checks
    assert all(name in page.text for name in ("Jawa Barat", "Jawa Tengah", "Sulawesi Selatan"))
    assert '<span class="stat-value">4</span>' in page.text  # all registrations
    assert "3 pendaftaran dalam 90 hari terakhir" in page.text  # the 120-day-old one is out
    assert "1 cek NIK" in page.text and "1 pesan dalam 90 hari" in page.text
    assert 'href="/audit?action=not_understood"' in page.text  # supervisors may open it


def test_a_verifier_with_a_region_sees_only_that_region(console):
    seed(console)
    console.signed_in("siti", "verifier", region="32.01")
    page = console.client.get("/")
    assert page.status_code == 200 and "wilayah <strong>32.01</strong>" in page.text
    assert '<span class="stat-value">2</span>' in page.text  # the two in 32.01
    assert "Jawa Tengah" not in page.text and "Sulawesi Selatan" not in page.text
    assert "tidak ditampilkan untuk akun yang dibatasi" in page.text
    assert "/audit?action=not_understood" not in page.text
    assert 'href="/audit"' not in page.text  # not in the menu either


def test_a_desa_region_is_narrowed_to_its_kecamatan(console):
    seed(console)
    console.signed_in("desa", "verifier", region="32.01.05.2001")
    page = console.client.get("/")
    assert page.status_code == 200 and "32.01.05" in page.text and "tidak memuat desa" in page.text


def test_the_figures_are_cached_per_region_and_computed_once_under_load(console,
                                                                        monkeypatch):
    console.signed_in("sup")
    calls: list[str | None] = []
    real = home.compute

    def counting(session, region, today, moment):
        calls.append(region)
        return real(session, region, today, moment)

    monkeypatch.setattr(home, "compute", counting)
    cookies = dict(console.client.cookies)
    results: list[int] = []

    def open_dashboard() -> None:
        from starlette.testclient import TestClient

        with TestClient(console.app, cookies=cookies) as client:
            results.append(client.get("/").status_code)

    threads = [threading.Thread(target=open_dashboard) for _ in range(20)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert results == [200] * 20 and calls == [None]
    seed(console)  # new data shows after the cache's minute, not before
    assert '<span class="stat-value">0</span>' in console.client.get("/").text
    console.app.state.dashboard_cache.clear()
    assert '<span class="stat-value">4</span>' in console.client.get("/").text
    assert calls == [None, None]
    assert home.dashboard_region("3201052001") == "320105"
    assert home.CACHE_SECONDS == 60 and isinstance(console.app.state.dashboard_cache,
                                                   dash.TTLCache)
