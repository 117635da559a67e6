"""The outbox worker under database faults: a short outage, a step that fails, an outcome
that cannot be recorded at once, errors that are not worth retrying. A fake sender counts
every API call, so "never sent twice" is read from its log, not from the database."""

from __future__ import annotations

import asyncio
import gc
import logging
import time
from collections import Counter

import pytest
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, OperationalError, ProgrammingError

from db.engine import make_sessionmaker
from db.models import OutboxItem, OutboxMessage
from outbox import store
from outbox.worker import SENT, Outcome, Worker, WorkerConfig
from tests import test_outbox as outbox_tests
from tests.test_outbox import queue

FIRST_CHAT = 8_000_000


def make_users(sessions, count: int, start: int = FIRST_CHAT) -> list[int]:
    """Users with chats from FIRST_CHAT (apart from tests/test_outbox.py's)."""
    return outbox_tests.make_users(sessions, count, start)


def db_down() -> OperationalError:
    return OperationalError("SELECT 1", {}, Exception("connection refused"))


class FakeSender:
    """Answers "sent" and logs every call; `on_send(n)` runs before the n-th answer."""

    def __init__(self, on_send=None) -> None:
        self.calls: list[tuple[str, str]] = []
        self.on_send = on_send

    async def send(self, chat_id: str, text: str) -> Outcome:
        self.calls.append((chat_id, text))
        if self.on_send is not None:
            self.on_send(len(self.calls))
        return Outcome(SENT)

    def per_chat(self) -> Counter:
        return Counter(chat for chat, _ in self.calls)


class FlakySessions:
    """A sessionmaker whose transactions fail with a lost connection while `down`."""

    def __init__(self, sessions) -> None:
        self.sessions = sessions
        self.down = False
        self.refused = 0

    def begin(self):
        if self.down:
            self.refused += 1
            raise db_down()
        return self.sessions.begin()

    def __call__(self):
        return self.sessions()


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)




def config(**kw) -> WorkerConfig:
    values = {"rate": 50.0, "poll_seconds": 0.05, "heartbeat_seconds": 0.2,
              "max_backoff_seconds": 0.5} | kw
    return WorkerConfig(**values)


def run(sessions, sender, timeout: float = 30, **kw) -> Worker:
    """Run a worker --until-idle; the test fails if it does not end within `timeout`."""
    worker = Worker(sessions, sender, config(**kw))

    async def main() -> Worker:
        await asyncio.wait_for(worker.run(asyncio.Event(), until_idle=True), timeout)
        return worker

    return asyncio.run(main())


def states(sessions) -> Counter:
    with sessions() as session:
        return Counter(session.scalars(select(OutboxItem.state)).all())


def fail_first(monkeypatch, name: str, times: int, error=db_down) -> list[int]:
    """Make store.<name> raise `error()` on its first `times` calls; returns the call log."""
    real = getattr(store, name)
    calls: list[int] = []

    def flaky(*args, **kw):
        calls.append(1)
        if len(calls) <= times:
            raise error()
        return real(*args, **kw)

    monkeypatch.setattr(store, name, flaky)
    return calls


def test_a_database_outage_mid_broadcast_does_not_end_the_worker(sessions):
    """The database goes away for 3 s just as the 3rd message is answered (its outcome,
    the next claims and starts all fail). Before: the outcome was dropped after 1.4 s of
    retries, the row stayed `sending` and the run never ended."""
    users = make_users(sessions, 12)
    queue(sessions, users)
    flaky = FlakySessions(sessions)

    def outage(n: int) -> None:
        if n == 3:
            flaky.down = True
            asyncio.get_running_loop().call_later(3.0, setattr, flaky, "down", False)

    sender = FakeSender(outage)
    run(flaky, sender, rate=10.0)
    assert flaky.refused > 5
    assert sender.per_chat() == Counter({str(FIRST_CHAT + i): 1 for i in range(12)})
    assert states(sessions) == Counter({"sent": 12})


