"""Webhook mode: POST /telegram/webhook (secret, inbox, exactly once, per-user order),
/healthz and /readyz, `prokus serve` flags and `prokus webhook set|delete|info` against the
fake Bot API. The bot runs for real (PTB, outbox fast path) with the NLU stub; the ASGI app
runs in uvicorn on a loopback port (18300-18399)."""

from __future__ import annotations

import json
import socket
import threading
import time

import httpx
import pytest
import uvicorn
from click.testing import CliRunner
from sqlalchemy import func, select

from bot.cli import main
from bot.settings import Settings
from bot.webhook import ALLOWED_UPDATES, PATH, SECRET_HEADER, WebhookService, lock_key
from db.models import InboxUpdate
from tests.fakes.nlu_stub import NLUStub
from web.app import create_app

SECRET = "rahasia-webhook-uji-0123456789"
GREET = "halo kak"


def _free_port() -> int:
    for port in range(18300, 18400):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free port in 18300-18399")


class Instance:
    """One `prokus serve --webhook` instance: the real ASGI app in uvicorn, in a thread."""

    def __init__(self, settings: Settings, engine, console: bool = False) -> None:
        self.port = _free_port()
        self.service = WebhookService(settings)
        app = create_app(settings, engine=engine, console=console, webhook=self.service)
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=self.port,
                                                    log_config=None, lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> Instance:
        self.thread.start()
        deadline = time.monotonic() + 30
        while not self.server.started:
            assert time.monotonic() < deadline, "the instance did not start"
            assert self.thread.is_alive(), "the instance failed to start"
            time.sleep(0.05)
        return self

    def stop(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)

    def post(self, update: dict, secret: str | None = SECRET, **kw) -> httpx.Response:
        headers = {SECRET_HEADER: secret} if secret is not None else {}
        return httpx.post(self.url + PATH, json=update, headers=headers, timeout=10, **kw)


@pytest.fixture
def stub():
    """The NLU stub behind a TCP proxy (stopping the proxy closes open connections too,
    so the NLU really looks down)."""
    from tests.fakes.tcp_proxy import TcpProxy

    server = NLUStub().start()
    server.proxy = TcpProxy(int(server.url.rsplit(":", 1)[1]))
    server.proxy.start()
    yield server
    server.proxy.stop()
    server.stop()


@pytest.fixture
def settings_for(fake, stub):
    def make(url: str, **overrides) -> Settings:
        values = dict(database_url=url, nlu_url=stub.proxy.url, telegram_bot_token=fake.token,
                      telegram_api_url=fake.base_url, telegram_webhook_secret=SECRET,
                      log_json=False, turn_retry_seconds=2.0)
        values.update(overrides)
        return Settings(**values)

    return make


@pytest.fixture
def instances(engine, settings_for):
    """Start instances sharing one database (each with its own engine, as processes)."""
    from db.engine import make_engine

    url = engine.url.render_as_string(hide_password=False)
    started, engines = [], []

    def start(count: int = 1) -> list[Instance]:
        for _ in range(count):
            own = make_engine(url)
            engines.append(own)
            started.append(Instance(settings_for(url), own).start())
        return started[-count:]

    yield start
    for instance in started:
        instance.stop()
    for own in engines:
        own.dispose()


def _message(fake, user_id: int, text: str) -> dict:
    """An update as Telegram would post it (the fake numbers it; nothing is queued)."""
    update = fake.push_text(user_id, text)
    with fake._cond:  # taken back from the fake's getUpdates queue: we post it ourselves
        fake.updates.remove(update)
    return update


def _inbox_count(engine) -> int:
    from db.engine import make_sessionmaker

    with make_sessionmaker(engine)() as session:
        return session.scalar(select(func.count()).select_from(InboxUpdate))


# ---------------------------------------------------------------------- the secret
@pytest.mark.parametrize("secret", [None, "salah", SECRET[:-1] + "X"])
def test_a_wrong_or_missing_secret_is_refused_and_nothing_is_stored(engine, instances, fake,
                                                                   texts, secret):
    [bot] = instances()
    response = bot.post(_message(fake, 2001, GREET), secret=secret)
    assert response.status_code == 403
    assert _inbox_count(engine) == 0
    assert not fake.wait_for(lambda: fake.texts(2001), 1.0), "nothing was processed"


def test_without_a_secret_the_endpoint_is_off(sqlite_engine, settings_for):
    from starlette.testclient import TestClient

    settings = settings_for(sqlite_engine.url.render_as_string(), telegram_webhook_secret=None)
    with pytest.raises(ValueError):
        WebhookService(settings)
    app = create_app(settings, engine=sqlite_engine)  # console only, as `prokus serve`
    with TestClient(app) as client:
        response = client.post(PATH, json={"update_id": 1}, headers={SECRET_HEADER: SECRET})
        assert response.status_code == 404
        assert client.get("/healthz").status_code == 200


