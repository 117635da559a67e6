"""The outbox in the database: claiming rows, recording each send before and after the API
call, recovering the rows of a worker that died, the shared send pacer, and reports.

Row states:
  pending -> claimed (by one worker) -> sending (committed just before the API call) ->
  sent | blocked | failed | uncertain; pending -> expired | cancelled.
A row left `claimed` by a dead worker was never attempted and goes back to `pending`; a row
left `sending` may or may not have reached Telegram (there is no idempotency key), so it
becomes `uncertain`: reported, never resent silently.

Liveness rule. A worker is alive while its heartbeat (`beat_at`) is younger than
WORKER_TIMEOUT. Any worker's `recover` treats the rows of a worker that is not alive as
orphans: `claimed` back to pending, `sending` to uncertain, and deletes its registration.
That verdict is final for those rows: the stalled worker, when it wakes, finds them no
longer its own (`start_send` refuses a row that is not CLAIMED by it), except that an
outcome it does know (sent, blocked, failed) replaces the `uncertain` that recovery wrote.
The heartbeat is an upsert, so a stalled worker re-registers at its next beat and the rows
it claims afterwards are its own again. A worker that beats again before WORKER_TIMEOUT
has passed loses nothing. The heartbeat and the worker's own `recover` run in one
transaction, so a worker never judges itself dead.
Independently of liveness, a row `sending` for longer than the sending timeout (default
SENDING_TIMEOUT; the API call itself times out after seconds) becomes uncertain whoever
owns it: its outcome could not be recorded (a database error the owner could not get past).
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from sqlalchemy import bindparam, delete, exists, func, or_, select, true, update
from sqlalchemy.dialects.postgresql import insert as pg_insert
from sqlalchemy.dialects.sqlite import insert as sqlite_insert
from sqlalchemy.orm import Session, aliased

from db.models import OutboxItem, OutboxMessage, OutboxPacer, OutboxWorker, User
from db.outbox import PENDING, PRIORITY, REPLY

REPLY_PRIORITY = PRIORITY[REPLY]

CLAIMED, SENDING = "claimed", "sending"
SENT, BLOCKED, FAILED, UNCERTAIN = "sent", "blocked", "failed", "uncertain"
EXPIRED, CANCELLED = "expired", "cancelled"
FINAL = frozenset({SENT, BLOCKED, FAILED, UNCERTAIN, EXPIRED, CANCELLED})
PACER = "telegram"
WORKER_TIMEOUT = timedelta(seconds=10)  # no heartbeat for this long: the worker is dead
SENDING_TIMEOUT = timedelta(seconds=120)  # `sending` this long: the outcome was lost
# Errors written by recovery; an owner that later learns the outcome may replace them.
DIED_DURING_SEND = "worker stopped during the send"
OUTCOME_LOST = "outcome not recorded in time"
RECOVERY_ERRORS = (DIED_DURING_SEND, OUTCOME_LOST)


def _insert(session: Session):
    return pg_insert if session.get_bind().dialect.name == "postgresql" else sqlite_insert


# ---------------------------------------------------------------------- workers
def register_worker(session: Session, worker_id: str, now: datetime) -> None:
    """Announce a worker (idempotent) and make sure the shared pacer row exists."""
    heartbeat(session, worker_id, now)
    session.execute(_insert(session)(OutboxPacer).values(name=PACER, next_at=0.0)
                    .on_conflict_do_nothing(index_elements=["name"]))


def heartbeat(session: Session, worker_id: str, now: datetime) -> None:
    """Upsert the worker's heartbeat: a worker its peers took for dead re-registers."""
    session.execute(_insert(session)(OutboxWorker)
                    .values(id=worker_id, started_at=now, beat_at=now)
                    .on_conflict_do_update(index_elements=["id"], set_={"beat_at": now}))


def beat_and_recover(session: Session, worker_id: str, now: datetime,
                     sending_timeout: timedelta = SENDING_TIMEOUT) -> tuple[int, int]:
    """Heartbeat, then recover others' orphans, in one transaction (never ourselves)."""
    heartbeat(session, worker_id, now)
    return recover(session, now, sending_timeout)


def unregister_worker(session: Session, worker_id: str) -> None:
    """A clean stop: give back what was claimed but not attempted."""
    session.execute(update(OutboxItem).where(OutboxItem.claimed_by == worker_id,
                                             OutboxItem.state == CLAIMED)
                    .values(state=PENDING, claimed_by=None, claimed_at=None))
    session.execute(delete(OutboxWorker).where(OutboxWorker.id == worker_id))


