"""Messages sent while PostgreSQL is down are not lost (issue: "Pesan Anda tidak hilang"
was said, and they were lost). A private PostgreSQL cluster is stopped and started under
the real PTB bot, which talks to the fake Bot API."""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Iterator

import psycopg
import pytest
from sqlalchemy import select
from sqlalchemy.engine import make_url

from actions.dialogue import Dialogue
from bot.app import Assistant, RetryPolicy
from bot.telegram import build_application
from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from db.models import Conversation, InboxUpdate
from nlu.client import Parse
from tests.chat_helpers import TODAY, Clock, load_registry, make_nlu
from tests.pg_cluster import PgCluster, private_cluster
from tests.telegram_harness import BotRunner, Chat

pytestmark = pytest.mark.postgres
OUTAGE = float(os.environ.get("PROKUS_TURN_OUTAGE_SECONDS", "10"))
BUDI = "3201051203900001"


@pytest.fixture(scope="module")
def cluster() -> Iterator[PgCluster]:
    """A throw-away PostgreSQL cluster this module may stop and start."""
    yield from private_cluster()


@pytest.fixture
def engine(cluster, request):
    name = f"turns_{request.node.name[:40].lower()}"
    with psycopg.connect(cluster.url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.execute(f'CREATE DATABASE "{name}"')
    url = make_url(cluster.url).set(database=name).render_as_string(hide_password=False)
    upgrade(url)
    eng = make_engine(url)
    load_registry(eng)
    yield eng
    eng.dispose()


class GatedNLU:
    """The keyword NLU, but a parse of `gated` waits until `release` is set."""

    def __init__(self, gated: str) -> None:
        self.inner = make_nlu()
        self.gated = gated
        self.entered = threading.Event()
        self.release = threading.Event()

    def parse(self, text: str) -> Parse:
        if text == self.gated:
            self.entered.set()
            self.release.wait(30)
        return self.inner.parse(text)


def start_bot(fake, engine, nlu, texts) -> tuple[BotRunner, Assistant]:
    assistant = Assistant(Dialogue(nlu, texts, clock=Clock(TODAY)), make_sessionmaker(engine),
                          retry=RetryPolicy(budget=1.0, first=0.2))
    return BotRunner(build_application(fake.token, assistant, fake.base_url)).start(), assistant


def form_of(engine) -> dict:
    with make_sessionmaker(engine)() as session:
        return session.scalars(select(Conversation.state)).one().get("form") or {}


def test_messages_sent_while_postgresql_is_down_are_answered_after(cluster, engine, fake,
                                                                    texts):
    runner, _ = start_bot(fake, engine, make_nlu(), texts)
    try:
        chat = Chat(fake, 3001, timeout=60)
        chat.command("daftar").expect("Setuju").press(texts("consent_yes")).expect("16 angka")
        cluster.stop()
        for text in (BUDI, "budi santoso", "ya", "081234567890"):  # four answers, typed
            chat.send(text)
        time.sleep(OUTAGE)  # the outage itself: nothing to wait for
        cluster.start()
        chat.expect("nama lengkap").expect("tanggal lahir").expect("HP").expect("kabupaten")
    finally:
        runner.stop()
    form = form_of(engine)
    assert form["step"] == "kabupaten"
    values = form["values"]
    assert values["nik"] == BUDI and values["name"] == "Budi Santoso"
    assert values["birth_date"] == "1990-03-12" and values["phone"] == "+6281234567890"
    with make_sessionmaker(engine)() as session:  # every update handled once, none waiting
        rows = session.scalars(select(InboxUpdate)).all()
        assert rows and all(r.processed_at is not None for r in rows)
    internal = texts("internal_error").strip()
    assert not [m for m in fake.texts(3001) if internal in m]


def test_a_turn_caught_by_the_outage_tells_the_user_and_finishes_later(cluster, engine, fake,
                                                                       texts):
    nlu = GatedNLU("syarat ikut apa saja?")
    runner, _ = start_bot(fake, engine, nlu, texts)
    try:
        chat = Chat(fake, 3002, timeout=60)
        chat.send("syarat ikut apa saja?")
        assert nlu.entered.wait(15)  # the turn is at the NLU, no transaction open
        cluster.stop()
        nlu.release.set()  # the turn runs again with the parse: the database is away
        chat.expect(texts("turn_delayed").strip()[:40])
        time.sleep(2)
        cluster.start()
        chat.expect(texts("faq/requirements").strip()[:30])
    finally:
        runner.stop()
    sent = fake.texts(3002)
    assert sum(texts("faq/requirements").strip()[:30] in m for m in sent) == 1
