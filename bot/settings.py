"""Typed settings, read once from the environment (and `.env`), validated, and passed down.

Every value is checked when the settings are built: a wrong one is reported together with
all the others, naming the variable and what is allowed (`SettingsError`). The repr never
shows the bot token or a password inside a URL.
"""

from __future__ import annotations

import math
import os
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from dotenv import dotenv_values

PROJECT_ROOT = Path(__file__).resolve().parent.parent
LOG_LEVELS = ("DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL")
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}
# scheme://user:password@host -> the password part (greedy: a password may hold '@').
_URL_PASSWORD = re.compile(r"^(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@]*:)(?P<secret>.*)@")
# ...?password=secret&token=... (libpq and Rasa take secrets as query parameters too).
_QUERY_SECRET = re.compile(r"(?P<head>[?&](?:password|passwd|pwd|token|auth_token|key)=)"
                           r"(?P<secret>[^&#]*)", re.IGNORECASE)


class SettingsError(ValueError):
    """One or more settings are wrong; `problems` has one line per variable."""

    def __init__(self, problems: list[str]) -> None:
        super().__init__("invalid settings:\n" + "\n".join(f"  {p}" for p in problems))
        self.problems = problems


def mask_url(url: str | None) -> str | None:
    """Hide the password of a URL such as postgresql://user:secret@host/db."""
    if not url:
        return url
    url = _URL_PASSWORD.sub(lambda m: f"{m['head']}***@", url, count=1)
    return _QUERY_SECRET.sub(lambda m: f"{m['head']}***", url)


def _parse_bool(value: str) -> bool:
    """Read LOG_JSON-style flags: 1/0, true/false, yes/no, on/off."""
    lowered = value.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise ValueError


def _parse_int(value: str) -> int:
    """A whole number written in ASCII digits."""
    text = value.strip()
    if not re.fullmatch(r"[+-]?[0-9]{1,9}", text):
        raise ValueError
    return int(text)


def _parse_float(value: str) -> float:
    """A finite decimal number (no NaN, no infinity)."""
    number = float(value.strip())
    if not math.isfinite(number):
        raise ValueError
    return number


@dataclass(frozen=True)
class _Rule:
    """How one environment variable becomes one field, and which values are allowed."""

    env: str
    parse: Callable[[str], Any]
    allowed: str                      # shown in the error message
    check: Callable[[Any], bool] = lambda value: True


def _between(low: float, high: float, *, low_open: bool = False) -> Callable[[Any], bool]:
    """A range check; `low_open` excludes the lower bound."""
    return lambda v: (low < v if low_open else low <= v) and v <= high


def _http_url(value: str | None) -> bool:
    return value is None or re.match(r"^https?://[^\s/]+", value) is not None


def _http_urls(value: str | None) -> bool:
    """NLU_URL: one http(s) URL, or several separated by commas."""
    if value is None:
        return True
    urls = [part.strip() for part in value.split(",")]
    return all(urls) and all(_http_url(url) for url in urls)


# Telegram's secret_token: 1-256 characters, A-Z, a-z, 0-9, '_' and '-'.
_WEBHOOK_SECRET = re.compile(r"[A-Za-z0-9_-]{16,256}")


def _office_hours(value: str) -> bool:
    """Readable by db.handoff.OfficeHours ("Mon-Fri 08:00-16:00", WIB)."""
    from db.handoff import OfficeHours

    try:
        OfficeHours.parse(value)
    except ValueError:
        return False
    return True


