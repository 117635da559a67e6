"""The reply fast path (store.begin_reply, Worker.deliver) on both back-ends: a user's
replies go out in order, each claimed, paced and recorded `sending` in one transaction when
the pacer is free; a later slot leaves the row only claimed (nothing uncertain if we crash
while waiting); a lost answer gives the user's rows back."""

from __future__ import annotations

import asyncio
import logging
import time
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select, update

from db.engine import make_sessionmaker
from db.models import OutboxItem, OutboxPacer, User
from db.outbox import enqueue
from outbox import store
from outbox.worker import SENT, Outcome, Worker, WorkerConfig

NOW = datetime.now(UTC)
PER_CHAT = timedelta(seconds=1)
INTERVAL = 0.01
CHAT = "7100001"


@pytest.fixture
def sessions(engine):
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        store.register_worker(session, "w1", NOW)
    return sessions


def replies(sessions, *texts: str, external_id: str = CHAT) -> list[int]:
    """The user's replies, one message each, in order (as a turn writes them)."""
    with sessions.begin() as session:
        user = session.scalar(select(User).where(User.external_id == external_id))
        if user is None:
            user = User(channel="telegram", external_id=external_id)
            session.add(user)
            session.flush()
        ids = []
        for text in texts:
            message = enqueue(session, "reply", text, [user.id], "test",
                              due_at=NOW - timedelta(seconds=1))
            session.flush()
            ids.append(session.scalar(select(OutboxItem.id).where(
                OutboxItem.message_id == message.id)))
        return ids


def begin(sessions, start_by: float, worker: str = "w1") -> store.ReplyStart | None:
    with sessions.begin() as session:
        return store.begin_reply(session, "telegram", CHAT, worker, NOW, INTERVAL,
                                 time.time(), start_by, PER_CHAT)


def row(sessions, item_id: int) -> OutboxItem:
    with sessions() as session:
        return session.get(OutboxItem, item_id)


def test_begin_reply_claims_paces_and_starts_the_users_replies_in_order(sessions):
    first, second = replies(sessions, "Halo, ada yang bisa dibantu?", "Ketik /daftar")
    begun = begin(sessions, start_by=time.time() + 1)
    assert begun is not None and begun.item_id == first
    assert begun.attempt is not None and begun.attempt.text == "Halo, ada yang bisa dibantu?"
    assert begun.attempt.chat_id == CHAT and not begun.done
    assert (row(sessions, first).state, row(sessions, first).attempts) == (store.SENDING, 1)
    assert begun.slot <= time.time() + 1
    # The second waits while the first is in flight (one message at a time per chat).
    assert begin(sessions, start_by=time.time() + 1) is None
    with sessions.begin() as session:
        store.finish_send(session, first, "w1", store.SENT, NOW)
    nxt = begin(sessions, start_by=time.time() + 1)
    assert nxt.item_id == second and nxt.attempt.text == "Ketik /daftar"
    assert nxt.slot >= begun.slot + INTERVAL * 0.99  # the shared pacer moved on


def test_a_busy_pacer_leaves_the_reply_claimed_not_sending(sessions):
    (item_id,) = replies(sessions, "Pendaftaran Prokus gratis")
    with sessions.begin() as session:  # another sender holds the next 5 s of slots
        session.execute(update(OutboxPacer).values(next_at=time.time() + 5))
    begun = begin(sessions, start_by=time.time() + 0.02)
    assert begun.item_id == item_id and begun.attempt is None and not begun.done
    assert begun.slot >= time.time() + 4
    item = row(sessions, item_id)
    # A crash while waiting for that slot leaves nothing uncertain: recovery requeues it.
    assert (item.state, item.attempts, item.claimed_by) == (store.CLAIMED, 0, "w1")


def test_an_expired_reply_is_done_without_a_slot(sessions):
    (item_id,) = replies(sessions, "Sesi dimulai 5 menit lagi")
    with sessions.begin() as session:
        session.execute(update(OutboxItem).where(OutboxItem.id == item_id)
                        .values(expires_at=NOW - timedelta(minutes=1)))
    begun = begin(sessions, start_by=time.time() + 1)
    assert begun.done and begun.attempt is None
    assert row(sessions, item_id).state == store.EXPIRED


