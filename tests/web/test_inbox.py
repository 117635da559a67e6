"""/inbox over HTTP: the list with its filters and the verifier's region, a ticket's page
(escaped, masked, registration summary, friendly 404), the polled conversation partial,
take / reply / close with their audit rows, refusals, the menu entry and the dashboard's
handoff figures."""

from __future__ import annotations

from datetime import timedelta

import pytest
from sqlalchemy import select

from db.engine import make_sessionmaker
from db.models import HandoffMessage, HandoffTicket, OutboxItem, OutboxMessage
from tests.test_handoff_inbox import NOW, add_registration, make_ticket
from tests.web.conftest import csrf_in


def seed(console, **kwargs) -> int:
    with make_sessionmaker(console.engine).begin() as session:
        return make_ticket(session, **kwargs).id


def ticket(console, tid: int) -> HandoffTicket:
    with make_sessionmaker(console.engine)() as session:
        found = session.get(HandoffTicket, tid)
        session.expunge(found)
        return found


def post(console, path: str, data: dict[str, str] | None = None):
    return console.post(path, data or {}, page="/inbox")


def test_the_menu_has_the_inbox_for_every_role(console):
    for role in ("verifier", "coordinator", "supervisor"):
        console.signed_in(f"op-{role}", role, region="32.01" if role == "verifier" else None)
        page = console.client.get("/")
        assert 'href="/inbox"' in page.text and "Kotak masuk" in page.text
        assert console.client.get("/inbox").status_code == 200
        console.client.cookies.clear()


def test_the_list_oldest_first_with_waiting_time_and_filters(console):
    old = seed(console, age=timedelta(hours=3), user_texts=("Tanggal lahir saya salah",))
    new = seed(console, age=timedelta(minutes=12), region="3374020001")
    mine = seed(console, status="assigned", assigned_to="sup", age=timedelta(hours=1))
    seed(console, status="closed")
    console.signed_in("sup")
    page = console.client.get("/inbox")
    assert page.status_code == 200
    text = page.text
    assert text.index(f'data-ticket="{old}"') < text.index(f'data-ticket="{mine}"') \
        < text.index(f'data-ticket="{new}"')
    assert "3 jam" in text and "12 mnt" in text and "Tanggal lahir saya salah" in text
    assert 'hx-trigger="every 10s"' in text
    assert f'data-ticket="{mine}"' in console.client.get("/inbox?lihat=saya").text
    assert f'data-ticket="{old}"' not in console.client.get("/inbox?lihat=saya").text
    unassigned = console.client.get("/inbox?lihat=belum").text
    assert f'data-ticket="{mine}"' not in unassigned and f'data-ticket="{new}"' in unassigned
    regional = console.client.get("/inbox?wilayah=33.74").text
    assert f'data-ticket="{new}"' in regional and f'data-ticket="{old}"' not in regional
    assert "Kode wilayah berupa angka" in console.client.get("/inbox?wilayah=abc").text
    partial = console.client.get("/inbox", headers={"HX-Request": "true",
                                                    "HX-Target": "daftar-tiket"})
    assert partial.text.lstrip().startswith('<section class="card" id="daftar-tiket"')


def test_a_verifier_sees_only_their_region(console):
    here = seed(console, region="3201050001")
    there = seed(console, region="3374020001")
    console.signed_in("verif", "verifier", region="32.01")
    page = console.client.get("/inbox").text
    assert f'data-ticket="{here}"' in page and f'data-ticket="{there}"' not in page
    assert console.client.get(f"/inbox/{there}").status_code == 404
    assert console.client.get(f"/inbox/{there}/pesan").status_code == 404
    response = post(console, f"/inbox/{there}/ambil")
    assert response.status_code == 404
    assert ticket(console, there).status == "waiting"


def test_the_ticket_page_escapes_and_masks_and_shows_the_registration(console):
    with make_sessionmaker(console.engine).begin() as session:
        t = make_ticket(session, user_texts=("<img src=x onerror=alert(1)> NIK 3201********0001",))
        add_registration(session, t.user_id)
        session.add(HandoffMessage(ticket_id=t.id, sender="system", author="asisten",
                                   text="Jawaban bot sebelumnya", created_at=NOW))
        tid = t.id
    console.signed_in("sup")
    page = console.client.get(f"/inbox/{tid}")
    assert page.status_code == 200
    assert "&lt;img src=x onerror=alert(1)&gt;" in page.text and "<img src=x" not in page.text
    assert "PRK-2026-000777" in page.text and "3201********0001" in page.text
    assert "3201051203900001" not in page.text and "+62812*****890" in page.text
    assert f'hx-get="/inbox/{tid}/pesan"' in page.text and 'id="ambil"' in page.text
    assert 'id="kirim-balasan"' not in page.text  # reply only after taking
    assert "<strong>Asisten</strong>" in page.text and "sebelum tiket" in page.text
    [viewed] = console.audit("handoff_view")
    assert (viewed.actor, viewed.subject) == ("operator:sup", f"handoff:{tid}")


def test_unknown_tickets_get_the_friendly_404(console):
    console.signed_in("sup")
    for path in ("/inbox/999999", "/inbox/abc", "/inbox/999999/pesan"):
        response = console.client.get(path)
        assert response.status_code == 404 and "Halaman tidak ditemukan" in response.text
    confirming = seed(console, status="confirming")
    assert console.client.get(f"/inbox/{confirming}").status_code == 404


