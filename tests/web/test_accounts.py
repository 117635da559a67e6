"""db.operators: the account and session rules the CLI and the console share, on SQLite and
PostgreSQL."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta

import pytest
from sqlalchemy import select

from db import operators as accounts
from db.engine import make_sessionmaker
from db.models import Operator, OperatorSession
from tests.web.conftest import PASSWORD

NOW = datetime(2026, 11, 28, 3, 0, tzinfo=UTC)
IDLE, LIFETIME = timedelta(minutes=30), timedelta(hours=12)


def test_rules_for_usernames_regions_and_passwords():
    assert accounts.check_username("  Budi.S_1 ") == "budi.s_1"
    for bad in ("ab", "a" * 33, "budi santoso", "-budi", "büdi", "<b>"):
        with pytest.raises(accounts.OperatorError) as raised:
            accounts.check_username(bad)
        assert raised.value.code == "username_invalid"
    assert accounts.check_region("32.01") == "3201"
    assert accounts.check_region(" ") is None
    with pytest.raises(accounts.OperatorError):
        accounts.check_region("99.01")
    with pytest.raises(accounts.OperatorError):
        accounts.check_password("x" * 9)
    assert accounts.dotted_region("3201052001") == "32.01.05.2001"


def test_add_list_disable(engine):
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        accounts.add_operator(session, "Budi", "verifier", PASSWORD, "32.01", now=NOW)
        accounts.add_operator(session, "ani", "supervisor", PASSWORD, now=NOW)
    with sessions.begin() as session, pytest.raises(accounts.OperatorError) as raised:
        accounts.add_operator(session, "BUDI", "coordinator", PASSWORD, now=NOW)
    assert raised.value.code == "username_taken"
    with sessions.begin() as session:
        assert [o.username for o in accounts.list_operators(session)] == ["ani", "budi"]
        accounts.disable_operator(session, "budi")
    with sessions.begin() as session, pytest.raises(accounts.OperatorError) as raised:
        accounts.disable_operator(session, "budi")
    assert raised.value.code == "already_disabled"


def test_sessions_store_only_a_hash_and_expire(engine):
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        operator = accounts.add_operator(session, "budi", "verifier", PASSWORD, now=NOW)
        token = accounts.start_session(session, operator, now=NOW, lifetime=LIFETIME,
                                       idle=IDLE)
    with sessions.begin() as session:
        [stored] = session.scalars(select(OperatorSession)).all()
        assert token not in stored.token_hash and stored.token_hash == accounts.hash_token(token)
        found = accounts.find_session(session, token, now=NOW + timedelta(minutes=10),
                                      idle=IDLE)
        assert found.state == "valid" and found.operator.username == "budi"
        assert accounts.find_session(session, "x" * 43, now=NOW, idle=IDLE).state == "unknown"
    with sessions.begin() as session:
        late = NOW + timedelta(minutes=40)  # 30 idle minutes after the last request
        assert accounts.find_session(session, token, now=late, idle=IDLE).state == "expired"
    with sessions.begin() as session:
        assert session.scalars(select(OperatorSession)).all() == []


def test_concurrent_wrong_passwords_are_all_counted(engine):
    """Five wrong attempts at the same moment lock the account once (no lost update)."""
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        accounts.add_operator(session, "budi", "verifier", PASSWORD, now=NOW)

    def attempt(_):
        with sessions.begin() as session:
            return accounts.authenticate(session, "budi", "salah-salah-salah", now=NOW)

    with ThreadPoolExecutor(5) as pool:
        results = list(pool.map(attempt, range(5)))
    assert sum(r.locked_now for r in results) == 1
    with sessions.begin() as session:
        operator = session.scalars(select(Operator)).one()
        assert operator.failed_logins == 5 and operator.locked_until == NOW + accounts.LOCKOUT
        assert accounts.authenticate(session, "budi", PASSWORD, now=NOW).outcome == "locked"


def test_a_new_password_lifts_the_lockout(engine):
    sessions = make_sessionmaker(engine)
    with sessions.begin() as session:
        accounts.add_operator(session, "budi", "verifier", PASSWORD, now=NOW)
        for _ in range(5):
            accounts.authenticate(session, "budi", "salah-salah-salah", now=NOW)
        accounts.set_password(session, "budi", "kata-sandi-baru!")
        assert accounts.authenticate(session, "budi", "kata-sandi-baru!", now=NOW).ok
