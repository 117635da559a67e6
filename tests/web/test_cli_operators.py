"""`prokus operators add | list | disable | password | demo` and `prokus serve`'s checks."""

from __future__ import annotations

from pathlib import Path

import pytest
from click.testing import CliRunner
from sqlalchemy import select

from bot.cli import main
from bot.settings import Settings
from db import operators as accounts
from db.engine import make_engine, make_sessionmaker
from db.migrate import upgrade
from db.models import AuditLog, Operator
from tests.web.conftest import PASSWORD


@pytest.fixture
def cli_db(sqlite_engine, monkeypatch) -> str:
    url = sqlite_engine.url.render_as_string(hide_password=False)
    monkeypatch.setenv("DATABASE_URL", url)
    monkeypatch.setenv("PROKUS_OPERATOR", "tester")
    return url


def run(*args: str, stdin: str | None = None, obj: Settings | None = None):
    return CliRunner().invoke(main, list(args), input=stdin, obj=obj)


def rows(url: str, model):
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            return list(session.scalars(select(model)))
    finally:
        engine.dispose()


def test_add_list_disable(cli_db):
    done = run("operators", "add", "Budi", "--role", "verifier", "--region", "32.01",
               "--password-stdin", stdin=PASSWORD + "\n")
    assert done.exit_code == 0, done.output
    assert "operator budi added (verifier, region 32.01)" in done.output
    done = run("operators", "add", "ani", "--role", "supervisor", "--password-stdin",
               stdin=PASSWORD + "\n")
    assert done.exit_code == 0, done.output

    listed = run("operators", "list")
    assert listed.exit_code == 0
    lines = listed.output.splitlines()
    assert lines[0].split() == ["username", "role", "region", "state", "last_login"]
    assert lines[1].split()[:4] == ["ani", "supervisor", "-", "active"]
    assert lines[2].split()[:4] == ["budi", "verifier", "32.01", "active"]

    done = run("operators", "disable", "BUDI")
    assert done.exit_code == 0 and "budi disabled" in done.output
    assert "disabled" in run("operators", "list").output.splitlines()[2]
    audit = [(a.actor, a.action, a.subject) for a in rows(cli_db, AuditLog)]
    assert audit == [("operator:tester", "operator_add", "operator:budi"),
                     ("operator:tester", "operator_add", "operator:ani"),
                     ("operator:tester", "operator_disable", "operator:budi")]
    [budi] = [o for o in rows(cli_db, Operator) if o.username == "budi"]
    assert accounts.hasher.verify(budi.password_hash, PASSWORD)


def test_the_password_can_be_typed_twice_at_the_prompt(cli_db):
    done = run("operators", "add", "budi", "--role", "coordinator",
               stdin=f"{PASSWORD}\n{PASSWORD}\n")
    assert done.exit_code == 0, done.output
    assert PASSWORD not in done.output  # hidden input


@pytest.mark.parametrize(("args", "stdin", "message"), [
    (["budi", "--role", "admin"], PASSWORD, "'admin' is not one of"),
    (["b", "--role", "verifier"], PASSWORD, "a username is 3-32 characters"),
    (["budi", "--role", "verifier", "--region", "99"], PASSWORD, "a region is a kode wilayah"),
    (["budi", "--role", "verifier"], "pendek", "at least 10 characters"),
    (["budi", "--role", "verifier"], "", "no password on standard input"),
    (["budi"], PASSWORD, "Missing option '--role'"),
])
def test_add_says_clearly_what_is_wrong(cli_db, args, stdin, message):
    done = run("operators", "add", *args, "--password-stdin", stdin=stdin + "\n")
    assert done.exit_code != 0
    assert message in done.output, done.output
    assert "Traceback" not in done.output
    assert rows(cli_db, Operator) == []


def test_a_taken_username_and_an_unknown_one_are_clear_errors(cli_db):
    run("operators", "add", "budi", "--role", "verifier", "--password-stdin",
        stdin=PASSWORD + "\n")
    done = run("operators", "add", "Budi", "--role", "supervisor", "--password-stdin",
               stdin=PASSWORD + "\n")
    assert done.exit_code == 2 and "already taken" in done.output
    done = run("operators", "disable", "tidakada")
    assert done.exit_code == 1 and "no operator named 'tidakada'" in done.output
    done = run("operators", "password", "tidakada", "--password-stdin", stdin=PASSWORD + "\n")
    assert done.exit_code == 1 and "no operator named" in done.output


def test_a_new_password_works_and_lifts_a_lockout(cli_db):
    run("operators", "add", "budi", "--role", "verifier", "--password-stdin",
        stdin=PASSWORD + "\n")
    done = run("operators", "password", "budi", "--password-stdin", stdin="baru-baru-baru\n")
    assert done.exit_code == 0 and "new password set for budi" in done.output
    [budi] = rows(cli_db, Operator)
    assert accounts.hasher.verify(budi.password_hash, "baru-baru-baru")


def test_list_on_an_empty_database(cli_db):
    done = run("operators", "list")
    assert done.exit_code == 0 and "No operators yet" in done.output


def test_demo_refuses_any_database_but_the_local_demo_one(cli_db):
    done = run("operators", "demo")
    assert done.exit_code == 1
    assert "refusing to create the demo account" in done.output
    assert rows(cli_db, Operator) == []


def test_demo_ensures_the_supervisor_on_the_local_demo_database(tmp_path: Path):
    url = f"sqlite:///{tmp_path / 'data' / 'prokus.db'}"
    upgrade(url)
    settings = Settings(project_root=tmp_path, database_url=url)
    for _ in range(2):  # idempotent: the second run resets the password
        done = run("operators", "demo", obj=settings)
        assert done.exit_code == 0, done.output
        assert "username demo, password demo-prokus" in done.output
    [demo] = rows(url, Operator)
    assert (demo.username, demo.role, demo.is_active) == ("demo", "supervisor", True)
    assert accounts.hasher.verify(demo.password_hash, "demo-prokus")


def test_serve_refuses_a_database_without_the_operator_tables(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path / 'empty.db'}")
    done = run("serve", "--port", "8999")
    assert done.exit_code == 1 and "prokus db upgrade" in done.output
