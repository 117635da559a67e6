"""The verification queue end to end in headless Chromium against a live `prokus serve`:
filter, open a registration, reject it with a reason (the applicant's notice is in the
outbox), bulk-verify a selection, export as supervisor, a verifier refused the export.
Screenshots: results/screenshots/registrations*.png."""

from __future__ import annotations

import csv
import io
import re
from datetime import date
from pathlib import Path

import pytest
from sqlalchemy import select

from db.engine import make_sessionmaker
from db.models import AuditLog, OutboxItem, OutboxMessage, Registration
from tests.chat_helpers import load_registry
from tests.web.conftest import PASSWORD, add_operator
from tests.web.test_registrations import BUDI, DEWI, SITI, nik_of, seed

pytestmark = pytest.mark.browser


def statuses(engine) -> dict[str, str]:
    with make_sessionmaker(engine)() as session:
        return {n: s for n, s in session.execute(select(Registration.number, Registration.status))}


def test_queue_detail_reject_bulk_and_export(live_server, browser_page, sqlite_engine,
                                             chromium_browser, screenshots):
    engine = sqlite_engine
    load_registry(engine)
    budi = seed(engine, BUDI)
    siti = seed(engine, SITI, "Siti Aminah", born=date(1992, 8, 15), sector="jasa")
    dewi = seed(engine, DEWI, "Dewi Lestari", born=date(1995, 1, 1))
    others = [seed(engine, nik_of(i), f"Peserta {i}", sector="kerajinan_tangan")
              for i in range(10, 14)]
    page, url = browser_page, live_server.url
    live_server.login(page)

    page.click("nav.mainnav >> text=Pendaftaran")
    page.wait_for_url(f"{url}/registrations")
    assert page.locator("h1").inner_text() == "Pendaftaran"
    assert page.locator("td[data-label=NIK]").first.inner_text().count("*") == 8
    page.screenshot(path=str(screenshots / "registrations.png"), full_page=True)

    # filter: the region (typed, then Terapkan) and the status (a select: htmx at once)
    page.fill("#f-wilayah", "33.74")
    page.click("text=Terapkan")
    page.wait_for_url(re.compile(r".*wilayah=33\.74.*"))
    page.wait_for_function("document.querySelectorAll('td[data-label=Nomor]').length === 1")
    assert dewi in page.locator("#hasil").inner_text()
    page.select_option("#f-status", "diajukan")
    page.wait_for_url(re.compile(r".*status=diajukan.*"))
    assert page.evaluate("typeof htmx") == "object"

    # open the registration, reject it with a reason
    page.click(f"text={dewi}")
    page.wait_for_url(f"{url}/registrations/{dewi}?*")
    assert "Dewi Lestari" in page.inner_text("main")
    assert "❌ Belum graduasi dari PKH" in page.inner_text("main")
    page.screenshot(path=str(screenshots / "registrations-detail.png"), full_page=True)
    reason = "Belum graduasi dari PKH <b>menurut data KPM</b>"
    page.fill("#alasan", reason)
    page.click("button[data-action=ditolak]")
    page.wait_for_selector(".flash-ok")
    assert "Ditolak" in page.inner_text("#status-sekarang")
    assert reason in page.inner_text(".reg-reason")  # shown as text, not as markup
    with make_sessionmaker(engine)() as session:
        notice = session.execute(
            select(OutboxMessage.text, OutboxItem.state).join(
                OutboxItem, OutboxItem.message_id == OutboxMessage.id)
            .where(OutboxMessage.reference == dewi)).one()
    assert reason in notice.text and notice.state == "pending"

    # bulk: tick two registrations, verify them
    page.goto(f"{url}/registrations?status=diajukan&urut=lama")
    page.check(f"input[value='{budi}:diajukan']")
    page.check(f"input[value='{siti}:diajukan']")
    assert "2 dicentang" in page.inner_text(".reg-picked")
    page.select_option("#b-tindakan", "diverifikasi")
    page.once("dialog", lambda dialog: dialog.accept())
    page.click("text=Jalankan")
    page.wait_for_selector(".flash-ok")
    assert "Verifikasi: 2 diterapkan, 0 dilewati." in page.inner_text(".flash-ok")
    now = statuses(engine)
    assert now[budi] == now[siti] == "diverifikasi" and now[dewi] == "ditolak"
    assert all(now[n] == "diajukan" for n in others)

    # export (a download) as supervisor
    page.goto(f"{url}/registrations?status=diverifikasi")
    with page.expect_download() as download:
        page.click("#ekspor")
    body = Path(download.value.path()).read_text(encoding="utf-8-sig")
    rows = list(csv.DictReader(io.StringIO(body)))
    assert sorted(r["number"] for r in rows) == sorted([budi, siti])
    assert {r["nik"] for r in rows} == {"3201********0001", "3201********0002"}
    with make_sessionmaker(engine)() as session:
        record = session.scalars(select(AuditLog).where(
            AuditLog.action == "registrations_export")).one()
    assert record.actor == "operator:supervisor1" and record.detail["rows"] == 2

    # a phone
    page.set_viewport_size({"width": 390, "height": 844})
    page.goto(f"{url}/registrations")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(screenshots / "registrations-phone.png"), full_page=True)
    page.goto(f"{url}/registrations/{budi}")
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    page.screenshot(path=str(screenshots / "registrations-detail-phone.png"), full_page=True)

    # a verifier: no export link, and the export itself refused
    add_operator(engine, "verif-bogor", "verifier", region="32.01")
    context = chromium_browser.new_context(viewport={"width": 1366, "height": 768},
                                           locale="id-ID")
    try:
        other = context.new_page()
        live_server.login(other, "verif-bogor", PASSWORD)
        other.goto(f"{url}/registrations")
        assert other.locator("#ekspor").count() == 0
        assert dewi not in other.inner_text("#hasil")   # another region
        response = other.goto(f"{url}/registrations/export.csv")
        assert response is not None and response.status == 403
        assert "Akses ditolak" in other.inner_text("main")
    finally:
        context.close()