def recover(session: Session, now: datetime,
            sending_timeout: timedelta = SENDING_TIMEOUT) -> tuple[int, int]:
    """Rows held by workers without a recent heartbeat: `claimed` back to pending,
    `sending` to uncertain; and any row `sending` for longer than `sending_timeout`,
    whoever owns it, to uncertain. Returns (requeued, uncertain)."""
    live = select(OutboxWorker.id).where(OutboxWorker.beat_at >= now - WORKER_TIMEOUT)
    orphan = or_(OutboxItem.claimed_by.is_(None), OutboxItem.claimed_by.not_in(live))
    requeued = session.execute(
        update(OutboxItem).where(OutboxItem.state == CLAIMED, orphan)
        .values(state=PENDING, claimed_by=None, claimed_at=None)).rowcount
    # claimed_by is kept, so the owner can still record an outcome it learns later.
    uncertain = session.execute(
        update(OutboxItem).where(OutboxItem.state == SENDING, orphan)
        .values(state=UNCERTAIN, error=DIED_DURING_SEND)).rowcount
    uncertain += session.execute(
        update(OutboxItem).where(OutboxItem.state == SENDING,
                                 OutboxItem.attempted_at < now - sending_timeout)
        .values(state=UNCERTAIN, error=OUTCOME_LOST)).rowcount
    session.execute(delete(OutboxWorker).where(OutboxWorker.beat_at < now - WORKER_TIMEOUT))
    return requeued, uncertain


def reconcile(session: Session, worker_id: str, holding: list[int]) -> tuple[int, int]:
    """After a database error, a live worker's own rows that no task of it holds any more:
    `claimed` back to pending, `sending` to uncertain (nobody knows their outcome). Rows
    still held are left to their tasks. Returns (requeued, uncertain)."""
    mine = OutboxItem.claimed_by == worker_id
    loose = OutboxItem.id.not_in(holding) if holding else true()
    requeued = session.execute(
        update(OutboxItem).where(mine, OutboxItem.state == CLAIMED, loose)
        .values(state=PENDING, claimed_by=None, claimed_at=None)).rowcount
    uncertain = session.execute(
        update(OutboxItem).where(mine, OutboxItem.state == SENDING, loose)
        .values(state=UNCERTAIN, error=DIED_DURING_SEND)).rowcount
    return requeued, uncertain


def live_workers(session: Session, now: datetime) -> int:
    return session.scalar(select(func.count()).select_from(OutboxWorker)
                          .where(OutboxWorker.beat_at >= now - WORKER_TIMEOUT)) or 0


# ---------------------------------------------------------------------- claiming
def _claimable(now: datetime, per_chat: timedelta):
    """Due pending rows whose recipient has nothing in flight; bulk rows (priority > 0)
    also wait `per_chat` after the recipient's last message (replies do not); a reply
    waits for the replies before it (in order per chat, also after a retry's backoff).
    The fast path's `_reply_statements` restates these for replies: keep them in step."""
    other = aliased(OutboxItem)
    busy = exists().where(other.user_id == OutboxItem.user_id, or_(
        other.state.in_((CLAIMED, SENDING)),
        (OutboxItem.priority > REPLY_PRIORITY) & (other.attempted_at > now - per_chat)))
    earlier_reply = exists().where(
        other.user_id == OutboxItem.user_id, other.priority == REPLY_PRIORITY,
        other.id < OutboxItem.id, other.state == PENDING)
    return (OutboxItem.state == PENDING, OutboxItem.due_at <= now, ~busy,
            ~((OutboxItem.priority == REPLY_PRIORITY) & earlier_reply))


@dataclass(frozen=True)
class Claimed:
    item_id: int
    message_id: int


def claim_rows(session: Session, worker_id: str, limit: int, now: datetime,
               per_chat: timedelta, reply_grace: timedelta = timedelta(0),
               channel: str | None = None) -> list[Claimed]:
    """Claim up to `limit` due rows, replies first (then notices and reminders, then
    broadcasts), at most one per recipient (see `_claimable`), only of recipients on
    `channel` when given (a Telegram worker leaves console users' rows to the console).
    PostgreSQL: FOR UPDATE SKIP LOCKED, so workers never wait for each other; SQLite: the
    conditional UPDATE below runs under the database's single write lock. Replies younger
    than `reply_grace` are left to the fast path that sends them right after their turn."""
    # First the head of the queue in claim order, straight from ix_outbox_claim (on
    # PostgreSQL locked, skipping rows another worker is claiming); then the per-row checks
    # (nothing in flight for the recipient, per-chat spacing, replies in order, channel)
    # for those rows only, not for every pending row (30,000 anti-joins and a sort per
    # claim otherwise).
    head = (select(OutboxItem.id)
            .where(OutboxItem.state == PENDING, OutboxItem.due_at <= now,
                   or_(OutboxItem.priority != REPLY_PRIORITY,
                       OutboxItem.due_at <= now - reply_grace))
            .order_by(OutboxItem.priority, OutboxItem.due_at, OutboxItem.id)
            .limit(limit * 4))
    if session.get_bind().dialect.name == "postgresql":
        head = head.with_for_update(skip_locked=True)
    candidates = session.scalars(head).all()
    if not candidates:
        return []
    stmt = (select(OutboxItem.id, OutboxItem.user_id, OutboxItem.message_id)
            .where(OutboxItem.id.in_(candidates), *_claimable(now, per_chat))
            .order_by(OutboxItem.priority, OutboxItem.due_at, OutboxItem.id))
    if channel is not None:
        stmt = stmt.join(User, User.id == OutboxItem.user_id).where(User.channel == channel)
    seen: set[int] = set()
    ids, messages = [], {}
    for row_id, user_id, message_id in session.execute(stmt):
        if user_id not in seen and len(ids) < limit:
            seen.add(user_id)
            ids.append(row_id)
            messages[row_id] = message_id
    return [Claimed(i, messages[i]) for i in _mark_claimed(session, ids, worker_id, now)]


