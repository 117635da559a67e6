"""The operators' side of a handoff (db.handoff_inbox) on SQLite and PostgreSQL: the list,
a ticket's view, take (and two real concurrent transactions on PostgreSQL), reply through
the outbox (priority 0, plain text, split for Telegram), close with an outcome, and the
dashboard's handoff and review figures."""

from __future__ import annotations

import asyncio
import json
import threading
import time
from datetime import UTC, date, datetime, timedelta

import httpx
import pytest
from sqlalchemy import select

from bot.render import TEXT_LIMIT, utf16_len
from bot.telegram_sender import TelegramSender
from db import dashboard as dash
from db import handoff_inbox as inbox
from db.engine import make_sessionmaker
from db.models import (
    HandoffMessage,
    HandoffTicket,
    NluMiss,
    OutboxItem,
    OutboxMessage,
    Registration,
    User,
)
from db.outbox import enqueue

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)  # 10.00 WIB
_external = iter(range(5000, 10_000_000))


def make_ticket(session, *, region: str | None = "3201050001", status: str = "waiting",
                age: timedelta = timedelta(minutes=30), user_texts=("Halo, tolong dibantu",),
                assigned_to: str | None = None, topic: str | None = "human_handoff",
                user_id: int | None = None, at: datetime = NOW) -> HandoffTicket:
    """A ticket as the chat side writes it: a user, the ticket, the user's (masked)
    messages."""
    if user_id is None:
        user = User(channel="telegram", external_id=str(next(_external)), created_at=at,
                    last_seen_at=at)
        session.add(user)
        session.flush()
        user_id = user.id
    created = at - age
    ticket = HandoffTicket(user_id=user_id, status=status, kode_wilayah=region, topic=topic,
                           created_at=created, assigned_to=assigned_to,
                           assigned_at=created if assigned_to else None,
                           last_user_at=created if user_texts else None)
    session.add(ticket)
    session.flush()
    for i, text in enumerate(user_texts):
        session.add(HandoffMessage(ticket_id=ticket.id, sender="user", kind="text", text=text,
                                   created_at=created + timedelta(seconds=i)))
    session.flush()
    return ticket


def add_registration(session, user_id: int, number: str = "PRK-2026-000777",
                     nik: str = "3201051203900001") -> Registration:
    reg = Registration(number=number, user_id=user_id, nik=nik, nama="Budi Santoso",
                       tanggal_lahir=date(1990, 3, 12), no_hp="+6281234567890",
                       kabupaten="Bogor", kecamatan="Cibinong", desa="Pakansari",
                       bidang_usaha="kuliner", deskripsi_usaha="Jualan gorengan",
                       lama_usaha_bulan=24, status="diajukan", kode_wilayah=nik[:6],
                       created_at=NOW - timedelta(days=3), updated_at=NOW - timedelta(days=3))
    session.add(reg)
    session.flush()
    return reg


def outbox_rows(session, ticket: HandoffTicket):
    return session.execute(
        select(OutboxMessage.text, OutboxMessage.kind, OutboxMessage.reference,
               OutboxItem.priority, OutboxItem.state, OutboxItem.user_id, OutboxMessage.markup)
        .join(OutboxItem, OutboxItem.message_id == OutboxMessage.id)
        .where(OutboxItem.user_id == ticket.user_id).order_by(OutboxItem.id)).all()


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


