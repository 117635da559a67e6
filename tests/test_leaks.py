"""Issue 16 item 6: smaller leaks closed. A failing SQL statement shows no parameters; the
per-user log tag is an HMAC with a secret; the settings never print a password or a
secret; the Rasa server runs with --auth-token and the client sends it; the bot token
never appears in the logs, also inside an exception's text."""

from __future__ import annotations

import hashlib
import io
import json
import logging
import os
import stat
import subprocess
from pathlib import Path

import httpx
import pytest
from sqlalchemy import text
from sqlalchemy.exc import IntegrityError, StatementError

from actions import dialogue
from actions.types import Turn
from bot.logging import configure_logging, install_tag_key, tag_key
from bot.settings import Settings
from db.engine import make_engine, make_sessionmaker
from db.models import User
from nlu.client import NLUClient
from nlu.server import NLUServer

NIK = "3201051203900001"
TOKEN = "123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8"


# ---------------------------------------------------------------------- hide_parameters
def test_a_failing_statement_shows_no_parameters(engine):
    """SQLAlchemy leaves the parameters out of the error; PostgreSQL's own DETAIL line
    ("Key (...)=(...) already exists") still names the value, so the log hides it."""
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        session.add(User(channel="telegram", external_id=NIK))
    with pytest.raises(IntegrityError) as raised, sessions.begin() as session:
        session.add(User(channel="telegram", external_id=NIK, role="x" + NIK[:15]))
    message = str(raised.value)
    assert "[SQL parameters hidden due to hide_parameters=True]" in message
    assert "x" + NIK[:15] not in message  # a parameter the server does not repeat
    if engine.dialect.name == "sqlite":
        assert NIK not in message
    stream = io.StringIO()
    configure_logging("INFO", as_json=True, stream=stream)
    logging.getLogger("prokus.test").error("turn failed", exc_info=raised.value)
    assert NIK not in stream.getvalue() and NIK[:15] not in stream.getvalue()


def test_a_failing_raw_statement_shows_no_parameters(tmp_path):
    engine = make_engine(f"sqlite:///{tmp_path / 'x.db'}")
    try:
        with pytest.raises(StatementError) as raised, engine.connect() as conn:
            conn.execute(text("SELECT * FROM no_such_table WHERE nik = :nik"), {"nik": NIK})
        assert NIK not in str(raised.value)
    finally:
        engine.dispose()


# ---------------------------------------------------------------------- the log tag
@pytest.fixture
def restore_tag_key():
    saved = dialogue._tag_key
    yield
    dialogue._tag_key = saved


def test_the_user_tag_is_an_hmac_with_a_secret(tmp_path, restore_tag_key):
    turn = Turn("telegram", "123456789", text="halo")
    bare = hashlib.sha256(b"telegram:123456789").hexdigest()
    install_tag_key(Settings(project_root=tmp_path, log_secret="s" * 32))
    one = dialogue.user_tag(turn)
    assert not bare.startswith(one) and "123456789" not in one
    assert dialogue.user_tag(turn) == one  # stable
    install_tag_key(Settings(project_root=tmp_path, log_secret="t" * 32))
    assert dialogue.user_tag(turn) != one  # another secret, another tag


def test_without_a_configured_secret_a_local_one_is_generated_once(tmp_path):
    settings = Settings(project_root=tmp_path)
    first = tag_key(settings)
    secret_file = tmp_path / "data" / "log-secret"
    assert secret_file.exists()
    assert stat.S_IMODE(secret_file.stat().st_mode) == 0o600
    assert tag_key(settings) == first  # the same file, the same key
    assert tag_key(Settings(project_root=tmp_path, log_secret="x" * 32)) != first


def test_a_short_log_secret_is_refused():
    from bot.settings import SettingsError

    with pytest.raises(SettingsError, match="PROKUS_LOG_SECRET"):
        Settings(log_secret="short")


# ---------------------------------------------------------------------- settings
def test_settings_never_print_the_database_password_or_a_secret():
    settings = Settings.from_env(env_file=Path("/nonexistent/.env"), environ={
        "DATABASE_URL": "postgresql://prokus:s3cr3t@db:5432/prokus",
        "NLU_URL": "http://nlu:5005/?token=nlutok3n",
        "NLU_AUTH_TOKEN": "nlutok3n-secret",
        "PROKUS_LOG_SECRET": "logsecret-logsecret",
        "TELEGRAM_BOT_TOKEN": TOKEN,
    })
    for shown in (repr(settings), str(settings), f"{settings!r}", f"{settings}"):
        for secret in ("s3cr3t", "nlutok3n", "logsecret", "AAHdqTcvCH1v"):
            assert secret not in shown
    assert settings.database_url == "postgresql://prokus:s3cr3t@db:5432/prokus"