def claim(session: Session, worker_id: str, limit: int, now: datetime,
          per_chat: timedelta, reply_grace: timedelta = timedelta(0),
          channel: str | None = None) -> list[int]:
    """`claim_rows`, the row ids only."""
    return [c.item_id for c in claim_rows(session, worker_id, limit, now, per_chat,
                                          reply_grace, channel)]


def _mark_claimed(session: Session, ids: list[int], worker_id: str,
                  now: datetime) -> list[int]:
    if not ids:
        return []
    claimed = session.scalars(
        update(OutboxItem).where(OutboxItem.id.in_(ids), OutboxItem.state == PENDING)
        .values(state=CLAIMED, claimed_by=worker_id, claimed_at=now)
        .returning(OutboxItem.id)).all()
    return sorted(claimed, key=ids.index)


def claim_reply(session: Session, channel: str, external_id: str, worker_id: str,
                now: datetime) -> int | None:
    """The fast path: claim the next due reply of one user (who just wrote), if nothing of
    theirs is in flight. Returns its row id, or None. (Prebuilt Core statements: this runs
    about twice per turn, and building the ORM query each time was a fifth of a busy
    bot's CPU.)"""
    pick, mark = _reply_statements(session.get_bind().dialect.name)
    connection = session.connection()
    row_id = connection.execute(pick, {"channel": channel, "external_id": external_id,
                                       "now": now}).scalar()
    if row_id is None:
        return None
    return connection.execute(mark, {"item_id": row_id, "claimer": worker_id,
                                     "at": now}).scalar()


_REPLY_STATEMENTS: dict[str, tuple[Any, Any]] = {}


def _reply_statements(dialect: str) -> tuple[Any, Any]:
    """claim_reply's two statements, built once per dialect: pick the user's next due
    reply (the conditions of `_claimable` for a reply: keep the two in step), then mark it
    claimed."""
    if dialect not in _REPLY_STATEMENTS:
        items, users = OutboxItem.__table__, User.__table__
        other = items.alias("other")
        busy = exists().where(other.c.user_id == items.c.user_id,
                              other.c.state.in_((CLAIMED, SENDING)))
        earlier_reply = exists().where(
            other.c.user_id == items.c.user_id, other.c.priority == REPLY_PRIORITY,
            other.c.id < items.c.id, other.c.state == PENDING)
        pick = (select(items.c.id).join(users, users.c.id == items.c.user_id)
                .where(users.c.channel == bindparam("channel"),
                       users.c.external_id == bindparam("external_id"),
                       items.c.priority == REPLY_PRIORITY, items.c.state == PENDING,
                       items.c.due_at <= bindparam("now"), ~busy, ~earlier_reply)
                .order_by(items.c.id).limit(1))
        if dialect == "postgresql":
            pick = pick.with_for_update(of=items, skip_locked=True)
        mark = (update(items).where(items.c.id == bindparam("item_id"),
                                    items.c.state == PENDING)
                .values(state=CLAIMED, claimed_by=bindparam("claimer"),
                        claimed_at=bindparam("at"))
                .returning(items.c.id))
        _REPLY_STATEMENTS[dialect] = (pick, mark)
    return _REPLY_STATEMENTS[dialect]


def reserve_slots(session: Session, count: int, interval: float, now: float,
                  max_ahead: float | None = None) -> float | None:
    """Reserve `count` send slots `interval` seconds apart on the shared pacer; returns the
    first slot (seconds since the epoch). All senders together keep the global rate.

    Replies reserve unconditionally. Bulk (notices, reminders, broadcasts) passes
    `max_ahead`: it gets slots only while the pacer is less than that far ahead of now, and
    None otherwise, so a burst of replies pushes bulk back instead of queueing behind it.
    """
    stmt = _reserve_statement(session.get_bind().dialect.name, max_ahead is not None)
    new_next = session.connection().execute(stmt, {
        "now": now, "span": count * interval,
        "limit": None if max_ahead is None else now + max_ahead}).scalar_one_or_none()
    return None if new_next is None else new_next - count * interval


_RESERVE: dict[tuple[str, bool], Any] = {}


def _reserve_statement(dialect: str, bounded: bool) -> Any:
    """reserve_slots' statement, built once per dialect and mode (Core: the ORM's
    bulk-update machinery costs CPU on every send)."""
    if (dialect, bounded) not in _RESERVE:
        larger = func.max if dialect == "sqlite" else func.greatest
        pacer = OutboxPacer.__table__
        now = bindparam("now", type_=pacer.c.next_at.type)
        stmt = (update(pacer).where(pacer.c.name == PACER)
                .values(next_at=larger(pacer.c.next_at, now)
                        + bindparam("span", type_=pacer.c.next_at.type))
                .returning(pacer.c.next_at))
        if bounded:
            stmt = stmt.where(pacer.c.next_at <= bindparam("limit",
                                                           type_=pacer.c.next_at.type))
        _RESERVE[(dialect, bounded)] = stmt
    return _RESERVE[(dialect, bounded)]