def test_a_failing_batch_step_is_retried_and_its_rows_reconciled(sessions, monkeypatch):
    """reserve_slots fails more often than db() retries. Before: the error ended run()."""
    users = make_users(sessions, 5)
    queue(sessions, users)
    calls = fail_first(monkeypatch, "reserve_slots", 6)
    sender = FakeSender()
    run(sessions, sender)
    assert len(calls) > 6
    assert sender.per_chat() == Counter({str(FIRST_CHAT + i): 1 for i in range(5)})
    assert states(sessions) == Counter({"sent": 5})


def test_a_failing_report_step_is_retried_and_the_report_still_comes(sessions, monkeypatch):
    """Looking for finished messages fails 6 times. Before: the error ended run() and the
    mentor never got the report."""
    *users, mentor = make_users(sessions, 4)
    message = queue(sessions, users, report_to=mentor)
    calls = fail_first(monkeypatch, "finished_unreported", 6)
    sender = FakeSender()
    run(sessions, sender, report=lambda progress: f"laporan: {progress.states}")
    assert len(calls) > 6
    assert sender.per_chat()[str(FIRST_CHAT + 3)] == 1
    assert (str(FIRST_CHAT + 3), "laporan: {'sent': 3}") in sender.calls
    with sessions() as session:
        assert session.get(OutboxMessage, message).reported_at is not None


def test_the_report_is_sent_when_the_last_outcomes_land_during_the_idle_check(
        sessions, monkeypatch):
    """The recorder takes the last outcomes and is still writing them when the --until-idle
    loop looks for reports (none yet) and then asks whether anything is left; the write
    lands in between. Before: the loop ended, _drain queued the report and nobody sent it
    (seen once in CI as the mentor's missing "Laporan pengiriman pesan")."""
    user, mentor = make_users(sessions, 2)
    queue(sessions, [user], report_to=mentor)
    real_finish = store.finish_sends

    def slow_finish(*args, **kw):  # the recorder's batched write of "sent"
        time.sleep(0.3)
        return real_finish(*args, **kw)

    monkeypatch.setattr(store, "finish_sends", slow_finish)
    real_idle = Worker._idle

    async def idle_after_the_write(self):
        await asyncio.sleep(0.6)  # the recorder's write commits in this window
        return await real_idle(self)

    monkeypatch.setattr(Worker, "_idle", idle_after_the_write)
    sender = FakeSender()
    run(sessions, sender, record_batch=1, report=lambda progress: f"laporan: {progress.states}")
    assert sender.calls[0][0] == str(FIRST_CHAT)
    assert (str(FIRST_CHAT + 1), "laporan: {'sent': 1}") in sender.calls
    assert states(sessions) == Counter({"sent": 2})


def test_an_outcome_is_recorded_however_long_the_database_takes(sessions, monkeypatch):
    """Recording "sent" fails 8 times in a row (more than db() retries). Before: the
    outcome was dropped, the row stayed `sending` and --until-idle never ended."""
    users = make_users(sessions, 2)
    queue(sessions, users)
    calls = fail_first(monkeypatch, "finish_sends", 8)  # batched outcomes
    sender = FakeSender()
    run(sessions, sender)
    # 8 refused, then the write that took (both outcomes may be in one batch: flushes take
    # turns, so a flush waiting for the recorder's retries writes what came meanwhile too).
    assert len(calls) >= 9
    assert sender.per_chat() == Counter({str(FIRST_CHAT): 1, str(FIRST_CHAT + 1): 1})
    assert states(sessions) == Counter({"sent": 2})


