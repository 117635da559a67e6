import io
import json
import logging

from actions.types import Turn
from bot.logging import configure_logging, mask_nik, redact


def test_mask_nik():
    assert mask_nik("3201051203900001") == "3201********0001"
    assert mask_nik("123") == "***"


def test_redact_nik_phone_and_token():
    line = (
        "nik 3201051203900001 hp 081234567890 atau +6281234567890 "
        "token 123456789:AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8"
    )
    out = redact(line)
    assert "3201051203900001" not in out and "3201********0001" in out
    assert "081234567890" not in out and "6281234567890" not in out
    assert "AAHdqTcvCH1vGWJxfSeofSAs0K5PALDsaw8" not in out
    assert redact("pesan biasa tanpa data 2026") == "pesan biasa tanpa data 2026"


def test_log_lines_are_json_and_redacted():
    stream = io.StringIO()
    configure_logging("INFO", as_json=True, stream=stream)
    logging.getLogger("t").info("lookup %s", "3201051203900001", extra={"phone": "0812-3456-7890"})
    record = json.loads(stream.getvalue())
    assert record["event"] == "lookup 3201********0001"
    assert "3456" not in record["phone"]


def test_a_turn_never_logs_nik_or_phone_in_clear(assistant):
    stream = io.StringIO()
    configure_logging("DEBUG", as_json=True, stream=stream)
    assistant.handle(Turn("console", "9", text="nik saya 3201051203900001 hp 081234567890"))
    assistant.handle(Turn("console", "9", text="halo"))
    logs = stream.getvalue()
    assert '"event": "turn"' in logs
    assert "3201051203900001" not in logs
    assert "081234567890" not in logs