def pause(session: Session, until: float) -> None:
    """Telegram said "retry after": no worker sends before `until`."""
    session.execute(update(OutboxPacer).where(OutboxPacer.name == PACER,
                                              OutboxPacer.next_at < until)
                    .values(next_at=until))


@dataclass(frozen=True)
class Attempt:
    item_id: int
    chat_id: str
    text: str
    markup: dict | None = None
    message_id: int = 0


def start_send(session: Session, item_id: int, worker_id: str, now: datetime,
               per_chat: timedelta) -> Attempt | None:
    """Record the attempt before the API call (committed by the caller before sending).
    Returns None when the row is no longer ours, has expired, or its chat got a message
    too recently (then it is postponed). The row and its recipient are locked first, so a
    concurrent `cancel_pending` or recovery either happens before (and is seen) or waits;
    on PostgreSQL two workers cannot both pass the per-chat check. (Prebuilt Core
    statements: this runs for every message sent.)"""
    st = _start_statements(session.get_bind().dialect.name)
    connection = session.connection()
    row = _locked_for_start(session, item_id)
    if row is None or row.state != CLAIMED or row.claimed_by != worker_id:
        return None
    outcome = None
    if row.expires_at is not None and row.expires_at <= now:
        outcome = (EXPIRED, "too late: the session had started")
    elif row.channel != "telegram":
        outcome = (FAILED, f"no Telegram chat ({row.channel})")
    elif not row.is_active:
        outcome = (BLOCKED, "user blocked the bot earlier")
    if outcome is not None:
        connection.execute(st["close"], {"item_id": item_id, "to": outcome[0],
                                         "why": outcome[1]})
        return None
    if row.priority != REPLY_PRIORITY:
        recent = connection.execute(st["recent"], {"user": row.user_id, "item_id": item_id,
                                                   "since": now - per_chat}).scalar()
        if recent is not None:
            connection.execute(st["postpone"], {"item_id": item_id,
                                                "due": recent + per_chat})
            return None
    connection.execute(st["start"], {"item_id": item_id, "at": now})
    return Attempt(item_id, row.external_id, row.text or "", row.markup)


def _locked_for_start(session: Session, item_id: int) -> Any:
    """The row, its recipient and its message, locked for this transaction (as
    `_locked`: FOR UPDATE on PostgreSQL, the write lock first on SQLite)."""
    dialect = session.get_bind().dialect.name
    st = _start_statements(dialect)
    connection = session.connection()
    if dialect == "sqlite":
        connection.execute(st["touch"], {"item_id": item_id})
    return connection.execute(st["read"], {"item_id": item_id}).one_or_none()


_START_STATEMENTS: dict[str, dict[str, Any]] = {}


def _start_statements(dialect: str) -> dict[str, Any]:
    """start_send's statements, built once per dialect."""
    if dialect not in _START_STATEMENTS:
        items, users = OutboxItem.__table__, User.__table__
        messages = OutboxMessage.__table__
        by_id = items.c.id == bindparam("item_id")
        read = (select(items.c.state, items.c.claimed_by, items.c.expires_at,
                       items.c.priority, items.c.user_id, users.c.channel,
                       users.c.is_active, users.c.external_id, messages.c.text,
                       messages.c.markup)
                .join(users, users.c.id == items.c.user_id)
                .join(messages, messages.c.id == items.c.message_id)
                .where(by_id))
        if dialect == "postgresql":
            read = read.with_for_update(of=[items, users])
        _START_STATEMENTS[dialect] = {
            "touch": update(items).where(by_id).values(id=items.c.id),
            "read": read,
            "close": update(items).where(by_id).values(state=bindparam("to"),
                                                       error=bindparam("why")),
            "recent": select(func.max(items.c.attempted_at)).where(
                items.c.user_id == bindparam("user"), items.c.id != bindparam("item_id"),
                items.c.attempted_at > bindparam("since")),
            "postpone": update(items).where(by_id).values(
                state=PENDING, claimed_by=None, claimed_at=None, due_at=bindparam("due")),
            "start": update(items).where(by_id).values(
                state=SENDING, attempted_at=bindparam("at"), attempts=items.c.attempts + 1),
        }
    return _START_STATEMENTS[dialect]


@dataclass(frozen=True)
class ReplyStart:
    """What `begin_reply` did: the row claimed, its send slot and, when the attempt was
    recorded in the same transaction, what to send (`attempt`). `done`: the row needs no
    call (it expired, or its recipient is gone)."""
    item_id: int
    slot: float
    attempt: Attempt | None = None
    done: bool = False


