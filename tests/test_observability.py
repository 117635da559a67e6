"""Issue 17 item 7, observability: GET /metrics (Prometheus text, parsed with
prometheus_client's own parser) after real turns through the webhook, the metrics token,
`prokus run --metrics-port`'s server, several worker processes summed (multiprocess mode),
and the one JSON log line per turn whose correlation id is the NLU call's X-Request-ID and
the outbox rows' correlation_id. The bot runs for real (PTB, outbox fast path) against the
fake Bot API and an NLU stub that records the X-Request-ID header."""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
import textwrap
import time
from datetime import timedelta

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from sqlalchemy import inspect, select

from bot import metrics
from bot.settings import Settings
from db.engine import make_engine, make_sessionmaker
from db.models import OutboxItem
from tests.fakes import nlu_stub
from tests.test_webhook import SECRET, Instance, _message

GREET = "halo kak"
NIK = "3201054506900001"
PHONE = "081234567890"


# ---------------------------------------------------------------------- helpers
class _RecordingHandler(nlu_stub._Handler):
    """The stub's handler, noting the X-Request-ID of each parse with its text."""

    def do_POST(self) -> None:  # noqa: N802
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            text = str(json.loads(raw or b"{}")["text"])
        except (ValueError, KeyError, TypeError):
            self._send(400, {"status": "failure"})
            return
        self.stub.seen.append((self.headers.get("X-Request-ID"), text))
        self._send(200, self.stub.answer(text))


class RecordingStub(nlu_stub.NLUStub):
    def __init__(self) -> None:
        super().__init__()
        self.seen: list[tuple[str | None, str]] = []

    def start(self, port: int = 0) -> RecordingStub:
        import threading

        handler = type("Handler", (_RecordingHandler,), {"stub": self})
        self._server = nlu_stub._QuietServer(("127.0.0.1", port), handler)
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        return self


@pytest.fixture
def stub():
    server = RecordingStub().start()
    yield server
    server.stop()


@pytest.fixture
def instance(engine, fake, stub):
    """One `prokus serve --webhook` instance on its own engine (as a process would)."""
    url = engine.url.render_as_string(hide_password=False)
    own = make_engine(url)
    settings = Settings(database_url=url, nlu_url=stub.url, telegram_bot_token=fake.token,
                        telegram_api_url=fake.base_url, telegram_webhook_secret=SECRET,
                        log_json=True, turn_retry_seconds=2.0)
    bot = Instance(settings, own).start()
    yield bot
    bot.stop()
    own.dispose()


def scrape(url: str, **kw) -> dict[tuple[str, tuple], float]:
    """GET /metrics and parse it: {(sample name, sorted labels): value}."""
    response = httpx.get(url + "/metrics", timeout=10, **kw)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("text/plain")
    return samples(response.text)