# ---------------------------------------------------------------------- the list
def test_open_tickets_oldest_first_with_filters_and_the_region_scope(sessions):
    with sessions.begin() as s:
        old = make_ticket(s, age=timedelta(hours=5)).id
        mine = make_ticket(s, status="assigned", assigned_to="ani", region="3374020001",
                           age=timedelta(hours=2)).id
        new = make_ticket(s, age=timedelta(minutes=5), region=None).id
        make_ticket(s, status="confirming", age=timedelta(hours=9))
        closed = make_ticket(s, status="closed", age=timedelta(hours=8)).id
    with sessions() as s:
        page = inbox.list_tickets(s)
        assert [r.id for r in page.rows] == [old, mine, new] and page.total == 3
        assert page.rows[0].waiting_since == NOW - timedelta(hours=5)
        assert page.rows[0].preview == "Halo, tolong dibantu" and page.rows[0].messages == 1
        assert [r.id for r in inbox.list_tickets(s, mine="ani").rows] == [mine]
        assert [r.id for r in inbox.list_tickets(s, unassigned=True).rows] == [old, new]
        assert [r.id for r in inbox.list_tickets(s, region_prefix="3374").rows] == [mine]
        # a verifier of 32.01 sees only 32.01's tickets (never one without a region)
        assert [r.id for r in inbox.list_tickets(s, scope="3201").rows] == [old]
        assert [r.id for r in inbox.list_tickets(s, scope="3201",
                                                 region_prefix="3374").rows] == []
        everything = inbox.list_tickets(s, include_closed=True)
        assert [r.id for r in everything.rows] == [closed, old, mine, new]


def test_waiting_time_after_an_answer_and_a_new_user_message():
    row = inbox.TicketRow(1, "assigned", None, None, "ani", NOW - timedelta(hours=1),
                          NOW - timedelta(minutes=40), NOW - timedelta(minutes=30), None,
                          None, 3, None)
    assert row.waiting_since is None  # answered after the user's last message
    again = inbox.TicketRow(1, "assigned", None, None, "ani", NOW - timedelta(hours=1),
                            NOW - timedelta(minutes=10), NOW - timedelta(minutes=30), None,
                            None, 4, None)
    assert again.waiting_since == NOW - timedelta(minutes=10)
    assert inbox.waited(NOW - timedelta(minutes=75), NOW) == "1 jam 15 mnt"
    assert inbox.waited(NOW - timedelta(days=3, hours=2), NOW) == "3 hari 2 jam"
    assert inbox.waited(NOW - timedelta(seconds=20), NOW) == "< 1 mnt"


# ---------------------------------------------------------------------- take
def test_take_gives_the_ticket_to_one_operator(sessions):
    with sessions.begin() as s:
        tid = make_ticket(s).id
    with sessions.begin() as s:
        ticket = inbox.take(s, tid, "ani", NOW)
        assert (ticket.status, ticket.assigned_to, ticket.assigned_at) == ("assigned", "ani", NOW)
    with sessions.begin() as s:
        with pytest.raises(inbox.InboxError) as refused:
            inbox.take(s, tid, "budi", NOW)
        assert refused.value.code == "taken" and refused.value.holder == "ani"
        assert inbox.take(s, tid, "ani", NOW).assigned_to == "ani"  # again: no change
    with sessions() as s:
        notes = s.scalars(select(HandoffMessage.text).where(
            HandoffMessage.ticket_id == tid, HandoffMessage.sender == "system")).all()
        assert notes == ["Diambil oleh ani."]


def test_take_outside_the_region_or_a_closed_ticket_is_refused(sessions):
    with sessions.begin() as s:
        tid = make_ticket(s, region="3374020001").id
        closed = make_ticket(s, status="closed").id
        confirming = make_ticket(s, status="confirming").id
    with sessions.begin() as s:
        for ticket_id, scope, code in ((tid, "3201", "not_found"), (closed, None, "closed"),
                                       (confirming, None, "not_found"),
                                       (999_999, None, "not_found")):
            with pytest.raises(inbox.InboxError) as refused:
                inbox.take(s, ticket_id, "ani", NOW, scope=scope)
            assert refused.value.code == code
    with sessions() as s:
        assert s.get(HandoffTicket, tid).status == "waiting"


