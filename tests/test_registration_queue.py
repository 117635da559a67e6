"""The queue's query layer and the compare-and-set status change, on SQLite and PostgreSQL:
two real transactions acting on one registration at the same time -> one wins, the other is
refused as stale, one notice and one audit row (no lost update)."""

from __future__ import annotations

import threading
import time
from datetime import UTC, date, datetime

import pytest
from sqlalchemy import func, select, text

from db import registration_queue as queue
from db import registrations
from db.engine import make_sessionmaker
from db.models import AuditLog, OutboxMessage, Registration
from db.registrations import _next_prefix
from domain.registration import StatusChangeError
from tests.web.test_registrations import nik_of, seed


def change(session, number, new, seen, actor, reason=None):
    return registrations.set_status(session, number, new, reason, actor,
                                    lambda r: f"{r.number}: {new}", expected=seen)


def test_two_operators_at_once_one_wins(engine):
    """T1 holds the row (changed, not yet committed); T2 acts on the status it saw and
    waits; after T1 commits, T2 is refused as stale and changes nothing."""
    number = seed(engine, nik_of(1))
    factory = make_sessionmaker(engine)
    first = factory()
    first.begin()
    change(first, number, "diverifikasi", "diajukan", "operator:a")
    first.flush()
    outcome: dict[str, object] = {}

    def second() -> None:
        try:
            with factory.begin() as session:
                change(session, number, "ditolak", "diajukan", "operator:b", "Data palsu")
            outcome["result"] = "applied"
        except StatusChangeError as exc:
            outcome["result"], outcome["current"] = exc.code, exc.current

    worker = threading.Thread(target=second)
    worker.start()
    time.sleep(0.5)
    assert worker.is_alive(), "the second change did not wait for the first"
    if engine.dialect.name == "postgresql":
        with engine.connect() as conn:
            waiting = conn.scalar(text("SELECT count(*) FROM pg_stat_activity "
                                       "WHERE wait_event_type = 'Lock'"))
        assert waiting >= 1
    first.commit()
    first.close()
    worker.join(timeout=30)
    assert outcome == {"result": "stale", "current": "diverifikasi"}
    with factory() as session:
        assert session.scalar(select(Registration.status)) == "diverifikasi"
        assert session.scalar(select(Registration.alasan)) is None
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1
        audits = list(session.scalars(select(AuditLog.actor).where(
            AuditLog.action == "registration_status")))
        assert audits == ["operator:a"]


def test_many_operators_race_for_one_registration(engine):
    """Eight threads try to verify or reject the same registration at once: exactly one
    change is applied, every other one is refused (stale), one notice."""
    number = seed(engine, nik_of(2))
    factory = make_sessionmaker(engine)
    results: list[str] = []
    start = threading.Barrier(8)

    def act(i: int) -> None:
        start.wait()
        new = "diverifikasi" if i % 2 else "ditolak"
        try:
            with factory.begin() as session:
                change(session, number, new, "diajukan", f"operator:{i}", "Tidak lengkap")
            results.append("applied")
        except StatusChangeError as exc:
            results.append(exc.code)

    threads = [threading.Thread(target=act, args=(i,)) for i in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=60)
    assert sorted(results) == ["applied"] + ["stale"] * 7
    with factory() as session:
        assert session.scalar(select(func.count()).select_from(OutboxMessage)) == 1


def test_without_expected_the_cli_rules_still_apply(engine):
    number = seed(engine, nik_of(3))
    with make_sessionmaker(engine).begin() as session:
        registrations.set_status(session, number, "diverifikasi", None, "cli", lambda r: "x")
    with make_sessionmaker(engine).begin() as session, pytest.raises(StatusChangeError) as exc:
        registrations.set_status(session, number, "diverifikasi", None, "cli", lambda r: "x")
    assert exc.value.code == "same_status"
    with make_sessionmaker(engine).begin() as session, pytest.raises(StatusChangeError) as exc:
        registrations.set_status(session, number, "diterima", None, "cli", lambda r: "x",
                                 region="3374")
    assert exc.value.code == "not_found"
    with make_sessionmaker(engine).begin() as session, pytest.raises(StatusChangeError) as exc:
        registrations.set_status(session, number, "ditolak", "x" * 301, "cli", lambda r: "x")
    assert exc.value.code == "reason_too_long"


def test_region_prefix_filter_and_scope(engine):
    bogor = seed(engine, nik_of(1, "320105"), user=False)
    cianjur = seed(engine, nik_of(2, "320305"), user=False)
    surabaya = seed(engine, nik_of(3, "357801"), user=False)
    aceh = seed(engine, nik_of(4, "119901"), user=False)

    def numbers(**kwargs) -> set[str]:
        with make_sessionmaker(engine)() as session:
            return {r.number for r in queue.page(session, queue.Filter(**kwargs)).rows}

    assert numbers(region="32") == {bogor, cianjur}
    assert numbers(region="3201") == {bogor}
    assert numbers(region="1199") == {aceh}
    assert numbers(scope="3201") == {bogor}
    assert numbers(scope="3201", region="32") == {bogor}       # the narrower one
    assert numbers(scope="32", region="3203") == {cianjur}
    assert numbers(scope="3201", region="35") == set()         # no overlap: nothing
    assert numbers() == {bogor, cianjur, surabaya, aceh}
    with make_sessionmaker(engine)() as session:
        assert queue.counts(session, queue.Filter(scope="32", status="ditolak")) == {
            "diajukan": 2, "diverifikasi": 0, "diterima": 0, "ditolak": 0, "ditarik": 0}
        assert queue.find(session, surabaya, "32") is None
        assert queue.find(session, surabaya, None) is not None


def test_keyset_cursor_round_trip_and_ties(engine):
    same = datetime(2026, 11, 2, 3, 4, 5, 123456, tzinfo=UTC)
    numbers = [seed(engine, nik_of(i), user=False, created_at=same) for i in range(1, 6)]
    with make_sessionmaker(engine)() as session:
        seen: list[str] = []
        after = None
        while True:
            found = queue.page(session, queue.Filter(), after=after, size=2)
            seen += [r.number for r in found.rows]
            if not found.next:
                break
            after = found.next
        assert seen == numbers[::-1]  # newest first; equal times by id
        back = queue.page(session, queue.Filter(), before=found.previous, size=2)
        assert [r.number for r in back.rows] == numbers[::-1][2:4] and back.next
    assert queue.parse_cursor("x") is None and queue.parse_cursor("99999999999999999999.1") is None


def test_wib_days_and_next_prefix():
    assert queue.wib_start(date(2026, 11, 1)) == datetime(2026, 10, 31, 17, tzinfo=UTC)
    assert _next_prefix("3201") == "3202" and _next_prefix("3299") == "33"
    assert _next_prefix("99") == ":"
    assert queue.region_prefix("32", None) == "32"
    assert queue.region_prefix(None, "3201") == "3201"
    assert queue.region_prefix("33", "3201") is False