RULES: dict[str, _Rule] = {
    "database_url": _Rule("DATABASE_URL", str, "a database URL such as sqlite:///data/prokus.db "
                          "or postgresql://user:password@host:5432/prokus",
                          lambda v: re.match(r"^(sqlite|postgres(ql)?)(\+\w+)?://", v) is not None),
    "nlu_url": _Rule("NLU_URL", lambda v: v.strip() or None,
                     "an http:// or https:// URL, or several separated by commas "
                     "(http://nlu-1:5005,http://nlu-2:5005)", _http_urls),
    "nlu_port": _Rule("NLU_PORT", _parse_int, "a whole number from 1 to 65535",
                      _between(1, 65535)),
    "nlu_timeout": _Rule("NLU_TIMEOUT", _parse_float, "seconds, more than 0 and at most 300",
                         _between(0, 300, low_open=True)),
    "nlu_retries": _Rule("NLU_RETRIES", _parse_int, "a whole number from 0 to 10",
                         _between(0, 10)),
    "nlu_threshold": _Rule("NLU_THRESHOLD", _parse_float, "a number from 0 to 1",
                           _between(0, 1)),
    "rasa_bin": _Rule("RASA_BIN", lambda v: Path(v) if v.strip() else None, "a path"),
    "telegram_bot_token": _Rule("TELEGRAM_BOT_TOKEN", lambda v: v.strip() or None,
                                "a token from @BotFather"),
    "telegram_api_url": _Rule("TELEGRAM_API_URL", str.strip, "an http:// or https:// URL",
                              _http_url),
    "log_level": _Rule("LOG_LEVEL", lambda v: v.strip().upper(), "one of " + ", ".join(LOG_LEVELS),
                       lambda v: v in LOG_LEVELS),
    "log_json": _Rule("LOG_JSON", _parse_bool, "1/0, true/false, yes/no or on/off"),
    "outbox_rate": _Rule("OUTBOX_RATE", _parse_float,
                         "messages per second, more than 0 and at most 1000",
                         _between(0, 1000, low_open=True)),
    "outbox_per_chat": _Rule("OUTBOX_PER_CHAT", _parse_float,
                             "seconds between two messages to one chat, from 0 to 3600",
                             _between(0, 3600)),
    "telegram_max_rate": _Rule("TELEGRAM_MAX_RATE", _parse_float,
                               "messages per second overall, more than 0 and at most 1000",
                               _between(0, 1000, low_open=True)),
    "nlu_concurrency": _Rule("NLU_CONCURRENCY", _parse_int,
                             "a whole number of parallel NLU calls from 1 to 64",
                             _between(1, 64)),
    "turn_retry_seconds": _Rule("TURN_RETRY_SECONDS", _parse_float,
                                "seconds from 0 to 600", _between(0, 600)),
    "web_idle_minutes": _Rule("WEB_IDLE_MINUTES", _parse_int,
                              "minutes from 1 to 1440 (a console session ends after this "
                              "long without a request)", _between(1, 1440)),
    "web_session_hours": _Rule("WEB_SESSION_HOURS", _parse_int,
                               "hours from 1 to 168 (a console session ends this long after "
                               "login, however busy)", _between(1, 168)),
    "web_trust_proxy": _Rule("WEB_TRUST_PROXY", _parse_bool,
                             "1/0, true/false, yes/no or on/off"),
    "form_retention_days": _Rule("PROKUS_FORM_RETENTION_DAYS", _parse_int,
                                 "days from 1 to 365 (an unfinished form is cleared of "
                                 "personal data after this long)", _between(1, 365)),
    "log_secret": _Rule("PROKUS_LOG_SECRET", lambda v: v.strip() or None,
                        "a random secret of at least 16 characters (the key of the "
                        "per-user tag in the logs)", lambda v: v is None or len(v) >= 16),
    "nlu_auth_token": _Rule("NLU_AUTH_TOKEN", lambda v: v.strip() or None,
                            "the token the Rasa server was started with (--auth-token)"),
    "handoff_office_hours": _Rule("HANDOFF_OFFICE_HOURS", str.strip,
                                  "days and hours in WIB such as 'Mon-Fri 08:00-16:00' or "
                                  "'Mon,Wed,Fri 08:00-12:00' (the end after the start)",
                                  _office_hours),
    "telegram_webhook_secret": _Rule(
        "TELEGRAM_WEBHOOK_SECRET", lambda v: v.strip() or None,
        "16 to 256 characters from A-Z, a-z, 0-9, '_' and '-' (Telegram sends it back in "
        "X-Telegram-Bot-Api-Secret-Token)",
        lambda v: v is None or _WEBHOOK_SECRET.fullmatch(v) is not None),
    "inbox_stalled_seconds": _Rule(
        "PROKUS_INBOX_STALLED_SECONDS", _parse_float,
        "seconds from 1 to 3600 (a stored update still pending this long is taken over "
        "by another instance's sweep)", _between(1, 3600)),
    "inbox_sweep_seconds": _Rule("PROKUS_INBOX_SWEEP_SECONDS", _parse_float,
                                 "seconds from 0.5 to 600 (how often stalled updates are "
                                 "looked for)", _between(0.5, 600)),
    "metrics_token": _Rule("PROKUS_METRICS_TOKEN", lambda v: v.strip() or None,
                           "a random token of at least 16 characters (GET /metrics then "
                           "wants 'Authorization: Bearer <token>')",
                           lambda v: v is None or len(v) >= 16),
}
SECRET_FIELDS = ("telegram_bot_token", "log_secret", "nlu_auth_token",
                 "telegram_webhook_secret", "metrics_token")
URL_FIELDS = ("database_url", "nlu_url", "telegram_api_url")


