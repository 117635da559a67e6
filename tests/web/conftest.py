"""Fixtures of the console tests: an in-process app with a movable clock (`console`, on
SQLite; `console_any` on SQLite and PostgreSQL), and a real `prokus serve` with headless
Chromium (`live_server`, `browser_page`)."""

from __future__ import annotations

import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from argon2 import PasswordHasher
from sqlalchemy import Engine, select
from starlette.testclient import TestClient

from bot.settings import Settings
from db import operators as accounts
from db.engine import make_sessionmaker
from db.models import AuditLog, utcnow
from web.app import create_app

ROOT = Path(__file__).resolve().parents[2]
SCREENSHOTS = ROOT / "results" / "screenshots"
PASSWORD = "kata-sandi-rahasia"
PROKUS = Path(sys.executable).with_name("prokus")
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')


@pytest.fixture(autouse=True)
def _fast_password_hashing(monkeypatch):
    """argon2 at its cheapest in-process (the rules are the same, the cost is not)."""
    monkeypatch.setattr(accounts, "hasher",
                        PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1))


def add_operator(engine: Engine, username: str, role: str = "supervisor",
                 password: str = PASSWORD, region: str | None = None) -> None:
    with make_sessionmaker(engine).begin() as session:
        accounts.add_operator(session, username, role, password, region, now=utcnow())


def csrf_in(html: str) -> str:
    found = _CSRF.search(html)
    assert found, "the page has no CSRF field"
    return found.group(1)


class Console:
    """The console app in-process, with a TestClient that keeps cookies and does not follow
    redirects (tests look at them)."""

    def __init__(self, engine: Engine, clock: Callable, *, base_url: str = "http://testserver",
                 **settings: object) -> None:
        url = engine.url.render_as_string(hide_password=False)
        self.settings = Settings(database_url=url, **settings)  # type: ignore[arg-type]
        self.engine, self.clock = engine, clock
        self.app = create_app(self.settings, engine=engine, clock=clock)
        self.client = TestClient(self.app, base_url=base_url, follow_redirects=False)

    def add(self, username: str, role: str = "supervisor", password: str = PASSWORD,
            region: str | None = None) -> None:
        add_operator(self.engine, username, role, password, region)

    def csrf(self, path: str = "/login") -> str:
        response = self.client.get(path)
        assert response.status_code == 200, response.text
        return csrf_in(response.text)

    def login(self, username: str, password: str = PASSWORD, **headers: str) -> httpx.Response:
        token = self.csrf("/login")
        return self.client.post("/login", data={"username": username, "password": password,
                                                "csrf_token": token}, headers=headers)

    def signed_in(self, username: str, role: str = "supervisor",
                  region: str | None = None) -> Console:
        self.add(username, role, region=region)
        response = self.login(username)
        assert response.status_code == 303, response.text
        return self

    def post(self, path: str, data: dict[str, str] | None = None, *, token: str | None = None,
             page: str = "/") -> httpx.Response:
        """POST a form with the CSRF token of the current session (taken from `page`)."""
        fields = dict(data or {})
        fields["csrf_token"] = token if token is not None else self.csrf(page)
        return self.client.post(path, data=fields)

    def audit(self, *actions: str) -> list[AuditLog]:
        with make_sessionmaker(self.engine)() as session:
            stmt = select(AuditLog).order_by(AuditLog.id)
            if actions:
                stmt = stmt.where(AuditLog.action.in_(actions))
            return list(session.scalars(stmt))


@pytest.fixture
def console(sqlite_engine, clock) -> Console:
    return Console(sqlite_engine, clock)


@pytest.fixture
def console_any(engine, clock) -> Console:
    """The console on SQLite and on PostgreSQL."""
    return Console(engine, clock)


# ---------------------------------------------------------------------- live server
def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@dataclass
class LiveServer:
    url: str
    username: str
    password: str
    log: Path

    def login(self, page, username: str | None = None, password: str | None = None) -> None:
        """Sign in through the login form in a Playwright page and wait for the home page."""
        page.goto(f"{self.url}/login")
        page.fill("#username", username or self.username)
        page.fill("#password", password or self.password)
        page.click("button[type=submit]")
        page.wait_for_url(f"{self.url}/")


@pytest.fixture
def live_server(sqlite_engine, tmp_path) -> Iterator[LiveServer]:
    """`prokus serve` in a subprocess on a free 127.0.0.1 port, on a migrated temporary
    SQLite database holding one supervisor (`supervisor1`)."""
    add_operator(sqlite_engine, "supervisor1", "supervisor")
    port = _free_port()
    log = tmp_path / "serve.log"
    env = {**os.environ, "DATABASE_URL": sqlite_engine.url.render_as_string(False),
           "LOG_JSON": "0", "LOG_LEVEL": "INFO"}
    with open(log, "w") as out:
        process = subprocess.Popen([str(PROKUS), "serve", "--host", "127.0.0.1", "--port",
                                    str(port)], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 30
        while True:
            if process.poll() is not None:
                pytest.fail(f"prokus serve exited with {process.returncode}:\n"
                            f"{log.read_text()}")
            try:
                if httpx.get(f"{url}/login", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"prokus serve did not answer within 30 s:\n{log.read_text()}")
            time.sleep(0.2)
        yield LiveServer(url, "supervisor1", PASSWORD, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _chromium() -> str | None:
    return shutil.which("chromium") or shutil.which("chromium-browser")


@pytest.fixture(scope="module")
def chromium_browser() -> Iterator[object]:
    """Debian's headless Chromium driven by Playwright. Skipped when it is missing, unless
    PROKUS_REQUIRE_BROWSER=1 (CI), where that is a failure. Module-scoped: Playwright's sync
    API keeps an event loop running while it is open, which would break `asyncio.run` in
    tests collected after a browser test."""
    required = os.environ.get("PROKUS_REQUIRE_BROWSER") == "1"
    executable = _chromium()
    try:
        from playwright.sync_api import sync_playwright
    except ImportError:
        sync_playwright = None
    missing = ("the playwright package is not installed (pip install -e '.[dev]')"
               if sync_playwright is None else
               "Chromium is not installed (apt-get install chromium)" if executable is None
               else None)
    if missing:
        if required:
            pytest.fail(f"browser tests are required (PROKUS_REQUIRE_BROWSER=1) but {missing}")
        pytest.skip(f"browser tests skipped: {missing}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=executable, headless=True,
            args=["--no-sandbox", "--disable-dev-shm-usage", "--disable-gpu"])
        try:
            yield browser
        finally:
            browser.close()


@pytest.fixture
def browser_page(chromium_browser):
    """A fresh browser context (no cookies) at 1366x768, in Indonesian."""
    context = chromium_browser.new_context(viewport={"width": 1366, "height": 768},
                                           locale="id-ID")
    page = context.new_page()
    page.set_default_timeout(15_000)
    try:
        yield page
    finally:
        context.close()


@pytest.fixture(scope="session")
def screenshots() -> Path:
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    return SCREENSHOTS
