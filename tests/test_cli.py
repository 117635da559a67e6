"""The `prokus` command line: help on every command, clear errors."""

import subprocess
import sys
from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from bot.cli import main
from db.demo import demo_rows

PROKUS = Path(sys.executable).with_name("prokus")


def command_paths(group: click.Group = main, prefix: tuple[str, ...] = ()) -> list[list[str]]:
    """Every command and group under `group`, found from the click tree itself, so a new
    command is covered without editing this file."""
    paths = [list(prefix)]
    for name, command in sorted(group.commands.items()):
        if isinstance(command, click.Group):
            paths.extend(command_paths(command, (*prefix, name)))
        else:
            paths.append([*prefix, name])
    return paths


def test_the_sweep_finds_the_known_commands():
    paths = {" ".join(p) for p in command_paths()}
    assert {"", "chat", "run", "db upgrade", "kpm import", "nlu serve", "registrations export",
            "mentors assign", "broadcast send", "worker"} <= paths
    assert len(paths) >= 25


@pytest.mark.parametrize("args", command_paths(), ids=lambda a: " ".join(a) or "prokus")
def test_every_command_has_help(args, monkeypatch):
    monkeypatch.setenv("NLU_PORT", "not-a-port")  # help must not depend on the settings
    done = CliRunner().invoke(main, [*args, "--help"], prog_name="prokus")
    assert done.exit_code == 0, done.output
    assert "Usage:" in done.output and len(done.output.splitlines()) > 3


def test_the_installed_entry_point_runs():
    done = subprocess.run([str(PROKUS), "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "Usage: prokus" in done.stdout


def test_run_without_token_says_what_is_missing(monkeypatch):
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "")
    done = CliRunner().invoke(main, ["run"])
    assert done.exit_code == 1
    assert "TELEGRAM_BOT_TOKEN is not set" in done.output
    assert isinstance(done.exception, SystemExit)  # a ClickException, not a traceback


@pytest.mark.parametrize("command", [["chat"], ["run"], ["worker"]])
def test_a_database_that_is_not_migrated_is_one_clear_line(command, tmp_path, monkeypatch):
    """chat, run and worker on a database without the latest migration say what to do
    (they used to fail mid-conversation with "no such table: outbox")."""
    import sqlite3

    target = tmp_path / "half.db"
    sqlite3.connect(target).execute("CREATE TABLE leftover (id INTEGER)").connection.close()
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{target}")
    monkeypatch.setenv("TELEGRAM_BOT_TOKEN", "123456789:TEST-fake-token-for-the-fake-bot-api")
    done = CliRunner().invoke(main, command)
    assert done.exit_code == 1, done.output
    assert "has no tables yet" in done.output and "prokus db upgrade" in done.output
    assert isinstance(done.exception, SystemExit)  # a ClickException, not a traceback


def test_db_upgrade_and_demo_on_a_new_sqlite_file(tmp_path, monkeypatch):
    monkeypatch.setenv("DATABASE_URL", f"sqlite:///{tmp_path}/new/prokus.db")
    runner = CliRunner()
    for args in (["db", "upgrade"], ["db", "demo"], ["db", "demo"]):
        done = runner.invoke(main, args)
        assert done.exit_code == 0, done.output
    assert "0 fake records added" in done.output
    budi_nik = demo_rows()[0][0]
    assert f"{budi_nik}  Contoh Budi Santoso" in done.output  # what to type, for this year


@pytest.mark.parametrize("args", [
    ["mentors", "assign", "99999999999999999999", "PRK-2026-000001"],
    ["broadcast", "status", "99999999999999999999"],
    ["broadcast", "send", "--to", "mentees:²", "--text", "Halo semua peserta"],
    ["broadcast", "send", "--to", "mentees:99999999999999999999", "--text", "Halo semua"],
    ["mentors", "add", "--telegram-id", "²³", "--name", "Andi", "--phone", "081122223333",
     "--region", "73.71"],
])
def test_numbers_from_the_command_line_are_checked(args, tmp_path, monkeypatch):
    """Huge ids and look-alike digits give a clear error, never an overflow or traceback."""
    from click.testing import CliRunner

    from bot.cli import main
    from db.migrate import upgrade

    url = f"sqlite:///{tmp_path / 'cli.db'}"
    upgrade(url)
    monkeypatch.setenv("DATABASE_URL", url)
    result = CliRunner().invoke(main, args)
    assert result.exit_code != 0
    assert result.exception is None or isinstance(result.exception, SystemExit), result.output
    assert "Traceback" not in result.output
    assert "No such option" not in result.output and "expected" in result.output.lower() or (
        "use mentees:" in result.output or "numeric" in result.output
        or "not in the range" in result.output), result.output