@pytest.mark.postgres
def test_two_concurrent_transactions_cannot_take_the_same_ticket(postgres_url, request):
    """Two real PostgreSQL transactions: the second UPDATE waits for the first one's row
    lock, then finds the ticket no longer waiting; exactly one operator has it."""
    from db.engine import make_engine
    from tests.conftest import _migrate_from_template

    _migrate_from_template(request, postgres_url)
    engine = make_engine(postgres_url)
    try:
        sessions = make_sessionmaker(engine)
        with sessions.begin() as s:
            tid = make_ticket(s).id
        first, second = sessions(), sessions()
        outcome: dict[str, object] = {}
        first.begin()
        inbox.take(first, tid, "ani", NOW)          # row locked, not committed

        def other() -> None:
            try:
                with second.begin():
                    inbox.take(second, tid, "budi", NOW)
                outcome["budi"] = "took it"
            except inbox.InboxError as exc:
                outcome["budi"] = (exc.code, exc.holder)

        thread = threading.Thread(target=other)
        thread.start()
        time.sleep(0.5)
        assert thread.is_alive(), "the second UPDATE should wait for the first transaction"
        first.commit()
        thread.join(10)
        assert outcome["budi"] == ("taken", "ani")
        first.close()
        second.close()
        with sessions() as s:
            ticket = s.get(HandoffTicket, tid)
            assert (ticket.status, ticket.assigned_to) == ("assigned", "ani")

        # and many operators at once: one winner
        with sessions.begin() as s:
            race = make_ticket(s).id
        barrier = threading.Barrier(8)
        winners: list[str] = []

        def racer(name: str) -> None:
            with sessions() as s, s.begin():
                barrier.wait()
                try:
                    inbox.take(s, race, name, NOW)
                    winners.append(name)
                except inbox.InboxError as exc:
                    assert exc.code == "taken"

        threads = [threading.Thread(target=racer, args=(f"op{i}",)) for i in range(8)]
        for t in threads:
            t.start()
        for t in threads:
            t.join(20)
        assert len(winners) == 1
        with sessions() as s:
            assert s.get(HandoffTicket, race).assigned_to == winners[0]
    finally:
        engine.dispose()


# ---------------------------------------------------------------------- reply
def test_only_the_holder_replies_through_the_outbox_as_plain_text(sessions):
    with sessions.begin() as s:
        ticket = make_ticket(s)
        tid = ticket.id
    with sessions.begin() as s:
        with pytest.raises(inbox.InboxError) as refused:
            inbox.reply(s, tid, "ani", "Halo", NOW)
        assert refused.value.code == "not_taken"
        inbox.take(s, tid, "ani", NOW)
    with sessions.begin() as s:
        with pytest.raises(inbox.InboxError) as refused:
            inbox.reply(s, tid, "budi", "Halo", NOW)
        assert (refused.value.code, refused.value.holder) == ("taken", "ani")
        with pytest.raises(inbox.InboxError) as refused:
            inbox.reply(s, tid, "ani", "   \n ", NOW)
        assert refused.value.code == "empty"
    html = "Silakan cek <b>di sini</b> & <a href='https://contoh.go.id'>tautan</a>"
    with sessions.begin() as s:
        stored = inbox.reply(s, tid, "ani", html, NOW + timedelta(minutes=3))
        assert (stored.sender, stored.author, stored.text) == ("operator", "ani", html)
        assert stored.outbox_message_id is not None
    with sessions.begin() as s:
        inbox.reply(s, tid, "ani", "Ada lagi?", NOW + timedelta(minutes=9))
    with sessions() as s:
        ticket = s.get(HandoffTicket, tid)
        rows = outbox_rows(s, ticket)
        assert [r.text for r in rows] == [f"💬 Balasan petugas:\n{html}",
                                          "💬 Balasan petugas:\nAda lagi?"]
        assert {(r.kind, r.priority, r.state, r.markup) for r in rows} == {
            ("handoff", 0, "pending", None)}
        assert ticket.first_response_at == NOW + timedelta(minutes=3)   # the first one only
        assert ticket.last_operator_at == NOW + timedelta(minutes=9)


