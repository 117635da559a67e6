"""The outbox worker against the fake Bot API: once per recipient, limits, errors, crashes."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from bot.telegram_sender import TelegramSender
from db.engine import make_sessionmaker
from db.models import OutboxItem, OutboxWorker, User
from db.outbox import enqueue
from outbox import store
from outbox.worker import Worker, WorkerConfig

FIRST_CHAT = 7_000_000


def make_users(sessions, count: int, start: int = FIRST_CHAT) -> list[int]:
    with sessions.begin() as session:
        users = [User(channel="telegram", external_id=str(start + i)) for i in range(count)]
        session.add_all(users)
        session.flush()
        return [u.id for u in users]


def queue(sessions, user_ids, text="Halo peserta Prokus", **kw) -> int:
    with sessions.begin() as session:
        return enqueue(session, "broadcast", text, user_ids, created_by="test", **kw).id


def run_worker(sessions, fake, rate=200.0, worker_id=None, timeout=60, **config):
    async def main():
        sender = TelegramSender(fake.token, fake.base_url)
        worker = Worker(sessions, sender, WorkerConfig(rate=rate, poll_seconds=0.05, **config),
                        worker_id=worker_id)
        try:
            await asyncio.wait_for(worker.run(asyncio.Event(), until_idle=True), timeout)
        finally:
            await sender.close()
        return worker

    return asyncio.run(main())


def states(sessions) -> Counter:
    with sessions() as session:
        return Counter(session.scalars(select(OutboxItem.state)).all())


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


def test_every_recipient_gets_the_message_once(sessions, fake):
    users = make_users(sessions, 60)
    fake.add_chats(range(FIRST_CHAT, FIRST_CHAT + 60))
    message = queue(sessions, users)
    run_worker(sessions, fake)
    received = Counter(chat for chat, _, _ in fake.deliveries())
    assert received == Counter({FIRST_CHAT + i: 1 for i in range(60)})
    assert states(sessions) == Counter({"sent": 60})
    with sessions() as session:
        assert store.progress(session, message).states == {"sent": 60}


def test_global_rate_limit_holds(sessions, fake):
    users = make_users(sessions, 40)
    fake.add_chats(range(FIRST_CHAT, FIRST_CHAT + 40))
    queue(sessions, users)
    run_worker(sessions, fake, rate=20.0)
    times = [t for _, _, t in fake.deliveries()]
    assert len(times) == 40
    # 40 messages at 20/s: the first and the last are at least 39 intervals apart
    assert times[-1] - times[0] >= 39 / 20 - 0.05
    for i in range(len(times) - 20):  # never more than 20 in any one-second window (+1 edge)
        assert times[i + 20] - times[i] >= 1.0 - 0.06


def test_one_message_per_chat_per_second(sessions, fake):
    [user] = make_users(sessions, 1)
    fake.add_chats([FIRST_CHAT])
    for n in range(3):
        queue(sessions, [user], text=f"pesan {n}")
    run_worker(sessions, fake, rate=100.0)
    deliveries = fake.deliveries()
    assert [t for _, t, _ in deliveries] == ["pesan 0", "pesan 1", "pesan 2"]
    gaps = [b[2] - a[2] for a, b in zip(deliveries, deliveries[1:], strict=False)]
    assert min(gaps) >= 0.95


def test_429_is_honoured_and_nothing_is_sent_twice(sessions, fake):
    users = make_users(sessions, 10)
    fake.add_chats(range(FIRST_CHAT, FIRST_CHAT + 10))
    fake.inject("429", method="sendMessage", retry_after=1, count=1)
    queue(sessions, users)
    started = time.time()
    run_worker(sessions, fake)
    assert time.time() - started >= 1.0
    assert Counter(c for c, _, _ in fake.deliveries()) == Counter(
        {FIRST_CHAT + i: 1 for i in range(10)})
    assert states(sessions) == Counter({"sent": 10})


def test_blocked_users_are_marked_inactive_and_not_retried(sessions, fake):
    users = make_users(sessions, 5)
    fake.add_chats(range(FIRST_CHAT, FIRST_CHAT + 5))
    fake.block(FIRST_CHAT + 1)
    message = queue(sessions, users)
    run_worker(sessions, fake)
    assert states(sessions) == Counter({"sent": 4, "blocked": 1})
    with sessions() as session:
        blocked = session.scalars(select(User).where(User.id == users[1])).one()
        assert not blocked.is_active
        item = session.scalars(select(OutboxItem).where(OutboxItem.user_id == users[1])).one()
        assert item.attempts == 1
        assert store.progress(session, message).states == {"sent": 4, "blocked": 1}
    assert len([c for c in fake.calls_to("sendMessage") if c["chat_id"] in
                (FIRST_CHAT + 1, str(FIRST_CHAT + 1))]) == 1


def test_server_errors_are_retried_with_backoff_then_sent(sessions, fake):
    [user] = make_users(sessions, 1)
    fake.add_chats([FIRST_CHAT])
    fake.inject("500", method="sendMessage", count=2)
    queue(sessions, [user])
    run_worker(sessions, fake)
    assert states(sessions) == Counter({"sent": 1})
    assert len(fake.deliveries()) == 1


def test_persistent_errors_end_as_failed_with_the_reason(sessions, fake):
    [user] = make_users(sessions, 1)
    fake.add_chats([FIRST_CHAT])
    fake.inject("500", method="sendMessage", count=None)
    queue(sessions, [user])
    run_worker(sessions, fake, max_attempts=2)
    with sessions() as session:
        item = session.scalars(select(OutboxItem)).one()
    assert item.state == "failed" and "500" in item.error and item.attempts == 2


def test_unknown_chat_is_failed_not_retried(sessions, fake):
    [user] = make_users(sessions, 1)  # the fake never saw this chat
    queue(sessions, [user])
    run_worker(sessions, fake)
    with sessions() as session:
        item = session.scalars(select(OutboxItem)).one()
    assert item.state == "failed" and "chat not found" in item.error and item.attempts == 1


def test_expired_reminders_are_never_sent(sessions, fake):
    users = make_users(sessions, 2)
    fake.add_chats([FIRST_CHAT, FIRST_CHAT + 1])
    past = datetime.now(UTC) - timedelta(minutes=1)
    with sessions.begin() as session:
        message = enqueue(session, "reminder", "Besok ada pendampingan", users, "test")
        session.flush()
        session.execute(store.update(OutboxItem).where(OutboxItem.message_id == message.id)
                        .values(expires_at=past))
    run_worker(sessions, fake)
    assert fake.deliveries() == []
    assert states(sessions) == Counter({"expired": 2})


def test_rows_of_a_dead_worker_are_recovered_never_resent(sessions, fake):
    users = make_users(sessions, 3)
    fake.add_chats(range(FIRST_CHAT, FIRST_CHAT + 3))
    queue(sessions, users)
    long_ago = datetime.now(UTC) - timedelta(minutes=5)
    with sessions.begin() as session:
        session.add(OutboxWorker(id="dead", started_at=long_ago, beat_at=long_ago))
        items = session.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()
        items[0].state, items[0].claimed_by = "claimed", "dead"   # never attempted
        items[1].state, items[1].claimed_by = "sending", "dead"   # caught mid-send
    run_worker(sessions, fake)
    assert sorted(c for c, _, _ in fake.deliveries()) == [FIRST_CHAT, FIRST_CHAT + 2]
    assert states(sessions) == Counter({"sent": 2, "uncertain": 1})
    with sessions() as session:
        assert session.scalars(select(OutboxWorker)).all() == []


def test_console_users_rows_are_left_to_the_console(sessions, fake):
    """A Telegram worker claims only Telegram users' rows (issue 18: it used to mark
    console users' rows failed); the console shows them at the user's next turn, and
    --until-idle does not wait for them."""
    with sessions.begin() as session:
        user = User(channel="console", external_id="1")
        session.add(user)
        session.flush()
        uid = user.id
    [telegram] = make_users(sessions, 1)
    fake.add_chats([FIRST_CHAT])
    queue(sessions, [uid, telegram])
    run_worker(sessions, fake, timeout=20)
    with sessions() as session:
        items = {i.user_id: i for i in session.scalars(select(OutboxItem))}
    assert (items[uid].state, items[uid].error, items[uid].attempts) == ("pending", None, 0)
    assert items[telegram].state == "sent"


def test_sigkill_mid_broadcast_then_restart_sends_everyone_once(db_url, engine, fake):
    """A real `prokus worker` process is killed with SIGKILL halfway through; a new one
    finishes. From what the fake server received: nobody twice, nobody silently skipped;
    only rows caught mid-send are uncertain."""
    import os
    import signal
    import subprocess
    import sys
    from pathlib import Path

    sessions = make_sessionmaker(engine)
    total = 240
    users = make_users(sessions, total)
    fake.add_chats(range(FIRST_CHAT, FIRST_CHAT + total))
    message = queue(sessions, users, text="Pengumuman penting")
    env = dict(os.environ, DATABASE_URL=db_url, TELEGRAM_BOT_TOKEN=fake.token,
               TELEGRAM_API_URL=fake.base_url, OUTBOX_RATE="120", LOG_LEVEL="WARNING")
    prokus = str(Path(sys.executable).with_name("prokus"))

    def start():
        return subprocess.Popen([prokus, "worker", "--until-idle"], env=env,
                                stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)

    first = start()
    assert fake.wait_for(lambda: len(fake.deliveries()) >= total // 2, 60)
    first.send_signal(signal.SIGKILL)
    first.wait(10)
    with sessions() as session:
        in_flight = session.scalar(select(store.func.count()).select_from(OutboxItem).where(
            OutboxItem.state == "sending"))
    second = start()
    _, stderr = second.communicate(timeout=120)
    assert second.returncode == 0, stderr
    counts = Counter(chat for chat, _, _ in fake.deliveries())
    with sessions() as session:
        final = store.progress(session, message)
        uncertain = {int(u.external_id) for u in session.scalars(
            select(User).join(OutboxItem, OutboxItem.user_id == User.id).where(
                OutboxItem.state == "uncertain"))}
    assert max(counts.values()) == 1, "nobody got it twice"
    assert set(range(FIRST_CHAT, FIRST_CHAT + total)) - set(counts) <= uncertain, \
        "everyone not reached is reported as uncertain"
    assert len(uncertain) <= in_flight
    assert final.finished and final.states.get("sent", 0) + len(uncertain) == total


def test_transient_database_errors_are_retried(sessions):
    from sqlalchemy.exc import OperationalError

    worker = Worker(sessions, sender=None)  # type: ignore[arg-type]
    calls = []

    def flaky(session, value):
        calls.append(value)
        if len(calls) < 3:
            raise OperationalError("UPDATE outbox", {}, Exception("database is locked"))
        return value * 2

    assert asyncio.run(worker.db(flaky, 21)) == 42 and len(calls) == 3

    def always_down(session):
        raise OperationalError("SELECT 1", {}, Exception("server closed the connection"))

    with pytest.raises(OperationalError):  # after its tries, the error is raised
        asyncio.run(worker.db(always_down, tries=2))
