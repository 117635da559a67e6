"""The `prokus` command line: help on every command, clear errors."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

PROKUS = Path(sys.executable).with_name("prokus")

COMMANDS = [[], ["chat"], ["run"], ["db"], ["db", "upgrade"], ["db", "downgrade"],
            ["db", "demo"], ["nlu"], ["nlu", "train"], ["nlu", "serve"], ["nlu", "fingerprint"],
            ["registrations"], ["registrations", "list"], ["registrations", "export"],
            ["registrations", "set-status"], ["mentors"], ["mentors", "add"],
            ["mentors", "assign"], ["mentors", "list"], ["broadcast"], ["broadcast", "send"],
            ["broadcast", "status"], ["worker"]]


@pytest.mark.parametrize("args", COMMANDS, ids=lambda a: " ".join(a) or "prokus")
def test_every_command_has_help(args):
    done = subprocess.run([str(PROKUS), *args, "--help"], capture_output=True, text=True)
    assert done.returncode == 0
    assert "Usage:" in done.stdout and len(done.stdout.splitlines()) > 3


def test_run_without_token_says_what_is_missing(tmp_path):
    env = {k: v for k, v in os.environ.items() if k != "TELEGRAM_BOT_TOKEN"}
    done = subprocess.run(
        [str(PROKUS), "run"], capture_output=True, text=True, env=env, cwd=tmp_path
    )
    assert done.returncode != 0
    assert "TELEGRAM_BOT_TOKEN is not set" in done.stderr
    assert "Traceback" not in done.stderr


def test_db_upgrade_and_demo_on_a_new_sqlite_file(tmp_path):
    env = dict(os.environ, DATABASE_URL=f"sqlite:///{tmp_path}/new/prokus.db")
    for args in (["db", "upgrade"], ["db", "demo"], ["db", "demo"]):
        done = subprocess.run([str(PROKUS), *args], capture_output=True, text=True, env=env)
        assert done.returncode == 0, done.stderr
    assert "0 fake records added" in done.stderr
