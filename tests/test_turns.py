"""The turn around the dialogue core: no transaction open during an NLU call, a guarded
NLU, stale form buttons, users coming back after blocking the bot, database outages."""

from __future__ import annotations

import asyncio
import threading
import time

import psycopg
import pytest
from sqlalchemy import event, select, update

from actions.dialogue import Dialogue
from actions.types import Turn
from bot.app import Assistant, RetryPolicy, TurnFailed
from db import inbox
from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from db.models import Conversation, InboxUpdate, User, utcnow
from nlu.client import NLUUnavailable, Parse
from nlu.guard import GuardedNLU
from tests.chat_helpers import TODAY, Chat, Clock, load_registry, make_bot, make_nlu
from tests.conftest import FakeNLU
from tests.fakes.tcp_proxy import TcpProxy

BUDI = "3201051203900001"


class BarrierNLU(FakeNLU):
    """Each parse waits until `parties` parses are in flight at once (or fails the test),
    and meanwhile checks that no database transaction of ours is open."""

    def __init__(self, parties: int, check) -> None:
        super().__init__()
        self.barrier = threading.Barrier(parties, timeout=10)
        self.check = check
        self.problems: list[str] = []

    def parse(self, text_: str) -> Parse:
        # BrokenBarrierError when another user is stuck on the database.
        # Every turn is now inside its NLU call: none may hold a transaction. One of them
        # checks (two probes at once would take SQLite's write lock from each other).
        if self.barrier.wait() == 0:
            problem = self.check()
            if problem:
                self.problems.append(problem)
        self.barrier.wait()  # keep both in their NLU call until the check is done
        return super().parse(text_)


def _idle_in_transaction(url: str) -> str | None:
    name = url.rsplit("/", 1)[1]
    admin = url.replace("postgresql+psycopg://", "postgresql://")
    with psycopg.connect(admin, autocommit=True) as conn:
        count = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE datname = %s "
            "AND state LIKE 'idle in transaction%%'", (name,)).fetchone()[0]
    return f"{count} idle transactions during an NLU call" if count else None


def _sqlite_write_free(engine) -> str | None:
    """Take SQLite's write lock from another connection without waiting."""
    raw = engine.raw_connection()
    try:
        cursor = raw.cursor()
        cursor.execute("PRAGMA busy_timeout = 0")
        try:
            cursor.execute("BEGIN IMMEDIATE")
            cursor.execute("ROLLBACK")
        except Exception as exc:  # database is locked
            return f"write lock held during an NLU call: {exc}"
        return None
    finally:
        raw.close()


def test_two_users_with_a_slow_nlu_are_answered_side_by_side(engine, db_url, texts):
    """Both NLU calls must be in flight together: a turn holding the database (SQLite's
    write lock, an open PostgreSQL transaction) during its NLU call would stop the other."""
    if engine.dialect.name == "sqlite":
        nlu = BarrierNLU(2, lambda: _sqlite_write_free(engine))
    else:
        nlu = BarrierNLU(2, lambda: _idle_in_transaction(db_url))
    bot = Assistant(Dialogue(nlu, texts), make_sessionmaker(engine))
    for user in ("1", "2"):  # both users exist (their first write is not the point)
        bot.handle(Turn("telegram", user, text="/start"))

    async def both():
        return await asyncio.gather(
            bot.handle_async(Turn("telegram", "1", text="halo")),
            bot.handle_async(Turn("telegram", "2", text="halo")))

    first, second = asyncio.run(both())
    assert nlu.problems == []
    assert "internal" not in first[0].text.lower() and first[0].text == second[0].text
    with make_sessionmaker(engine)() as session:
        states = session.scalars(select(Conversation.state)).all()
    assert [s["last_intent"] for s in states] == ["greet", "greet"]


