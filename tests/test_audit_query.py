"""Reading the audit log for the console (db/audit_query.py), on SQLite and PostgreSQL:
filters, newest first, pages with a total, and NIKs masked again on the way out."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from db import audit_query as aq
from db import repo
from db.engine import make_sessionmaker
from db.models import AuditLog

T0 = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # 28 Nov 2026 00:00 WIB
NIK = "3201051203900001"


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


@pytest.fixture
def log(sessions):
    """Six records over two WIB days."""
    rows = [
        ("user:1", "nik_lookup", "verified", "3201********0001", T0 - timedelta(seconds=1)),
        ("user:1", "nik_lookup", "not_found", "3374********0003", T0),
        ("user:2", "registration_submit", "submitted", "PRK-2026-000001",
         T0 + timedelta(hours=1)),
        ("operator:dinsos-bogor", "registration_status", "diverifikasi", "PRK-2026-000001",
         T0 + timedelta(hours=2)),
        ("operator:dinsos-bogor", "registrations_export", "ok", None, T0 + timedelta(hours=3)),
        ("operator:koordinator", "broadcast_queued", "ok", "message:7",
         T0 + timedelta(hours=23, minutes=59)),
    ]
    with sessions.begin() as session:
        for actor, action, outcome, subject, at in rows:
            repo.audit(session, actor, action, outcome, subject=subject,
                       detail={"purpose": "eligibility"}, at=at)
    return rows


def subjects(page: aq.AuditPage) -> list[str | None]:
    return [r.subject for r in page.rows]


def test_newest_first_with_total_and_pages(sessions, log):
    with sessions() as session:
        first = aq.search(session, per_page=4)
        second = aq.search(session, page=2, per_page=4)
        beyond = aq.search(session, page=99, per_page=4)
        nothing = aq.search(session, aq.AuditFilter(actor="nobody"), page=3)
    assert first.total == 6 and first.pages == 2 and first.has_next and not first.has_previous
    assert [r.action for r in first.rows] == ["broadcast_queued", "registrations_export",
                                             "registration_status", "registration_submit"]
    assert subjects(second) == ["3374********0003", "3201********0001"]
    assert second.has_previous and not second.has_next
    assert beyond.page == 2 and subjects(beyond) == subjects(second)
    assert nothing.rows == [] and nothing.total == 0 and nothing.page == 1 and nothing.pages == 1
    row = first.rows[0]
    assert row.at == T0 + timedelta(hours=23, minutes=59) and row.at.tzinfo is not None
    assert row.at_wib.date() == date(2026, 11, 28) and row.action_label == "Siaran diantrekan"


def test_same_instant_is_ordered_by_id(sessions):
    with sessions.begin() as session:
        for i in range(3):
            repo.audit(session, "user:1", "nik_lookup", "verified", subject=f"s{i}", at=T0)
    with sessions() as session:
        assert subjects(aq.search(session)) == ["s2", "s1", "s0"]


def test_filters_who_what_when_and_subject(sessions, log):
    def find(**kw) -> list[str]:
        with sessions() as session:
            return [r.action for r in aq.search(session, aq.AuditFilter(**kw)).rows]

    assert find(actor="operator:dinsos-bogor") == ["registrations_export",
                                                   "registration_status"]
    assert find(actor="  ") == find()
    assert find(actions=["nik_lookup", "broadcast_queued"]) == [
        "broadcast_queued", "nik_lookup", "nik_lookup"]
    # WIB days, inclusive: 27 Nov ends at 16:59:59 UTC, 28 Nov runs to 16:59:59 the next day.
    assert find(until=date(2026, 11, 27)) == ["nik_lookup"]
    assert len(find(since=date(2026, 11, 28), until=date(2026, 11, 28))) == 5
    assert find(since=date(2026, 11, 29)) == []
    assert find(since=T0 + timedelta(hours=2), until=T0 + timedelta(hours=3)) == [
        "registration_status"]
    assert find(subject_contains="prk-2026") == ["registration_status", "registration_submit"]
    assert find(subject_contains="3374*") == ["nik_lookup"]
    assert find(subject_contains="%") == [] and find(subject_contains="_") == []
    assert find(outcome="not_found") == ["nik_lookup"]
    assert find(actor="operator:dinsos-bogor", actions=["registrations_export"],
                since=date(2026, 11, 28)) == ["registrations_export"]
    with pytest.raises(ValueError):
        find(since=datetime(2026, 11, 28))  # naive: ambiguous


def test_unmasked_niks_are_masked_on_output(sessions):
    with sessions.begin() as session:
        session.add(AuditLog(
            at=T0, actor="operator:x", action="registration_status", outcome="ditolak",
            subject=f"nik {NIK}",
            detail={"reason": f"NIK {NIK[:4]} {NIK[4:8]} {NIK[8:12]} {NIK[12:]} ganda",
                    "list": [NIK, {"inner": f"x{NIK}y"}], NIK: "key", "number": int(NIK),
                    "phone": "081234567890", "count": 3, "ok": True}))
    with sessions() as session:
        row = aq.search(session).rows[0]
        found = aq.search(session, aq.AuditFilter(subject_contains=NIK))
    assert row.subject == "nik 3201********0001"
    assert row.detail == {
        "reason": "NIK 3201********0001 ganda",
        "list": ["3201********0001", {"inner": "x3201********0001y"}],
        "3201********0001": "key", "number": "3201********0001",
        "phone": "+62812*****890", "count": 3, "ok": True}
    assert NIK not in repr(row)
    assert found.total == 1  # stored masked (db.models.AuditLog), found by its masked form too


def test_mask_text_rule():
    assert aq.mask_text(None) is None
    assert aq.mask_text("3201-0512-0390-0001 dan 3201.0512.0390.0002") == \
        "3201********0001 dan 3201********0002"
    assert aq.mask_text("１２３４５６７８９０１２３４５６") == "1234********3456"
    assert aq.mask_text("320105120390000") == "320105120390000"  # 15 digits: not a NIK
    assert aq.mask_text("32010512039000011") == "32010512039000011"  # 17 digits
    assert aq.mask_text("PRK-2026-000001") == "PRK-2026-000001"


def test_known_actions_lists_labels_and_stored_actions(sessions, log):
    with sessions.begin() as session:
        repo.audit(session, "operator:x", "password_reset", "ok", at=T0)
    with sessions() as session:
        stored = aq.stored_actions(session)
        actions = dict(aq.known_actions(session))
    assert stored == sorted({row[1] for row in log} | {"password_reset"})
    assert actions["nik_lookup"] == "Cek NIK" and actions["password_reset"] == "password_reset"
    assert "not_understood" in actions and "password_reset" not in dict(aq.known_actions())
    labels = [label for _, label in aq.known_actions()]
    assert labels == sorted(labels, key=str.casefold)


def test_the_count_stops_at_the_limit_and_says_so(sessions, log):
    with sessions() as session:
        capped = aq.search(session, per_page=2, count_limit=3)
        last = aq.search(session, page=9, per_page=2, count_limit=3)
        exact = aq.search(session, per_page=2, count_limit=None)
        enough = aq.search(session, per_page=2, count_limit=6)
    assert (capped.total, capped.total_is_lower_bound, capped.pages) == (3, True, 2)
    assert last.page == 2 and len(last.rows) == 2
    assert (exact.total, exact.total_is_lower_bound) == (6, False)
    assert (enough.total, enough.total_is_lower_bound) == (6, False)
