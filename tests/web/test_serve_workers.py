"""`prokus serve --workers N` and the console's request log (no query string in it)."""

from __future__ import annotations

import logging
import os
import subprocess
import time

import httpx
import pytest
from click.testing import CliRunner
from starlette.applications import Starlette

import bot.logging
from bot.cli import main
from tests.web.conftest import PROKUS, _free_port

NIK = "3201051203900001"


def run(*args: str):
    return CliRunner().invoke(main, list(args))


@pytest.fixture
def sqlite_url(sqlite_engine, monkeypatch) -> str:
    url = sqlite_engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)
    return url


@pytest.fixture
def uvicorn_calls(monkeypatch) -> list[tuple[tuple, dict]]:
    import uvicorn

    calls: list[tuple[tuple, dict]] = []
    monkeypatch.setattr(uvicorn, "run", lambda *a, **kw: calls.append((a, kw)))
    return calls


def test_more_than_one_worker_is_refused_on_sqlite(sqlite_url, uvicorn_calls):
    done = run("serve", "--workers", "2", "--port", "8999")
    assert done.exit_code == 2
    assert "--workers" in done.output and "PostgreSQL" in done.output
    assert uvicorn_calls == []


def test_one_worker_serves_the_app_without_uvicorns_access_log(sqlite_url, uvicorn_calls):
    done = run("serve", "--port", "8999", "--host", "127.0.0.1")
    assert done.exit_code == 0, done.output
    [(args, options)] = uvicorn_calls
    assert isinstance(args[0], Starlette)
    assert options["access_log"] is False and options["log_config"] is None
    assert (options["host"], options["port"]) == ("127.0.0.1", 8999)
    assert "workers" not in options


def test_workers_must_be_at_least_one(sqlite_url, uvicorn_calls):
    done = run("serve", "--workers", "0")
    assert done.exit_code == 2 and uvicorn_calls == []


def test_the_factory_builds_each_workers_app_from_the_environment(sqlite_url, monkeypatch):
    from web.app import app_from_env

    configured = []
    monkeypatch.setattr(bot.logging, "configure_logging",
                        lambda *args, **kwargs: configured.append(args))
    app = app_from_env()
    assert isinstance(app, Starlette)
    assert app.state.web.settings.database_url == sqlite_url
    assert configured  # each worker process sets up the redacting logging itself
    app.state.web.engine.dispose()


def test_one_log_line_per_request_without_the_query_string(console, caplog):
    console.add("ani")
    console.login("ani")
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="prokus.web.access"):
        response = console.client.get(f"/registrations?q={NIK}&status=diajukan")
        assert response.status_code == 200
        console.client.get(f"/tidak-ada?nik={NIK}")
    records = [r for r in caplog.records if r.name == "prokus.web.access"]
    assert [(r.method, r.path, r.status) for r in records] == [
        ("GET", "/registrations", 200), ("GET", "/tidak-ada", 404)]
    for record in records:
        line = bot.logging.RedactingJsonFormatter(as_json=True).format(record)
        assert "?" not in record.getMessage() and "q=" not in line
        assert NIK not in line and NIK[:6] not in line and "diajukan" not in line
        assert record.duration_ms >= 0 and record.getMessage().endswith(" ms")


class _Broken:
    def __getattr__(self, name):
        raise RuntimeError("database down")


def test_a_failing_request_is_logged_as_500(console, caplog, monkeypatch):
    from starlette.testclient import TestClient

    from web.routes import registrations

    console.add("ani")
    console.login("ani")
    monkeypatch.setattr(registrations, "queue", _Broken())
    client = TestClient(console.app, raise_server_exceptions=False, follow_redirects=False)
    client.cookies = console.client.cookies
    with caplog.at_level(logging.INFO, logger="prokus.web.access"):
        assert client.get(f"/registrations?q={NIK}").status_code == 500
    [record] = [r for r in caplog.records if r.name == "prokus.web.access"]
    assert (record.path, record.status) == ("/registrations", 500)


def test_two_workers_serve_on_postgresql(engine, tmp_path):
    if engine.dialect.name != "postgresql":
        pytest.skip("more than one worker needs PostgreSQL")
    port = _free_port()
    env = {**os.environ, "DATABASE_URL": engine.url.render_as_string(hide_password=False),
           "LOG_JSON": "1", "LOG_LEVEL": "INFO"}
    output = tmp_path / "serve.log"
    with output.open("w") as sink:
        server = subprocess.Popen([str(PROKUS), "serve", "--port", str(port), "--workers", "2"],
                                  env=env, stdout=sink, stderr=subprocess.STDOUT)
        try:
            deadline = time.monotonic() + 30
            while True:
                try:
                    response = httpx.get(f"http://127.0.0.1:{port}/login?next=/x%3Fq%3D{NIK}",
                                         timeout=2)
                    if response.status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                assert server.poll() is None, output.read_text()
                assert time.monotonic() < deadline, output.read_text()
                time.sleep(0.2)
        finally:
            server.terminate()
            server.wait(timeout=15)
    log = output.read_text()
    assert "GET /login 200" in log, log
    assert NIK not in log and "next=" not in log
