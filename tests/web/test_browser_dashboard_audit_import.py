"""End to end in headless Chromium against a live `prokus serve`: the dashboard's charts,
uploading a small registry file and watching it finish, a refused upload, and the audit
log filtered by action; desktop (1366x768) and phone (390 px) screenshots."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

import pytest
from sqlalchemy import select

from db import repo
from db.engine import make_sessionmaker
from db.models import KpmImportJob, Registration
from tests.test_import_jobs import GOOD, csv_bytes, row

pytestmark = pytest.mark.browser

REGIONS = ["320105", "337402", "357810", "737111", "517103"]
STATUSES = ["diajukan"] * 5 + ["diverifikasi"] * 2 + ["diterima"] * 2 + ["ditolak"]
FIELDS = ["kuliner", "jasa", "kerajinan_tangan", "industri_rumah_tangga", "budi_daya_pertanian"]


def seed(engine) -> None:
    """Two months of fake activity, so the charts have something to draw."""
    rng = random.Random(13)
    now = datetime.now(UTC)
    with make_sessionmaker(engine).begin() as session:
        for n in range(1, 121):
            at = now - timedelta(days=rng.randrange(60), hours=rng.randrange(24))
            region = rng.choice(REGIONS)
            session.add(Registration(
                number=f"PRK-2026-{n:06d}", nik=f"{region}1203900{n:03d}", nama="Contoh Orang",
                tanggal_lahir=date(1990, 3, 12), no_hp="081234567890", kabupaten="Contoh",
                kecamatan="Contoh", desa="Contoh", bidang_usaha=rng.choice(FIELDS),
                deskripsi_usaha="Usaha contoh", lama_usaha_bulan=12,
                status=rng.choice(STATUSES), kode_wilayah=region, created_at=at,
                updated_at=at))
        for n in range(200):
            at = now - timedelta(days=rng.randrange(60), hours=rng.randrange(24))
            repo.audit(session, f"user:{n}", "nik_lookup", "found",
                       subject="3201********0001", detail={"purpose": "eligibility"}, at=at)
            if n % 3 == 0:
                repo.audit(session, f"user:{n}", "not_understood", "nlu_fallback", at=at)


def phone(page, url: str, shot: Path) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(url)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390  # no sideways scroll
    page.screenshot(path=str(shot), full_page=True)
    page.set_viewport_size({"width": 1366, "height": 768})


def test_dashboard_upload_and_audit(live_server, browser_page, screenshots, sqlite_engine,
                                    tmp_path):
    seed(sqlite_engine)
    page = browser_page
    url = live_server.url
    live_server.login(page)

    charts = page.locator("svg.chart")
    assert charts.count() == 7
    for i in range(charts.count()):
        box = charts.nth(i).bounding_box()
        assert box is not None and box["width"] > 250 and box["height"] > 60
    assert page.locator("svg.chart-bar g.bar").count() >= 60  # one bar per day with data
    assert page.locator(".stat-total .stat-value").inner_text() == "120"
    page.screenshot(path=str(screenshots / "dashboard.png"), full_page=True)
    phone(page, f"{url}/", screenshots / "dashboard-phone.png")

    # upload a small registry file with one bad row, and watch it finish
    good = tmp_path / "kpm-kecil.csv"
    good.write_bytes(csv_bytes(GOOD, row(nik="3201054203900002", jenis_kelamin="P"),
                               row(nik="12345"), row(nik="3201051203900003")))
    page.click("nav.mainnav >> text=Impor KPM")
    page.wait_for_url(f"{url}/kpm/import")
    page.set_input_files("#berkas", str(good))
    page.click("#kpm-upload button[type=submit]")
    page.wait_for_selector('.kpm-job[data-status="done"]', timeout=30_000)
    assert page.inner_text(".kpm-job .kpm-imported") == "3"
    assert page.inner_text(".kpm-job .kpm-rejected") == "1"
    with page.expect_download() as download:
        page.click(".kpm-job .kpm-rejects")
    rejects = Path(download.value.path()).read_text()
    assert rejects.startswith("line,reason,nik_masked") and "12345" not in rejects
    page.screenshot(path=str(screenshots / "kpm-import.png"), full_page=True)

    bad = tmp_path / "data.xlsx"
    bad.write_bytes(b"PK\x03\x04\x14\x00\x06\x00\x08\x00" + bytes(range(256)))
    page.set_input_files("#berkas", str(bad))
    page.click("#kpm-upload button[type=submit]")
    page.wait_for_selector(".kpm-upload-error")
    assert "bukan teks CSV" in page.inner_text(".kpm-upload-error")
    page.screenshot(path=str(screenshots / "kpm-import-error.png"), full_page=True)
    phone(page, f"{url}/kpm/import/1", screenshots / "kpm-import-phone.png")

    # the audit log, filtered by what happened
    page.goto(f"{url}/audit")
    page.select_option("#action", "kpm_upload")
    page.click("form.filters button[type=submit]")
    page.wait_for_url(f"{url}/audit?*action=kpm_upload*")
    rows = page.locator("table.audit-table tbody tr")
    assert rows.count() == 2  # the accepted upload and the refused one
    assert {rows.nth(i).locator("td").nth(4).inner_text() for i in range(2)} == {"ok",
                                                                                  "rejected"}
    page.screenshot(path=str(screenshots / "audit.png"), full_page=True)
    phone(page, f"{url}/audit?action=kpm_upload", screenshots / "audit-phone.png")

    with make_sessionmaker(sqlite_engine)() as session:  # the live server's data dir
        for job in session.scalars(select(KpmImportJob)):
            for path in (job.path, job.rejects_path):
                if path:
                    Path(path).unlink(missing_ok=True)
