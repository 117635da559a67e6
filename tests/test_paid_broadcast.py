"""Paid broadcasts (issue 18): allow_paid_broadcast only when asked, faster than the free
limit, one message per chat per second still, adaptive back-off on 429 storms, and the
CLI's preview with the Stars estimate and an explicit confirmation."""

from __future__ import annotations

import asyncio
import time
from collections import Counter
from datetime import UTC, datetime

import pytest
from sqlalchemy import select

from bot.telegram_sender import TelegramSender
from db import broadcasts
from db.engine import make_sessionmaker
from db.models import OutboxMessage
from db.outbox import enqueue
from outbox import store
from outbox.worker import Worker, WorkerConfig
from tests.test_mentoring import bot, clock, prokus, team  # noqa: F401, F811  (fixtures)
from tests.test_outbox import make_users, states

FIRST_CHAT = 7_500_000


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


def run_worker(sessions, fake, rate=20.0, timeout=60, **config) -> Worker:
    async def main():
        sender = TelegramSender(fake.token, fake.base_url)
        worker = Worker(sessions, sender, WorkerConfig(rate=rate, poll_seconds=0.05,
                                                       **config))
        try:
            await asyncio.wait_for(worker.run(asyncio.Event(), until_idle=True), timeout)
        finally:
            await sender.close()
        return worker

    return asyncio.run(main())


def users_with_chats(sessions, fake, count: int, start: int = FIRST_CHAT) -> list[int]:
    users = make_users(sessions, count, start)
    fake.add_chats(range(start, start + count))
    return users


def test_the_paid_flag_is_sent_only_for_a_paid_broadcast(sessions, fake):
    users = users_with_chats(sessions, fake, 6)
    with sessions.begin() as session:
        enqueue(session, "broadcast", "Gratis", users[:3], "test")
        enqueue(session, "broadcast", "Berbayar", users[3:], "test", paid=True,
                paid_rate=200)
        enqueue(session, "status", "Status pendaftaran", users[:1], "test")
    run_worker(sessions, fake)
    calls = fake.calls_to("sendMessage")
    assert Counter(c["text"] for c in calls) == Counter(
        {"Gratis": 3, "Berbayar": 3, "Status pendaftaran": 1})
    for call in calls:
        if call["text"] == "Berbayar":
            assert call["allow_paid_broadcast"] is True
        else:
            assert "allow_paid_broadcast" not in call
    assert states(sessions) == Counter({"sent": 7})


def test_a_paid_broadcast_goes_faster_than_the_free_limit_one_per_chat_per_second(
        sessions, fake):
    users = users_with_chats(sessions, fake, 120)
    with sessions.begin() as session:
        enqueue(session, "broadcast", "Cepat", users, "test", paid=True, paid_rate=300)
        enqueue(session, "broadcast", "Kedua", users[:2], "test", paid=True, paid_rate=300)
    worker = run_worker(sessions, fake, rate=20.0)
    first = sorted(t for _, text, t in fake.deliveries() if text == "Cepat")
    assert len(first) == 120 and worker.sent == 122
    # 120 at 300/s take about 0.4 s; at the free limit (20/s here) they would take 6 s
    assert first[-1] - first[0] < 2.0
    for chat in (FIRST_CHAT, FIRST_CHAT + 1):  # the second message waits a second
        times = sorted(t for c, _, t in fake.deliveries() if c == chat)
        assert len(times) == 2 and times[1] - times[0] >= 0.95


def test_a_429_storm_slows_the_whole_paid_broadcast_then_it_climbs_back(sessions, fake):
    users = users_with_chats(sessions, fake, 200)
    with sessions.begin() as session:
        message = enqueue(session, "broadcast", "Badai", users, "test", paid=True,
                          paid_rate=300).id
    fake.inject("429", method="sendMessage", retry_after=1, count=8)
    started = time.time()
    worker = run_worker(sessions, fake, rate=20.0)
    deliveries = sorted(t for _, text, t in fake.deliveries() if text == "Badai")
    assert Counter(c for c, _, _ in fake.deliveries()) == Counter(
        {FIRST_CHAT + i: 1 for i in range(200)}), "everyone once, the refused ones later"
    assert states(sessions) == Counter({"sent": 200})
    assert time.time() - started >= 1.0, "retry_after was honoured"
    # one cut per pause: the 429s of sends already under way do not cut again (a 429
    # still coming after the pause does: the storm goes on)
    assert 1 <= worker.throttles < 8
    with sessions() as session:
        scale, scaled_at = store.pacer_scale(session)
        achieved = store.achieved(session, message)
    assert scale <= 0.5 + 1e-9  # cut at least once (and climbing between two cuts)
    # after the last pause it restarts at that share of 300/s and climbs by 30/s a second
    first_second = [t for t in deliveries if scaled_at <= t < scaled_at + 1.0]
    assert 0 < len(first_second) <= (scale + 0.1) * 300 * 1.05 + 3
    assert achieved.rate is not None and achieved.rate < 300