@dataclass(frozen=True, repr=False)
class Settings:
    """Everything the processes need to know; no engine, client or token at import time."""

    project_root: Path = PROJECT_ROOT
    database_url: str = f"sqlite:///{PROJECT_ROOT / 'data' / 'prokus.db'}"
    nlu_url: str | None = None
    nlu_port: int = 5005
    nlu_timeout: float = 3.0
    nlu_retries: int = 1
    nlu_threshold: float = 0.3  # the FallbackClassifier threshold in config.yml
    rasa_bin: Path | None = None
    telegram_bot_token: str | None = field(default=None, repr=False)
    telegram_api_url: str = "https://api.telegram.org/bot"
    log_level: str = "INFO"
    log_json: bool = True
    outbox_rate: float = 30.0        # messages per second, all workers together
    outbox_per_chat: float = 1.0     # seconds between two messages to one chat
    telegram_max_rate: float = 30.0  # messages per second overall (Telegram's limit)
    nlu_concurrency: int = 4         # NLU calls in flight at once (the rest wait or fail fast)
    turn_retry_seconds: float = 20.0  # a turn retries a database outage this long
    web_idle_minutes: int = 30       # the console logs an operator out after this idle time
    web_session_hours: int = 12      # and after this long in any case
    web_trust_proxy: bool = False    # honour X-Forwarded-Proto (only behind a trusted proxy)
    handoff_office_hours: str = "Mon-Fri 08:00-16:00"  # when operators answer (WIB)
    form_retention_days: int = 7     # an unfinished form is cleared after this long
    log_secret: str | None = field(default=None, repr=False)  # key of the log's user tag
    nlu_auth_token: str | None = field(default=None, repr=False)  # Rasa's --auth-token
    # Webhook mode: the secret Telegram sends with each update (unset: the endpoint is off).
    telegram_webhook_secret: str | None = field(default=None, repr=False)
    # Webhook mode: an update stored this long ago and not processed (its instance died) is
    # taken over by the sweep of any instance, which looks every inbox_sweep_seconds.
    inbox_stalled_seconds: float = 60.0
    inbox_sweep_seconds: float = 30.0
    metrics_token: str | None = field(default=None, repr=False)  # GET /metrics bearer token

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise SettingsError(problems)

    def problems(self) -> list[str]:
        """One line per field whose value is outside what is allowed."""
        found = []
        for name, rule in RULES.items():
            value = getattr(self, name)
            try:
                ok = rule.check(value)
            except TypeError:
                ok = False
            if not ok:
                found.append(f"{rule.env}={self._shown(name)}: expected {rule.allowed}")
        return found

    def _shown(self, name: str) -> str:
        """A field's value as it may appear in logs and errors (secrets hidden)."""
        value = getattr(self, name)
        if name in SECRET_FIELDS:
            return "'***'" if value else "None"
        if name in URL_FIELDS:
            return repr(mask_url(value))
        return repr(value)

    def __repr__(self) -> str:
        shown = ", ".join(f"{f.name}={self._shown(f.name)}" for f in fields(self))
        return f"{type(self).__name__}({shown})"

    __str__ = __repr__

    @property
    def models_dir(self) -> Path:
        return self.project_root / "models"

    @property
    def data_dir(self) -> Path:
        return self.project_root / "data"

    @property
    def rasa_executable(self) -> Path:
        return self.rasa_bin or self.project_root / ".venv-nlu" / "bin" / "rasa"

    @classmethod
    def from_env(
        cls, environ: Mapping[str, str] | None = None, env_file: Path | None = None
    ) -> Settings:
        """Build settings from `.env` (if present) overlaid with the process environment.

        Raises SettingsError listing every variable that is wrong, not just the first.
        """
        root = PROJECT_ROOT
        values: dict[str, str] = {}
        env_path = env_file if env_file is not None else root / ".env"
        if env_path.is_file():
            values.update({k: v for k, v in dotenv_values(env_path).items() if v is not None})
        values.update(os.environ if environ is None else environ)
        kwargs: dict[str, Any] = {"project_root": root}
        problems: list[str] = []
        for name, rule in RULES.items():
            raw = values.get(rule.env)
            if raw is None or (raw.strip() == "" and name not in ("log_json",
                                                                 "web_trust_proxy")):
                continue  # unset or empty: the default
            try:
                kwargs[name] = rule.parse(raw)
            except ValueError:
                shown = "'***'" if name in SECRET_FIELDS else repr(mask_url(raw))
                problems.append(f"{rule.env}={shown}: expected {rule.allowed}")
        older = kwargs.get("outbox_rate")
        if "telegram_max_rate" not in kwargs and older is not None and RULES[
                "telegram_max_rate"].check(older):
            kwargs["telegram_max_rate"] = older  # OUTBOX_RATE, the older name
        try:
            settings = cls(**kwargs)
        except SettingsError as error:
            problems += error.problems
        if problems:
            order = [rule.env for rule in RULES.values()]
            problems.sort(key=lambda line: order.index(line.split("=", 1)[0]))
            raise SettingsError(problems)
        return settings
