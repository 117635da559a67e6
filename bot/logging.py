"""Structured log lines that never carry a NIK, a phone number or the bot token in clear."""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from pathlib import Path

from domain.redact import redact

# PTB loggers that print whole updates and Bot API payloads (what users typed) at DEBUG.
# ("Processing update ...", "Call to Bot API endpoint `getUpdates` finished with ...",
# "Webhook received data ...").
UPDATE_LOGGERS = ("telegram", "telegram.ext.Application", "telegram.Bot", "telegram.ext.Updater")

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


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
