"""End to end in headless Chromium against a live `prokus serve`: a coordinator adds a mentor,
assigns a registration, composes a broadcast to registrants by status, confirms it, and
watches it finish while a real `prokus worker` sends it to the fake Telegram Bot API.
Screenshots: results/screenshots/mentors*.png and broadcasts*.png."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator

import pytest

from tests.web.conftest import PASSWORD, PROKUS, add_operator
from tests.web.test_mentors import registration

pytestmark = pytest.mark.browser

PHONE = {"width": 390, "height": 844}
DESKTOP = {"width": 1366, "height": 768}


@pytest.fixture
def worker(sqlite_engine, fake, tmp_path) -> Iterator[subprocess.Popen]:
    """`prokus worker` on the console's database, sending to the fake Bot API."""
    env = {**os.environ, "DATABASE_URL": sqlite_engine.url.render_as_string(False),
           "TELEGRAM_BOT_TOKEN": fake.token, "TELEGRAM_API_URL": fake.base_url,
           "OUTBOX_RATE": "50", "LOG_LEVEL": "WARNING", "LOG_JSON": "0"}
    log = open(tmp_path / "worker.log", "w")  # noqa: SIM115 - closed below
    process = subprocess.Popen([str(PROKUS), "worker"], env=env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        yield process
    finally:
        process.terminate()
        try:
            process.wait(timeout=15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        log.close()


def no_sideways_scroll(page) -> None:
    assert page.evaluate("document.documentElement.scrollWidth") <= PHONE["width"]


def test_coordinator_mentor_assignment_and_broadcast_to_the_end(
        live_server, browser_page, screenshots, sqlite_engine, fake, worker):
    page, url = browser_page, live_server.url
    add_operator(sqlite_engine, "koor1", "coordinator")
    for n, telegram_id in ((1, "700001"), (2, "700002"), (3, "700003")):
        registration(sqlite_engine, n, telegram_id=telegram_id,
                     name=("Budi Santoso", "Siti Aminah", "Rina Marlina")[n - 1])
    registration(sqlite_engine, 4, telegram_id=None, name="Tanpa Akun")
    registration(sqlite_engine, 5, status="diajukan", telegram_id="700005")
    fake.add_chats([700001, 700002, 700003, 700005])
    fake.block(700003)

    live_server.login(page, "koor1", PASSWORD)
    page.click("nav.mainnav >> text=Pendamping")
    page.wait_for_url(f"{url}/mentors")
    assert page.locator("h1").inner_text() == "Pendamping"

    # add a mentor
    page.fill("#telegram_id", "900100")
    page.fill("#name", "Andi Pendamping")
    page.fill("#phone", "0811-2222-3333")
    page.fill("#region", "32.01")
    page.click("text=Tambah pendamping >> nth=-1")
    page.wait_for_selector(".flash-ok")
    assert "Pendamping Andi Pendamping ditambahkan (WIB)" in page.inner_text(".flash-ok")
    mentor_row = page.locator("#mentor-table tr", has_text="Andi Pendamping")
    assert "32.01" in mentor_row.inner_text() and "Aktif" in mentor_row.inner_text()

    # assign a registration: the mentor of the same region is suggested first
    waiting = page.locator("#waiting-table tr", has_text="PRK-2026-000001")
    select = waiting.locator("select")
    assert "Andi Pendamping" in select.locator("option").first.inner_text()
    assert select.locator("optgroup").first.get_attribute("label").startswith(
        "Wilayah yang sama")
    page.screenshot(path=str(screenshots / "mentors.png"), full_page=True)
    waiting.locator("text=Tugaskan").click()
    page.wait_for_selector(".flash-ok")
    assert "PRK-2026-000001 ditugaskan ke Andi Pendamping" in page.inner_text(".flash-ok")
    assert page.locator("#waiting-table tr", has_text="PRK-2026-000001").count() == 0
    assert "1" in page.locator("#mentor-table tr", has_text="Andi Pendamping").locator(
        "td[data-label=Peserta]").inner_text()

    page.click("#mentor-table >> text=Andi Pendamping")
    page.wait_for_url(f"{url}/mentors/*")
    assert "Budi Santoso" in page.content()
    page.screenshot(path=str(screenshots / "mentors-detail.png"), full_page=True)
    page.set_viewport_size(PHONE)
    no_sideways_scroll(page)
    page.screenshot(path=str(screenshots / "mentors-detail-phone.png"), full_page=True)
    page.goto(f"{url}/mentors")
    no_sideways_scroll(page)
    page.screenshot(path=str(screenshots / "mentors-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)

    # compose a broadcast to accepted registrants
    page.click("nav.mainnav >> text=Siaran")
    page.wait_for_url(f"{url}/broadcasts")
    page.check("#aud-registrants")
    page.select_option("#status", "diterima")
    text = "Pertemuan <b>Sabtu</b> jam 09.00 di Balai Desa & bawa buku kas."
    page.fill("#text", text)
    assert "(" + str(len(text)) + "/4096)" in page.inner_text("#text-hint")  # broadcasts.js
    page.screenshot(path=str(screenshots / "broadcasts.png"), full_page=True)
    page.click("text=Lihat pratinjau")
    page.wait_for_url(f"{url}/broadcasts/preview")
    assert page.inner_text("#count-reachable") == "3"   # 700003 has not blocked us yet
    assert page.inner_text("#count-skipped") == "1"
    assert "1 pendaftaran tanpa akun chat" in page.inner_text("#skip-reasons")
    assert page.inner_text("#message-preview") == text  # shown as text, not as HTML
    assert page.locator("#message-preview b").count() == 0
    page.screenshot(path=str(screenshots / "broadcasts-preview.png"), full_page=True)
    page.set_viewport_size(PHONE)
    no_sideways_scroll(page)
    page.screenshot(path=str(screenshots / "broadcasts-preview-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)

    # confirm, then watch it finish without reloading the page
    page.click("#confirm-send")
    page.wait_for_url(f"{url}/broadcasts/*")
    assert "masuk antrean untuk 3 penerima" in page.inner_text(".flash-ok")
    page.evaluate("window.prokusNotReloaded = true")
    page.wait_for_selector('#progress[data-finished="yes"]', timeout=60_000)
    assert page.evaluate("window.prokusNotReloaded === true")  # htmx swapped the partial
    assert page.inner_text("#count-sent") == "2"
    assert page.inner_text("#count-queued") == "0"
    assert page.inner_text("#count-failed") == "1"
    report = page.inner_text("#final-report")
    assert "Terkirim 2 dari 3 penerima" in report
    assert "Memblokir bot atau akun tidak aktif" in report
    assert fake.texts(700001) == [text] and fake.texts(700002) == [text]
    assert fake.texts(700003) == [] and fake.texts(700005) == []
    page.screenshot(path=str(screenshots / "broadcasts-progress.png"), full_page=True)
    page.set_viewport_size(PHONE)
    no_sideways_scroll(page)
    page.screenshot(path=str(screenshots / "broadcasts-progress-phone.png"), full_page=True)
    page.set_viewport_size(DESKTOP)

    # the next broadcast skips the one who blocked the bot, and says why
    page.goto(f"{url}/broadcasts")
    page.check("#aud-registrants")
    page.select_option("#status", "diterima")
    page.fill("#text", "Pengingat kedua")
    page.click("text=Lihat pratinjau")
    page.wait_for_url(f"{url}/broadcasts/preview")
    assert page.inner_text("#count-reachable") == "2"
    assert "1 memblokir bot atau tidak aktif lagi" in page.inner_text("#skip-reasons")
    page.click("#confirm-send")
    page.wait_for_selector('#progress[data-finished="yes"]', timeout=60_000)
    assert "Terkirim 2 dari 2" in page.inner_text("#final-report")
    page.goto(f"{url}/broadcasts")
    assert page.locator("#recent-broadcasts li").count() == 2
    assert "2/2 terkirim" in page.inner_text("#recent-broadcasts")
    assert "2/3 terkirim" in page.inner_text("#recent-broadcasts")
    page.screenshot(path=str(screenshots / "broadcasts-list.png"), full_page=True)
    page.set_viewport_size(PHONE)
    no_sideways_scroll(page)
    page.screenshot(path=str(screenshots / "broadcasts-phone.png"), full_page=True)
