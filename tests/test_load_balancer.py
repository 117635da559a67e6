"""Webhook mode as deployed (issue 17, item 4): two `prokus serve --webhook` processes
behind HAProxy (deploy/haproxy.cfg), two real Rasa NLU servers, PostgreSQL, and the fake
Bot API delivering webhooks to HAProxy the way Telegram does (one chat's updates in order,
several chats at once, failed deliveries retried).

- an update delivered to both instances (and through the balancer) is answered once;
- one user's quick burst of 5 messages is answered in order, also with many users at once;
- killing one instance mid-load loses no update and duplicates no reply.

Needs PostgreSQL, HAProxy (Debian package `haproxy`; `.ci/run` installs it) and the NLU
venv; skipped without them unless PROKUS_REQUIRE_LB=1 (CI), which turns a skip into a
failure.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections import Counter
from pathlib import Path

import httpx
import psycopg
import pytest
from sqlalchemy import func, select

from bot.settings import Settings
from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from db.models import InboxUpdate, OutboxItem, User
from tests.conftest import PG_ADMIN_URL, _libpq
from tests.fakes.telegram_api import FakeTelegram
from tests.webhook_cluster import (
    SECRET_HEADER,
    WEBHOOK_PATH,
    Cluster,
    haproxy_binary,
    start_nlu_servers,
)

REQUIRED = os.environ.get("PROKUS_REQUIRE_LB") == "1"
pytestmark = [pytest.mark.postgres, pytest.mark.nlu]

# What a user writes and a piece of each message of the reply (commands, and text the NLU
# reads; /start answers with two messages).
SCRIPT = [
    ("halo kak", ["Ada yang bisa saya bantu seputar Prokus"]),
    ("/bantuan", ["Saya bisa menjelaskan Prokus"]),
    ("biayanya berapa?", ["tanpa biaya"]),
    ("/start", ["saya Asisten Prokus", "Data Anda hanya dipakai"]),
    ("makasih", ["Sama-sama"]),
]
PIECES = [piece for _, pieces in SCRIPT for piece in pieces]


def _missing(what: str) -> None:
    if REQUIRED:
        pytest.fail(f"{what} (PROKUS_REQUIRE_LB=1)")
    pytest.skip(what)


@pytest.fixture(scope="module")
def database():
    name = f"prokus_lb_{uuid.uuid4().hex[:8]}"
    admin = _libpq(PG_ADMIN_URL)
    try:
        with psycopg.connect(admin, autocommit=True, connect_timeout=3) as conn:
            conn.execute(f'CREATE DATABASE "{name}"')
    except psycopg.OperationalError as exc:
        _missing(f"PostgreSQL is not reachable: {exc}")
    url = PG_ADMIN_URL.rsplit("/", 1)[0] + f"/{name}"
    try:
        upgrade(url)
        yield url
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(scope="module")
def nlu_urls(tmp_path_factory):
    if not Settings().rasa_executable.exists():
        _missing("the NLU venv (.venv-nlu) is missing: make setup")
    # (PROKUS_TEST_NLU_MODEL: serve that model file instead of the current one, e.g. while
    # the NLU data is being edited and the current model would be retrained first)
    model = os.environ.get("PROKUS_TEST_NLU_MODEL")
    servers = start_nlu_servers(2, tmp_path_factory.mktemp("lb-nlu"),
                                Path(model) if model else None)
    yield [server.url for server in servers]
    for server in servers:
        server.stop()


@pytest.fixture(scope="module")
def telegram():
    fake = FakeTelegram().start()
    fake.webhook_retry_first = 0.2
    fake.webhook_retry_max = 2.0
    yield fake
    fake.stop()


@pytest.fixture(scope="module")
def cluster(database, nlu_urls, telegram, tmp_path_factory):
    if haproxy_binary() is None:
        _missing("HAProxy is not installed (apt-get install haproxy)")
    logs = tmp_path_factory.mktemp("lb-logs")
    with Cluster(database, nlu_urls, telegram, logs, size=2, worker=True,
                 env={"TELEGRAM_MAX_RATE": "1000", "PROKUS_INBOX_STALLED_SECONDS": "4",
                      "PROKUS_INBOX_SWEEP_SECONDS": "1",
                      # order and delivery are tested here, not latency: a test machine
                      # busy with other work must not turn a slow parse into the
                      # "gangguan" reply
                      "NLU_TIMEOUT": "30"}) as running:
        yield running


def _replies(fake: FakeTelegram, chat: int) -> list[str]:
    return [m.edits[0]["text"] if m.edits else m.text for m in fake.messages(chat)]


def _wait_replies(fake: FakeTelegram, chat: int, count: int, timeout: float = 60) -> list[str]:
    fake.wait_for(lambda: len(fake.messages(chat)) >= count, timeout=timeout)
    time.sleep(0.3)  # a duplicate would arrive right after
    return _replies(fake, chat)


def _matches(replies: list[str], pieces=PIECES) -> bool:
    return len(replies) == len(pieces) and all(
        piece.lower() in reply.lower() for reply, piece in zip(replies, pieces, strict=True))


def _replies_after(script_steps: int) -> int:
    """Messages the bot sends for the first `script_steps` messages of SCRIPT."""
    return sum(len(pieces) for _, pieces in SCRIPT[:script_steps])


def test_the_script_replies_are_told_apart():
    """Each expected piece belongs to one reply only, so order is checkable."""
    for i, piece in enumerate(PIECES):
        for j, other in enumerate(PIECES):
            if i != j:
                assert piece.lower() not in other.lower()


def test_an_update_delivered_to_both_instances_and_the_balancer_is_answered_once(cluster,
                                                                                 telegram):
    chat = 810_001
    update = telegram.push_text(chat, "halo kak", queue=False)
    headers = {SECRET_HEADER: cluster.secret}
    targets = [i.url for i in cluster.instances] + [cluster.lb_url, cluster.lb_url]
    statuses: list[int] = []
    barrier = threading.Barrier(len(targets))

    def post(base: str) -> None:
        barrier.wait()
        statuses.append(httpx.post(base + WEBHOOK_PATH, json=update, headers=headers,
                                   timeout=10).status_code)

    threads = [threading.Thread(target=post, args=(t,)) for t in targets]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert statuses == [200] * len(targets)
    replies = _wait_replies(telegram, chat, 1)
    time.sleep(1.0)
    replies = _replies(telegram, chat)
    assert len(replies) == 1, replies
    assert PIECES[0].lower() in replies[0].lower()


def test_a_burst_of_five_from_one_user_is_answered_in_order(cluster, telegram):
    chat = 820_001
    for text, _ in SCRIPT:
        if text.startswith("/"):
            telegram.push_command(chat, text)
        else:
            telegram.push_text(chat, text)
    replies = _wait_replies(telegram, chat, len(PIECES))
    assert _matches(replies), replies


def test_bursts_of_many_users_at_once_are_each_answered_in_order(cluster, telegram):
    chats = list(range(830_001, 830_031))
    for step in range(len(SCRIPT)):
        for chat in chats:
            text = SCRIPT[step][0]
            (telegram.push_command if text.startswith("/") else telegram.push_text)(chat, text)
    telegram.wait_for(lambda: all(len(telegram.messages(c)) >= len(PIECES) for c in chats),
                      timeout=120)
    time.sleep(0.5)
    wrong = {c: _replies(telegram, c) for c in chats if not _matches(_replies(telegram, c))}
    assert not wrong, {c: [r[:30] for r in replies] for c, replies in wrong.items()}
    stats = telegram.webhook_stats()
    assert stats["pending"] == 0


def _explain(url: str, fake: FakeTelegram, chats: list[int]) -> str:
    """What the outbox and the fake know about these chats (for a failure message)."""
    from db.models import OutboxMessage

    lines = []
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            for chat in chats:
                lines.append(f"chat {chat}: replies {[r[:20] for r in _replies(fake, chat)]}")
                rows = session.execute(
                    select(OutboxItem.id, OutboxItem.state, OutboxItem.claimed_by,
                           OutboxItem.attempts, OutboxMessage.reference, OutboxMessage.text)
                    .join(User, User.id == OutboxItem.user_id)
                    .join(OutboxMessage, OutboxMessage.id == OutboxItem.message_id)
                    .where(User.external_id == str(chat)).order_by(OutboxItem.id)).all()
                lines += [f"  row {r[0]} {r[1]} by {r[2]} attempts {r[3]} {r[4]} {r[5][:20]!r}"
                          for r in rows]
                sends = [params.get("text", "")[:15] for method, params, _ in fake.calls
                         if method == "sendMessage" and str(params.get("chat_id")) == str(chat)]
                lines.append(f"  sendMessage texts: {sends}")
    finally:
        engine.dispose()
    return "\n".join(lines)


def test_killing_an_instance_mid_load_loses_no_update(cluster, telegram, database):
    """40 users each hold a 5-message conversation (the next message as soon as the reply
    arrives); after 60 replies one instance is SIGKILLed. Deliveries that hit it fail and
    the fake Bot API sends them again (through HAProxy, to the survivor); updates it had
    stored but not processed are taken over by the survivor's sweep; replies it had queued
    but not sent go out through the survivor's outbox worker."""
    chats = list(range(840_001, 840_041))
    position = dict.fromkeys(chats, 0)
    replies_seen = dict.fromkeys(chats, 0)
    killed = False
    dead_pid = 0

    def send(chat: int) -> None:
        text = SCRIPT[position[chat]][0]
        (telegram.push_command if text.startswith("/") else telegram.push_text)(chat, text)
        position[chat] += 1

    for chat in chats:
        send(chat)
    deadline = time.monotonic() + 180
    while time.monotonic() < deadline:
        total = 0
        for chat in chats:
            count = len(telegram.messages(chat))
            total += count
            if count > replies_seen[chat]:
                replies_seen[chat] = count
                if position[chat] < len(SCRIPT) and count >= _replies_after(position[chat]):
                    send(chat)
        if not killed and total >= 60:
            dead_pid = cluster.instances[0].process.pid
            cluster.kill(0)
            killed = True
        if total >= len(chats) * len(PIECES):
            break
        time.sleep(0.02)
    assert killed
    time.sleep(1.0)
    engine = make_engine(database)
    try:
        with make_sessionmaker(engine)() as session:
            uncertain_rows = session.execute(
                select(User.external_id, OutboxItem.claimed_by)
                .join(OutboxItem, OutboxItem.user_id == User.id)
                .where(OutboxItem.state == "uncertain")).all()
            uncertain = {chat for chat, _ in uncertain_rows}
            pending_updates = session.scalar(
                select(func.count()).select_from(InboxUpdate)
                .where(InboxUpdate.processed_at.is_(None)))
    finally:
        engine.dispose()
    lost, duplicated, out_of_order = [], [], []
    for chat in chats:
        replies = _replies(telegram, chat)
        counts = Counter(replies)
        if any(n > 1 for n in counts.values()):
            duplicated.append(chat)
        if len(replies) < len(PIECES) and str(chat) not in uncertain:
            lost.append(chat)
        elif len(replies) == len(PIECES) and not _matches(replies):
            out_of_order.append(chat)
    stats = telegram.webhook_stats()
    assert not lost, f"{stats}\n" + _explain(database, telegram, lost)
    assert not duplicated, _explain(database, telegram, duplicated)
    assert not out_of_order, _explain(database, telegram, out_of_order)
    assert pending_updates == 0
    assert stats["pending"] == 0
    # A reply the dead instance was sending when it died is `uncertain` in the outbox:
    # reported, never sent twice. Only the dead instance's sends can be (worker ids are
    # host:pid:random).
    assert all(f":{dead_pid}:" in (by or "") for _, by in uncertain_rows), uncertain_rows
    # the survivor carries on, and the dead instance, started again, joins back
    cluster.start_instance(cluster.instances[0])
    chat = 850_001
    telegram.push_text(chat, "halo kak")
    assert len(_wait_replies(telegram, chat, 1, timeout=30)) == 1