def begin_reply(session: Session, channel: str, external_id: str, worker_id: str,
                now: datetime, interval: float, now_s: float, start_by: float,
                per_chat: timedelta) -> ReplyStart | None:
    """The fast path in one transaction: claim the user's next due reply, reserve its send
    slot and, when the pacer is free before `start_by` (the caller can call the API at
    once), record the attempt too (`start_send`). A later slot leaves the row claimed: the
    caller waits and records the attempt just before its slot, so a crash while it waits
    leaves nothing uncertain. None when nothing of the user's is due."""
    item_id = claim_reply(session, channel, external_id, worker_id, now)
    if item_id is None:
        return None
    # Is the shared pacer free now? Read without a lock: reserving comes last, so the pacer
    # row (whose lock every sender's transaction waits for) is held only for the commit.
    # A slot taken meanwhile by others makes ours later by a few intervals at most.
    ahead = session.connection().execute(_PACER_AHEAD).scalar()
    if ahead is not None and ahead > start_by:  # not yet: recorded just before its slot
        return ReplyStart(item_id, reserve_slots(session, 1, interval, now_s))
    attempt = start_send(session, item_id, worker_id, now, per_chat)
    if attempt is None:  # expired, or nobody to send it to: no slot needed
        return ReplyStart(item_id, 0.0, done=True)
    return ReplyStart(item_id, reserve_slots(session, 1, interval, now_s), attempt)


_PACER_AHEAD = select(OutboxPacer.__table__.c.next_at).where(
    OutboxPacer.__table__.c.name == PACER)


def give_back_replies(session: Session, channel: str, external_id: str, worker_id: str,
                      claimed_at: datetime) -> None:
    """A `begin_reply` whose answer was lost (nothing was sent): the user's row it may have
    claimed or started (ours, claimed at that call's `now`) goes back to pending. Rows of
    earlier calls are left alone: one may have been sent."""
    rows = session.scalars(
        select(OutboxItem.id).join(User, User.id == OutboxItem.user_id)
        .where(User.channel == channel, User.external_id == external_id,
               OutboxItem.claimed_by == worker_id, OutboxItem.claimed_at == claimed_at,
               OutboxItem.state.in_((CLAIMED, SENDING)))).all()
    for item_id in rows:
        give_back(session, item_id, worker_id)


def _locked(session: Session, item_id: int) -> OutboxItem | None:
    """The row, locked for this transaction. PostgreSQL: FOR UPDATE. SQLite ignores FOR
    UPDATE and pysqlite begins a transaction only at the first write, so a no-op UPDATE
    comes first: it takes the database's write lock, and no other writer (a cancel, a
    recovery) can change the row between this read and our commit."""
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(OutboxItem).where(OutboxItem.id == item_id)
                        .values(id=OutboxItem.id))
    return session.scalars(select(OutboxItem).where(OutboxItem.id == item_id)
                           .with_for_update().execution_options(populate_existing=True)
                           ).one_or_none()


def item_state(session: Session, item_id: int) -> tuple[str | None, datetime | None]:
    """A row's state and when it is due (None, None when it is gone)."""
    row = session.execute(select(OutboxItem.state, OutboxItem.due_at)
                          .where(OutboxItem.id == item_id)).one_or_none()
    return (row[0], row[1]) if row else (None, None)


def release_many(session: Session, item_ids: list[int], worker_id: str) -> None:
    """Give back claimed rows that were not attempted (no send slot for them yet)."""
    session.execute(update(OutboxItem).where(
        OutboxItem.id.in_(item_ids), OutboxItem.claimed_by == worker_id,
        OutboxItem.state == CLAIMED).values(state=PENDING, claimed_by=None, claimed_at=None))


def give_back(session: Session, item_id: int, worker_id: str) -> None:
    """Nothing was sent, but whether `start_send` committed is unknown (its answer was
    lost): a row still claimed, or `sending`, by us goes back to pending; the attempt, if
    recorded, does not count."""
    item = _locked(session, item_id)
    if item is None or item.claimed_by != worker_id or item.state not in (CLAIMED, SENDING):
        return
    if item.state == SENDING:
        item.attempts, item.attempted_at = max(0, item.attempts - 1), None
    item.state, item.claimed_by, item.claimed_at = PENDING, None, None


def _ours(session: Session, item_id: int, worker_id: str,
          known: bool = False) -> OutboxItem | None:
    """Our row in `sending`; with `known` (a final outcome we learnt), also our row that
    recovery declared uncertain meanwhile. Anything else is left as it is."""
    item = _locked(session, item_id)
    if item is None or item.claimed_by != worker_id:
        return None
    if item.state == SENDING:
        return item
    if known and item.state == UNCERTAIN and item.error in RECOVERY_ERRORS:
        return item
    return None


def finish_send(session: Session, item_id: int, worker_id: str, state: str, now: datetime,
                error: str | None = None) -> None:
    """Record the outcome after the API call (a known one replaces recovery's guess).
    (One prebuilt Core statement: this runs for every message sent.)"""
    stmt = _FINISH[state == UNCERTAIN]
    params = {"item_id": item_id, "claimer": worker_id, "to": state, "why": error,
              "at": now if state == SENT else None}
    user_id = session.connection().execute(stmt, params).scalar()
    if user_id is not None and state == BLOCKED:
        session.execute(update(User).where(User.id == user_id).values(is_active=False))