@pytest.mark.parametrize("body", [b"{not json", b"[1, 2]", b'{"message": {}}'])
def test_a_body_that_is_not_an_update_is_400(engine, instances, body):
    [bot] = instances()
    response = httpx.post(bot.url + PATH, content=body, timeout=10,
                          headers={SECRET_HEADER: SECRET, "Content-Type": "application/json"})
    assert response.status_code == 400
    assert _inbox_count(engine) == 0


# ---------------------------------------------------------------------- processing
def test_a_valid_update_is_answered_200_at_once_and_the_reply_reaches_telegram(
        engine, instances, fake, stub, texts):
    [bot] = instances()
    stub.delay = 0.5  # the turn takes longer than the answer to Telegram
    started = time.monotonic()
    response = bot.post(_message(fake, 2002, GREET))
    assert response.status_code == 200 and response.json() == {"ok": True}
    assert time.monotonic() - started < 0.4, "200 before the turn ran"
    assert fake.wait_for(lambda: texts("greet") in fake.texts(2002), 10)


def test_the_same_update_posted_twice_is_answered_once(engine, instances, fake, texts):
    [bot] = instances()
    update = _message(fake, 2003, GREET)
    assert bot.post(update).status_code == 200
    assert bot.post(update).status_code == 200
    assert fake.wait_for(lambda: texts("greet") in fake.texts(2003), 10)
    time.sleep(1.0)
    assert fake.texts(2003).count(texts("greet")) == 1
    assert bot.service.duplicates == 1


