"""Replies are part of the turn: queued in the outbox in the turn's transaction, sent at
once by the fast path, retried like any outbox row, and sharing one send budget in which
replies come first."""

from __future__ import annotations

import time
from datetime import timedelta

import pytest
from sqlalchemy import select

from actions.types import Turn
from bot.telegram import build_application
from db.engine import make_sessionmaker
from db.models import (
    Conversation,
    InboxUpdate,
    OutboxItem,
    OutboxMessage,
    OutboxPacer,
    User,
    utcnow,
)
from db.outbox import enqueue
from outbox import store
from tests.chat_helpers import TODAY, Clock, load_registry, make_bot, make_nlu
from tests.telegram_harness import BotRunner, Chat

BUDI = "3201051203900001"


def test_replies_are_queued_with_the_state_change(sqlite_engine, texts):
    load_registry(sqlite_engine)
    bot = make_bot(sqlite_engine, make_nlu(), texts, Clock(TODAY))
    bot.outbox_channels = frozenset({"telegram"})
    replies = bot.handle(Turn("telegram", "61", text="/daftar", update_id=5))
    with make_sessionmaker(sqlite_engine)() as session:
        rows = session.execute(select(OutboxMessage.kind, OutboxMessage.text,
                                      OutboxMessage.markup, OutboxItem.priority)
                               .join(OutboxItem, OutboxItem.message_id == OutboxMessage.id)
                               .order_by(OutboxItem.id)).all()
        state = session.scalars(select(Conversation.state)).one()
    assert [r.text for r in rows] == [r.text for r in replies]
    assert {r.kind for r in rows} == {"reply"} and {r.priority for r in rows} == {0}
    assert rows[-1].markup["buttons"][0][1] == "/form:yes"  # the consent buttons
    assert state["form"]["step"] == "consent"


def test_a_failed_turn_queues_only_the_apology(sqlite_engine, texts, monkeypatch):
    bot = make_bot(sqlite_engine, make_nlu(), texts, Clock(TODAY))
    bot.outbox_channels = frozenset({"telegram"})
    monkeypatch.setattr(bot.dialogue, "respond", lambda *a, **k: 1 / 0)
    bot.handle(Turn("telegram", "62", text="/menu", update_id=6))
    with make_sessionmaker(sqlite_engine)() as session:
        queued = session.scalars(select(OutboxMessage.text)).all()
        assert queued == [texts("internal_error")]
        assert session.get(InboxUpdate, 6).processed_at is not None


def test_the_contact_keyboard_is_hidden_by_the_next_plain_reply(sqlite_engine, texts):
    from actions.types import Contact

    load_registry(sqlite_engine)
    bot = make_bot(sqlite_engine, make_nlu(), texts, Clock(TODAY))
    user = "63"
    for step in ("/daftar", "ya", BUDI, "budi santoso", "ya"):
        replies = bot.handle(Turn("telegram", user, text=step))
    assert replies[-1].ask_contact
    replies = bot.handle(Turn("telegram", user, contact=Contact("+6281234567890", user)))
    assert replies[0].remove_keyboard or any(r.remove_keyboard for r in replies)


@pytest.fixture
def runner(fake, sqlite_engine, texts):
    load_registry(sqlite_engine)
    assistant = make_bot(sqlite_engine, make_nlu(), texts, Clock(TODAY))
    app = build_application(fake.token, assistant, fake.base_url)
    bot = BotRunner(app).start()
    yield bot
    bot.stop()


def test_a_reply_that_meets_502s_is_retried_and_arrives_once(fake, runner, sqlite_engine,
                                                             texts):
    fake.inject("502", method="sendMessage", chat_id=2101, count=2)
    chat = Chat(fake, 2101, timeout=30)
    chat.command("daftar").expect("Setuju")
    sent = [c for c in fake.calls_to("sendMessage") if c["chat_id"] == 2101]
    assert len(sent) == 3  # two 502s, then delivered
    assert sum("setuju" in t.lower() for t in fake.texts(2101)) == 1
    # The answer to the next message is not stored in a later field: the state had moved
    # on with the reply queued, so nothing needed retyping.
    chat.press(texts("consent_yes")).expect("16 angka")

    def states():
        with make_sessionmaker(sqlite_engine)() as session:
            return {i.state for i in session.scalars(select(OutboxItem))}

    assert fake.wait_for(lambda: states() == {"sent"}, 5), states()  # outcomes recorded


def test_replies_of_one_turn_arrive_in_order(fake, runner, texts):
    chat = Chat(fake, 2102)
    chat.send("syarat ikut apa saja?")  # a side answer and the menu: several replies
    chat.expect(texts("faq/requirements").strip()[:30])
    chat.command("daftar").expect("Setuju").press(texts("consent_yes")).expect("16 angka")
    chat.send(BUDI).expect("nama lengkap")
    ids = [m.message_id for m in fake.messages(2102)]
    assert ids == sorted(ids)


