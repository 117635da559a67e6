"""/broadcasts in the console: roles, CSRF, the audience counts with skip reasons (the same
resolution as `prokus broadcast send --to`), escaped preview, confirmation bound to the
previewed text, the outbox rows (kind broadcast, priority 2), the audit row, and the
progress partial with its final report."""

from __future__ import annotations

import re

from sqlalchemy import select

from db.engine import make_sessionmaker
from db.models import OutboxItem, OutboxMessage, User
from tests.web.test_mentors import assign, mentor, registration

_DIGEST = re.compile(r'name="digest" value="([0-9a-f]+)"')
_TARGET = re.compile(r'name="target" value="([^"]+)"')


def compose(console, **fields: str):
    data = {"audience": "registrants", "status": "diterima", "text": "Halo peserta"}
    data.update(fields)
    return console.post("/broadcasts/preview", data, page="/broadcasts")


def confirm_from(console, preview_html: str, text: str, **extra: str):
    data = {"target": _TARGET.search(preview_html).group(1),
            "digest": _DIGEST.search(preview_html).group(1), "text": text, **extra}
    return console.post("/broadcasts", data, page="/broadcasts")


def audience(engine):
    """Accepted registrations: two reachable, one blocked the bot, one on another channel,
    one without a chat account; one submitted (another status)."""
    registration(engine, 1, telegram_id="700001", kpm_region="3201052001")
    registration(engine, 2, telegram_id="700002", kpm_region="3201052001")
    registration(engine, 3, telegram_id="700003", active=False)
    registration(engine, 4, telegram_id="c-1", channel="console")
    registration(engine, 5, telegram_id=None)
    registration(engine, 6, status="diajukan", telegram_id="700006", kpm_region="3201052001")


def outbox(engine):
    with make_sessionmaker(engine)() as session:
        return session.execute(select(OutboxMessage.id, OutboxMessage.text,
                                      OutboxMessage.created_by, OutboxItem.priority,
                                      User.external_id)
                               .join(OutboxItem, OutboxItem.message_id == OutboxMessage.id)
                               .join(User, User.id == OutboxItem.user_id)
                               .where(OutboxMessage.kind == "broadcast")
                               .order_by(OutboxItem.id)).all()


def test_a_verifier_gets_403(console):
    console.signed_in("vera", "verifier")
    assert console.client.get("/broadcasts").status_code == 403
    token = console.csrf("/")
    assert console.client.post("/broadcasts/preview", data={
        "csrf_token": token, "audience": "registrants", "status": "diterima",
        "text": "x"}).status_code == 403
    assert console.client.post("/broadcasts", data={"csrf_token": token}).status_code == 403
    assert console.client.get("/broadcasts/1").status_code == 403


def test_post_without_csrf_is_refused(console, sqlite_engine):
    audience(sqlite_engine)
    console.signed_in("koor", "coordinator")
    response = console.client.post("/broadcasts", data={
        "target": "registrants:diterima", "text": "Halo", "digest": "0" * 64})
    assert response.status_code == 403
    assert outbox(sqlite_engine) == []


def test_empty_database(console):
    console.signed_in("koor", "coordinator")
    page = console.client.get("/broadcasts")
    assert page.status_code == 200 and "Belum ada siaran" in page.text
    preview = compose(console)
    assert preview.status_code == 200 and 'id="nobody"' in preview.text
    assert 'id="confirm-form"' not in preview.text
    assert console.client.get("/broadcasts/1").status_code == 404
    assert console.client.get("/broadcasts/xyz/progress").status_code == 404


def test_audience_counts_and_skip_reasons(console, sqlite_engine):
    audience(sqlite_engine)
    console.signed_in("koor", "coordinator")
    page = compose(console).text
    assert 'id="count-reachable">2<' in page and 'id="count-skipped">3<' in page
    assert "1 memblokir bot atau tidak aktif lagi" in page
    assert "1 tidak memakai Telegram" in page
    assert "1 pendaftaran tanpa akun chat" in page
    assert "Pendaftar berstatus Diterima" in page
    # by region (the KPM registry's region, as the CLI): active registrations only
    page = compose(console, audience="region", region="32.01").text
    assert 'id="count-reachable">3<' in page and "wilayah 32.01" in page
    # a mentor's mentees
    andi = mentor(sqlite_engine, "900100", "Andi Pendamping", "3201")
    assign(sqlite_engine, andi, "PRK-2026-000001")
    assign(sqlite_engine, andi, "PRK-2026-000003")
    page = compose(console, audience="mentees", mentor_id=str(andi)).text
    assert 'id="count-reachable">1<' in page and "Peserta dampingan Andi Pendamping" in page
    assert "1 memblokir bot" in page


