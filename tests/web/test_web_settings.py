"""The console's settings: read, checked and explained like the others."""

from pathlib import Path

import pytest

from bot.settings import Settings, SettingsError


def from_env(**environ: str) -> Settings:
    return Settings.from_env(environ=environ, env_file=Path("/nonexistent/.env"))


def test_defaults_and_values():
    settings = from_env()
    assert (settings.web_idle_minutes, settings.web_session_hours) == (30, 12)
    assert settings.web_trust_proxy is False
    settings = from_env(WEB_IDLE_MINUTES="15", WEB_SESSION_HOURS="8", WEB_TRUST_PROXY="yes")
    assert (settings.web_idle_minutes, settings.web_session_hours) == (15, 8)
    assert settings.web_trust_proxy is True


@pytest.mark.parametrize(("variable", "value", "allowed"), [
    ("WEB_IDLE_MINUTES", "0", "minutes from 1 to 1440"),
    ("WEB_IDLE_MINUTES", "setengah jam", "minutes from 1 to 1440"),
    ("WEB_SESSION_HOURS", "200", "hours from 1 to 168"),
    ("WEB_TRUST_PROXY", "kadang", "1/0"),
])
def test_a_wrong_value_names_the_variable(variable, value, allowed):
    with pytest.raises(SettingsError) as raised:
        from_env(**{variable: value})
    [problem] = raised.value.problems
    assert problem.startswith(f"{variable}=") and allowed in problem