def test_take_reply_close_each_audited(console, clock):
    tid = seed(console)
    console.signed_in("sup")
    response = post(console, f"/inbox/{tid}/ambil")
    assert response.status_code == 303 and response.headers["location"] == f"/inbox/{tid}"
    assert ticket(console, tid).assigned_to == "sup"
    page = console.client.get(f"/inbox/{tid}")
    assert "Tiket sekarang Anda tangani" in page.text and 'id="kirim-balasan"' in page.text
    assert 'maxlength="4000"' in page.text

    response = post(console, f"/inbox/{tid}/balas", {"balasan": "Baik, <b>kami</b> cek."})
    assert response.status_code == 303
    partial = console.client.get(f"/inbox/{tid}/pesan")
    assert "Baik, &lt;b&gt;kami&lt;/b&gt; cek." in partial.text
    assert 'data-delivery="menunggu"' in partial.text and "Menunggu dikirim" in partial.text
    with make_sessionmaker(console.engine)() as session:
        [(text, priority)] = session.execute(
            select(OutboxMessage.text, OutboxItem.priority)
            .join(OutboxItem, OutboxItem.message_id == OutboxMessage.id)).all()
    assert text == "💬 Balasan petugas:\nBaik, <b>kami</b> cek." and priority == 0
    assert ticket(console, tid).first_response_at is not None

    too_long = post(console, f"/inbox/{tid}/balas", {"balasan": "a" * 4001})
    assert too_long.status_code == 303
    assert "paling banyak 4.000 karakter" in console.client.get(f"/inbox/{tid}").text

    assert post(console, f"/inbox/{tid}/tutup", {"hasil": "asal"}).status_code == 303
    assert "Pilih hasil percakapan" in console.client.get(f"/inbox/{tid}").text
    assert ticket(console, tid).status == "assigned"
    post(console, f"/inbox/{tid}/tutup", {"hasil": "selesai"})
    closed = ticket(console, tid)
    assert (closed.status, closed.outcome) == ("closed", "selesai")
    page = console.client.get(f"/inbox/{tid}")
    assert "Tiket sudah ditutup" in page.text and 'hx-trigger="every' not in page.text

    rows = [(r.action, r.outcome, r.actor, r.subject) for r in console.audit(
        "handoff_take", "handoff_reply", "handoff_close")]
    subject = f"handoff:{tid}"
    assert rows == [("handoff_take", "ok", "operator:sup", subject),
                    ("handoff_reply", "ok", "operator:sup", subject),
                    ("handoff_reply", "too_long", "operator:sup", subject),
                    ("handoff_close", "bad_outcome", "operator:sup", subject),
                    ("handoff_close", "ok", "operator:sup", subject)]
    reply_row = console.audit("handoff_reply")[0]
    assert reply_row.detail["chars"] == len("Baik, <b>kami</b> cek.")
    assert "kami" not in str(reply_row.detail)  # the text itself is not in the audit log


def test_a_second_operator_cannot_take_or_answer_a_taken_ticket(console):
    tid = seed(console, status="assigned", assigned_to="ani")
    console.signed_in("budi", "coordinator")
    page = console.client.get(f"/inbox/{tid}").text
    assert "ditangani <strong>ani</strong>" in page and 'id="ambil"' not in page
    assert 'id="tutup"' not in page   # a coordinator may not close another's ticket
    post(console, f"/inbox/{tid}/ambil")
    assert "sudah diambil ani" in console.client.get(f"/inbox/{tid}").text
    post(console, f"/inbox/{tid}/balas", {"balasan": "halo"})
    post(console, f"/inbox/{tid}/tutup", {"hasil": "selesai"})
    assert ticket(console, tid).status == "assigned"
    assert [r.outcome for r in console.audit("handoff_take", "handoff_reply",
                                             "handoff_close")] == ["taken", "taken", "taken"]


def test_steps_need_the_csrf_token(console):
    tid = seed(console)
    console.signed_in("sup")
    assert console.client.post(f"/inbox/{tid}/ambil").status_code == 403
    token = csrf_in(console.client.get("/inbox").text)
    assert console.client.post(f"/inbox/{tid}/ambil",
                               headers={"X-CSRF-Token": token}).status_code == 303
    assert ticket(console, tid).assigned_to == "sup"


@pytest.mark.parametrize("role", ["supervisor", "verifier"])
def test_the_dashboard_shows_handoff_figures(console, role):
    with make_sessionmaker(console.engine).begin() as session:
        done = make_ticket(session, status="closed", age=timedelta(hours=2))
        done.first_response_at = done.created_at + timedelta(minutes=12)
        done.outcome, done.closed_at = "dirujuk", NOW - timedelta(minutes=5)
        make_ticket(session)
    console.signed_in("opr", role, region="32.01" if role == "verifier" else None)
    page = console.client.get("/").text
    assert 'id="angka-bicara-petugas"' in page and 'href="/inbox"' in page
    assert 'id="tiket-menunggu">1<' in page and 'id="median-balasan">12 mnt<' in page
    assert "Dirujuk: <strong>1</strong>" in page
    assert ('id="tinjauan-nlu"' in page) is (role == "supervisor")
