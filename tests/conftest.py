"""Shared fixtures: a temporary database per test (SQLite, and PostgreSQL when reachable),
a fake NLU for routing tests, and the real Rasa NLU server for the session."""

from __future__ import annotations

import os
import shutil
import sqlite3
import uuid
from collections.abc import Iterator
from pathlib import Path

import psycopg
import pytest
from sqlalchemy import Engine
from sqlalchemy.engine import make_url

from actions.dialogue import Dialogue
from actions.responses import Responses
from bot.app import Assistant
from bot.settings import Settings
from db import crypto
from db.crypto import generate_key
from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from nlu.client import NLUUnavailable, Parse

# Personal data is sealed with a data key (db.crypto). Without one configured, the test
# session makes a throw-away key (and says so in the header): subprocesses inherit it.
if not os.environ.get("PROKUS_DATA_KEY") and not os.environ.get("PROKUS_DATA_KEY_FILE"):
    os.environ["PROKUS_DATA_KEY"] = generate_key()
    _DATA_KEY_NOTE = "data key: none configured, a throw-away key was made for this session"
else:
    _DATA_KEY_NOTE = "data key: the configured PROKUS_DATA_KEY / PROKUS_DATA_KEY_FILE"


def pytest_report_header(config) -> str:
    return _DATA_KEY_NOTE


@pytest.fixture(autouse=True)
def _data_key_from_environment():
    """Each test starts (and leaves) with the keyring of the environment: a CLI run in the
    test with another PROKUS_DATA_KEY must not leak into the next test."""
    crypto.use(None)
    yield
    crypto.use(None)