# ---------------------------------------------------------------------- the budget
def _users(session, n: int) -> list[int]:
    users = [User(channel="telegram", external_id=str(5000 + i)) for i in range(n)]
    session.add_all(users)
    session.flush()
    return [u.id for u in users]


def test_claims_take_replies_first_then_notices_then_broadcasts(sqlite_engine):
    sessions = make_sessionmaker(sqlite_engine)
    with sessions.begin() as session:
        a, b, c = _users(session, 3)
        enqueue(session, "broadcast", "Pengumuman", [a, b, c], "test")
        enqueue(session, "reminder", "Besok ada pendampingan", [b], "test")
        enqueue(session, "reply", "Jawaban", [c], "test")
        now = utcnow() + timedelta(seconds=10)
        ids = store.claim(session, "w1", 3, now, timedelta(seconds=1))
        kinds = session.execute(select(OutboxMessage.kind, OutboxItem.user_id)
                                .join(OutboxItem, OutboxItem.message_id == OutboxMessage.id)
                                .where(OutboxItem.id.in_(ids))).all()
    # one per recipient: c's reply, b's reminder, a's broadcast, in that order
    assert sorted(kinds, key=lambda k: ["reply", "reminder", "broadcast"].index(k[0])) == [
        ("reply", c), ("reminder", b), ("broadcast", a)]


def test_bulk_waits_while_replies_use_the_budget(sqlite_engine):
    sessions = make_sessionmaker(sqlite_engine)
    now = time.time()
    with sessions.begin() as session:
        session.add(OutboxPacer(name=store.PACER, next_at=0.0))
    with sessions.begin() as session:
        for _ in range(30):  # a burst of replies: a second of slots at 30/s
            assert store.reserve_slots(session, 1, 1 / 30, now) is not None
        # bulk may not queue behind them: refused until the pacer is close to now again
        assert store.reserve_slots(session, 7, 1 / 30, now, max_ahead=0.25) is None
        later = store.reserve_slots(session, 7, 1 / 30, now + 0.8, max_ahead=0.25)
        assert later is not None and later >= now + 1.0 - 1e-6
        # replies still reserve at once (after what is reserved), never refused
        assert store.reserve_slots(session, 1, 1 / 30, now) is not None


def test_a_reply_is_not_held_back_by_the_per_chat_gap_but_bulk_is(sqlite_engine):
    sessions = make_sessionmaker(sqlite_engine)
    with sessions.begin() as session:
        (user,) = _users(session, 1)
        first = enqueue(session, "reply", "Satu", [user], "test")
        enqueue(session, "reply", "Dua", [user], "test")
        enqueue(session, "broadcast", "Pengumuman", [user], "test")
        now = utcnow() + timedelta(seconds=10)
        item = store.claim(session, "w1", 5, now, timedelta(seconds=1))
        assert len(item) == 1
        row = session.get(OutboxItem, item[0])
        assert row.message_id == first.id
        row.state, row.attempted_at = "sent", now
        session.flush()
        nxt = store.claim(session, "w1", 5, now, timedelta(seconds=1))
        assert [session.get(OutboxItem, i).priority for i in nxt] == [0]  # "Dua" at once
        session.get(OutboxItem, nxt[0]).state = "sent"
        session.flush()
        assert store.claim(session, "w1", 5, now, timedelta(seconds=1)) == []  # bulk waits
        assert store.claim(session, "w1", 5, now + timedelta(seconds=1),
                           timedelta(seconds=1))


def test_a_turn_that_fails_sends_the_apology_and_is_not_replayed(fake, runner, sqlite_engine,
                                                                 texts, monkeypatch):
    assistant = runner.app.bot_data["assistant"]

    def broken(*args, **kwargs):
        raise RuntimeError("a bug in a handler")

    monkeypatch.setattr(assistant.dialogue, "respond", broken)
    Chat(fake, 2103).send("halo").expect(texts("internal_error").strip()[:30])
    with make_sessionmaker(sqlite_engine)() as session:
        pending = session.scalars(select(InboxUpdate).where(
            InboxUpdate.processed_at.is_(None))).all()
    assert pending == []  # a replay would only fail again


def test_delivered_replies_are_deleted_after_a_day(sqlite_engine):
    sessions = make_sessionmaker(sqlite_engine)
    with sessions.begin() as session:
        (user,) = _users(session, 1)
        old = enqueue(session, "reply", "Ringkasan: Budi, 0812...", [user], "test")
        waiting = enqueue(session, "reply", "Belum terkirim", [user], "test")
        notice = enqueue(session, "status", "Status berubah", [user], "test")
        for message in (old, waiting, notice):
            message.created_at = utcnow() - timedelta(days=2)
        session.execute(OutboxItem.__table__.update()
                        .where(OutboxItem.message_id.in_([old.id, notice.id]))
                        .values(state="sent"))
    with sessions.begin() as session:
        assert store.purge_replies(session, utcnow() - timedelta(days=1)) == 1
        left = session.scalars(select(OutboxMessage.text).order_by(OutboxMessage.id)).all()
    assert left == ["Belum terkirim", "Status berubah"]  # pending and non-reply rows stay
