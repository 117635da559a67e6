"""Settings: every value checked with a clear message, secrets never shown, `--help` always."""

from pathlib import Path

import pytest
from click.testing import CliRunner

from bot.cli import main
from bot.settings import Settings, SettingsError, mask_url

NO_FILE = Path("/nonexistent/.env")


def from_env(**environ: str) -> Settings:
    """Settings from exactly these variables (no `.env`, no process environment)."""
    return Settings.from_env(environ=environ, env_file=NO_FILE)


def test_defaults_are_valid():
    settings = from_env()
    assert settings.outbox_rate == 30 and settings.telegram_max_rate == 30
    assert settings.database_url.startswith("sqlite:///")
    assert Settings().problems() == []


def test_values_are_read_and_converted():
    settings = from_env(NLU_PORT="6006", NLU_TIMEOUT="2.5", NLU_RETRIES="0", NLU_THRESHOLD="1",
                        LOG_LEVEL="debug", LOG_JSON="off", OUTBOX_RATE="12.5",
                        OUTBOX_PER_CHAT="0", TELEGRAM_MAX_RATE="25")
    assert (settings.nlu_port, settings.nlu_timeout, settings.nlu_retries) == (6006, 2.5, 0)
    assert (settings.nlu_threshold, settings.log_level, settings.log_json) == (1.0, "DEBUG", False)
    assert (settings.outbox_rate, settings.outbox_per_chat) == (12.5, 0.0)
    assert settings.telegram_max_rate == 25.0


@pytest.mark.parametrize(("variable", "value", "allowed"), [
    ("OUTBOX_RATE", "0", "more than 0"),
    ("OUTBOX_RATE", "-5", "more than 0"),
    ("OUTBOX_RATE", "fast", "more than 0"),
    ("TELEGRAM_MAX_RATE", "0", "more than 0"),
    ("OUTBOX_PER_CHAT", "-1", "from 0 to 3600"),
    ("NLU_PORT", "abc", "from 1 to 65535"),
    ("NLU_PORT", "0", "from 1 to 65535"),
    ("NLU_PORT", "70000", "from 1 to 65535"),
    ("NLU_PORT", "5\u00b2", "from 1 to 65535"),  # a superscript digit is not a port
    ("NLU_TIMEOUT", "0", "more than 0"),
    ("NLU_TIMEOUT", "inf", "more than 0"),
    ("NLU_RETRIES", "-1", "from 0 to 10"),
    ("NLU_THRESHOLD", "1.5", "from 0 to 1"),
    ("NLU_THRESHOLD", "nan", "from 0 to 1"),
    ("LOG_LEVEL", "LOUD", "DEBUG, INFO, WARNING, ERROR, CRITICAL"),
    ("LOG_JSON", "maybe", "1/0"),
    ("DATABASE_URL", "mysql://x@h/db", "a database URL"),
    ("NLU_URL", "localhost:5005", "http://"),
])
def test_a_wrong_value_names_the_variable_and_what_is_allowed(variable, value, allowed):
    with pytest.raises(SettingsError) as raised:
        from_env(**{variable: value})
    [problem] = raised.value.problems
    assert problem.startswith(f"{variable}=") and allowed in problem


def test_all_wrong_values_are_reported_together():
    with pytest.raises(SettingsError) as raised:
        from_env(OUTBOX_RATE="0", NLU_PORT="x", LOG_LEVEL="loud")
    assert [p.split("=")[0] for p in raised.value.problems] == ["NLU_PORT", "LOG_LEVEL",
                                                                "OUTBOX_RATE"]


def test_constructing_settings_directly_is_checked_too():
    with pytest.raises(SettingsError, match="OUTBOX_RATE"):
        Settings(outbox_rate=0)


def test_repr_and_str_hide_the_password_and_the_token():
    settings = from_env(DATABASE_URL="postgresql://prokus:s3cr3t@db:5432/prokus",
                        NLU_URL="http://rasa:hunter2@nlu:5005",
                        TELEGRAM_BOT_TOKEN="123456789:AAsecrettokensecrettokensecrettoken")
    for shown in (repr(settings), str(settings), f"{settings}"):
        assert "s3cr3t" not in shown and "hunter2" not in shown
        assert "AAsecrettoken" not in shown
        assert "postgresql://prokus:***@db:5432/prokus" in shown
    assert settings.database_url == "postgresql://prokus:s3cr3t@db:5432/prokus"  # still usable


def test_an_error_does_not_show_a_secret():
    with pytest.raises(SettingsError) as raised:
        from_env(DATABASE_URL="mysql://prokus:s3cr3t@db/prokus")
    assert "s3cr3t" not in str(raised.value)


@pytest.mark.parametrize(("url", "masked"), [
    ("postgresql://u:p@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u:p@ss@h/db", "postgresql://u:***@h/db"),
    ("postgresql://u@h/db", "postgresql://u@h/db"),
    ("sqlite:////tmp/x.db", "sqlite:////tmp/x.db"),
])
def test_mask_url(url, masked):
    assert mask_url(url) == masked


def test_help_works_with_bad_settings_and_a_command_fails_clearly(monkeypatch):
    monkeypatch.setenv("NLU_PORT", "abc")
    monkeypatch.setenv("OUTBOX_RATE", "0")
    runner = CliRunner()
    assert runner.invoke(main, ["--help"]).exit_code == 0
    assert runner.invoke(main, ["db", "upgrade", "--help"]).exit_code == 0
    done = runner.invoke(main, ["db", "upgrade"])
    assert done.exit_code == 1 and not isinstance(done.exception, SettingsError)
    assert "NLU_PORT='abc': expected a whole number from 1 to 65535" in done.output
    assert "OUTBOX_RATE=0.0: expected messages per second, more than 0" in done.output
    assert "Traceback" not in done.output
