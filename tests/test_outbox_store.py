"""Outbox edge cases in the store: an outcome never recorded, a worker its peers took for
dead, a reminder cancelled after a worker claimed it, a known outcome after recovery."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from db.engine import make_sessionmaker
from db.models import OutboxItem, OutboxWorker, User
from db.outbox import enqueue
from outbox import store

T0 = datetime(2030, 3, 1, 8, 0, tzinfo=UTC)
PER_CHAT = timedelta(seconds=1)


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


def setup_rows(sessions, count: int, due: datetime = T0) -> tuple[int, list[int]]:
    """`count` Telegram users and one message to them all; returns (message, item ids)."""
    with sessions.begin() as session:
        users = [User(channel="telegram", external_id=str(9_000_000 + i))
                 for i in range(count)]
        session.add_all(users)
        session.flush()
        message = enqueue(session, "reminder", "Besok pendampingan", [u.id for u in users],
                          "test", due_at=due)
        session.flush()
        ids = list(session.scalars(select(OutboxItem.id).where(
            OutboxItem.message_id == message.id).order_by(OutboxItem.id)))
        return message.id, ids


def tx(sessions, fn, *args):
    with sessions.begin() as session:
        return fn(session, *args)


def item(sessions, item_id: int) -> OutboxItem:
    with sessions() as session:
        return session.get(OutboxItem, item_id)


def test_a_row_whose_outcome_was_never_recorded_becomes_uncertain_after_the_timeout(
        sessions):
    """Its owner is alive (it beats) but could not record the outcome. Before: the row
    stayed `sending` forever (only dead workers' rows were recovered)."""
    _, (old, fresh) = setup_rows(sessions, 2)
    tx(sessions, store.register_worker, "w1", T0)
    tx(sessions, store.claim, "w1", 10, T0, PER_CHAT)
    tx(sessions, store.start_send, old, "w1", T0, PER_CHAT)
    later = T0 + timedelta(seconds=150)
    tx(sessions, store.start_send, fresh, "w1", later - timedelta(seconds=5), PER_CHAT)
    assert tx(sessions, store.beat_and_recover, "w1", later) == (0, 1)
    assert (item(sessions, old).state, item(sessions, old).error) == (
        "uncertain", store.OUTCOME_LOST)
    assert item(sessions, fresh).state == "sending"
    # the timeout is a setting
    assert tx(sessions, store.recover, later, timedelta(seconds=2)) == (0, 1)
    assert item(sessions, fresh).state == "uncertain"


def test_a_worker_taken_for_dead_re_registers_and_keeps_its_new_rows(sessions):
    """w1 stalls past WORKER_TIMEOUT: a peer deletes it and takes back its claim. When w1
    beats again it is registered again, and what it claims afterwards stays its own.
    Before: the heartbeat was an UPDATE of a deleted row, so peers recovered (and marked
    uncertain) everything w1 did from then on."""
    _, (first, second) = setup_rows(sessions, 2)
    tx(sessions, store.register_worker, "w1", T0)
    tx(sessions, store.register_worker, "peer", T0)
    assert tx(sessions, store.claim, "w1", 1, T0, PER_CHAT) == [first]
    stalled = T0 + store.WORKER_TIMEOUT + timedelta(seconds=1)
    assert tx(sessions, store.beat_and_recover, "peer", stalled) == (1, 0)
    with sessions() as session:
        assert session.get(OutboxWorker, "w1") is None
    assert tx(sessions, store.start_send, first, "w1", stalled, PER_CHAT) is None
    tx(sessions, store.heartbeat, "w1", stalled)                  # w1 wakes up
    claimed = tx(sessions, store.claim, "w1", 2, stalled, PER_CHAT)
    assert sorted(claimed) == [first, second]
    tx(sessions, store.start_send, second, "w1", stalled, PER_CHAT)
    assert tx(sessions, store.beat_and_recover, "peer", stalled + timedelta(seconds=2)) \
        == (0, 0)
    assert item(sessions, first).state == "claimed"
    assert item(sessions, second).state == "sending"


def test_a_worker_never_recovers_its_own_rows_as_dead(sessions):
    """After a long outage our own beat is old; our heartbeat and our recovery run in one
    transaction, so we are alive when we judge."""
    _, (row,) = setup_rows(sessions, 1)
    tx(sessions, store.register_worker, "w1", T0)
    tx(sessions, store.claim, "w1", 1, T0, PER_CHAT)
    tx(sessions, store.start_send, row, "w1", T0, PER_CHAT)
    back = T0 + timedelta(seconds=30)  # beyond WORKER_TIMEOUT, within SENDING_TIMEOUT
    assert tx(sessions, store.beat_and_recover, "w1", back) == (0, 0)
    assert item(sessions, row).state == "sending"


def test_a_cancelled_reminder_already_claimed_is_never_sent(sessions):
    """Before: cancel_pending skipped `claimed` rows and start_send sent them."""
    message, (row,) = setup_rows(sessions, 1)
    tx(sessions, store.register_worker, "w1", T0)
    assert tx(sessions, store.claim, "w1", 1, T0, PER_CHAT) == [row]
    assert tx(sessions, store.cancel_pending, [message], "session cancelled") == 1
    assert tx(sessions, store.start_send, row, "w1", T0, PER_CHAT) is None
    got = item(sessions, row)
    assert (got.state, got.error, got.attempts) == ("cancelled", "session cancelled", 0)


def test_cancel_leaves_rows_already_being_sent(sessions):
    message, (row,) = setup_rows(sessions, 1)
    tx(sessions, store.claim, "w1", 1, T0, PER_CHAT)
    tx(sessions, store.start_send, row, "w1", T0, PER_CHAT)
    assert tx(sessions, store.cancel_pending, [message], "session cancelled") == 0
    assert item(sessions, row).state == "sending"


def test_a_known_outcome_replaces_recoverys_uncertain_but_a_retry_does_not(sessions):
    """The owner learnt "sent" after recovery gave up on the row: the truth is recorded.
    "Nothing sent, retry" does not bring the row back (uncertain rows are never resent)."""
    _, (sent, retried) = setup_rows(sessions, 2)
    tx(sessions, store.claim, "w1", 2, T0, PER_CHAT)
    for row in (sent, retried):
        tx(sessions, store.start_send, row, "w1", T0, PER_CHAT)
    tx(sessions, store.recover, T0 + timedelta(minutes=5))  # w1 not registered: dead
    tx(sessions, store.finish_send, sent, "w1", store.SENT, T0 + timedelta(minutes=5))
    tx(sessions, store.retry_later, retried, "w1", T0, "Telegram 502", 5)
    assert item(sessions, sent).state == "sent"
    assert item(sessions, retried).state == "uncertain"
    # someone else's outcome never lands on the row
    tx(sessions, store.finish_send, retried, "w2", store.SENT, T0)
    assert item(sessions, retried).state == "uncertain"


def test_give_back_undoes_an_attempt_that_was_recorded_but_not_made(sessions):
    _, (claimed, sending) = setup_rows(sessions, 2)
    tx(sessions, store.claim, "w1", 2, T0, PER_CHAT)
    tx(sessions, store.start_send, sending, "w1", T0, PER_CHAT)
    for row in (claimed, sending):
        tx(sessions, store.give_back, row, "w1")
        got = item(sessions, row)
        assert (got.state, got.claimed_by, got.attempts, got.attempted_at) == (
            "pending", None, 0, None)


def test_a_cancel_cannot_slip_between_start_sends_check_and_its_commit(sessions,
                                                                       monkeypatch):
    """start_send reads the row, then decides: a cancel from another session either
    happens before (the row is not sent) or waits for the commit (it sees `sending`);
    it never lands in between, to be overwritten (SQLite ignores FOR UPDATE)."""
    import threading

    message_id, (item_id,) = setup_rows(sessions, 1)
    assert tx(sessions, store.claim, "w1", 5, T0 + timedelta(seconds=5),
              timedelta(seconds=1)) == [item_id]
    outcome: dict[str, int] = {}
    original = store._locked_for_start

    def locked_then_cancel(session, row_id):
        row = original(session, row_id)

        def cancel():
            with sessions.begin() as other:
                outcome["cancelled"] = store.cancel_pending(other, [message_id], "batal")

        outcome["thread"] = threading.Thread(target=cancel)
        outcome["thread"].start()
        outcome["thread"].join(0.5)  # it must wait for our transaction
        return row

    monkeypatch.setattr(store, "_locked_for_start", locked_then_cancel)
    with sessions.begin() as session:
        attempt = store.start_send(session, item_id, "w1", T0 + timedelta(seconds=5),
                                   timedelta(seconds=1))
    outcome["thread"].join(10)
    with sessions() as session:
        state = session.get(OutboxItem, item_id).state
    assert (attempt is not None, state, outcome["cancelled"]) in (
        (True, "sending", 0), (False, "cancelled", 1))