def test_a_password_given_as_a_query_parameter_is_hidden_too():
    settings = Settings(database_url="postgresql://prokus@db/prokus?password=s3cr3t")
    assert "s3cr3t" not in repr(settings)


# ---------------------------------------------------------------------- the NLU token
def test_the_client_sends_the_token_as_rasa_expects():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request.url)
        return httpx.Response(200, json={"intent": {"name": "greet", "confidence": 0.9}})

    client = NLUClient("http://nlu:5005", token="t0ken")
    client._http._transport = httpx.MockTransport(handler)
    assert client.parse("halo").intent == "greet"
    assert seen[0].path == "/model/parse" and seen[0].params["token"] == "t0ken"
    plain = NLUClient("http://nlu:5005")
    plain._http._transport = httpx.MockTransport(handler)
    plain.parse("halo")
    assert "token" not in seen[1].params


def test_the_local_server_is_started_with_an_auth_token(tmp_path, monkeypatch):
    rasa, model = tmp_path / "rasa", tmp_path / "model.tar.gz"
    rasa.write_text("")
    model.write_text("")
    started = {}

    class FakePopen:
        def __init__(self, cmd, **kwargs):
            started["cmd"] = cmd
            self.pid, self.returncode = 0, None

        def poll(self):
            return None

    asked = []
    monkeypatch.setattr(subprocess, "Popen", FakePopen)
    monkeypatch.setattr(httpx, "get", lambda url, params=None, timeout=None: asked.append(
        params) or httpx.Response(200, json={"model_file": "m"}))
    server = NLUServer(rasa, model, 5999, tmp_path / "nlu.log", tmp_path, auth_token="t0ken")
    server.start(timeout=5)
    cmd = started["cmd"]
    assert cmd[cmd.index("--auth-token") + 1] == "t0ken"
    assert asked == [{"token": "t0ken"}]  # /status needs the token too


def test_prokus_generates_a_token_for_the_local_server(monkeypatch):
    from bot.app import make_nlu_client
    from bot.cli import nlu_token

    monkeypatch.delenv("NLU_AUTH_TOKEN", raising=False)
    settings = Settings()
    token = nlu_token(settings)
    assert len(token) >= 32 and os.environ["NLU_AUTH_TOKEN"] == token
    assert nlu_token(settings) == token  # the same for the whole process
    client = make_nlu_client(settings, "http://127.0.0.1:5005")
    assert client._http.params["token"] == token
    assert nlu_token(Settings(nlu_auth_token="mine")) == "mine"


# ---------------------------------------------------------------------- the bot token
def test_the_bot_token_never_reaches_the_log(tmp_path):
    stream = io.StringIO()
    configure_logging("INFO", as_json=True, stream=stream)
    url = f"https://api.telegram.org/bot{TOKEN}/sendMessage"
    log = logging.getLogger("prokus.test")
    try:
        raise httpx.ConnectError(f"All connection attempts failed for {url}",
                                 request=httpx.Request("POST", url))
    except httpx.ConnectError:
        log.exception("send failed", extra={"url": url})
    from telegram.error import NetworkError

    try:
        raise NetworkError(f"httpx.ReadError: {url}")
    except NetworkError as exc:
        log.error("telegram error: %s", exc, exc_info=exc)
    log.warning("NLU at http://nlu:5005/model/parse?token=nlutok3n failed; "
                "db postgresql://prokus:s3cr3t@db/prokus")
    out = stream.getvalue()
    assert TOKEN.split(":")[1] not in out and "123456789:" not in out
    assert "nlutok3n" not in out and "s3cr3t" not in out
    records = [json.loads(line) for line in out.splitlines()]
    assert "<bot-token>" in records[0]["exc"] and "<bot-token>" in records[0]["url"]
    assert "<bot-token>" in records[1]["event"]


@pytest.mark.nlu
def test_the_real_rasa_server_wants_the_token(settings, tmp_path):
    """Rasa started with --auth-token refuses a request without `?token=` and answers the
    client that sends it."""
    from nlu.client import NLUUnavailable
    from nlu.model import train
    from nlu.server import free_port

    model = train(settings.project_root, settings.rasa_executable, settings.models_dir)
    server = NLUServer(settings.rasa_executable, model, free_port(), tmp_path / "nlu.log",
                       settings.project_root, auth_token="t0ken-for-the-test")
    server.start()
    try:
        assert httpx.post(f"{server.url}/model/parse", json={"text": "halo"},
                          timeout=10).status_code == 401
        with pytest.raises(NLUUnavailable):
            NLUClient(server.url, timeout=10, retries=0).parse("halo")
        good = NLUClient(server.url, timeout=10, token="t0ken-for-the-test")
        assert good.parse("halo").intent == "greet" and good.is_ready()
    finally:
        server.stop()
