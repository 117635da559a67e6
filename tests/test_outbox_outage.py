"""A broadcast survives a real PostgreSQL outage: a private cluster (never the shared
server) is stopped mid-broadcast and started again, five times with the cut at different
points. The first outage lasts 20 s (longer than a worker's heartbeat timeout), the other
four 3 s to keep the suite fast; PROKUS_OUTAGE_SECONDS="20,20,20,20,20" runs them all long.
The worker's longest backoff is cut from 5 s to 1 s so it notices the server sooner.

From what the fake Bot API received: everyone got the message exactly once, the run
--until-idle ended by itself and the mentor got the delivery report."""

from __future__ import annotations

import asyncio
import os
from collections import Counter
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from bot.outbox_runner import run_worker
from bot.settings import Settings
from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from db.models import OutboxItem, OutboxMessage, User
from db.outbox import enqueue
from tests.pg_cluster import PgCluster, private_cluster

pytestmark = pytest.mark.postgres

RECIPIENTS = 60
OUTAGES = tuple(float(s) for s in os.environ.get(
    "PROKUS_OUTAGE_SECONDS", "20,3,3,3,3").split(","))


@pytest.fixture(scope="module")
def private_pg() -> Iterator[PgCluster]:
    """A throw-away PostgreSQL cluster this module may stop and start."""
    yield from private_cluster()


def new_database(cluster: PgCluster, name: str) -> str:
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(cluster.url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    return url


def prepare(url: str, first_chat: int) -> tuple[int, int]:
    """RECIPIENTS users and a mentor; a broadcast to the users with a report to the
    mentor. Returns (message id, mentor chat)."""
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine).begin() as session:
            users = [User(channel="telegram", external_id=str(first_chat + i))
                     for i in range(RECIPIENTS + 1)]
            session.add_all(users)
            session.flush()
            *recipients, mentor = users
            message = enqueue(session, "broadcast", "Rapat kelompok hari Sabtu",
                              [u.id for u in recipients], "test", report_to=mentor.id)
            return message.id, int(mentor.external_id)
    finally:
        engine.dispose()


async def broadcast_through_outage(cluster: PgCluster, settings: Settings, fake,
                                   chats: range, cut: int, outage: float) -> int:
    """Start the worker, stop PostgreSQL after `cut` deliveries to `chats`, start it
    again `outage` seconds later; the worker must then finish on its own."""
    stop = asyncio.Event()
    worker = asyncio.create_task(run_worker(settings, stop, until_idle=True))

    def delivered() -> int:
        return sum(1 for chat, _, _ in fake.deliveries() if chat in chats)

    while delivered() < cut:
        assert not worker.done(), "the worker ended before the outage"
        await asyncio.sleep(0.01)
    await asyncio.to_thread(cluster.stop)
    await asyncio.sleep(outage)
    assert not worker.done(), "the worker ended during the outage"
    await asyncio.to_thread(cluster.start)
    try:
        return await asyncio.wait_for(worker, 90)
    finally:
        stop.set()


def test_a_broadcast_survives_postgresql_stopped_and_started(private_pg, fake, monkeypatch):
    import bot.outbox_runner as runner

    real_config = runner.worker_config

    def quicker(settings, texts=None):
        config = real_config(settings, texts)
        config.max_backoff_seconds = 1.0
        return config

    monkeypatch.setattr(runner, "worker_config", quicker)
    outcomes = []
    for run, outage in enumerate(OUTAGES):
        first_chat = 5_000_000 + run * 1000
        chats = range(first_chat, first_chat + RECIPIENTS)
        url = new_database(private_pg, f"outage_{run}")
        message, mentor_chat = prepare(url, first_chat)
        fake.add_chats([*chats, mentor_chat])
        settings = Settings(database_url=url, telegram_bot_token=fake.token,
                            telegram_api_url=fake.base_url, outbox_rate=30.0)
        cut = 8 + run * 10  # a different point of the broadcast each run
        asyncio.run(broadcast_through_outage(private_pg, settings, fake, chats, cut, outage))

        calls = Counter(int(c["chat_id"]) for c in fake.calls_to("sendMessage")
                        if int(c["chat_id"]) in chats)
        engine = make_engine(url)
        with make_sessionmaker(engine)() as session:
            states = Counter(session.scalars(select(OutboxItem.state).where(
                OutboxItem.message_id == message)).all())
            reported = session.get(OutboxMessage, message).reported_at
        engine.dispose()
        report = [t for c, t, _ in fake.deliveries() if c == mentor_chat]
        outcomes.append((outage, cut, dict(states), len(report)))
        assert calls == Counter({chat: 1 for chat in chats}), f"run {run}: {outcomes}"
        assert states == Counter({"sent": RECIPIENTS}), f"run {run}: {outcomes}"
        assert reported is not None and len(report) == 1, f"run {run}: {outcomes}"
        assert "terkirim 60" in report[0]