def test_bad_input_is_refused_with_a_clear_message(console, sqlite_engine):
    audience(sqlite_engine)
    console.signed_in("koor", "coordinator")
    empty = compose(console, text="   \n  ")
    assert empty.status_code == 400 and "pesan kosong tidak bisa dikirim" in empty.text
    long = compose(console, text="x" * 4097)
    assert long.status_code == 400 and "maksimal 4.096 karakter" in long.text
    assert compose(console, text="x" * 4096).status_code == 200
    region = compose(console, audience="region", region="00")
    assert region.status_code == 400 and "Kode wilayah tidak dikenal" in region.text
    nobody = compose(console, audience="mentees", mentor_id="99")
    assert nobody.status_code == 400 and "Pendamping itu tidak ditemukan" in nobody.text
    odd = compose(console, audience="semua")
    assert odd.status_code == 400 and "Pilih penerima" in odd.text
    assert outbox(sqlite_engine) == []


def test_preview_escapes_html_confirm_queues_audits_and_progress(console, sqlite_engine):
    audience(sqlite_engine)
    console.signed_in("koor", "coordinator")
    text = "<script>alert(1)</script> Rapat <b>Sabtu</b>\r\njam 9 & bawa KTP"
    page = compose(console, text=text).text
    assert "<script>alert(1)</script>" not in page and "<b>Sabtu</b>" not in page
    assert "&lt;script&gt;alert(1)&lt;/script&gt; Rapat &lt;b&gt;Sabtu&lt;/b&gt;" in page
    assert "&amp; bawa KTP" in page

    # a changed text after the preview is refused (the digest binds the previewed text)
    changed = confirm_from(console, page, "Teks lain")
    assert changed.status_code == 400 and "berubah setelah pratinjau" in changed.text
    assert outbox(sqlite_engine) == []

    done = confirm_from(console, page, text.replace("\r\n", "\n"))
    assert done.status_code == 303
    location = done.headers["location"]
    message_id = int(location.rsplit("/", 1)[1])
    rows = outbox(sqlite_engine)
    assert sorted(r.external_id for r in rows) == ["700001", "700002"]
    assert {r.priority for r in rows} == {2} and {r.created_by for r in rows} == {
        "operator:koor"}
    assert rows[0].text == "<script>alert(1)</script> Rapat <b>Sabtu</b>\njam 9 & bawa KTP"
    (row,) = console.audit("broadcast_queued")
    assert row.actor == "operator:koor" and row.subject == f"message:{message_id}"
    assert row.detail["to"] == "registrants:diterima" and row.detail["recipients"] == 2
    assert row.detail["skipped"] == 2 and row.detail["without_chat"] == 1
    assert row.detail["via"] == "web"

    # a second press of the confirm button does not send it twice
    again = confirm_from(console, page, text)
    assert again.status_code == 303 and again.headers["location"] == location
    assert len(outbox(sqlite_engine)) == 2 and len(console.audit("broadcast_queued")) == 1

    progress = console.client.get(location)
    assert progress.status_code == 200
    assert "&lt;script&gt;" in progress.text and "<script>alert" not in progress.text
    assert f'hx-get="/broadcasts/{message_id}/progress"' in progress.text
    assert 'hx-trigger="every 2s"' in progress.text
    partial = console.client.get(f"{location}/progress", headers={"HX-Request": "true"}).text
    assert 'id="count-queued">2<' in partial and 'id="count-sent">0<' in partial
    assert "<html" not in partial and 'data-finished="no"' in partial
    listing = console.client.get("/broadcasts").text
    assert f"#{message_id}</strong> Pendaftar berstatus Diterima" in listing


def test_final_report_with_reasons_stops_polling(console, sqlite_engine):
    audience(sqlite_engine)
    console.signed_in("sup", "supervisor")
    page = compose(console, text="Info").text
    location = confirm_from(console, page, "Info").headers["location"]
    with make_sessionmaker(sqlite_engine).begin() as session:
        items = session.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()
        items[0].state = "sent"
        items[1].state, items[1].error = "blocked", "blocked the bot"
    partial = console.client.get(f"{location}/progress").text
    assert 'data-finished="yes"' in partial and "hx-trigger" not in partial
    assert 'id="count-sent">1<' in partial and 'id="count-failed">1<' in partial
    assert 'id="count-queued">0<' in partial and 'id="count-uncertain">0<' in partial
    assert "Laporan akhir" in partial and "Memblokir bot atau akun tidak aktif" in partial
    assert "Terkirim 1 dari 2 penerima" in partial
    listing = console.client.get("/broadcasts").text
    assert "1/2 terkirim" in listing and "selesai" in listing


def test_the_cli_uses_the_same_audience(db_url, engine):
    """`prokus broadcast send` counts as the console does (db.broadcasts)."""
    from click.testing import CliRunner

    from bot.cli import main

    audience(engine)
    result = CliRunner().invoke(main, ["broadcast", "send", "--to", "registrants:diterima",
                                       "--text", "Halo", "--yes", "--no-wait"],
                                env={"DATABASE_URL": db_url, "PROKUS_OPERATOR": "dinsos"})
    assert result.exit_code == 0, result.output
    assert "2 recipient(s) (2 skipped: 1 blocked the bot or inactive, 1 not on Telegram)" \
        in result.output
    assert "1 registration(s) without a chat account" in result.output
    empty = CliRunner().invoke(main, ["broadcast", "send", "--to", "registrants:diterima",
                                      "--text", "   ", "--yes"], env={"DATABASE_URL": db_url})
    assert empty.exit_code != 0 and "1-4096 characters" in empty.output