PG_ADMIN_URL = os.environ.get(
    "TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRE_PG = os.environ.get("PROKUS_REQUIRE_POSTGRES") == "1"


def _pg_available() -> bool:
    try:
        with psycopg.connect(_libpq(PG_ADMIN_URL), connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def _libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


@pytest.fixture(scope="session")
def pg_available() -> bool:
    available = _pg_available()
    if not available and REQUIRE_PG:
        pytest.fail(f"PostgreSQL is required (PROKUS_REQUIRE_POSTGRES=1) but {PG_ADMIN_URL} "
                    "does not answer")
    return available


def _wants_migrated(request: pytest.FixtureRequest) -> bool:
    """True when the test also uses `engine`, so its database can start as a template copy."""
    return "engine" in request.fixturenames


@pytest.fixture
def postgres_url(request: pytest.FixtureRequest, pg_available: bool) -> Iterator[str]:
    """Create a throw-away PostgreSQL database and drop it afterwards.

    Empty, unless the test uses `engine`: then it is created at once as a copy of the
    session's migrated template (one CREATE DATABASE instead of one plus the migrations)."""
    if not pg_available:
        pytest.skip("PostgreSQL is not reachable")
    name = f"prokus_test_{uuid.uuid4().hex[:12]}"
    admin = _libpq(PG_ADMIN_URL)
    template = request.getfixturevalue("_pg_template") if _wants_migrated(request) else None
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"' + (f' TEMPLATE "{template}"' if template else ""))
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    if template:
        _MIGRATED.add(url)
    try:
        yield url
    finally:
        _MIGRATED.discard(url)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def db_url(request, tmp_path: Path) -> str:
    """A fresh, empty database URL: once on SQLite, once on PostgreSQL (already migrated
    when the test uses `engine`, which would migrate it anyway)."""
    if request.param == "sqlite":
        return f"sqlite:///{tmp_path / 'test.db'}"
    return request.getfixturevalue("postgres_url")


# Databases created from the migrated template by `postgres_url` in this test.
_MIGRATED: set[str] = set()


@pytest.fixture(scope="session")
def _sqlite_template(tmp_path_factory) -> Path:
    """A SQLite file migrated once per session; tests get a copy of it."""
    path = tmp_path_factory.mktemp("sqlite-template") / "template.db"
    upgrade(f"sqlite:///{path}")
    conn = sqlite3.connect(path)
    try:  # one self-contained file: no WAL beside it
        conn.execute("PRAGMA wal_checkpoint(TRUNCATE)")
        conn.execute("PRAGMA journal_mode=DELETE")
    finally:
        conn.close()
    return path


@pytest.fixture(scope="session")
def _pg_template(pg_available: bool) -> Iterator[str]:
    """A PostgreSQL database migrated once per session, the template of each test's."""
    if not pg_available:
        pytest.skip("PostgreSQL is not reachable")
    name = f"prokus_template_{uuid.uuid4().hex[:12]}"
    admin = _libpq(PG_ADMIN_URL)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    try:
        upgrade(make_url(admin).set(database=name).render_as_string(hide_password=False))
        yield name
    finally:
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _migrate_from_template(request: pytest.FixtureRequest, url: str) -> None:
    """Give the empty database at `url` the migrated schema by copying the session's template
    (a file copy on SQLite, CREATE DATABASE ... TEMPLATE on PostgreSQL)."""
    parsed = make_url(url)
    if parsed.get_backend_name() == "sqlite":
        target = Path(parsed.database)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(request.getfixturevalue("_sqlite_template"), target)
        return
    if url in _MIGRATED:
        return
    template = request.getfixturevalue("_pg_template")
    with psycopg.connect(_libpq(PG_ADMIN_URL), autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{parsed.database}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{parsed.database}" TEMPLATE "{template}"')


@pytest.fixture
def engine(request: pytest.FixtureRequest, db_url: str) -> Iterator[Engine]:
    """A migrated database on both back-ends (a copy of the session's migrated template)."""
    _migrate_from_template(request, db_url)
    eng = make_engine(db_url)
    yield eng
    eng.dispose()


@pytest.fixture
def sqlite_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A migrated SQLite database, for tests that are not about the back-end."""
    url = f"sqlite:///{tmp_path / 'core.db'}"
    _migrate_from_template(request, url)
    eng = make_engine(url)
    yield eng
    eng.dispose()


class FakeNLU:
    """Keyword NLU for routing tests: first matching keyword wins; can be switched off."""

    def __init__(self, rules: dict[str, tuple[str, float] | Parse] | None = None) -> None:
        self.rules = rules or {
            "halo": ("greet", 0.98),
            "makasih": ("thanks", 0.97),
            "dadah": ("goodbye", 0.95),
            "bingung": ("help", 0.9),
            "sim": ("out_of_scope", 0.92),
            "prokus apa": ("faq", 0.95),
            "hmm": ("greet", 0.2),
        }
        self.down = False
        self.seen: list[str] = []

    def parse(self, text: str) -> Parse:
        self.seen.append(text)
        if self.down:
            raise NLUUnavailable("fake server down")
        for keyword, rule in self.rules.items():
            if keyword in text.lower():
                if isinstance(rule, Parse):
                    return rule
                intent, confidence = rule
                selector = {}
                if intent == "faq":
                    selector = {"faq": {"response": {"intent_response_key": "faq/what_is_prokus"}}}
                return Parse(intent, confidence, response_selector=selector)
        return Parse("nlu_fallback", 0.3)


@pytest.fixture
def fake_nlu() -> FakeNLU:
    return FakeNLU()


@pytest.fixture(scope="session")
def texts() -> Responses:
    return Responses.load()


@pytest.fixture
def assistant(sqlite_engine: Engine, fake_nlu: FakeNLU, texts: Responses) -> Assistant:
    return Assistant(Dialogue(fake_nlu, texts), make_sessionmaker(sqlite_engine))


@pytest.fixture(scope="session")
def settings() -> Settings:
    return Settings.from_env()


@pytest.fixture(scope="session")
def nlu_server_url(settings: Settings, tmp_path_factory) -> Iterator[str]:
    """The real Rasa NLU server with the current model, on a free loopback port."""
    from nlu.model import train
    from nlu.server import NLUServer, free_port

    model = train(settings.project_root, settings.rasa_executable, settings.models_dir)
    log_file = tmp_path_factory.mktemp("nlu") / "server.log"
    server = NLUServer(
        settings.rasa_executable, model, free_port(), log_file, settings.project_root
    )
    server.start()
    try:
        yield server.url
    finally:
        server.stop()


@pytest.fixture
def fake():
    """The fake Telegram Bot API server on a free loopback port."""
    from tests.fakes.telegram_api import FakeTelegram

    server = FakeTelegram().start()
    yield server
    server.stop()


@pytest.fixture(autouse=True)
def _restore_logging():
    """configure_logging() replaces root handlers; put them back after each test."""
    import logging

    root = logging.getLogger()
    handlers, level = root.handlers[:], root.level
    yield
    root.handlers[:] = handlers
    root.setLevel(level)


# ---------------------------------------------------------------------- conversations
# The core with a fixed clock, the keyword NLU and the small fake registry of
# tests/chat_helpers.py; a module may override any of these (test_mentoring's clock).
@pytest.fixture
def clock():
    from tests.chat_helpers import TODAY, Clock

    return Clock(TODAY)


@pytest.fixture
def nlu():
    from tests.chat_helpers import make_nlu

    return make_nlu()


@pytest.fixture
def bot(sqlite_engine, nlu, texts, clock):
    from tests.chat_helpers import load_registry, make_bot

    load_registry(sqlite_engine)
    return make_bot(sqlite_engine, nlu, texts, clock)