def test_a_lost_answer_to_start_send_gives_the_row_back(sessions, monkeypatch):
    """start_send commits but its answer is lost (the connection drops): nothing was sent,
    so the row goes back to pending and is sent once later. Before: only a `claimed` row
    was released, this one stayed `sending` and --until-idle never ended."""
    [user] = make_users(sessions, 1)
    queue(sessions, [user])
    real, lost = store.start_sends, []  # a block of attempts (here: one row)

    def answer_lost(session, *args):
        result = real(session, *args)
        if not lost:
            lost.append(1)
            session.commit()
            raise db_down()
        return result

    monkeypatch.setattr(store, "start_sends", answer_lost)
    sender = FakeSender()
    run(sessions, sender)
    assert sender.calls == [(str(FIRST_CHAT), "Halo peserta Prokus")]
    with sessions() as session:
        item = session.scalars(select(OutboxItem)).one()
    assert (item.state, item.attempts) == ("sent", 1)


def test_an_error_that_will_not_pass_is_not_retried_and_the_row_is_uncertain(
        sessions, monkeypatch):
    """An integrity error while recording the outcome: logged, not retried (one call),
    the row ends uncertain (sent, but not recorded) and is never resent. Before: every
    DBAPIError was retried, then the row stayed `sending` and the run never ended."""
    [user] = make_users(sessions, 1)
    queue(sessions, [user])
    calls = fail_first(monkeypatch, "finish_sends", 100, lambda: IntegrityError(
        "UPDATE outbox", {}, Exception("duplicate key")))
    sender = FakeSender()
    run(sessions, sender)
    assert len(calls) == 1
    assert len(sender.calls) == 1
    assert states(sessions) == Counter({"uncertain": 1})


def test_db_retries_only_transient_errors(sessions):
    worker = Worker(sessions, sender=None)  # type: ignore[arg-type]
    for error in (IntegrityError("INSERT", {}, Exception("duplicate key")),
                  ProgrammingError("SELECT", {}, Exception("no such column"))):
        calls = []

        def broken(session, error=error, calls=calls):
            calls.append(1)
            raise error

        with pytest.raises(type(error)):
            asyncio.run(worker.db(broken))
        assert len(calls) == 1


def test_a_failing_send_task_is_logged_and_its_exception_retrieved(
        sessions, monkeypatch, caplog):
    """A bug after the send (here: in recording) ends the task; the worker logs it and
    the loop never reports "Task exception was never retrieved"."""
    [user] = make_users(sessions, 1)
    queue(sessions, [user])
    sender = FakeSender()
    worker = Worker(sessions, sender, config())
    unhandled: list[dict] = []

    async def broken(item_id, outcome):
        raise RuntimeError("bug in recording")

    monkeypatch.setattr(worker, "_record", broken)

    async def main() -> None:
        asyncio.get_running_loop().set_exception_handler(lambda loop, ctx: unhandled.append(ctx))
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        while not sender.calls:
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        gc.collect()
        stop.set()
        await asyncio.wait_for(task, 20)
        gc.collect()
        await asyncio.sleep(0)

    with caplog.at_level(logging.WARNING, logger="outbox.worker"):
        asyncio.run(main())
    assert unhandled == []
    assert any(getattr(r, "step", None) == "send task" for r in caplog.records)
    assert len(sender.calls) == 1


def test_the_worker_reconciles_its_own_loose_rows(sessions):
    """After an error, rows the worker claimed but no task holds go back to pending and
    rows it was sending without a task that knows the outcome become uncertain; rows its
    tasks still hold are left alone."""
    users = make_users(sessions, 4)
    queue(sessions, users)
    worker = Worker(sessions, FakeSender(), config(), worker_id="w1")
    with sessions.begin() as session:
        items = session.scalars(select(OutboxItem).order_by(OutboxItem.id)).all()
        for item, state in zip(items, ("claimed", "claimed", "sending", "sending"),
                               strict=True):
            item.state, item.claimed_by = state, "w1"
        held = [items[1].id, items[3].id]
    worker.holding.update(held)
    worker.reconcile_needed = True
    asyncio.run(worker._reconcile())
    with sessions() as session:
        got = [i.state for i in session.scalars(select(OutboxItem).order_by(OutboxItem.id))]
    assert got == ["pending", "claimed", "uncertain", "sending"]
    assert not worker.reconcile_needed
