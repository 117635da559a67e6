"""The fake Bot API itself, over plain HTTP: bodies, errors, polling, webhooks, control."""

from __future__ import annotations

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest

from tests.fakes.telegram_api import DEFAULT_TOKEN


@pytest.fixture
def api(fake):
    with httpx.Client(base_url=f"{fake.base_url}{DEFAULT_TOKEN}/", timeout=10) as client:
        yield client


@pytest.fixture
def control(fake):
    with httpx.Client(base_url=f"http://127.0.0.1:{fake.port}/control/", timeout=10) as client:
        yield client


def test_get_me_is_a_real_bot_user(api):
    body = api.post("getMe").json()
    assert body["ok"] and body["result"]["is_bot"] is True and body["result"]["username"]


def test_wrong_token_and_unknown_method(fake):
    assert httpx.post(f"{fake.base_url}999:nope/getMe").json()["error_code"] == 401
    response = httpx.post(f"{fake.base_url}{DEFAULT_TOKEN}/sendPigeon")
    assert response.status_code == 404 and response.json()["ok"] is False


def test_send_message_form_and_json_bodies_give_real_messages(fake, api, control):
    control.post("push_text", json={"user_id": 5, "text": "halo"})
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "/a"}]]}
    form = api.post("sendMessage", data={"chat_id": "5", "text": "123",
                                         "reply_markup": json.dumps(markup)}).json()
    as_json = api.post("sendMessage", json={"chat_id": 5, "text": "dua"}).json()
    message = form["result"]
    assert message["text"] == "123", "text stays a string"
    assert message["reply_markup"] == markup
    assert isinstance(message["date"], int) and message["date"] < 10_000_000_000  # seconds
    assert message["from"]["is_bot"] and message["chat"]["id"] == 5
    assert as_json["result"]["message_id"] == message["message_id"] + 1
    assert [m.text for m in fake.messages(5)] == ["123", "dua"]


def test_errors_are_shaped_like_the_bot_api(api, control):
    assert api.post("sendMessage", data={"chat_id": "77", "text": "x"}).json() == {
        "ok": False, "error_code": 400, "description": "Bad Request: chat not found"}
    control.post("push_text", json={"user_id": 6, "text": "halo"})
    assert api.post("sendMessage", data={"chat_id": 6, "text": "  "}).json()["error_code"] == 400
    assert api.post("sendMessage", data={"chat_id": 6, "text": "x" * 4097}).json()[
        "description"] == "Bad Request: message is too long"


def test_text_length_is_counted_in_utf16_units_like_telegram(api, control):
    control.post("push_text", json={"user_id": 16, "text": "halo"})
    fits = api.post("sendMessage", json={"chat_id": 16, "text": "🙏" * 2048}).json()
    assert fits["ok"], "2,048 emoji are 4,096 UTF-16 units"
    too_long = api.post("sendMessage", json={"chat_id": 16, "text": "🙏" * 2049}).json()
    assert too_long["description"] == "Bad Request: message is too long"


def test_push_edit_sends_an_edited_message_update(fake, api, control):
    control.post("push_text", json={"user_id": 17, "text": "satu"})
    control.post("push_text", json={"user_id": 17, "text": "dua"})
    control.post("push_edit", json={"user_id": 17, "text": "/tiga"})
    fake.push_edit(17, "SATU", message_id=1)
    updates = api.post("getUpdates").json()["result"]
    assert [list(u)[1] for u in updates] == ["message", "message", "edited_message",
                                             "edited_message"]
    edited = updates[2]["edited_message"]
    assert edited["message_id"] == 2 and edited["text"] == "/tiga" and edited["edit_date"]
    assert edited["entities"] == [{"type": "bot_command", "offset": 0, "length": 5}]
    assert updates[3]["edited_message"]["text"] == "SATU"
    assert "entities" not in updates[3]["edited_message"]
    assert control.post("push_edit", json={"user_id": 99, "text": "x"}).json()[
        "description"] == "Bad Request: message to edit not found"


@pytest.mark.parametrize("kind,code", [("429", 429), ("403", 403), ("400", 400),
                                       ("500", 500), ("502", 502)])
def test_injected_faults(api, control, kind, code):
    control.post("push_text", json={"user_id": 8, "text": "halo"})
    control.post("fault", json={"kind": kind, "method": "sendMessage", "retry_after": 3})
    failed = api.post("sendMessage", data={"chat_id": 8, "text": "x"})
    assert failed.status_code == code and failed.json()["error_code"] == code
    if kind == "429":
        assert failed.json()["parameters"] == {"retry_after": 3}
    if kind == "403":
        assert failed.json()["description"] == "Forbidden: bot was blocked by the user"
    assert api.post("sendMessage", data={"chat_id": 8, "text": "x"}).json()["ok"], "count=1"


def test_slow_fault_delays_the_reply(api, control):
    control.post("fault", json={"kind": "slow", "method": "getMe", "delay": 0.5})
    started = time.monotonic()
    assert api.post("getMe").json()["ok"]
    assert time.monotonic() - started >= 0.5


def test_blocked_user_gets_403_every_time(api, control):
    control.post("push_text", json={"user_id": 9, "text": "halo"})
    control.post("block", json={"user_id": 9})
    for _ in range(2):
        assert api.post("sendMessage", data={"chat_id": 9, "text": "x"}).json()[
            "error_code"] == 403