def test_a_turn_needing_no_nlu_does_not_wait_for_a_hung_nlu(sqlite_engine, texts):
    release = threading.Event()

    class Hung(FakeNLU):
        def parse(self, text_):
            release.wait(10)
            raise NLUUnavailable("hung")

    guarded = GuardedNLU(Hung(), max_concurrent=2, wait_seconds=0.5)
    bot = Assistant(Dialogue(guarded, texts), make_sessionmaker(sqlite_engine))

    async def scenario():
        hung = [asyncio.ensure_future(bot.handle_async(Turn("telegram", str(i), text="halo")))
                for i in range(6)]
        await asyncio.sleep(0.2)
        # A command: no NLU. It must be answered while the NLU calls hang.
        menu = await asyncio.wait_for(bot.handle_async(Turn("telegram", "99", text="/menu")), 3)
        release.set()
        return menu, await asyncio.gather(*hung)

    menu, hung = asyncio.run(scenario())
    assert menu and menu[0].buttons
    nlu_down = texts("nlu_down")
    assert all(replies[0].text == nlu_down for replies in hung)


def test_calls_shed_while_every_slot_is_busy_do_not_open_the_breaker():
    """A burst on a healthy but busy NLU: calls that wait too long for a slot are refused
    (the user gets the "gangguan" text for that message), but the breaker stays closed,
    so the next calls are served instead of refused for open_seconds."""
    release = threading.Event()

    class Busy(FakeNLU):
        def parse(self, text_):
            release.wait(5)
            return super().parse(text_)

    guarded = GuardedNLU(Busy(), max_concurrent=1, failures=3, wait_seconds=0.05)
    holder = threading.Thread(target=guarded.parse, args=("halo",))
    holder.start()
    time.sleep(0.1)
    for _ in range(5):
        with pytest.raises(NLUUnavailable, match="busy"):
            guarded.parse("halo")
    release.set()
    holder.join()
    assert not guarded.is_open
    assert guarded.parse("halo") is not None