def test_throttle_cuts_once_per_storm_and_the_rate_climbs_back(sessions):
    with sessions.begin() as session:
        store.register_worker(session, "w", datetime.now(UTC))
    now = 1_000_000.0
    with sessions.begin() as session:
        assert store.throttle(session, now + 2, now) == (0.5, now + 2)
        # a 429 for a message sent before the pause was known: no second cut
        assert store.throttle(session, now + 2.5, now + 0.1) == (0.5, now + 2)
    assert store.current_scale(0.5, now + 2, now + 1) == 0.5
    assert store.current_scale(0.5, now + 2, now + 4) == pytest.approx(0.7)
    assert store.current_scale(0.5, now + 2, now + 60) == 1.0
    with sessions.begin() as session:  # a later storm cuts from where it climbed to
        scale, _ = store.throttle(session, now + 5, now + 4)
        assert scale == pytest.approx(0.35)
        for step in range(10):
            scale, _ = store.throttle(session, now + 100 * step + 101, now + 100 * step + 100)
        assert scale >= store.MIN_SCALE


def test_the_paid_estimate_formula():
    estimate = broadcasts.PaidEstimate(1_000_000, 1000)
    # 0.1 Star x messages above the free 30/s = 0.1 x N x (1 - 30/1000)
    assert estimate.paid_messages == 970_000 and estimate.stars == 97_000
    assert estimate.stars_max == 100_000
    assert estimate.seconds == 1000 and estimate.free_seconds == pytest.approx(33_333.3, 0.1)
    assert broadcasts.duration_text(estimate.free_seconds) == "9 h 15 min"
    with pytest.raises(broadcasts.BroadcastError):
        broadcasts.check_paid_rate(30)
    with pytest.raises(broadcasts.BroadcastError):
        broadcasts.check_paid_rate(1001)


def test_the_cli_previews_the_cost_and_asks_before_a_paid_broadcast(team, prokus,  # noqa: F811
                                                                    engine):
    sessions = make_sessionmaker(engine)
    refused = prokus("broadcast", "send", "--to", "registrants:diterima", "--text", "Cepat",
                     "--paid", "--rate", "500", input="n\n", ok=False).output
    assert "PAID broadcast (allow_paid_broadcast) at up to 500 messages/s" in refused
    assert "Estimated cost: 0.2 Telegram Stars = 0.1 x messages above the free limit" \
        in refused
    assert "Send as a PAID broadcast (about 0.2 Stars)?" in refused and "Aborted" in refused
    with sessions() as session:
        assert session.scalars(select(OutboxMessage).where(
            OutboxMessage.kind == "broadcast")).all() == []
    free = prokus("broadcast", "send", "--to", "registrants:diterima", "--text", "Biasa",
                  "--yes", "--no-wait").output
    assert "Mode: free, at most 30 messages/s" in free
    paid = prokus("broadcast", "send", "--to", "registrants:diterima", "--text", "Cepat",
                  "--paid", "--rate", "500", "--no-wait", input="y\n")
    assert "queued for 2 recipient(s)" in paid.output
    with sessions() as session:
        modes = session.execute(select(OutboxMessage.text, OutboxMessage.paid,
                                       OutboxMessage.paid_rate)
                                .where(OutboxMessage.kind == "broadcast")
                                .order_by(OutboxMessage.id)).all()
    assert [tuple(m) for m in modes] == [("Biasa", False, None), ("Cepat", True, 500.0)]
    rate_alone = prokus("broadcast", "send", "--to", "registrants:diterima", "--text", "x",
                        "--rate", "500", "--yes", ok=False).output
    assert "--rate is for paid broadcasts" in rate_alone
    too_fast = prokus("broadcast", "send", "--to", "registrants:diterima", "--text", "x",
                      "--paid", "--rate", "5000", "--yes", ok=False).output
    assert "5000" in too_fast and "30<x<=1000" in too_fast.replace(" ", "")
