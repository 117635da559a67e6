"""Structured log lines that never carry a NIK, a phone number, the bot token or another
secret in clear, and the key of the per-user log tag (actions.dialogue.user_tag).

The tag is an HMAC-SHA256 of the user's channel id: with PROKUS_LOG_SECRET set (production:
the same value on every instance, so tags agree across processes), its key is derived from
it; otherwise from a random secret generated once into `data/log-secret` (mode 0600, for
development). Never a bare hash: a known Telegram id cannot be hashed to find its lines.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import os
import re
import secrets
import sys
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from domain.redact import redact as _redact_personal

if TYPE_CHECKING:
    from bot.settings import Settings

# PTB loggers that print whole updates and Bot API payloads (what users typed) at DEBUG.
# ("Processing update ...", "Call to Bot API endpoint `getUpdates` finished with ...",
# "Webhook received data ...").
UPDATE_LOGGERS = ("telegram", "telegram.ext.Application", "telegram.Bot", "telegram.ext.Updater")

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}
# A bot token anywhere, also glued to "bot" in a Bot API URL (".../bot123456:AA.../send").
_BOT_TOKEN = re.compile(r"(?<![0-9])[0-9]{6,12}:[A-Za-z0-9_-]{30,}")
# Secrets in URLs: user:password@ and ?token= / ?password= (Rasa's auth token, libpq).
_URL_PASSWORD = re.compile(r"(?P<head>[A-Za-z][A-Za-z0-9+.\-]*://[^:/@\s]*:)[^@\s/]*@")
_QUERY_SECRET = re.compile(r"(?P<head>[?&](?:password|passwd|pwd|token|auth_token|key)=)"
                           r"[^&#\s\"']*", re.IGNORECASE)
# PostgreSQL's own error details repeat the values ("Key (nik_hash)=(...) already exists",
# "Failing row contains (...)"); hide_parameters cannot hide those, the logs do.
_PG_DETAIL = re.compile(r"(?P<head>Key \([^)]*\)=\(|Failing row contains \()[^\n]*?\)"
                        r"(?=[ .\n]|$)")
TAG_CONTEXT = b"prokus-log-user-tag"
SECRET_FILE = "log-secret"


def redact(text: str) -> str:
    """`text` with NIKs, phone numbers, bot tokens and URL secrets masked."""
    text = _BOT_TOKEN.sub("<bot-token>", text)
    text = _URL_PASSWORD.sub(lambda m: f"{m['head']}***@", text)
    text = _QUERY_SECRET.sub(lambda m: f"{m['head']}***", text)
    text = _PG_DETAIL.sub(lambda m: f"{m['head']}***)", text)
    return _redact_personal(text)


def _local_secret(data_dir: Path) -> bytes:
    """The development secret in `data_dir/log-secret`, created (0600) on first use."""
    path = data_dir / SECRET_FILE
    if not path.exists():
        data_dir.mkdir(parents=True, exist_ok=True)
        try:
            fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except FileExistsError:  # another process created it meanwhile
            pass
        else:
            with os.fdopen(fd, "w", encoding="ascii") as fh:
                fh.write(secrets.token_hex(32))
    for _ in range(50):  # (another process may be writing it this very moment)
        secret = path.read_text(encoding="ascii").strip()
        if secret:
            return secret.encode()
        time.sleep(0.02)
    raise RuntimeError(f"{path} is empty: delete it to have a new log secret generated")


def tag_key(settings: Settings) -> bytes:
    """The key of the per-user log tag: derived from PROKUS_LOG_SECRET, else from the local
    generated secret file."""
    secret = (settings.log_secret.encode() if settings.log_secret
              else _local_secret(settings.data_dir))
    return hmac.new(secret, TAG_CONTEXT, hashlib.sha256).digest()


def install_tag_key(settings: Settings) -> None:
    """Give actions.dialogue.user_tag its key (call once at start-up)."""
    from actions.dialogue import set_tag_key

    set_tag_key(tag_key(settings))


def _scrub(value: object) -> object:
    """Redact the strings inside a log field (dicts and lists too; a NIK given as an int)."""
    if value is None or isinstance(value, bool | float):
        return value
    if isinstance(value, int):
        masked = redact(str(value))
        return value if masked == str(value) else masked
    if isinstance(value, dict):
        return {key: _scrub(item) for key, item in value.items()}
    if isinstance(value, list | tuple | set | frozenset):
        return [_scrub(item) for item in value]
    return redact(value if isinstance(value, str) else str(value))


class RedactingJsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, event and the record's extras."""

    def __init__(self, as_json: bool = True) -> None:
        super().__init__()
        self.as_json = as_json

    def format(self, record: logging.LogRecord) -> str:
        fields: dict[str, object] = {
            "ts": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "event": redact(record.getMessage()),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                fields[key] = _scrub(value)
        if record.exc_info:
            fields["exc"] = redact(self.formatException(record.exc_info))
        if self.as_json:
            return json.dumps(fields, ensure_ascii=False, default=str)
        extras = " ".join(f"{k}={v}" for k, v in fields.items() if k not in {"ts", "event"})
        return f"{fields['ts']} {fields['event']} {extras}"


def configure_logging(
    level: str = "INFO", as_json: bool = True, stream=None, path: Path | None = None
) -> None:
    """Send all logs, redacted, to stderr (or `stream`, or the file at `path`)."""
    if path is not None:
        path.parent.mkdir(parents=True, exist_ok=True)
        handler: logging.Handler = logging.FileHandler(path, encoding="utf-8")
    else:
        handler = logging.StreamHandler(stream or sys.stderr)
    handler.setFormatter(RedactingJsonFormatter(as_json=as_json))
    root = logging.getLogger()
    root.handlers[:] = [handler]
    root.setLevel(level)
    # Raw updates only at DEBUG (and redacted by the formatter even then).
    dumps = logging.DEBUG if root.level <= logging.DEBUG else max(root.level, logging.INFO)
    for name in UPDATE_LOGGERS:
        logging.getLogger(name).setLevel(dumps)
    # httpx logs every request URL at INFO; for Telegram that URL holds the token.
    for noisy in ("httpx", "httpcore", "alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