def test_breaker_opens_after_failures_and_probes_later():
    now = [0.0]
    inner = FakeNLU()
    inner.down = True
    guarded = GuardedNLU(inner, failures=3, open_seconds=30, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(NLUUnavailable):
            guarded.parse("halo")
    assert guarded.is_open and len(inner.seen) == 3
    with pytest.raises(NLUUnavailable):
        guarded.parse("halo")
    assert len(inner.seen) == 3  # refused at once, the server was not asked
    now[0] = 31.0
    inner.down = False
    assert guarded.parse("halo").intent == "greet"  # the probe closes it
    assert not guarded.is_open and len(inner.seen) == 4


# ---------------------------------------------------------------------- stale buttons
@pytest.fixture
def chat(sqlite_engine, texts):
    load_registry(sqlite_engine)
    return Chat(make_bot(sqlite_engine, make_nlu(), texts, Clock(TODAY)))


def _form(chat: Chat) -> dict:
    with make_sessionmaker(chat.bot.sessions.kw["bind"])() as session:
        return session.scalars(select(Conversation.state)).one().get("form") or {}


def test_an_old_consent_button_does_not_act_on_a_later_step(chat, texts):
    chat.send("/daftar")
    yes = next(b.payload for r in chat.replies for b in r.buttons)
    chat.send(payload=yes).send(BUDI)
    assert _form(chat)["step"] == "name"
    chat.send(payload=yes)  # the consent "Ya" pressed again, now at the name step
    assert texts("form_button_expired").strip() in chat.text
    assert _form(chat)["step"] == "name"
    assert chat.text.rstrip().endswith(texts("registration_ask_name").strip())


def test_a_button_of_another_form_is_refused(chat, texts):
    chat.send("/cek")
    cek_yes = next(b.payload for r in chat.replies for b in r.buttons)
    chat.send(payload=cek_yes).send("batal").send("/daftar")  # now the registration runs
    assert _form(chat)["name"] == "registration" and _form(chat)["step"] == "consent"
    stop = "/form:stop"
    chat.send(payload=stop)  # never offered at this step: refused, the form keeps running
    assert texts("form_button_expired").strip() in chat.text
    assert _form(chat)["name"] == "registration"


def test_buttons_offered_at_the_current_step_still_work(chat):
    chat.send("/daftar")
    chat.press("Ya, setuju") if "Ya, setuju" in chat.labels() else chat.send(
        payload=chat.replies[-1].buttons[0].payload)
    assert _form(chat)["step"] == "nik"


# ---------------------------------------------------------------------- users coming back
def test_a_user_who_blocked_the_bot_is_active_again_when_they_write(assistant):
    assistant.handle(Turn("telegram", "77", text="/start"))
    with assistant.sessions.begin() as session:
        session.execute(update(User).values(is_active=False))
    assistant.handle(Turn("telegram", "77", text="/menu"))
    with assistant.sessions() as session:
        assert session.scalars(select(User.is_active)).one() is True


# ---------------------------------------------------------------------- inbox
def test_an_update_is_handled_once(assistant):
    first = assistant.handle(Turn("telegram", "5", text="/menu", update_id=1001))
    again = assistant.handle(Turn("telegram", "5", text="/menu", update_id=1001))
    assert first and again == []
    with assistant.sessions() as session:
        row = session.get(InboxUpdate, 1001)
        assert row.processed_at is not None


def test_stored_updates_are_pending_until_their_turn(sqlite_engine):
    sessions = make_sessionmaker(sqlite_engine)
    with sessions.begin() as session:
        assert inbox.store(session, [(7, "5", {"update_id": 7}), (8, "5", {})], utcnow()) == [7, 8]
        assert inbox.store(session, [(7, "5", {"update_id": 7})], utcnow()) == []
    with sessions.begin() as session:
        assert [r.update_id for r in inbox.pending(session)] == [7, 8]
        assert inbox.claim(session, 7, utcnow()) and not inbox.claim(session, 7, utcnow())
        assert [r.update_id for r in inbox.pending(session, after=7)] == [8]


# ---------------------------------------------------------------------- database outages
@pytest.mark.postgres
def test_a_turn_waits_out_a_short_database_outage(postgres_url, texts):
    """PostgreSQL unreachable for ~2 s: the turn is retried and its answer is stored."""
    upgrade(postgres_url)
    host_port = int(postgres_url.split("@", 1)[1].split("/", 1)[0].rsplit(":", 1)[1])
    proxy = TcpProxy(host_port)
    proxy.start()
    url = postgres_url.replace(f":{host_port}/", f":{proxy.port}/")
    engine = make_engine(url)
    try:
        load_registry(engine)
        bot = make_bot(engine, make_nlu(), texts, Clock(TODAY))
        bot.retry = RetryPolicy(budget=15)
        chat = Chat(bot)
        chat.send("/daftar").send(payload="/form:yes")
        proxy.stop()
        threading.Timer(2.0, proxy.start).start()
        chat.send(BUDI)  # answered once the database is back
        assert "nama" in chat.text.lower()
        with make_sessionmaker(engine)() as session:
            form = session.scalars(select(Conversation.state)).one()["form"]
        assert form["step"] == "name" and form["values"]["nik"] == BUDI
    finally:
        proxy.stop()
        engine.dispose()


def test_a_stored_update_is_kept_when_the_database_stays_away(sqlite_engine, texts):
    """After the retries, a stored update raises TurnFailed (the channel keeps it for a
    replay) instead of an apology that claims nothing was lost; it is handled later."""
    bot = make_bot(sqlite_engine, make_nlu(), texts, Clock(TODAY))
    with bot.sessions.begin() as session:
        inbox.store(session, [(42, "5", {"update_id": 42})], utcnow())
    engine = make_engine(str(sqlite_engine.url))

    @event.listens_for(engine, "connect")
    def _no_waiting(dbapi, _record):
        dbapi.execute("PRAGMA busy_timeout = 50")

    short = make_bot(engine, make_nlu(), texts, Clock(TODAY))
    short.retry = RetryPolicy(budget=0.5, first=0.1)
    locker = sqlite_engine.raw_connection()
    locker.cursor().execute("BEGIN EXCLUSIVE")  # the database is unusable for others
    try:
        with pytest.raises(TurnFailed):
            short.handle(Turn("telegram", "5", text="/menu", update_id=42))
        replies = short.handle(Turn("telegram", "5", text="/menu"))  # not stored: told so
        assert replies[0].text == texts("internal_error")
    finally:
        locker.cursor().execute("ROLLBACK")
        locker.close()
        engine.dispose()
    assert bot.handle(Turn("telegram", "5", text="/menu", update_id=42))  # replayed later
    with bot.sessions() as session:
        assert session.get(InboxUpdate, 42).processed_at is not None


def test_processed_updates_are_forgotten_after_a_day(sqlite_engine):
    from datetime import timedelta

    sessions = make_sessionmaker(sqlite_engine)
    now = utcnow()
    with sessions.begin() as session:
        inbox.store(session, [(1, "5", {}), (2, "5", {}), (3, "5", {})], now)
        inbox.claim(session, 1, now - timedelta(hours=25))
        inbox.claim(session, 2, now - timedelta(hours=1))
    with sessions.begin() as session:
        assert inbox.purge(session, now) == 1
        assert [r.update_id for r in session.scalars(select(InboxUpdate))] == [2, 3]


def _parse_noting(guarded: GuardedNLU, results: list[str]) -> None:
    """One parse through the guard; "ok" or "busy" (refused) appended to `results`."""
    try:
        guarded.parse("halo")
        results.append("ok")
    except NLUUnavailable:
        results.append("busy")


def test_a_burst_of_60_users_waits_for_the_nlu_instead_of_being_refused():
    """60 parses at once on the default guard (4 in flight): all answered, none refused
    with "gangguan" (the queue limit was 16 and shed ordinary bursts, seen in the
    load-balancer test once the bot got faster)."""
    class Quick(FakeNLU):
        def parse(self, text_):
            time.sleep(0.02)
            return super().parse(text_)

    guarded = GuardedNLU(Quick(), max_concurrent=4, wait_seconds=5)
    results: list[str] = []
    threads = [threading.Thread(target=_parse_noting, args=(guarded, results))
               for _ in range(60)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(10)
    assert results.count("ok") == 60, results.count("busy")


def test_a_slow_nlu_refuses_calls_beyond_its_queue_at_once():
    """With every slot busy and the queue full, a call is refused at once (the "gangguan"
    text) instead of waiting in an unbounded queue behind the others."""
    release = threading.Event()

    class Slow(FakeNLU):
        def parse(self, text_):
            release.wait(10)
            return super().parse(text_)

    guarded = GuardedNLU(Slow(), max_concurrent=2, max_waiting=2, wait_seconds=5)
    results: list[str] = []
    threads = [threading.Thread(target=_parse_noting, args=(guarded, results))
               for _ in range(4)]  # 2 in flight, 2 waiting
    for thread in threads:
        thread.start()
    deadline = time.monotonic() + 5
    while guarded._waiting < 2 and time.monotonic() < deadline:
        threading.Event().wait(0.01)
    with pytest.raises(NLUUnavailable, match="busy"):
        guarded.parse("halo")  # the fifth: refused without waiting
    release.set()
    for thread in threads:
        thread.join(10)
    assert results.count("ok") == 4


def test_a_probe_that_raises_something_else_does_not_keep_the_breaker_open():
    now = [0.0]

    class Broken(FakeNLU):
        def parse(self, text_):
            raise RuntimeError("client closed")

    guarded = GuardedNLU(Broken(), failures=1, open_seconds=30, clock=lambda: now[0])
    with pytest.raises(NLUUnavailable):
        guarded.parse("halo")
    now[0] = 31.0
    with pytest.raises(NLUUnavailable, match="failed"):
        guarded.parse("halo")  # the probe fails with another error...
    now[0] = 62.0
    guarded.inner = FakeNLU()
    assert guarded.parse("halo").intent == "greet"  # ...and a later probe still runs


def test_with_the_nlu_down_a_question_at_a_free_text_step_is_not_stored(chat, texts):
    """The NLU cannot tell a question from an answer while it is down: the step is asked
    again once, and the same text sent again is taken as the answer."""
    chat.send("/daftar").send("ya").send(BUDI).send("budi santoso").send("ya")
    chat.send("081234567890").send("Kabupaten Bogor").send("Cibinong").send("Pakansari")
    chat.send("kuliner")
    assert _form(chat)["step"] == "description"
    chat.bot.dialogue.nlu.down = True
    question = "bagaimana kalau usaha saya jualan online?"
    chat.send(question)
    assert texts("nlu_down_in_form").strip() in chat.text
    assert _form(chat)["step"] == "description" and "description" not in _form(chat)["values"]
    chat.send(question)  # it was the answer after all
    assert _form(chat)["step"] == "months"
    assert _form(chat)["values"]["description"].startswith("bagaimana")