def samples(text: str) -> dict[tuple[str, tuple], float]:
    found = {}
    for family in text_string_to_metric_families(text):
        for sample in family.samples:
            found[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return found


def value(found: dict, name: str, **labels: str) -> float:
    return found.get((name, tuple(sorted(labels.items()))), 0.0)


def total(found: dict, name: str, **labels: str) -> float:
    """Sum of a sample over the label values not given."""
    return sum(v for (n, ls), v in found.items()
               if n == name and all((k, want) in ls for k, want in labels.items()))


def wait_until(predicate, timeout: float = 10.0):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        result = predicate()
        if result:
            return result
        time.sleep(0.05)
    return predicate()


@pytest.fixture
def log_lines():
    """Everything logged (JSON lines, redacting formatter) during the test."""
    from bot.logging import configure_logging

    stream = io.StringIO()
    configure_logging("INFO", as_json=True, stream=stream)
    return stream


def turn_lines(stream: io.StringIO) -> list[dict]:
    return [line for line in map(json.loads, stream.getvalue().splitlines())
            if line.get("event") == "turn done"]


# ---------------------------------------------------------------------- /metrics after turns
def test_metrics_move_by_the_right_amounts_after_real_turns(engine, instance, fake, texts,
                                                            stub, monkeypatch):
    monkeypatch.setattr(metrics, "CACHE_SECONDS", 0.0)  # the database figures, every scrape
    before = scrape(instance.url)
    update = _message(fake, 3001, GREET)
    assert instance.post(update).status_code == 200
    assert instance.post(update).status_code == 200  # Telegram delivered it again
    assert fake.wait_for(lambda: texts("greet") in fake.texts(3001), 10)

    def moved():
        now = scrape(instance.url)
        return now if total(now, "prokus_turns_total") > total(before, "prokus_turns_total") \
            else None

    after = wait_until(moved)
    assert after, "the turn was not counted"
    delta = lambda name, **labels: value(after, name, **labels) - value(before, name, **labels)  # noqa: E731
    assert delta("prokus_turns_total", channel="telegram", kind="text", outcome="ok") == 1
    assert total(after, "prokus_turns_total") - total(before, "prokus_turns_total") == 1
    assert delta("prokus_updates_received_total", source="webhook") == 2
    assert delta("prokus_updates_duplicate_total", source="webhook") == 1
    server = stub.url.removeprefix("http://")
    assert delta("prokus_nlu_request_seconds_count", server=server) == 1
    assert delta("prokus_nlu_request_seconds_sum", server=server) > 0
    assert delta("prokus_reply_latency_seconds_count", channel="telegram") == 1
    assert delta("prokus_outbox_sends_total", result="sent") >= 1
    assert value(after, "prokus_process_info", instance=metrics.instance_id()) == 1
    assert value(after, "prokus_metrics_database_up") == 1
    assert value(after, "prokus_outbox_queue_depth", state="pending") == 0
    assert value(after, "prokus_handoffs_open") == 0
    assert ("prokus_reply_latency_seconds_bucket",
            (("channel", "telegram"), ("le", "+Inf"))) in after

    # A broadcast queued for three people (due tomorrow: nobody sends it now).
    from db import repo
    from db.models import utcnow
    from db.outbox import enqueue

    with make_sessionmaker(engine).begin() as session:
        users = [repo.get_or_create_user(session, "telegram", str(4000 + i)).id
                 for i in range(3)]
        enqueue(session, "broadcast", "Info pendampingan", users, created_by="uji",
                due_at=utcnow() + timedelta(days=1))
    queued = scrape(instance.url)
    assert value(queued, "prokus_outbox_queue_depth", state="pending") == 3
    with make_sessionmaker(engine)() as session:  # (not from a turn: no correlation id)
        rows = session.scalars(select(OutboxItem).where(OutboxItem.user_id.in_(users))).all()
        assert [row.correlation_id for row in rows] == [None] * 3


def test_metrics_have_no_personal_data(engine, instance, fake, texts):
    update = _message(fake, 3002, f"mau daftar, nik {NIK} hp {PHONE}")
    assert instance.post(update).status_code == 200
    assert fake.wait_for(lambda: fake.texts(3002), 10)
    body = httpx.get(instance.url + "/metrics", timeout=10).text
    for secret in (NIK, PHONE, "3002", fake.token, SECRET):
        assert secret not in body


# ---------------------------------------------------------------------- the turn's log line
def test_one_json_log_line_per_turn_with_the_correlation_id_everywhere(
        engine, instance, fake, texts, stub, log_lines):
    text = f"saya mau daftar prokus, nik {NIK} hp {PHONE}"
    update = _message(fake, 3003, text)
    assert instance.post(update).status_code == 200
    assert fake.wait_for(lambda: fake.texts(3003), 10)
    lines = wait_until(lambda: [line for line in turn_lines(log_lines)
                                if line.get("update_id") == update["update_id"]])
    assert len(lines) == 1, lines
    [line] = lines
    assert set(line) >= {"ts", "level", "logger", "event", "correlation_id", "instance",
                         "update_id", "user", "channel", "kind", "intent", "confidence",
                         "nlu_ms", "ms", "replies", "outcome", "outbox_ids"}
    cid = line["correlation_id"]
    assert len(cid) == 16 and int(cid, 16) >= 0
    assert line["instance"] == metrics.instance_id()
    assert line["intent"] == "register_prokus" and line["confidence"] == 0.95
    assert line["outcome"] == "ok" and line["kind"] == "text" and line["channel"] == "telegram"
    assert line["replies"] >= 1 and len(line["outbox_ids"]) >= line["replies"]
    assert line["nlu_ms"] > 0 and line["ms"] >= line["nlu_ms"]
    assert len(line["user"]) == 12 and line["user"] != "3003"
    # The same id went to the NLU server as X-Request-ID ...
    assert (cid, text) in stub.seen
    # ... and onto the outbox rows the turn wrote.
    with make_sessionmaker(engine)() as session:
        rows = session.scalars(select(OutboxItem).where(OutboxItem.id.in_(line["outbox_ids"])))
        assert {row.correlation_id for row in rows} == {cid}
    # No NIK, no phone number, no raw Telegram id anywhere in the logs.
    everything = log_lines.getvalue()
    assert NIK not in everything and PHONE not in everything
    assert '"3003"' not in everything and ": 3003" not in everything


def test_each_turn_gets_its_own_correlation_id(engine, instance, fake, texts, log_lines):
    first, second = _message(fake, 3004, GREET), _message(fake, 3004, "makasih")
    assert instance.post(first).status_code == 200
    assert fake.wait_for(lambda: len(fake.texts(3004)) >= 1, 10)
    assert instance.post(second).status_code == 200
    lines = wait_until(lambda: len(turn_lines(log_lines)) >= 2 and turn_lines(log_lines))
    ids = [line["correlation_id"] for line in lines]
    assert len(ids) == 2 and ids[0] != ids[1]
    assert [line["intent"] for line in lines] == ["greet", "thanks"]


# ---------------------------------------------------------------------- the token
def test_the_metrics_token(sqlite_engine, monkeypatch):
    from starlette.testclient import TestClient

    from web.app import create_app

    settings = Settings(database_url=sqlite_engine.url.render_as_string(), log_json=False)
    with TestClient(create_app(settings, engine=sqlite_engine)) as client:
        open_page = client.get("/metrics")  # no token set: no login needed
        assert open_page.status_code == 200
        assert samples(open_page.text)
    monkeypatch.setenv("PROKUS_METRICS_TOKEN", "token-metrik-rahasia")
    settings = Settings.from_env({"DATABASE_URL": settings.database_url, "LOG_JSON": "0",
                                  "PROKUS_METRICS_TOKEN": "token-metrik-rahasia"})
    with TestClient(create_app(settings, engine=sqlite_engine)) as client:
        assert client.get("/metrics").status_code == 403
        assert client.get("/metrics", headers={"Authorization": "Bearer salah"}
                          ).status_code == 403
        assert client.get("/metrics", headers={"Authorization": "token-metrik-rahasia"}
                          ).status_code == 403
        good = client.get("/metrics", headers={"Authorization": "Bearer token-metrik-rahasia"})
        assert good.status_code == 200 and samples(good.text)
        assert "token-metrik-rahasia" not in good.text
        assert client.get("/healthz").status_code == 200  # (the token is for /metrics only)


# ---------------------------------------------------------------------- polling mode
def test_the_metrics_server_of_prokus_run(engine):
    figures = metrics.DatabaseFigures(make_sessionmaker(engine))
    server = metrics.MetricsServer("127.0.0.1", 0, figures).start()
    try:
        url = f"http://127.0.0.1:{server.port}"
        found = scrape(url)
        assert value(found, "prokus_metrics_database_up") == 1
        assert ("prokus_outbox_queue_depth", (("state", "pending"),)) in found
        assert httpx.get(url + "/other", timeout=5).status_code == 404
        server.token = "tok-123"
        assert httpx.get(url + "/metrics", timeout=5).status_code == 403
        assert scrape(url, headers={"Authorization": "Bearer tok-123"})
    finally:
        server.stop()


def test_prokus_run_passes_the_metrics_options(sqlite_engine, monkeypatch):
    from click.testing import CliRunner

    import bot.telegram
    from bot.cli import main

    calls = []
    monkeypatch.setattr(bot.telegram, "run_polling",
                        lambda settings, url, **kw: calls.append((url, kw)))
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456:" + "A" * 35)
    monkeypatch.setenv("NLU_URL", "http://127.0.0.1:5999")
    monkeypatch.setenv("DATABASE_URL", sqlite_engine.url.render_as_string())
    done = CliRunner().invoke(main, ["run", "--metrics-port", "9464"])
    assert done.exit_code == 0, done.output
    assert calls[-1][1] == {"with_worker": True, "metrics_port": 9464,
                            "metrics_host": "127.0.0.1"}
    done = CliRunner().invoke(main, ["run"])
    assert done.exit_code == 0, done.output
    assert calls[-1][1]["metrics_port"] is None  # off by default


# ---------------------------------------------------------------------- several workers
WORKER = textwrap.dedent("""
    import sys
    from bot import metrics
    metrics.use_multiprocess_dir()
    for _ in range(int(sys.argv[1])):
        metrics.count("turns", channel="telegram", kind="text", outcome="ok")
    metrics.observe_nlu("nlu-1:5005", 0.05, None)
    if sys.argv[1] == "0":
        sys.stdout.buffer.write(metrics.render())
""")


def test_the_workers_of_one_instance_are_summed(tmp_path):
    """`prokus serve --workers N`: whichever worker answers /metrics shows them all."""
    env = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": str(tmp_path)}
    for turns in ("2", "3"):
        subprocess.run([sys.executable, "-c", WORKER, turns], env=env, check=True, timeout=60)
    out = subprocess.run([sys.executable, "-c", WORKER, "0"], env=env, check=True,
                         timeout=60, capture_output=True).stdout.decode()
    found = samples(out)
    assert value(found, "prokus_turns_total", channel="telegram", kind="text",
                 outcome="ok") == 5
    assert value(found, "prokus_nlu_request_seconds_count", server="nlu-1:5005") == 3


# ---------------------------------------------------------------------- the NLU client
def test_the_nlu_client_sends_the_request_id_and_labels_servers_by_host_port(stub, caplog):
    from nlu.client import NLUClient, request_id

    seen = []
    client = NLUClient(["http://127.0.0.1:9", stub.url], timeout=1.0, retries=1,
                       token="rasa-token-rahasia",
                       observer=lambda server, seconds, error: seen.append((server, error)))
    token = request_id.set("0a1b2c3d4e5f6a7b")
    try:
        with caplog.at_level(logging.WARNING, logger="nlu.client"):
            assert client.parse("halo").intent == "greet"
    finally:
        request_id.reset(token)
        client.close()
    assert ("0a1b2c3d4e5f6a7b", "halo") in stub.seen
    assert seen == [("127.0.0.1:9", "ConnectError"), (stub.url.removeprefix("http://"), None)]
    [failed] = [r for r in caplog.records if r.getMessage() == "nlu request failed"]
    assert failed.request_id == "0a1b2c3d4e5f6a7b" and failed.host == "127.0.0.1:9"
    assert "rasa-token-rahasia" not in json.dumps(vars(failed), default=str)


def test_correlation_ids_are_never_redacted_in_the_logs():
    from bot.logging import redact

    for _ in range(2000):
        cid = metrics.new_correlation_id()
        assert len(cid) == 16 and redact(cid) == cid


# ---------------------------------------------------------------------- the migration
def test_migration_0017_adds_and_removes_the_correlation_id(db_url):
    from db.migrate import downgrade, upgrade

    upgrade(db_url, "0016")
    engine = make_engine(db_url)
    try:
        columns = lambda: {c["name"] for c in inspect(engine).get_columns("outbox")}  # noqa: E731
        assert "correlation_id" not in columns()
        upgrade(db_url, "0017")
        assert "correlation_id" in columns()
        [column] = [c for c in inspect(engine).get_columns("outbox")
                    if c["name"] == "correlation_id"]
        assert column["nullable"]
        downgrade(db_url, "0016")
        assert "correlation_id" not in columns()
        assert {"message_id", "priority", "state"} <= columns()
        upgrade(db_url)
        assert "correlation_id" in columns()
    finally:
        engine.dispose()
