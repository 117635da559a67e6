import io
import json
import logging

import pytest

from bot.logging import UPDATE_LOGGERS, configure_logging, redact
from bot.telegram import build_application
from tests.telegram_harness import BotRunner, Chat


@pytest.fixture(autouse=True)
def _restore_ptb_loggers():
    """configure_logging() sets the PTB loggers' levels; put them back after each test."""
    levels = {name: logging.getLogger(name).level for name in UPDATE_LOGGERS}
    yield
    for name, level in levels.items():
        logging.getLogger(name).setLevel(level)


def test_redact_nik_phone_and_token():
    line = (
        "nik 3201051203900001 hp 081234567890 atau +6281234567890 "
        "token 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8"
    )
    out = redact(line)
    assert "3201051203900001" not in out and "3201********0001" in out
    assert "081234567890" not in out and "6281234567890" not in out
    assert "+62812*****890" in out
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8" not in out


@pytest.mark.parametrize("typed", [
    "3201051203900001", "3201 0512 0390 0001", "3201.0512.0390.0001", "3201-0512-0390-0001",
    "320105 120390 0001", "32.01.05.120390.0001", "3201 - 0512 - 0390 - 0001",
    "３２０１０５１２０３９００００１",  # full-width digits
])
def test_a_nik_is_masked_however_it_is_spaced(typed):
    out = redact(f"text='{typed}', chat=5")
    assert out == "text='3201********0001', chat=5"


@pytest.mark.parametrize("typed", [
    "081234567890", "0812 3456 7890", "0812-3456-7890", "0812.3456.7890", "+6281234567890",
    "+62 812 3456 7890", "+62 812-3456-7890", "+62-812-3456-7890", "62 812 3456 7890",
])
def test_a_phone_number_is_masked_however_it_is_spaced(typed):
    assert redact(f"hp {typed}.") == "hp +62812*****890."


@pytest.mark.parametrize("ordinary", [
    "lahir 12-03-1990", "12.03.1990 pukul 09.00", "Rp 1.500.000", "Rp 25.000.000,00",
    "tahun 2026", "PRK-2026-000001", "versi 3.6.21", "update_id=123456789 chat_id=-1001234567890",
    "08-03-1990 10.30", "kode 3201.05.2001", "+1 555 123 4567", "08123", "2026-03-12T10:30:00",
    "pesan biasa tanpa data 2026",
])
def test_ordinary_numbers_are_left_alone(ordinary):
    assert redact(ordinary) == ordinary


def test_no_nik_digit_is_left_beside_a_nik_in_one_run():
    out = redact("12-03-1990 3201 0512 0390 0001")
    assert "0390" not in out and "0001" not in out and "3201" not in out


def test_log_lines_are_json_and_redacted():
    stream = io.StringIO()
    configure_logging("INFO", as_json=True, stream=stream)
    logging.getLogger("t").info("lookup %s", "3201 0512 0390 0001",
                                extra={"phone": "0812-3456-7890"})
    record = json.loads(stream.getvalue())
    assert record["event"] == "lookup 3201********0001"
    assert record["phone"] == "+62812*****890"


def test_structured_log_fields_are_redacted_too():
    stream = io.StringIO()
    configure_logging("INFO", as_json=True, stream=stream)
    detail = {"nik": "3201 0512 0390 0001", "ids": [3201051203900001, 42], "ok": True}
    logging.getLogger("t").info("audit", extra={"detail": detail, "count": 3})
    record = json.loads(stream.getvalue())
    assert record["detail"] == {"nik": "3201********0001", "ids": ["3201********0001", 42],
                                "ok": True}
    assert record["count"] == 3


@pytest.mark.parametrize("level", ["INFO", "WARNING"])
def test_ptb_never_dumps_updates_above_debug(level):
    logging.getLogger("telegram").setLevel(logging.DEBUG)  # e.g. left by a library or a test
    stream = io.StringIO()
    configure_logging(level, as_json=True, stream=stream)
    for name in UPDATE_LOGGERS:
        logging.getLogger(name).debug("Processing update %s", "Update(text='halo')")
    assert stream.getvalue() == ""
    assert all(logging.getLogger(n).getEffectiveLevel() >= logging.INFO for n in UPDATE_LOGGERS)


def test_a_debug_log_of_telegram_updates_masks_nik_and_phone(fake, assistant, texts):
    """At LOG_LEVEL=DEBUG PTB logs each raw update ("Processing update ...") and the Bot API
    answers to getUpdates: what the user typed is there, masked."""
    stream = io.StringIO()
    configure_logging("DEBUG", as_json=True, stream=stream)
    runner = BotRunner(build_application(fake.token, assistant, fake.base_url)).start()
    try:
        chat = Chat(fake, 3001)
        chat.send("nik saya 3201 0512 0390 0001").expect("belum paham")
        chat.send("hp saya +62 812-3456-7890 ya").expect("belum paham")
    finally:
        runner.stop()
    logs = [json.loads(line) for line in stream.getvalue().splitlines()]
    updates = " ".join(r["event"] for r in logs if r["event"].startswith("Processing update"))
    assert "nik saya 3201********0001" in updates and "hp saya +62812*****890 ya" in updates
    everything = stream.getvalue()
    for clear in ("0512 0390", "3201051203900001", "3456-7890", "81234567890"):
        assert clear not in everything