def _finish_statement(uncertain: bool) -> Any:
    """finish_send's statement, built once: our `sending` row (with a known outcome, also
    one that recovery declared uncertain meanwhile) gets its final state."""
    items = OutboxItem.__table__
    ours = items.c.state == SENDING
    if not uncertain:  # a known outcome also replaces recovery's `uncertain`
        ours = or_(ours, (items.c.state == UNCERTAIN) & items.c.error.in_(RECOVERY_ERRORS))
    return (update(items)
            .where(items.c.id == bindparam("item_id"), items.c.claimed_by == bindparam("claimer"),
                   ours)
            .values(state=bindparam("to"), error=bindparam("why"), claimed_by=None,
                    sent_at=func.coalesce(bindparam("at", type_=items.c.sent_at.type),
                                          items.c.sent_at))
            .returning(items.c.user_id))


_FINISH = {False: _finish_statement(False), True: _finish_statement(True)}


def retry_later(session: Session, item_id: int, worker_id: str, now: datetime,
                error: str, max_attempts: int) -> bool:
    """Back to pending after a backoff of 2, 4, 8... seconds (at most a minute), or failed
    after `max_attempts`. Returns whether it will be retried."""
    item = _ours(session, item_id, worker_id)
    if item is None:
        return False
    if item.attempts >= max_attempts:
        item.state, item.error, item.claimed_by = FAILED, f"{error} ({item.attempts}x)", None
        return False
    item.state, item.error, item.claimed_by, item.claimed_at = PENDING, error, None, None
    item.due_at = now + timedelta(seconds=min(60, 2 ** item.attempts))
    return True


def busy(session: Session, now: datetime, horizon: timedelta,
         channel: str | None = None) -> int:
    """Rows in flight anywhere, or due within `horizon` (a worker run --until-idle waits
    for these, not for tomorrow's reminders); with `channel`, due rows of that channel's
    users only (a Telegram worker does not wait for console users' rows)."""
    due = (OutboxItem.state == PENDING) & (OutboxItem.due_at <= now + horizon)
    if channel is not None:
        due = due & exists().where(User.id == OutboxItem.user_id, User.channel == channel)
    return session.scalar(select(func.count()).select_from(OutboxItem).where(or_(
        OutboxItem.state.in_((CLAIMED, SENDING)), due))) or 0


def undo_attempt(session: Session, item_id: int, worker_id: str, due: datetime,
                 error: str) -> None:
    """Telegram refused before sending (429): the attempt does not count."""
    item = _ours(session, item_id, worker_id)
    if item is None:
        return
    item.state, item.error, item.claimed_by, item.claimed_at = PENDING, error, None, None
    item.attempts, item.due_at, item.attempted_at = item.attempts - 1, due, None


# ---------------------------------------------------------------------- batches
@dataclass(frozen=True)
class MessageMeta:
    """What a worker needs of a message to send it, loaded once per message."""

    kind: str
    text: str
    markup: dict | None
    paid: bool
    paid_rate: float | None


def message_meta(session: Session, message_ids: list[int]) -> dict[int, MessageMeta]:
    """The text (decrypted by the column type), buttons and paid mode of messages."""
    if not message_ids:
        return {}
    rows = session.execute(select(OutboxMessage.id, OutboxMessage.kind, OutboxMessage.text,
                                  OutboxMessage.markup, OutboxMessage.paid,
                                  OutboxMessage.paid_rate)
                           .where(OutboxMessage.id.in_(sorted(set(message_ids))))).all()
    return {mid: MessageMeta(kind, text or "", markup, bool(paid), paid_rate)
            for mid, kind, text, markup, paid, paid_rate in rows}


def start_sends(session: Session, item_ids: list[int], worker_id: str, now: datetime,
                per_chat: timedelta) -> list[Attempt]:
    """`start_send` for a block of rows in one transaction: each row still ours is
    recorded `sending` (committed by the caller before any of them is sent), or expired,
    blocked, failed (not a Telegram chat) or postponed (its chat had a message too
    recently). Returns the attempts in the order of `item_ids`, without the text (the
    caller has it from `message_meta`, loaded once per message). Rows and recipients are
    locked in id order, so two workers cannot deadlock or both pass the per-chat check."""
    if not item_ids:
        return []
    ids = sorted(set(item_ids))
    if session.get_bind().dialect.name == "sqlite":  # take the write lock first (_locked)
        session.execute(update(OutboxItem).where(OutboxItem.id.in_(ids))
                        .values(id=OutboxItem.id))
    rows = session.execute(select(OutboxItem.id, OutboxItem.user_id, OutboxItem.message_id,
                                  OutboxItem.state, OutboxItem.claimed_by,
                                  OutboxItem.expires_at, OutboxItem.priority)
                           .where(OutboxItem.id.in_(ids)).order_by(OutboxItem.id)
                           .with_for_update()).all()
    mine = [r for r in rows if r.state == CLAIMED and r.claimed_by == worker_id]
    if not mine:
        return []
    users = {u.id: u for u in session.execute(
        select(User.id, User.channel, User.external_id, User.is_active)
        .where(User.id.in_(sorted({r.user_id for r in mine}))).order_by(User.id)
        .with_for_update())}
    bulk_users = sorted({r.user_id for r in mine if r.priority != REPLY_PRIORITY})
    recent = dict(session.execute(
        select(OutboxItem.user_id, func.max(OutboxItem.attempted_at))
        .where(OutboxItem.user_id.in_(bulk_users), OutboxItem.id.not_in(ids),
               OutboxItem.attempted_at > now - per_chat)
        .group_by(OutboxItem.user_id)).all()) if bulk_users else {}
    closed: dict[tuple[str, str], list[int]] = {}
    go: dict[int, Attempt] = {}
    for r in mine:
        user = users[r.user_id]
        if r.expires_at is not None and r.expires_at <= now:
            closed.setdefault((EXPIRED, "too late: the session had started"), []).append(r.id)
        elif user.channel != "telegram":
            closed.setdefault((FAILED, f"no Telegram chat ({user.channel})"), []).append(r.id)
        elif not user.is_active:
            closed.setdefault((BLOCKED, "user blocked the bot earlier"), []).append(r.id)
        elif r.priority != REPLY_PRIORITY and r.user_id in recent:
            session.execute(update(OutboxItem).where(OutboxItem.id == r.id).values(
                state=PENDING, claimed_by=None, claimed_at=None,
                due_at=recent[r.user_id] + per_chat))
        else:
            go[r.id] = Attempt(r.id, user.external_id, "", None, r.message_id)
    for (state, error), closed_ids in closed.items():
        session.execute(update(OutboxItem).where(OutboxItem.id.in_(closed_ids))
                        .values(state=state, error=error))
    if go:
        session.execute(update(OutboxItem).where(OutboxItem.id.in_(sorted(go))).values(
            state=SENDING, attempted_at=now, attempts=OutboxItem.attempts + 1))
    return [go[i] for i in item_ids if i in go]