def test_one_update_delivered_to_two_instances_at_once_is_answered_once(
        engine, instances, fake, texts):
    first, second = instances(2)
    for user in range(2010, 2015):
        update = _message(fake, user, GREET)
        barrier = threading.Barrier(2)

        def post(instance, update=update, barrier=barrier):
            barrier.wait()
            assert instance.post(update).status_code == 200

        threads = [threading.Thread(target=post, args=(i,)) for i in (first, second)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
    for user in range(2010, 2015):
        assert fake.wait_for(lambda user=user: texts("greet") in fake.texts(user), 10)
    time.sleep(1.0)
    for user in range(2010, 2015):
        assert fake.texts(user).count(texts("greet")) == 1, f"user {user}"


def _warm_up(bots, fake, texts) -> None:
    """One turn on each instance first, so connection pools and threads are up."""
    for index, bot in enumerate(bots):
        user = 2900 + index
        assert bot.post(_message(fake, user, GREET)).status_code == 200
        assert fake.wait_for(lambda u=user: texts("greet") in fake.texts(u), 10)


BURST = [("halo kak", "greet"), ("makasih ya", "thanks"), ("saya bingung", "help"),
         ("dadah", "goodbye"), ("halo lagi", "greet")]


@pytest.mark.parametrize("count", [1, 2], ids=["one-instance", "two-instances"])
def test_a_burst_from_one_user_is_answered_in_order(engine, instances, fake, stub, texts,
                                                    count):
    """Five messages sent in quick succession, each posted without waiting for the one
    before (alternating between the instances), while the NLU is slow: the replies come
    in the order the messages were sent."""
    if count == 2 and engine.dialect.name == "sqlite":
        pytest.skip("several instances need PostgreSQL")
    bots = instances(count)
    _warm_up(bots, fake, texts)
    stub.delay = 0.15
    user = 2020
    updates = [_message(fake, user, text) for text, _ in BURST]
    threads = []
    for index, update in enumerate(updates):
        bot = bots[index % count]
        thread = threading.Thread(target=lambda b=bot, u=update: b.post(u))
        thread.start()
        threads.append(thread)
        # Sent in order a few ms apart, as a user typing fast; no post waits for an
        # answer. (Order is kept among updates that reached the database: two posted at
        # the very same instant may be stored either way round.)
        time.sleep(0.03)
    for thread in threads:
        thread.join()
    expected = [texts(intent) for _, intent in BURST]
    assert fake.wait_for(lambda: len(fake.texts(user)) >= len(expected), 20), fake.texts(user)
    time.sleep(0.5)
    assert fake.texts(user) == expected


def test_telegram_delivers_to_the_webhook_set_with_the_cli(engine, instances, fake, texts,
                                                           monkeypatch):
    [bot] = instances()
    _env(monkeypatch, fake)
    done = CliRunner().invoke(main, ["webhook", "set", "--url", bot.url + PATH])
    assert done.exit_code == 0, done.output
    fake.push_text(2030, GREET)  # the fake Bot API posts it, with the secret
    assert fake.wait_for(lambda: texts("greet") in fake.texts(2030), 10), fake.webhook_errors


# ---------------------------------------------------------------------- health
def test_healthz_and_readyz(engine, instances, stub):
    [bot] = instances()
    health = httpx.get(bot.url + "/healthz", timeout=5)
    assert health.status_code == 200 and health.json() == {"status": "ok"}
    ready = httpx.get(bot.url + "/readyz", timeout=5)
    assert ready.status_code == 200
    assert ready.json() == {"status": "ready", "database": "ok", "nlu": "ok"}
    stub.proxy.stop()
    down = httpx.get(bot.url + "/readyz", timeout=10)
    assert down.status_code == 503
    assert down.json()["down"] == ["nlu"] and down.json()["database"] == "ok"


def test_with_the_console_off_only_the_service_endpoints_answer(sqlite_engine, settings_for):
    from starlette.testclient import TestClient

    settings = settings_for(sqlite_engine.url.render_as_string())
    app = create_app(settings, engine=sqlite_engine, console=False)
    with TestClient(app) as client:
        assert client.get("/healthz").status_code == 200
        assert client.get("/readyz").json() == {"status": "ready", "database": "ok"}
        assert client.get("/login").status_code == 404
        assert client.get("/", follow_redirects=False).status_code == 404


# ---------------------------------------------------------------------- the CLI
def _env(monkeypatch, fake, secret: str | None = SECRET) -> None:
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", fake.token)
    monkeypatch.setenv("TELEGRAM_API_URL", fake.base_url)
    if secret:
        monkeypatch.setenv("TELEGRAM_WEBHOOK_SECRET", secret)
    else:
        monkeypatch.delenv("TELEGRAM_WEBHOOK_SECRET", raising=False)


def test_webhook_set_info_delete_against_the_fake_bot_api(fake, monkeypatch):
    _env(monkeypatch, fake)
    run = CliRunner().invoke
    url = "https://bot.example.go.id/telegram/webhook"
    done = run(main, ["webhook", "set", "--url", url, "--max-connections", "12"])
    assert done.exit_code == 0, done.output
    [body] = fake.calls_to("setWebhook")
    assert body["url"] == url and body["secret_token"] == SECRET
    assert body["allowed_updates"] == ALLOWED_UPDATES == ["message", "edited_message",
                                                          "callback_query"]
    assert body["max_connections"] == 12
    info = run(main, ["webhook", "info"])
    assert info.exit_code == 0 and f"url: {url}" in info.output
    assert "max_connections: 12" in info.output and SECRET not in info.output
    as_json = json.loads(run(main, ["webhook", "info", "--json"]).output)
    assert as_json["url"] == url
    done = run(main, ["webhook", "delete"])
    assert done.exit_code == 0, done.output
    assert fake.calls_to("deleteWebhook") and fake.webhook == {"url": ""}
    assert "polling" in run(main, ["webhook", "info"]).output


def test_webhook_set_needs_the_secret_https_and_the_path(fake, monkeypatch):
    run = CliRunner().invoke
    _env(monkeypatch, fake, secret=None)
    done = run(main, ["webhook", "set", "--url", "https://bot.example.go.id/telegram/webhook"])
    assert done.exit_code == 2 and "TELEGRAM_WEBHOOK_SECRET" in done.output
    _env(monkeypatch, fake)
    done = run(main, ["webhook", "set", "--url", "http://bot.example.go.id/telegram/webhook"])
    assert done.exit_code == 2 and "https" in done.output
    done = run(main, ["webhook", "set", "--url", "https://bot.example.go.id/hook"])
    assert done.exit_code == 2 and PATH in done.output
    assert fake.calls_to("setWebhook") == []


@pytest.fixture
def uvicorn_calls(monkeypatch, sqlite_engine):
    monkeypatch.setenv("DATABASE_URL", sqlite_engine.url.render_as_string())
    calls: list[tuple[tuple, dict]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    return calls


def test_serve_flags(uvicorn_calls, fake, stub, monkeypatch):
    run = CliRunner().invoke
    done = run(main, ["serve", "--no-console"])
    assert done.exit_code == 2 and "--webhook" in done.output
    monkeypatch.delenv("TELEGRAM_WEBHOOK_SECRET", raising=False)
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", fake.token)
    done = run(main, ["serve", "--webhook"])
    assert done.exit_code == 2 and "TELEGRAM_WEBHOOK_SECRET" in done.output
    _env(monkeypatch, fake)
    monkeypatch.setenv("NLU_URL", stub.url)
    done = run(main, ["serve", "--webhook", "--workers", "2"])
    assert done.exit_code == 2 and "PostgreSQL" in done.output
    assert uvicorn_calls == []
    done = run(main, ["serve", "--webhook", "--no-console", "--port", "18399"])
    assert done.exit_code == 0, done.output
    [(args, _)] = uvicorn_calls
    assert args[0].state.webhook is not None


def test_lock_keys_are_stable_signed_64_bit():
    assert lock_key("2020") == lock_key("2020") != lock_key("2021")
    assert -(2 ** 63) <= lock_key("2020") < 2 ** 63


@pytest.mark.parametrize("secret", ["short", "has space in it 123456", "ä" * 20])
def test_the_webhook_secret_is_checked_and_never_shown(secret):
    from pathlib import Path

    from bot.settings import SettingsError

    with pytest.raises(SettingsError) as error:
        Settings.from_env({"TELEGRAM_WEBHOOK_SECRET": secret}, env_file=Path("/nonexistent"))
    assert "TELEGRAM_WEBHOOK_SECRET='***'" in str(error.value) and secret not in str(error.value)
    shown = repr(Settings.from_env({"TELEGRAM_WEBHOOK_SECRET": SECRET},
                                   env_file=Path("/nonexistent")))
    assert SECRET not in shown


def _store_directly(engine, update: dict, age: float = 0.0) -> None:
    """Put an update in the inbox as another instance would have, `age` seconds ago."""
    from datetime import UTC, datetime, timedelta

    from db import inbox
    from db.engine import make_sessionmaker

    when = datetime.now(UTC) - timedelta(seconds=age)
    user = str(update["message"]["from"]["id"])
    with make_sessionmaker(engine).begin() as session:
        assert inbox.store(session, [(update["update_id"], user, update)], when)


def test_a_users_earlier_stored_update_is_processed_first(engine, instances, fake, texts):
    """Another instance stored the user's first message and has not processed it yet: the
    second message, arriving here, is answered after the first."""
    [bot] = instances()
    first, second = _message(fake, 2040, "makasih ya"), _message(fake, 2040, GREET)
    _store_directly(engine, first)
    assert bot.post(second).status_code == 200
    expected = [texts("thanks"), texts("greet")]
    assert fake.wait_for(lambda: len(fake.texts(2040)) >= 2, 10), fake.texts(2040)
    time.sleep(0.5)
    assert fake.texts(2040) == expected


def test_an_update_left_by_an_instance_that_died_is_processed_by_the_sweep(
        engine, instances, fake, texts):
    stalled = _message(fake, 2041, GREET)
    _store_directly(engine, stalled, age=120)
    instances()  # the sweep runs at start
    assert fake.wait_for(lambda: texts("greet") in fake.texts(2041), 10)
    time.sleep(0.5)
    assert fake.texts(2041) == [texts("greet")]


def test_each_worker_process_builds_the_role_serve_asked_for(uvicorn_calls, fake, stub,
                                                            monkeypatch):
    """`--workers N` hands the role to web.app.app_from_env through PROKUS_SERVE_*."""
    from web.app import app_from_env

    _env(monkeypatch, fake)
    monkeypatch.setenv("NLU_URL", stub.proxy.url)
    for name, value in (("CONSOLE", "0"), ("WEBHOOK", "1"), ("WORKER", "0")):
        monkeypatch.setenv(f"PROKUS_SERVE_{name}", value)
    app = app_from_env()
    assert app.state.webhook is not None and app.state.webhook.with_worker is False
    monkeypatch.setenv("PROKUS_SERVE_WEBHOOK", "0")
    monkeypatch.setenv("PROKUS_SERVE_CONSOLE", "1")
    assert app_from_env().state.webhook is None


def test_many_users_bursts_delivered_twice_to_two_instances(engine, instances, fake, stub,
                                                            texts):
    """Eight users each send the five burst messages; every update is posted to both
    instances at once (a redelivery racing the original). Each user gets each reply once,
    in order, and the users are served side by side."""
    if engine.dialect.name == "sqlite":
        pytest.skip("several instances need PostgreSQL")
    from concurrent.futures import ThreadPoolExecutor

    bots = instances(2)
    _warm_up(bots, fake, texts)
    stub.delay = 0.05
    users = list(range(2100, 2108))
    expected = [texts(intent) for _, intent in BURST]
    started = time.monotonic()
    with ThreadPoolExecutor(64) as pool:
        futures = []
        for text, _ in BURST:
            for user in users:
                update = _message(fake, user, text)
                futures += [pool.submit(bot.post, update) for bot in bots]
            time.sleep(0.03)
        assert all(f.result().status_code == 200 for f in futures)
    for user in users:
        assert fake.wait_for(lambda u=user: len(fake.texts(u)) >= len(expected), 30), (
            user, fake.texts(user))
    elapsed = time.monotonic() - started
    time.sleep(0.5)
    for user in users:
        assert fake.texts(user) == expected, user
    # Served in parallel: far less than users x messages x NLU delay one after another.
    assert elapsed < len(users) * len(BURST) * stub.delay * 2 + 5
    assert sum(bot.service.duplicates for bot in bots) == len(users) * len(BURST)


def test_processed_updates_older_than_a_day_are_purged(engine, instances, fake):
    from datetime import UTC, datetime, timedelta

    from db import inbox
    from db.engine import make_sessionmaker

    sessions = make_sessionmaker(engine)
    old = datetime.now(UTC) - timedelta(hours=25)
    with sessions.begin() as session:
        inbox.claim(session, 9001, old)  # processed a day ago
        inbox.claim(session, 9002, datetime.now(UTC))  # processed just now
    instances()  # the sweep purges at start

    def ids():
        with sessions() as session:
            return set(session.scalars(select(InboxUpdate.update_id)))

    assert fake.wait_for(lambda: 9001 not in ids(), 10)
    assert 9002 in ids()


def test_inbox_store_and_claim_say_no_to_a_second_time_on_both_backends(engine):
    """db.inbox on PostgreSQL too: an ORM INSERT .. ON CONFLICT DO NOTHING reported
    rowcount 1 even when it inserted nothing, so a stored update looked new again and a
    second claim of an unstored update succeeded."""
    from datetime import UTC, datetime

    from db import inbox
    from db.engine import make_sessionmaker

    sessions, now = make_sessionmaker(engine), datetime.now(UTC)
    with sessions.begin() as session:
        assert inbox.store(session, [(7001, "1", {"update_id": 7001})], now) == [7001]
    with sessions.begin() as session:
        assert inbox.store(session, [(7001, "1", {"update_id": 7001}),
                                     (7002, "1", {"update_id": 7002})], now) == [7002]
    for update_id in (7001, 7003):  # stored first, and never stored
        with sessions.begin() as session:
            assert inbox.claim(session, update_id, now) is True
        with sessions.begin() as session:
            assert inbox.claim(session, update_id, now) is False
            assert inbox.processed(session, update_id)
    with sessions() as session:
        assert [row.update_id for row in inbox.pending_before(session, "1", 9999)] == [7002]
        assert inbox.pending_before(session, "1", 7002) == []


@pytest.mark.postgres
def test_user_locks_of_two_instances_exclude_each_other_on_one_connection_each(postgres_url):
    """Two instances' UserLocks: the same user's lock is held by one at a time (the other
    waits), different users' locks at once, and each instance holds all of its locks on
    ONE database connection, however many users are in flight (not one per user: 60 users
    at once exhausted PostgreSQL's connections)."""
    import asyncio

    from sqlalchemy import text

    from bot.webhook import UserLocks
    from db.engine import make_engine

    first, second = UserLocks(postgres_url), UserLocks(postgres_url)
    probe = make_engine(postgres_url)
    order: list[str] = []

    async def turn(locks: UserLocks, user: str, name: str, seconds: float) -> None:
        async with locks.hold(user):
            order.append(f"{name} in")
            await asyncio.sleep(seconds)
            order.append(f"{name} out")

    def held() -> tuple[int, int]:
        with probe.connect() as conn:
            return tuple(conn.execute(text(
                "SELECT count(*), count(DISTINCT pid) FROM pg_locks WHERE locktype = "
                "'advisory' AND granted AND database = (SELECT oid FROM pg_database "
                "WHERE datname = current_database())")).one())

    async def scenario() -> tuple[int, int]:
        task = asyncio.gather(*[turn(first, f"user-{i}", f"a{i}", 0.5) for i in range(40)])
        await asyncio.sleep(0.2)
        locks_held = await asyncio.to_thread(held)
        # the same user on the other instance waits for the first to finish
        await asyncio.gather(turn(second, "user-7", "b7", 0.0), task)
        return locks_held

    try:
        locks, connections = asyncio.run(scenario())
        assert (locks, connections) == (40, 1)
        assert order.index("b7 in") > order.index("a7 out")
        assert second.waits >= 1
        assert held() == (0, 0)  # all let go
    finally:
        first.close()
        second.close()
        probe.dispose()