def test_the_telegram_sender_sends_html_as_text_without_a_parse_mode():
    bodies: list[dict] = []

    def handler(request: httpx.Request) -> httpx.Response:
        bodies.append(json.loads(request.content))
        return httpx.Response(200, json={"ok": True, "result": {}})

    async def send() -> None:
        sender = TelegramSender("TOKEN")
        await sender.client.aclose()
        sender.client = httpx.AsyncClient(transport=httpx.MockTransport(handler))
        await sender.send("42", "💬 Balasan petugas:\n<b>tebal</b>")
        await sender.close()

    asyncio.run(send())
    assert bodies == [{"chat_id": 42, "text": "💬 Balasan petugas:\n<b>tebal</b>"}]


def test_a_4000_character_reply_is_split_for_telegram_and_sent_in_order(sessions):
    with sessions.begin() as s:
        tid = make_ticket(s, status="assigned", assigned_to="ani").id
    # emoji count twice in UTF-16: 4,000 characters are 6,000 units with the heading
    text = "\n".join(["Langkah " + "😀" * 40 + " selesai." for _ in range(80)])[:4000]
    assert len(text) == 4000 and utf16_len(text) > TEXT_LIMIT
    with sessions.begin() as s:
        stored = inbox.reply(s, tid, "ani", text, NOW)
        sid = stored.id
    with sessions() as s:
        ticket = s.get(HandoffTicket, tid)
        rows = outbox_rows(s, ticket)
        assert len(rows) >= 2
        assert all(utf16_len(r.text) <= TEXT_LIMIT for r in rows)
        assert {r.reference for r in rows} == {f"handoff-msg:{sid}"}
        assert {r.priority for r in rows} == {0}
        joined = "\n".join(r.text for r in rows)
        assert joined == f"💬 Balasan petugas:\n{text}"  # cut at line ends, nothing lost
        view = inbox.ticket_view(s, tid)
        assert [m.delivery for m in view.messages if m.sender == "operator"] == ["menunggu"]
    with sessions.begin() as s:
        with pytest.raises(inbox.InboxError) as refused:
            inbox.reply(s, tid, "ani", "x" * 4001, NOW)
        assert refused.value.code == "too_long"


# ---------------------------------------------------------------------- the ticket page
def test_the_view_has_messages_delivery_states_and_the_registration_summary(sessions):
    with sessions.begin() as s:
        ticket = make_ticket(s, status="assigned", assigned_to="ani",
                             user_texts=("NIK saya 3201********0001", "<script>x</script>"))
        add_registration(s, ticket.user_id)
        tid = ticket.id
        s.add(HandoffMessage(ticket_id=tid, sender="user", kind="photo", text="",
                             created_at=NOW))
    with sessions.begin() as s:
        inbox.reply(s, tid, "ani", "Baik, kami cek.", NOW)
    with sessions() as s:
        view = inbox.ticket_view(s, tid)
        assert [m.sender for m in view.messages] == ["user", "user", "user", "operator"]
        assert view.messages[2].kind == "photo"
        assert view.messages[-1].delivery == "menunggu"
        assert view.messages[-1].delivery_label == "Menunggu dikirim"
        reg = view.registration
        assert reg is not None and view.registrations == 1
        assert (reg.number, reg.nik_masked, reg.phone_masked) == (
            "PRK-2026-000777", "3201********0001", "+62812*****890")
    with sessions.begin() as s:
        s.execute(OutboxItem.__table__.update().values(state="sent"))
    with sessions() as s:
        assert inbox.ticket_view(s, tid).messages[-1].delivery == "terkirim"
    with sessions.begin() as s:  # a notice the chat side queued names its outbox message
        notice = enqueue(s, "handoff", "Maaf, belum ada jawaban.", [ticket.user_id],
                         created_by="system:handoff", reference=f"handoff:{tid}")
        s.add(HandoffMessage(ticket_id=tid, sender="system", kind="text", text=notice.text,
                             outbox_message_id=notice.id, created_at=NOW))
    with sessions() as s:
        last = inbox.ticket_view(s, tid).messages[-1]
        assert (last.sender, last.delivery) == ("system", "menunggu")
        with pytest.raises(inbox.InboxError):
            inbox.ticket_view(s, tid, scope="3374")
        other = make_ticket(s)
        assert inbox.ticket_view(s, other.id).registration is None