def finish_sends(session: Session, item_ids: list[int], worker_id: str,
                 now: datetime) -> int:
    """Record "sent" for a block of rows after their API calls, in one statement (a known
    outcome replaces recovery's `uncertain`, as in `finish_send`). Returns the rows
    written."""
    if not item_ids:
        return 0
    ours = or_(OutboxItem.state == SENDING,
               (OutboxItem.state == UNCERTAIN) & OutboxItem.error.in_(RECOVERY_ERRORS))
    return session.execute(update(OutboxItem).where(
        OutboxItem.id.in_(sorted(item_ids)), OutboxItem.claimed_by == worker_id, ours)
        .values(state=SENT, error=None, claimed_by=None, sent_at=now)).rowcount


def give_back_many(session: Session, item_ids: list[int], worker_id: str) -> None:
    """`give_back` for each row of a block whose start was never confirmed."""
    for item_id in sorted(item_ids):
        give_back(session, item_id, worker_id)


# Adaptive paid rate: a 429 multiplies the allowed share of the target rate by CUT_FACTOR
# (not below MIN_SCALE); it then climbs back by CLIMB_PER_SECOND of the target each second.
CUT_FACTOR, MIN_SCALE, CLIMB_PER_SECOND = 0.5, 0.05, 0.1


def current_scale(scale: float, scaled_at: float, now: float) -> float:
    """The allowed share of the target rate at `now`, climbing back after a cut."""
    return min(1.0, scale + CLIMB_PER_SECOND * max(0.0, now - scaled_at))


def pacer_scale(session: Session) -> tuple[float, float]:
    """(scale, scaled_at) of the shared pacer: every worker's paid rate follows it."""
    row = session.execute(select(OutboxPacer.scale, OutboxPacer.scaled_at)
                          .where(OutboxPacer.name == PACER)).one_or_none()
    return (1.0, 0.0) if row is None else (float(row[0]), float(row[1]))


def throttle(session: Session, until: float, now: float) -> tuple[float, float]:
    """A 429 during a paid broadcast: no worker sends before `until`, and the paid rate of
    all workers is cut (from where it had climbed back to). Returns the new (scale,
    scaled_at)."""
    # Lock the pacer row first (SQLite: take the write lock), so two workers' 429s of one
    # storm cannot both read the old scale and both cut it.
    if session.get_bind().dialect.name == "sqlite":
        session.execute(update(OutboxPacer).where(OutboxPacer.name == PACER)
                        .values(name=OutboxPacer.name))
    else:
        session.execute(select(OutboxPacer.name).where(OutboxPacer.name == PACER)
                        .with_for_update())
    scale, scaled_at = pacer_scale(session)
    if now < scaled_at:  # sent before the last cut's pause was known: one cut per storm
        pause(session, until)
        return scale, scaled_at
    new = max(MIN_SCALE, current_scale(scale, scaled_at, now) * CUT_FACTOR)
    stamp = max(until, now)  # it climbs again once the pause is over
    session.execute(update(OutboxPacer).where(OutboxPacer.name == PACER)
                    .values(scale=new, scaled_at=stamp))
    pause(session, until)
    return new, stamp


@dataclass(frozen=True)
class Achieved:
    sent: int
    seconds: float

    @property
    def rate(self) -> float | None:
        """Messages per second between the first and the last send."""
        return (self.sent - 1) / self.seconds if self.sent > 1 and self.seconds > 0 else None