def test_a_lost_answer_gives_back_only_what_that_call_claimed(sessions):
    first, second = replies(sessions, "Satu", "Dua")
    begin(sessions, start_by=time.time() + 1)  # committed, but say its answer was lost
    with sessions.begin() as session:
        store.give_back_replies(session, "telegram", CHAT, "w1", NOW)
    item = row(sessions, first)
    assert (item.state, item.attempts, item.claimed_by) == (store.PENDING, 0, None)
    # A row an earlier call claimed (it may have been sent) is left alone.
    begin(sessions, start_by=time.time() + 1)
    with sessions.begin() as session:
        store.give_back_replies(session, "telegram", CHAT, "w1",
                                NOW + timedelta(milliseconds=5))
    assert row(sessions, first).state == store.SENDING
    assert row(sessions, second).state == store.PENDING


class Recorder:
    def __init__(self) -> None:
        self.sent: list[tuple[str, str]] = []

    async def send(self, chat_id, text, markup=None, paid=False) -> Outcome:
        self.sent.append((chat_id, text))
        return Outcome(SENT)


def test_deliver_sends_a_users_replies_in_order_through_the_fast_path(sessions, caplog):
    ids = replies(sessions, "Satu", "Dua", "Tiga")
    replies(sessions, "Punya orang lain", external_id="7100002")
    sender = Recorder()
    worker = Worker(sessions, sender, WorkerConfig(rate=100), worker_id="w1",
                    claiming=False)

    async def go() -> int:
        worker.registered.set()
        return await worker.deliver("telegram", CHAT)

    with caplog.at_level(logging.WARNING, logger="outbox.worker"):
        assert asyncio.run(go()) == 3
    assert sender.sent == [(CHAT, "Satu"), (CHAT, "Dua"), (CHAT, "Tiga")]
    assert [row(sessions, i).state for i in ids] == [store.SENT] * 3
    assert not worker.holding
    assert not [r for r in caplog.records if r.name == "outbox.worker"], \
        "the fast path ran without errors (a failing fast path only shows in the log)"


def test_deliver_stops_after_the_turns_rows_even_behind_an_older_reply(sessions):
    """An older reply still due (its fast path failed) goes first, in order; the turn's
    own rows are all sent all the same, and nothing later is looked for."""
    older, = replies(sessions, "Balasan lama")
    mine = replies(sessions, "Satu", "Dua")
    later, = replies(sessions, "Nanti")  # (say: queued by a later turn meanwhile)
    sender = Recorder()
    worker = Worker(sessions, sender, WorkerConfig(rate=100), worker_id="w1",
                    claiming=False)

    async def go() -> int:
        worker.registered.set()
        return await worker.deliver("telegram", CHAT, rows=mine)

    assert asyncio.run(go()) == 3
    assert [text for _, text in sender.sent] == ["Balasan lama", "Satu", "Dua"]
    assert row(sessions, later).state == store.PENDING
    assert row(sessions, older).state == store.SENT


def test_a_fast_path_cancelled_during_begin_reply_gives_the_row_back(sessions, monkeypatch):
    """Shutdown cancels deliver() while begin_reply's transaction is still running in its
    thread. That transaction commits the claim all the same; nothing was sent, so the row
    goes back to pending for the workers (not left claimed until a reconcile)."""
    item_id, = replies(sessions, "Satu")
    real_begin = store.begin_reply

    def slow_begin(*args, **kw):
        time.sleep(0.3)
        return real_begin(*args, **kw)

    monkeypatch.setattr(store, "begin_reply", slow_begin)
    sender = Recorder()
    worker = Worker(sessions, sender, WorkerConfig(rate=100), worker_id="w1",
                    claiming=False)

    async def go() -> None:
        worker.registered.set()
        task = asyncio.create_task(worker.deliver("telegram", CHAT))
        await asyncio.sleep(0.1)  # begin_reply is under way in its thread
        task.cancel()
        with pytest.raises(asyncio.CancelledError):
            await task

    asyncio.run(go())
    assert sender.sent == []
    item = row(sessions, item_id)
    assert (item.state, item.claimed_by) == (store.PENDING, None)
