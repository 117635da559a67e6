"""Migrations and repositories, on SQLite and on PostgreSQL."""

from concurrent.futures import ThreadPoolExecutor
from datetime import date, timedelta

import pytest
from sqlalchemy import func, inspect, select

from db import repo
from db.demo import DEMO_KPM, demo_rows, load_demo
from db.engine import make_engine, make_sessionmaker
from db.migrate import downgrade, upgrade
from db.models import Kpm, User
from domain import eligibility
from domain import nik as nik_rules


def test_upgrade_creates_the_schema_and_downgrade_removes_it(db_url):
    upgrade(db_url)
    engine = make_engine(db_url)
    try:
        tables = set(inspect(engine).get_table_names())
        assert {"users", "conversations", "kpm", "alembic_version"} <= tables
        downgrade(db_url, "base")
        assert set(inspect(engine).get_table_names()) <= {"alembic_version"}
        upgrade(db_url)  # and back up again
        assert "users" in inspect(engine).get_table_names()
    finally:
        engine.dispose()


STATE = {"form": {"name": "x", "slots": {"a": 1}}, "n": [1, 2], "teks": "ÿ 😀"}


def test_state_round_trip(engine):
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        user = repo.get_or_create_user(session, "telegram", "100")
        assert repo.load_state(session, user) == {}
        repo.save_state(session, user, STATE)
    with sessions.begin() as session:
        user = repo.get_or_create_user(session, "telegram", "100")
        assert repo.load_state(session, user) == STATE
        repo.save_state(session, user, {"n": 3})
    with sessions.begin() as session:
        user = repo.get_or_create_user(session, "telegram", "100")
        assert repo.load_state(session, user) == {"n": 3}
        assert session.scalar(select(func.count()).select_from(User)) == 1


def test_same_external_id_on_two_channels_are_two_users(engine):
    with make_sessionmaker(engine).begin() as session:
        a = repo.get_or_create_user(session, "telegram", "5")
        b = repo.get_or_create_user(session, "console", "5")
        assert a.id != b.id


def test_concurrent_first_contact_creates_one_user(engine):
    sessions = make_sessionmaker(engine)

    def first_contact(_):
        with sessions.begin() as session:
            return repo.get_or_create_user(session, "telegram", "777").id

    with ThreadPoolExecutor(4) as pool:
        ids = set(pool.map(first_contact, range(8)))
    assert len(ids) == 1


def test_demo_data_is_fake_and_idempotent(engine):
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        assert load_demo(session) == len(DEMO_KPM)
    with sessions.begin() as session:
        assert load_demo(session) == 0
        names = session.scalars(select(Kpm.nama)).all()
    assert len(names) == len(DEMO_KPM)
    assert all("FIKTIF" in n for n in names)


@pytest.mark.parametrize("today", [date(2026, 11, 28), date(2027, 1, 1), date(2030, 3, 12),
                                   date(2031, 12, 31), date(2044, 2, 29), date(2060, 7, 6)])
def test_demo_people_keep_their_roles_in_any_year(today):
    """The demo is not a time bomb: in any year the eligible ones are under 40, the
    'over 40' one is over 40, and every NIK is valid and embeds its birth date."""
    for nik, name, record in demo_rows(today):
        born = record.born(today)
        age = eligibility.age_on(born, today)
        assert (age >= 40) == (record.note == "over 40"), (name, today, age)
        parsed = nik_rules.parse(nik)
        assert parsed.matches_birth_date(born) and parsed.female == (record.jenis_kelamin == "P")
        graduated = record.graduated(today)
        assert graduated is None or born < graduated < today
    assert len({nik for nik, _, _ in demo_rows(today)}) == len(DEMO_KPM)


def test_demo_every_day_of_a_year_keeps_budi_eligible():
    start = date(2029, 1, 1)
    for offset in range(366):
        today = start + timedelta(days=offset)
        _, name, budi = demo_rows(today)[0]
        assert name == "Contoh Budi Santoso"
        assert eligibility.age_on(budi.born(today), today) < 40


def test_demo_data_uses_the_given_day(engine):
    with make_sessionmaker(engine).begin() as session:
        load_demo(session, today=date(2031, 5, 1))
        budi = repo.find_kpm(session, demo_rows(date(2031, 5, 1))[0][0])
        assert budi is not None and budi.tanggal_lahir == date(1995, 3, 12)


def test_the_models_and_the_migrations_describe_the_same_schema(engine):
    """alembic autogenerate finds nothing to add or drop: every table, column and index of
    db/models.py is made by a migration, on SQLite and on PostgreSQL."""
    from alembic.autogenerate import compare_metadata
    from alembic.migration import MigrationContext

    from db.models import Base

    with engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": False})
        diff = compare_metadata(context, Base.metadata)
    relevant = [d for d in diff
                if not (isinstance(d, tuple) and d[0] in ("remove_table",)
                        and getattr(d[1], "name", "") == "alembic_version")]
    assert relevant == []


@pytest.mark.postgres
def test_a_dead_connection_is_replaced_pinged_when_idle_and_retried_when_fresh(postgres_url):
    """PostgreSQL connections are pinged only after PING_AFTER_IDLE_SECONDS idle (not at
    every checkout): one killed while idle is replaced unseen; one killed right after use
    fails one statement, which invalidates the pool, and the next try gets a new one."""
    import time

    import psycopg
    from sqlalchemy import create_engine, exc, text

    from db.engine import normalise_url, ping_when_idle

    engine = create_engine(normalise_url(postgres_url))
    ping_when_idle(engine, idle_seconds=0.3)

    def backend() -> int:
        with engine.connect() as conn:
            return conn.execute(text("SELECT pg_backend_pid()")).scalar()

    def kill(pid: int) -> None:
        with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as c:
            c.execute("SELECT pg_terminate_backend(%s)", (pid,))

    try:
        first = backend()
        kill(first)
        time.sleep(0.5)  # idle longer than the threshold: pinged, found dead, replaced
        second = backend()
        assert second != first
        kill(second)  # used moments ago: no ping, the statement fails once
        with pytest.raises(exc.OperationalError), engine.connect() as conn:
            conn.execute(text("SELECT 1"))
        assert backend() not in (first, second)
    finally:
        engine.dispose()
