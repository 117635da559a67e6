"""The handoff inbox end to end in headless Chromium against a live `prokus serve`: a
waiting ticket written as the chat side writes it, an operator takes it, replies (shown
with its delivery state, which changes without a reload), sees a new user message appear
without a reload, and closes it with an outcome; a second operator in another browser
context cannot take the same ticket. Screenshots: results/screenshots/inbox*.png."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from db.engine import make_sessionmaker
from db.models import AuditLog, HandoffMessage, HandoffTicket, OutboxItem, OutboxMessage
from tests.test_handoff_inbox import add_registration, make_ticket
from tests.web.conftest import PASSWORD, add_operator

pytestmark = pytest.mark.browser


def test_take_reply_live_messages_close_and_a_second_operator(
        live_server, browser_page, sqlite_engine, chromium_browser, screenshots):
    engine, url, page = sqlite_engine, live_server.url, browser_page
    sessions = make_sessionmaker(engine)
    started = datetime.now(UTC)   # the live server runs on the real clock
    with sessions.begin() as session:
        ticket = make_ticket(session, age=timedelta(minutes=47), at=started, user_texts=(
            "Halo petugas, tanggal lahir saya di data salah.",
            "NIK saya 3201********0001, nomor HP +62812*****890. <b>tolong</b>"))
        add_registration(session, ticket.user_id)
        make_ticket(session, age=timedelta(minutes=5), region="3374020001", at=started,
                    user_texts=("Pendaftaran saya ditolak, kenapa ya?",))
        tid = ticket.id
    add_operator(engine, "verif-bogor", "verifier", region="32.01")

    # the second operator opens the ticket first (the take button is there for them too)
    context = chromium_browser.new_context(viewport={"width": 1366, "height": 768},
                                           locale="id-ID")
    try:
        other = context.new_page()
        other.set_default_timeout(15_000)
        live_server.login(other, "verif-bogor", PASSWORD)
        other.goto(f"{url}/inbox")
        assert other.locator("tr[data-ticket]").count() == 1  # only 32.01's ticket
        other.goto(f"{url}/inbox/{tid}")
        assert other.locator("#ambil").is_visible()

        # the first operator: the list, oldest first, with waiting times
        live_server.login(page)
        page.click("nav.mainnav >> text=Kotak masuk")
        page.wait_for_url(f"{url}/inbox")
        assert page.locator("h1").inner_text() == "Kotak masuk"
        rows = page.locator("tr[data-ticket]")
        assert rows.count() == 2 and rows.first.get_attribute("data-ticket") == str(tid)
        assert "47 mnt" in rows.first.inner_text()
        page.screenshot(path=str(screenshots / "inbox.png"), full_page=True)

        # open it: the conversation (escaped), the registration summary; take it
        page.click(f"tr[data-ticket='{tid}'] >> text=#{tid}")
        page.wait_for_url(re.compile(rf".*/inbox/{tid}(\?.*)?$"))
        conversation = page.inner_text("#percakapan")
        assert "<b>tolong</b>" in conversation and "3201********0001" in conversation
        assert "PRK-2026-000777" in page.inner_text("#pendaftaran")
        page.click("#ambil")
        page.wait_for_selector(".flash-ok")
        assert "ditangani supervisor1" in page.inner_text("#status-tiket")

        # the second operator is too late
        other.click("#ambil")
        other.wait_for_selector(".flash-error")
        assert "sudah diambil supervisor1" in other.inner_text(".flash-error")
        assert other.locator("#ambil").count() == 0
        assert other.locator("#kirim-balasan").count() == 0

        # reply: shown with its delivery state; it changes without a reload
        answer = "Baik, kami cek dulu <i>data</i> Anda ya."
        page.fill("#balasan", answer)
        page.click("#kirim-balasan")
        page.wait_for_selector(".flash-ok")
        operator_msg = page.locator("#percakapan li[data-sender=operator]")
        assert answer in operator_msg.inner_text()
        assert "Menunggu dikirim" in operator_msg.inner_text()
        with sessions() as session:
            [text] = session.scalars(select(OutboxMessage.text).where(
                OutboxMessage.kind == "handoff")).all()
        assert text == f"💬 Balasan petugas:\n{answer}"
        page.evaluate("window.__noReload = 'yes'")
        with sessions.begin() as session:
            session.execute(update(OutboxItem).values(state="sent",
                                                      sent_at=datetime.now(UTC)))
        page.wait_for_selector("#percakapan li[data-sender=operator] [data-delivery=terkirim]")

        # the user answers (the chat side stores it): it appears without a reload
        with sessions.begin() as session:
            session.add(HandoffMessage(ticket_id=tid, sender="user", kind="text",
                                       text="Terima kasih, saya tunggu.",
                                       created_at=datetime.now(UTC)))
            session.get(HandoffTicket, tid).last_user_at = datetime.now(UTC)
        page.wait_for_selector("#percakapan >> text=Terima kasih, saya tunggu.")
        assert page.evaluate("window.__noReload") == "yes"
        page.screenshot(path=str(screenshots / "inbox-ticket.png"), full_page=True)

        # phones
        page.set_viewport_size({"width": 390, "height": 844})
        page.reload()
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(screenshots / "inbox-ticket-phone.png"), full_page=True)
        page.goto(f"{url}/inbox")
        assert page.evaluate("document.documentElement.scrollWidth") <= 390
        page.screenshot(path=str(screenshots / "inbox-phone.png"), full_page=True)
        page.set_viewport_size({"width": 1366, "height": 768})

        # close with an outcome: the user is told, polling stops
        page.goto(f"{url}/inbox/{tid}")
        page.select_option("#hasil", "selesai")
        page.once("dialog", lambda dialog: dialog.accept())
        page.click("#tutup")
        page.wait_for_selector(".flash-ok")
        assert "Selesai" in page.inner_text("#status-tiket")
        assert page.locator("#percakapan[hx-trigger]").count() == 0
        with sessions() as session:
            closed = session.get(HandoffTicket, tid)
            assert (closed.status, closed.outcome, closed.closed_by) == (
                "closed", "selesai", "operator:supervisor1")
            notices = session.scalars(select(OutboxMessage.text).where(
                OutboxMessage.kind == "handoff").order_by(OutboxMessage.id)).all()
            assert notices[-1].startswith("Percakapan dengan petugas sudah selesai")
            audit = session.execute(select(AuditLog.actor, AuditLog.action, AuditLog.outcome)
                                    .where(AuditLog.action.like("handoff_%"))
                                    .order_by(AuditLog.id)).all()
        steps = [(a, o) for actor, a, o in audit if actor == "operator:supervisor1"
                 and a != "handoff_view"]
        assert steps == [("handoff_take", "ok"), ("handoff_reply", "ok"),
                         ("handoff_close", "ok")]
        assert ("operator:verif-bogor", "handoff_take", "taken") in audit
    finally:
        context.close()
