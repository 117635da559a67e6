"""Structured log lines that never carry a NIK, a phone number or the bot token in clear."""

from __future__ import annotations

import json
import logging
import re
import sys
from datetime import UTC, datetime
from pathlib import Path

from domain import nik as nik_rules
from domain import phone as phone_rules

# A run of digit groups joined by one space, dot or dash ("3201 0512 0390 0001",
# "+62 812-3456-7890", "12-03-1990"); a leading "+" belongs to the run.
_RUN = re.compile(r"(?<![\d+])\+?\d+(?:(?:[ \u00a0]?[.\-][ \u00a0]?|[ \u00a0])\d+)*")
_GROUP = re.compile(r"\d+")
NIK_DIGITS = 16
# Telegram bot tokens look like 123456789:AA...35 chars.
_TOKEN = re.compile(r"\b\d{6,12}:[A-Za-z0-9_-]{30,}\b")
# PTB loggers that print whole updates and Bot API payloads (what users typed) at DEBUG.
# ("Processing update ...", "Call to Bot API endpoint `getUpdates` finished with ...",
# "Webhook received data ...").
UPDATE_LOGGERS = ("telegram", "telegram.ext.Application", "telegram.Bot", "telegram.ext.Updater")

_STANDARD = set(vars(logging.makeLogRecord({})).keys()) | {"message", "asctime"}


def _phone_shaped(groups: list[str], plus: bool) -> bool:
    """Whether digit groups start like a mobile number: 08.., 628.., or 62 / +62 then 8.."""
    first = groups[0]
    if first.startswith("08") and len(first) > 2:
        return not plus
    if first.startswith("628"):
        return True
    return first == "62" and len(groups) > 1 and groups[1].startswith("8")


def _window_mask(text: str, groups: list[str], plus: bool) -> tuple[str, str] | None:
    """("nik" or "phone", masked form) if `text`, consecutive digit groups, is a NIK or a
    mobile number, else None."""
    digits = "".join(groups)
    if len(digits) == NIK_DIGITS:
        return "nik", nik_rules.mask(digits)
    if _phone_shaped(groups, plus) and (number := phone_rules.normalise(text)) is not None:
        return "phone", phone_rules.mask(number)
    return None


def _longest_window(run: str, spans: list[tuple[int, int]], first: int):
    """The longest NIK or phone starting at group `first`: (last group, start, kind, mask)."""
    start = 0 if first == 0 else spans[first][0]  # a leading "+" goes with the first group
    for last in range(len(spans) - 1, first - 1, -1):
        groups = [run[a:b] for a, b in spans[first:last + 1]]
        found = _window_mask(run[start:spans[last][1]], groups, plus=run[start] == "+")
        if found is not None:
            return last, start, *found
    return None


def _redact_run(match: re.Match[str]) -> str:
    """Mask the NIKs and phone numbers in one run of digit groups, longest first; the other
    groups of a run that held a NIK are starred too, so no NIK digit is left beside it."""
    run = match.group(0)
    spans = [m.span() for m in _GROUP.finditer(run)]
    edits: list[tuple[int, int, str]] = []
    covered: set[int] = set()
    kinds: set[str] = set()
    index = 0
    while index < len(spans):
        found = _longest_window(run, spans, index)
        if found is None:
            index += 1
            continue
        last, start, kind, masked = found
        edits.append((start, spans[last][1], masked))
        covered.update(range(index, last + 1))
        kinds.add(kind)
        index = last + 1
    if "nik" in kinds:
        edits += [(a, b, "*" * (b - a)) for i, (a, b) in enumerate(spans) if i not in covered]
    out, position = [], 0
    for start, end, replacement in sorted(edits):
        out += [run[position:start], replacement]
        position = end
    return "".join(out) + run[position:]


def redact(text: str) -> str:
    """Mask every NIK, mobile number and bot token in `text`, however the digits are
    spaced ("3201 0512 0390 0001", "+62 812-3456-7890"); dates, amounts and years stay."""
    text = _TOKEN.sub("<bot-token>", text)
    return _RUN.sub(_redact_run, text)


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
