"""Structured log lines that never carry a NIK, a phone number or the bot token in clear."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

# A 16-digit run (NIK) not inside a longer number.
_NIK = re.compile(r"(?<!\d)(\d{4})(\d{8})(\d{4})(?!\d)")
# Indonesian mobile numbers: 08..., 628..., +628..., with optional separators.
_PHONE = re.compile(r"(?<![\d+])(\+?62|0)(8\d{1,2})[\s.-]?(\d{3,4})[\s.-]?(\d{2,5})(?!\d)")
# Telegram bot tokens look like 123456789:AA...35 chars.
_TOKEN = re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b")

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def mask_nik(nik: str) -> str:
    """Return `3201********0001` for a 16-digit NIK; anything else is fully starred."""
    digits = re.sub(r"\D", "", nik)
    if len(digits) == 16:
        return f"{digits[:4]}********{digits[-4:]}"
    return "*" * len(digits)


def _mask_phone(match: re.Match[str]) -> str:
    tail = re.sub(r"\D", "", match.group(0))[-3:]
    return f"{match.group(1)}{match.group(2)}*****{tail}"


def redact(text: str) -> str:
    """Mask every NIK, phone number and bot token found in `text`."""
    text = _TOKEN.sub("<bot-token>", text)
    text = _NIK.sub(lambda m: f"{m.group(1)}********{m.group(3)}", text)
    return _PHONE.sub(_mask_phone, text)


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
                fields[key] = redact(value) if isinstance(value, str) else value
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
    # httpx logs every request URL at INFO; for Telegram that URL holds the token.
    for noisy in ("httpx", "httpcore", "alembic", "apscheduler"):
        logging.getLogger(noisy).setLevel(logging.WARNING)