# ---------------------------------------------------------------------- close
def test_close_with_an_outcome_tells_the_user(sessions):
    with sessions.begin() as s:
        tid = make_ticket(s, status="assigned", assigned_to="ani").id
    with sessions.begin() as s:
        with pytest.raises(inbox.InboxError) as refused:
            inbox.close(s, tid, "ani", "bubar", NOW)
        assert refused.value.code == "bad_outcome"
        with pytest.raises(inbox.InboxError) as refused:
            inbox.close(s, tid, "budi", "selesai", NOW)
        assert refused.value.code == "taken"
    with sessions.begin() as s:
        ticket = inbox.close(s, tid, "ani", "selesai", NOW + timedelta(minutes=20))
        assert (ticket.status, ticket.outcome, ticket.closed_by) == (
            "closed", "selesai", "operator:ani")
    with sessions() as s:
        ticket = s.get(HandoffTicket, tid)
        [row] = outbox_rows(s, ticket)
        assert row.text.startswith("Percakapan dengan petugas sudah selesai")
        assert (row.kind, row.priority) == ("handoff", 0)
        view = inbox.ticket_view(s, tid)
        assert view.messages[-1].sender == "system" and view.messages[-1].delivery == "menunggu"
        assert "Ditutup oleh ani: Selesai" in view.messages[-2].text
    with sessions.begin() as s:
        for call in (lambda: inbox.reply(s, tid, "ani", "halo", NOW),
                     lambda: inbox.close(s, tid, "ani", "selesai", NOW)):
            with pytest.raises(inbox.InboxError) as refused:
                call()
            assert refused.value.code == "closed"


def test_a_waiting_ticket_may_be_closed_by_anyone_and_a_supervisor_closes_any(sessions):
    with sessions.begin() as s:
        spam = make_ticket(s).id
        held = make_ticket(s, status="assigned", assigned_to="ani").id
    with sessions.begin() as s:
        assert inbox.close(s, spam, "budi", "spam", NOW).assigned_to == "budi"
        assert inbox.close(s, held, "sri", "dirujuk", NOW, override=True).closed_by == \
            "operator:sri"


# ---------------------------------------------------------------------- dashboard
def test_dashboard_handoff_figures_and_review_share(sessions):
    today = dash.today_wib(NOW)
    with sessions.begin() as s:
        for minutes, outcome in ((10, "selesai"), (30, "selesai"), (60, "spam")):
            t = make_ticket(s, status="closed", age=timedelta(hours=3))
            t.first_response_at = t.created_at + timedelta(minutes=minutes)
            t.outcome, t.closed_at = outcome, NOW - timedelta(hours=1)
        make_ticket(s)
        make_ticket(s, status="assigned", assigned_to="ani", region="3374020001")
        s.add_all([NluMiss(text="apa", reason="fallback", status=status, created_at=NOW)
                   for status in ("new", "new", "labelled", "discarded")])
    with sessions() as s:
        fig = dash.handoff_figures(s, 30, today=today)
        assert (fig.waiting, fig.assigned, fig.open) == (1, 1, 2)
        assert fig.median_first_response == timedelta(minutes=30) and fig.answered == 3
        assert [(c.key, c.count) for c in fig.per_outcome] == [("selesai", 2), ("spam", 1)]
        scoped = dash.handoff_figures(s, 30, region_prefix="33.74", today=today)
        assert (scoped.open, scoped.per_outcome) == (1, [])
        review = dash.review_counts(s)
        assert (review.total, review.reviewed, review.share_reviewed) == (4, 2, 0.5)
        overview = dash.overview(s, 30, today=today)
        assert overview.handoff == fig and overview.nlu_review == review
        assert dash.overview(s, 30, today=today, region_prefix="32.01").nlu_review is None
    assert dash.median([timedelta(1), timedelta(3)]) == timedelta(2)
    assert dash.median([]) is None