def test_get_updates_offset_limit_and_long_poll(fake, api):
    for text in ("satu", "dua", "tiga"):
        fake.push_text(10, text)
    first = api.post("getUpdates", data={"limit": 2}).json()["result"]
    assert [u["message"]["text"] for u in first] == ["satu", "dua"]
    rest = api.post("getUpdates", data={"offset": first[-1]["update_id"] + 1}).json()["result"]
    assert [u["message"]["text"] for u in rest] == ["tiga"]
    # Confirmed updates are gone; an empty long poll waits for the timeout...
    offset = rest[-1]["update_id"] + 1
    started = time.monotonic()
    assert api.post("getUpdates", data={"offset": offset, "timeout": 1}).json()["result"] == []
    assert time.monotonic() - started >= 0.9
    # ...and returns as soon as an update arrives.
    threading.Timer(0.3, fake.push_text, args=(10, "empat")).start()
    started = time.monotonic()
    got = api.post("getUpdates", data={"offset": offset, "timeout": 5}).json()["result"]
    assert got[0]["message"]["text"] == "empat" and time.monotonic() - started < 3


def test_commands_carry_a_bot_command_entity(fake, api):
    fake.push_command(11, "start")
    message = api.post("getUpdates").json()["result"][0]["message"]
    assert message["entities"] == [{"type": "bot_command", "offset": 0, "length": 6}]


def test_edit_delete_and_callback_answers(fake, api):
    fake.push_text(12, "halo")
    markup = {"inline_keyboard": [[{"text": "A", "callback_data": "/a"}]]}
    sent = api.post("sendMessage", json={"chat_id": 12, "text": "pilih", "reply_markup": markup})
    message_id = sent.json()["result"]["message_id"]
    same = api.post("editMessageText", json={"chat_id": 12, "message_id": message_id,
                                             "text": "pilih", "reply_markup": markup})
    assert same.json()["description"].startswith("Bad Request: message is not modified")
    edited = api.post("editMessageText", json={"chat_id": 12, "message_id": message_id,
                                               "text": "dipilih"}).json()["result"]
    assert edited["text"] == "dipilih" and "reply_markup" not in edited
    assert fake.messages(12)[0].edits[0]["text"] == "pilih"
    update = fake.push_callback(12, message_id, "/a")
    query_id = update["callback_query"]["id"]
    assert api.post("answerCallbackQuery", data={"callback_query_id": query_id}).json()["ok"]
    again = api.post("answerCallbackQuery", data={"callback_query_id": query_id}).json()
    assert again["error_code"] == 400
    assert api.post("deleteMessage", data={"chat_id": 12, "message_id": message_id}).json()["ok"]
    assert api.post("deleteMessage", data={"chat_id": 12, "message_id": message_id}).json()[
        "error_code"] == 400


def test_chat_action_and_commands_by_scope(fake, api):
    fake.push_text(13, "halo")
    assert api.post("sendChatAction", data={"chat_id": 13, "action": "typing"}).json()["ok"]
    assert fake.chat_actions == [(13, "typing")]
    scope = json.dumps({"type": "chat", "chat_id": 13})
    commands = json.dumps([{"command": "jadwal_baru", "description": "Buat jadwal"}])
    assert api.post("setMyCommands", data={"commands": commands, "scope": scope}).json()["ok"]
    assert api.post("getMyCommands").json()["result"] == []
    assert api.post("getMyCommands", data={"scope": scope}).json()["result"][0][
        "command"] == "jadwal_baru"


def test_webhook_delivers_with_the_secret_header(fake, api):
    received: list[tuple[str | None, dict]] = []

    class Receiver(BaseHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def do_POST(self):
            body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
            received.append((self.headers.get("X-Telegram-Bot-Api-Secret-Token"), body))
            self.send_response(200)
            self.send_header("Content-Length", "0")
            self.end_headers()

    receiver = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=receiver.serve_forever, daemon=True).start()
    try:
        url = f"http://127.0.0.1:{receiver.server_address[1]}/hook"
        assert api.post("setWebhook", data={"url": url, "secret_token": "rahasia"}).json()["ok"]
        assert api.post("getWebhookInfo").json()["result"]["url"] == url
        assert api.post("getUpdates").json()["error_code"] == 409
        fake.push_text(14, "halo")
        assert fake.wait_for(lambda: received, 5)
        assert received[0][0] == "rahasia"
        assert received[0][1]["message"]["text"] == "halo"
        assert api.post("deleteWebhook").json()["ok"]
        assert api.post("getWebhookInfo").json()["result"]["url"] == ""
    finally:
        receiver.shutdown()
        receiver.server_close()


def test_control_endpoints_read_messages_calls_and_reset(fake, api, control):
    control.post("push_text", json={"user_id": 15, "text": "halo"})
    api.post("sendMessage", data={"chat_id": 15, "text": "balas"})
    listed = control.post("messages", json={"chat_id": 15}).json()["result"]["15"]
    assert listed[0]["message"]["text"] == "balas" and listed[0]["edits"] == []
    assert any(c["method"] == "sendMessage" for c in control.post("calls").json()["result"])
    assert control.post("nope").status_code == 404
    assert control.post("push_text", json={"wrong": 1}).status_code == 400
    control.post("reset")
    assert fake.messages(15) == []
