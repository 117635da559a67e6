"""The dashboard's figures (db/dashboard.py), on SQLite and on PostgreSQL: days in WIB,
zero-filled, grouped by the database, narrowed to a region by the NIK's first digits."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest
from sqlalchemy import text

from db import dashboard as dash
from db import repo
from db.engine import make_sessionmaker
from db.models import OutboxItem, OutboxMessage, Registration, User
from domain.nik import PROVINCES, mask

TODAY = date(2026, 11, 28)  # a WIB day
WIB_MIDNIGHT = datetime(2026, 11, 27, 17, 0, tzinfo=UTC)  # 28 Nov 00:00 WIB


@pytest.fixture
def sessions(engine):
    return make_sessionmaker(engine)


_serial = iter(range(1, 1_000_000))


def nik(region: str = "320105") -> str:
    """A NIK from a 6-digit region code and a fresh serial (the date part is fixed)."""
    return f"{region}120390{next(_serial) % 10_000:04d}"


def registration(at: datetime, region: str = "320105", status: str = "diajukan",
                 field: str = "kuliner") -> Registration:
    n = next(_serial)
    return Registration(
        number=f"PRK-2026-{n:06d}", nik=nik(region), nama="Contoh Orang",
        tanggal_lahir=date(1990, 3, 12), no_hp="081234567890", kabupaten="Bogor",
        kecamatan="Cibinong", desa="Pakansari", bidang_usaha=field,
        deskripsi_usaha="Jualan gorengan di depan sekolah", lama_usaha_bulan=24,
        status=status, kode_wilayah=region, created_at=at, updated_at=at)


def add(sessions, *rows) -> None:
    with sessions.begin() as session:
        session.add_all(rows)


def test_registrations_per_day_are_wib_days_zero_filled(sessions):
    add(sessions,
        registration(WIB_MIDNIGHT - timedelta(microseconds=1)),  # 27 Nov 23:59:59.999999 WIB
        registration(WIB_MIDNIGHT),  # 28 Nov 00:00 WIB (27 Nov in UTC)
        registration(WIB_MIDNIGHT + timedelta(hours=23, minutes=59)),  # 28 Nov 23:59 WIB
        registration(WIB_MIDNIGHT + timedelta(days=1)),  # 29 Nov WIB: after the window
        registration(WIB_MIDNIGHT - timedelta(days=6, seconds=1)),  # 21 Nov: before it
        registration(WIB_MIDNIGHT - timedelta(days=6)),  # 22 Nov 00:00 WIB: first day
    )
    with sessions() as session:
        days = dash.registrations_per_day(session, 7, today=TODAY)
        if session.get_bind().dialect.name == "postgresql":  # the session's zone is ignored
            session.execute(text("SET TIME ZONE 'Pacific/Auckland'"))
            assert dash.registrations_per_day(session, 7, today=TODAY) == days
    assert [d.day for d in days] == [date(2026, 11, 22) + timedelta(days=i) for i in range(7)]
    assert [d.count for d in days] == [1, 0, 0, 0, 0, 1, 2]


def test_default_window_is_ninety_days_and_bad_windows_are_refused(sessions):
    with sessions() as session:
        days = dash.registrations_per_day(session, today=TODAY)
        assert len(days) == 90 and days[-1].day == TODAY and not any(d.count for d in days)
        with pytest.raises(ValueError):
            dash.registrations_per_day(session, 0, today=TODAY)


def test_status_field_and_province_breakdowns(sessions):
    at = WIB_MIDNIGHT
    add(sessions,
        registration(at, "320105", "diajukan", "kuliner"),
        registration(at, "320105", "diajukan", "kuliner"),
        registration(at, "320201", "diterima", "jasa"),
        registration(at, "330101", "ditolak", "perlu_dinilai"),
        registration(at, "737111", "diverifikasi", "kuliner"),
        registration(at, "737111", "diajukan", "agrowisata"))
    with sessions() as session:
        statuses = dash.registrations_per_status(session)
        fields = dash.registrations_per_field(session)
        provinces = dash.registrations_per_province(session)
        together = dash.registration_breakdown(session)
    assert together == dash.Breakdown(statuses, fields, provinces)
    assert [(c.key, c.label, c.count) for c in statuses] == [
        ("diajukan", "Diajukan", 3), ("diverifikasi", "Diverifikasi", 1),
        ("diterima", "Diterima", 1), ("ditolak", "Ditolak", 1)]
    assert [(c.key, c.count) for c in fields][:4] == [
        ("kuliner", 3), ("jasa", 1), ("agrowisata", 1), ("perlu_dinilai", 1)]
    assert {c.key for c in fields} >= {"industri_rumah_tangga", "budi_daya_pertanian"}
    assert next(c for c in fields if c.key == "budi_daya_pertanian").label == \
        "Budi daya pertanian"
    assert [(c.key, c.label, c.count) for c in provinces] == [
        ("32", "Jawa Barat", 3), ("73", "Sulawesi Selatan", 2), ("33", "Jawa Tengah", 1)]


def test_breakdowns_may_be_limited_to_recent_registrations(sessions):
    add(sessions, registration(WIB_MIDNIGHT - timedelta(days=40)),
        registration(WIB_MIDNIGHT, status="diterima"))
    with sessions() as session:
        recent = dash.registrations_per_status(session, days=30, today=TODAY)
        fields = dash.registrations_per_field(session, days=30, today=TODAY,
                                              label=lambda k: f"<{k}>")
    assert [c.count for c in recent] == [0, 0, 1, 0]
    assert fields[0].key == "kuliner" and fields[0].count == 1 and fields[0].label == "<kuliner>"


def test_region_prefix_narrows_every_registration_figure(sessions):
    at = WIB_MIDNIGHT + timedelta(hours=3)
    add(sessions, registration(at, "320105"), registration(at, "320199"),
        registration(at, "320201"), registration(at, "330101"))
    with sessions() as session:
        def per_day(prefix):
            return dash.registrations_per_day(session, 3, region_prefix=prefix,
                                              today=TODAY)[-1].count

        assert per_day(None) == 4 and per_day("") == 4
        assert per_day("32") == 3 and per_day("32.01") == 2 and per_day("3201") == 2
        assert per_day("32.01.05") == 1 and per_day("34") == 0
        assert sum(c.count for c in dash.registrations_per_status(
            session, region_prefix="32.01")) == 2
        assert [(c.key, c.count) for c in dash.registrations_per_province(
            session, region_prefix="33")] == [("33", 1)]
        for bad in ("32.01.05.2001", "abc", "99", "3", "32%", "٣٢"):
            with pytest.raises(ValueError):
                dash.registrations_per_day(session, region_prefix=bad, today=TODAY)


def lookup(session, at: datetime, purpose: str, region: str = "320105",
           action: str = dash.LOOKUP_ACTION, outcome: str = "verified") -> None:
    repo.audit(session, "user:1", action, outcome, subject=mask(nik(region)),
               detail={"purpose": purpose}, at=at)


def test_eligibility_checks_per_day_count_the_check_forms_lookups_only(sessions):
    day = WIB_MIDNIGHT + timedelta(hours=2)
    with sessions.begin() as session:
        lookup(session, day, "eligibility")
        lookup(session, day, "eligibility", outcome="not_found")
        lookup(session, day, "eligibility", region="330101")
        lookup(session, day, "eligibility", action="nik_lookup_retry")  # same check
        lookup(session, day, "registration")  # the registration form's own lookup
        lookup(session, day - timedelta(days=1), "eligibility")
        repo.audit(session, "user:2", dash.LOOKUP_ACTION, "verified", subject=None,
                   detail=None, at=day)  # no purpose: not a check
    with sessions() as session:
        checks = dash.eligibility_checks_per_day(session, 3, today=TODAY)
        bogor = dash.eligibility_checks_per_day(session, 3, today=TODAY, region_prefix="32.01")
        kecamatan = dash.eligibility_checks_per_day(session, 3, today=TODAY,
                                                    region_prefix="32.01.05")
    assert [c.count for c in checks] == [0, 1, 3]
    assert [c.count for c in bogor] == [0, 1, 2]
    assert [c.count for c in kecamatan] == [0, 1, 2]  # the masked NIK keeps 4 digits


def test_not_understood_turns_and_conversations_per_day(sessions):
    at = WIB_MIDNIGHT + timedelta(hours=9)
    with sessions.begin() as session:
        for actor, outcome in [("user:1", "nlu_fallback"), ("user:1", "other"),
                               ("user:2", "unknown_command"), ("user:3", "nlu_unavailable")]:
            repo.audit(session, actor, dash.NOT_UNDERSTOOD_ACTION, outcome, at=at)
    with sessions() as session:
        days = dash.not_understood_per_day(session, 2, today=TODAY)
        outages = dash.not_understood_per_day(session, 2, today=TODAY,
                                              outcomes=["nlu_unavailable"])
    assert [(d.turns, d.conversations) for d in days] == [(0, 0), (3, 2)]
    assert [(d.turns, d.conversations) for d in outages] == [(0, 0), (1, 1)]


def broadcast(session, users, states: list[str], at: datetime, kind: str = "broadcast",
              attempted: datetime | None = None) -> int:
    message = OutboxMessage(kind=kind, text="Halo semua", reference="registrants:diterima",
                            created_by="operator:koordinator", created_at=at)
    session.add(message)
    session.flush()
    for user, state in zip(users, states, strict=False):
        session.add(OutboxItem(message_id=message.id, user_id=user.id, state=state, due_at=at,
                               attempts=0, priority=2,
                               attempted_at=attempted if state != "pending" else None))
    session.flush()
    return message.id


def test_broadcast_deliveries_per_broadcast_and_per_day(sessions):
    at = WIB_MIDNIGHT + timedelta(hours=1)
    with sessions.begin() as session:
        users = [User(channel="telegram", external_id=str(7000 + i)) for i in range(5)]
        session.add_all(users)
        session.flush()
        first = broadcast(session, users, ["sent", "sent", "failed", "uncertain", "blocked"],
                          at - timedelta(days=1), attempted=at - timedelta(days=1))
        second = broadcast(session, users, ["sent", "pending", "cancelled"], at,
                           attempted=at + timedelta(minutes=5))
        broadcast(session, users, ["sent"], at, kind="status", attempted=at)  # not a broadcast
    with sessions() as session:
        latest = dash.broadcast_deliveries(session, limit=10)
        only_one = dash.broadcast_deliveries(session, limit=1)
        per_day = dash.deliveries_per_day(session, 3, today=TODAY)
    assert [b.message_id for b in latest] == [second, first]
    assert [b.message_id for b in only_one] == [second]
    assert latest[1].states == {"sent": 2, "failed": 1, "uncertain": 1, "blocked": 1}
    assert latest[1].total == 5 and latest[1].groups == {
        "sent": 2, "pending": 0, "failed": 2, "uncertain": 1, "cancelled": 0}
    assert latest[0].groups["pending"] == 1 and latest[0].groups["cancelled"] == 1
    assert latest[0].created_by == "operator:koordinator"
    assert latest[0].created_at.tzinfo is not None
    assert [d.day for d in per_day] == [date(2026, 11, 26), date(2026, 11, 27), TODAY]
    assert per_day[0].total == 0
    assert per_day[1].states == {"sent": 2, "failed": 1, "uncertain": 1, "blocked": 1}
    assert per_day[2].states == {"sent": 1, "pending": 1, "cancelled": 1}
    assert set(dash.DELIVERY_LABELS) == set(dash.DELIVERY_GROUPS)


def test_overview_on_an_empty_database_and_scoped_to_a_region(sessions):
    with sessions() as session:
        empty = dash.overview(session, today=TODAY)
    assert len(empty.registrations_per_day) == 90 and empty.per_province == []
    assert [c.count for c in empty.per_status] == [0, 0, 0, 0]
    assert empty.broadcasts == [] and len(empty.not_understood_per_day) == 90
    assert len(empty.deliveries_per_day) == 30

    add(sessions, registration(WIB_MIDNIGHT, "320105"), registration(WIB_MIDNIGHT, "330101"))
    with sessions.begin() as session:
        users = [User(channel="telegram", external_id="7100")]
        session.add_all(users)
        session.flush()
        broadcast(session, users, ["sent"], WIB_MIDNIGHT, attempted=WIB_MIDNIGHT)
    with sessions() as session:
        full = dash.overview(session, 30, today=TODAY)
        scoped = dash.overview(session, 30, today=TODAY, region_prefix="32.01")
        with pytest.raises(ValueError):
            dash.overview(session, today=TODAY, region_prefix="32.01.05.2001")
    assert full.registrations_per_day[-1].count == 2 and len(full.broadcasts) == 1
    assert scoped.registrations_per_day[-1].count == 1
    assert [c.key for c in scoped.per_province] == ["32"]
    assert scoped.broadcasts == [] and scoped.deliveries_per_day == []
    assert scoped.not_understood_per_day == [] and scoped.region_prefix == "32.01"


def test_province_table_covers_every_province_code_of_the_nik_rules():
    assert {int(code) for code in dash.PROVINCE_NAMES} == PROVINCES
    assert len(dash.PROVINCE_NAMES) == 38
    assert dash.province_name("32") == "Jawa Barat" and dash.province_name("00") == "Kode 00"


def test_wib_day_helpers():
    assert dash.wib_midnight(TODAY) == WIB_MIDNIGHT
    assert dash.today_wib(WIB_MIDNIGHT - timedelta(seconds=1)) == date(2026, 11, 27)
    dates, start, end = dash.window(2, TODAY)
    assert dates == [date(2026, 11, 27), TODAY]
    assert (start, end) == (WIB_MIDNIGHT - timedelta(days=1), WIB_MIDNIGHT + timedelta(days=1))


def test_ttl_cache_computes_once_per_key_until_it_expires():
    import threading

    now = [0.0]
    cache = dash.TTLCache(ttl=60, max_entries=2, clock=lambda: now[0])
    calls: list[str] = []

    def compute(key):
        def run():
            calls.append(key)
            return f"value {key} #{len(calls)}"
        return run

    assert cache.get("a", compute("a")) == "value a #1"
    assert cache.get("a", compute("a")) == "value a #1"
    now[0] = 61
    assert cache.get("a", compute("a")) == "value a #2"
    cache.get("b", compute("b"))
    cache.get("c", compute("c"))  # over max_entries: the oldest ("a") goes
    assert cache.get("a", compute("a")) == "value a #5"
    with pytest.raises(RuntimeError):
        cache.get("d", lambda: (_ for _ in ()).throw(RuntimeError("db down")))
    assert cache.get("d", compute("d")).startswith("value d")  # a failure is not cached

    slow = dash.TTLCache(ttl=60)
    started, release, results = threading.Event(), threading.Event(), []

    def expensive():
        started.set()
        release.wait(5)
        calls.append("slow")
        return len(calls)

    threads = [threading.Thread(target=lambda: results.append(slow.get("k", expensive)))
               for _ in range(5)]
    threads[0].start()
    started.wait(5)
    for t in threads[1:]:
        t.start()
    release.set()
    for t in threads:
        t.join(5)
    assert calls.count("slow") == 1 and len(set(results)) == 1 and len(results) == 5