def achieved(session: Session, message_id: int) -> Achieved:
    """How fast a message went out: the sent rows and the time from the first to the
    last."""
    count, first, last = session.execute(
        select(func.count(), func.min(OutboxItem.sent_at), func.max(OutboxItem.sent_at))
        .where(OutboxItem.message_id == message_id, OutboxItem.state == SENT)).one()
    seconds = (last - first).total_seconds() if first is not None and last is not None else 0
    return Achieved(count or 0, seconds)


# ---------------------------------------------------------------------- reports
@dataclass(frozen=True)
class Progress:
    total: int
    states: dict[str, int]
    reasons: dict[str, int]

    @property
    def done(self) -> int:
        return sum(n for s, n in self.states.items() if s in FINAL)

    @property
    def finished(self) -> bool:
        return self.done == self.total


def progress(session: Session, message_id: int) -> Progress:
    rows = session.execute(select(OutboxItem.state, OutboxItem.error, func.count())
                           .where(OutboxItem.message_id == message_id)
                           .group_by(OutboxItem.state, OutboxItem.error)).all()
    states: Counter[str] = Counter()
    reasons: Counter[str] = Counter()
    for state, error, count in rows:
        states[state] += count
        if state in (FAILED, UNCERTAIN, EXPIRED) and error:
            reasons[error] += count
    return Progress(sum(states.values()), dict(states), dict(reasons))


def progress_many(session: Session, message_ids: list[int]) -> dict[int, Progress]:
    """`progress` of several messages in one query (a list of recent broadcasts)."""
    if not message_ids:
        return {}
    rows = session.execute(select(OutboxItem.message_id, OutboxItem.state, func.count())
                           .where(OutboxItem.message_id.in_(message_ids))
                           .group_by(OutboxItem.message_id, OutboxItem.state)).all()
    states: dict[int, Counter[str]] = {mid: Counter() for mid in message_ids}
    for message_id, state, count in rows:
        states[message_id][state] += count
    return {mid: Progress(sum(c.values()), dict(c), {}) for mid, c in states.items()}


def outcomes(session: Session, message_id: int) -> list[tuple[str, str | None, int]]:
    """(state, error, count) of a message's recipients that did not get it (blocked,
    failed, uncertain, expired, cancelled), the most frequent first: a report's reasons."""
    rows = session.execute(select(OutboxItem.state, OutboxItem.error, func.count())
                           .where(OutboxItem.message_id == message_id,
                                  OutboxItem.state.in_((BLOCKED, FAILED, UNCERTAIN, EXPIRED,
                                                        CANCELLED)))
                           .group_by(OutboxItem.state, OutboxItem.error)).all()
    return sorted(((state, error, count) for state, error, count in rows),
                  key=lambda row: (-row[2], row[0], row[1] or ""))


def finished_unreported(session: Session) -> list[OutboxMessage]:
    """Messages that asked for a report, with every recipient in a final state."""
    open_items = exists().where(OutboxItem.message_id == OutboxMessage.id,
                                OutboxItem.state.not_in(FINAL))
    return list(session.scalars(select(OutboxMessage).where(
        OutboxMessage.report_to.is_not(None), OutboxMessage.reported_at.is_(None),
        ~open_items)))


def mark_reported(session: Session, message_id: int, now: datetime) -> bool:
    """True for exactly one caller, so a report is queued once."""
    return session.execute(update(OutboxMessage).where(
        OutboxMessage.id == message_id, OutboxMessage.reported_at.is_(None))
        .values(reported_at=now)).rowcount == 1


def cancel_pending(session: Session, message_ids: list[int], reason: str) -> int:
    """Cancel what has not gone out yet (a changed or cancelled session's reminders),
    including rows a worker claimed but has not started: `start_send` locks the row and
    sends only a row still CLAIMED, so a cancelled one never goes out."""
    if not message_ids:
        return 0
    return session.execute(update(OutboxItem).where(
        OutboxItem.message_id.in_(message_ids), OutboxItem.state.in_((PENDING, CLAIMED)))
        .values(state=CANCELLED, error=reason, claimed_by=None, claimed_at=None)).rowcount


def purge_replies(session: Session, before: datetime) -> int:
    """Delete replies created before `before` whose rows are all final: a reply can hold
    personal data (a registration summary), and once delivered it is not needed."""
    open_items = exists().where(OutboxItem.message_id == OutboxMessage.id,
                                OutboxItem.state.not_in(FINAL))
    ids = session.scalars(select(OutboxMessage.id).where(
        OutboxMessage.kind == REPLY, OutboxMessage.created_at < before, ~open_items)
        .limit(5000)).all()
    if not ids:
        return 0
    session.execute(delete(OutboxItem).where(OutboxItem.message_id.in_(ids)))
    return session.execute(delete(OutboxMessage).where(OutboxMessage.id.in_(ids))).rowcount


def queue_depth(session: Session) -> dict[str, int]:
    """Rows not yet sent, by state (pending, claimed, sending): one COUNT grouped by state
    on the state index, for /metrics."""
    rows = session.execute(select(OutboxItem.state, func.count())
                           .where(OutboxItem.state.in_((PENDING, CLAIMED, SENDING)))
                           .group_by(OutboxItem.state)).all()
    return {state: int(number) for state, number in rows}
