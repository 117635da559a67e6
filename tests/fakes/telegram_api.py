"""A fake Telegram Bot API server for end-to-end tests, on 127.0.0.1 and a free port.

The real bot reaches it through python-telegram-bot's `base_url`
(`http://127.0.0.1:PORT/bot`). It answers the Bot API methods the assistant uses with
real Bot API objects (dates in seconds, `from`, `chat`, `message_id`) and Bot API-shaped
errors, and it offers control endpoints under `/control/` (and the same operations as
Python methods) to push user updates, read what the bot sent, and inject faults.

Run it on its own: `python -m tests.fakes.telegram_api --port 8081`.
"""

from __future__ import annotations

import argparse
import contextlib
import email.parser
import email.policy
import itertools
import json
import threading
import time
import urllib.error
import urllib.request
from collections import defaultdict
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any
from urllib.parse import parse_qs, urlparse

BOT_ID = 7000001
BOT_USERNAME = "ProkusFakeBot"
DEFAULT_TOKEN = "123456789:TEST-fake-token-for-the-fake-bot-api-server"
MAX_TEXT = 4096  # UTF-16 code units, as Telegram counts them

# Parameters that are always strings, even when they look like numbers or JSON.
STRING_PARAMS = {
    "text", "callback_query_id", "url", "secret_token", "parse_mode", "action",
    "language_code", "inline_message_id", "ip_address", "certificate",
}


class ApiError(Exception):
    """An error the way the Bot API reports it."""

    def __init__(self, code: int, description: str, retry_after: int | None = None) -> None:
        super().__init__(description)
        self.code = code
        self.description = description
        self.retry_after = retry_after

    def body(self) -> dict[str, Any]:
        body: dict[str, Any] = {
            "ok": False, "error_code": self.code, "description": self.description,
        }
        if self.retry_after is not None:
            body["parameters"] = {"retry_after": self.retry_after}
        return body


@dataclass
class Fault:
    """An injected failure: applies to `count` matching calls (None = until cleared)."""

    kind: str  # "429", "403", "400", "500", "502", "slow"
    method: str | None = None
    chat_id: int | None = None
    count: int | None = 1
    retry_after: int = 1
    delay: float = 1.0
    description: str | None = None

    def matches(self, method: str, params: dict[str, Any]) -> bool:
        if self.method and self.method != method:
            return False
        return self.chat_id is None or _int(params.get("chat_id")) == self.chat_id

    def error(self) -> ApiError | None:
        if self.kind == "429":
            return ApiError(429, f"Too Many Requests: retry after {self.retry_after}",
                            self.retry_after)
        if self.kind == "403":
            return ApiError(403, self.description or "Forbidden: bot was blocked by the user")
        if self.kind == "400":
            return ApiError(400, self.description or "Bad Request: injected fault")
        if self.kind in ("500", "502"):
            return ApiError(int(self.kind), self.description or (
                "Internal Server Error" if self.kind == "500" else "Bad Gateway"))
        return None


@dataclass
class SentMessage:
    """A message the bot sent, with its edit history."""

    message: dict[str, Any]
    edits: list[dict[str, Any]] = field(default_factory=list)
    deleted: bool = False
    at: float = field(default_factory=time.time)  # when the fake received it

    @property
    def text(self) -> str:
        return self.message.get("text", "")

    @property
    def message_id(self) -> int:
        return self.message["message_id"]

    @property
    def reply_markup(self) -> dict[str, Any] | None:
        return self.message.get("reply_markup")

    def button_labels(self) -> list[str]:
        markup = self.reply_markup or {}
        rows = markup.get("inline_keyboard") or markup.get("keyboard") or []
        return [b["text"] if isinstance(b, dict) else b for row in rows for b in row]

    def as_dict(self) -> dict[str, Any]:
        return {"message": self.message, "edits": self.edits, "deleted": self.deleted}


def _int(value: Any) -> int | None:
    try:
        return int(value)
    except (TypeError, ValueError):
        return None


class FakeTelegram:
    """The fake server's state and its Bot API; thread-safe."""

    def __init__(self, token: str = DEFAULT_TOKEN) -> None:
        self.token = token
        self._cond = threading.Condition()
        self._server: ThreadingHTTPServer | None = None
        self.reset()

    # ----------------------------------------------------------------- lifecycle
    def start(self, port: int = 0) -> FakeTelegram:
        handler = type("Handler", (_Handler,), {"fake": self})
        self._server = _QuietServer(("127.0.0.1", port), handler)
        self._server.daemon_threads = True
        threading.Thread(target=self._server.serve_forever, daemon=True).start()
        threading.Thread(target=self._dispatch_webhooks, daemon=True).start()
        return self

    def stop(self) -> None:
        if self._server:
            self._server.shutdown()
            self._server.server_close()
            self._server = None
        with self._cond:
            self._closed = True
            self._cond.notify_all()

    @property
    def port(self) -> int:
        assert self._server is not None
        return self._server.server_address[1]

    @property
    def base_url(self) -> str:
        """What to give PTB as `base_url` (it appends the token)."""
        return f"http://127.0.0.1:{self.port}/bot"

    def reset(self) -> None:
        with self._cond:
            self._update_ids = itertools.count(1)
            self._message_ids: dict[int, itertools.count] = defaultdict(lambda: itertools.count(1))
            self._callback_ids = itertools.count(1)
            self.updates: list[dict[str, Any]] = []
            self.sent: dict[int, list[SentMessage]] = defaultdict(list)
            self.sent_count = 0  # messages delivered, cheap to read while under load
            self.user_messages: dict[int, list[dict[str, Any]]] = defaultdict(list)
            self.calls: list[tuple[str, dict[str, Any], float]] = []
            self.callback_answers: dict[str, dict[str, Any]] = {}
            self.pending_callbacks: set[str] = set()
            self.chat_actions: list[tuple[int, str]] = []
            self.commands: dict[str, list[dict[str, Any]]] = {}
            self.faults: list[Fault] = []
            self.blocked: set[int] = set()
            self.known_chats: dict[int, dict[str, Any]] = {}
            self.webhook: dict[str, Any] = {"url": ""}
            self.webhook_errors: list[str] = []
            # (update_id, time, error or None) of every webhook delivery attempt
            self.webhook_attempts: list[tuple[int, float, str | None]] = []
            self.webhook_timeout = 10.0
            self.webhook_retry_first = 0.5
            self.webhook_retry_max = 8.0
            self._in_flight: set[int] = set()
            self._retry_at: dict[int, float] = {}
            self._backoff: dict[int, float] = {}
            self._closed = False
            self._cond.notify_all()

    # ----------------------------------------------------------------- control
    def inject(self, kind: str, method: str | None = None, chat_id: int | None = None,
               count: int | None = 1, retry_after: int = 1, delay: float = 1.0,
               description: str | None = None) -> None:
        """Make the next `count` matching calls fail (or be slow)."""
        with self._cond:
            self.faults.append(Fault(kind, method, chat_id, count, retry_after, delay, description))

    def clear_faults(self) -> None:
        with self._cond:
            self.faults.clear()
            self.blocked.clear()

    def add_chats(self, user_ids) -> None:
        """Private chats that exist without a message first (users who talked to the bot
        earlier), e.g. the recipients of a broadcast."""
        with self._cond:
            for user_id in user_ids:
                self.known_chats[int(user_id)] = {"id": int(user_id), "type": "private",
                                                  "first_name": "Pengguna"}

    def deliveries(self) -> list[tuple[int, str, float]]:
        """(chat, text, time) of every sendMessage that succeeded, in arrival order."""
        with self._cond:
            out = [(chat, m.text, m.at) for chat, sent in self.sent.items() for m in sent]
        return sorted(out, key=lambda d: d[2])

    def block(self, user_id: int) -> None:
        """From now on the user has blocked the bot: every send to them gets 403."""
        with self._cond:
            self.blocked.add(user_id)

    def _user(self, user_id: int, first_name: str) -> dict[str, Any]:
        return {"id": user_id, "is_bot": False, "first_name": first_name, "language_code": "id"}

    def _chat(self, user_id: int, first_name: str, chat_id: int | None, chat_type: str):
        if chat_type == "private":
            chat = {"id": user_id, "type": "private", "first_name": first_name}
        else:
            chat = {"id": chat_id or -100_000_000_000 - user_id, "type": chat_type,
                    "title": "Grup Contoh"}
        self.known_chats[chat["id"]] = chat
        return chat

    def push_message(self, user_id: int, first_name: str = "Pengguna",
                     chat_type: str = "private", chat_id: int | None = None,
                     queue: bool = True, **content: Any) -> dict[str, Any]:
        """Queue a message update from a user; `content` holds text/contact/sticker/...
        With queue=False the update is numbered and returned but not delivered (a test
        posts it to the webhook itself)."""
        with self._cond:
            chat = self._chat(user_id, first_name, chat_id, chat_type)
            message = {
                "message_id": next(self._message_ids[chat["id"]]),
                "date": int(time.time()),
                "chat": chat,
                "from": self._user(user_id, first_name),
                **content,
            }
            text = content.get("text", "")
            if text.startswith("/"):
                command = text.split()[0]
                message["entities"] = [{"type": "bot_command", "offset": 0,
                                        "length": len(command)}]
            self.user_messages[chat["id"]].append(message)
            if not queue:
                return {"update_id": next(self._update_ids), "message": message}
            return self._queue({"message": message})

    def push_text(self, user_id: int, text: str, **kw: Any) -> dict[str, Any]:
        return self.push_message(user_id, text=text, **kw)

    def push_edit(self, user_id: int, text: str | None = None, message_id: int | None = None,
                  chat_id: int | None = None, **content: Any) -> dict[str, Any]:
        """The user edits one of their messages (default: their last one in the private
        chat) to `text`, or changes its `content` (a live location moving): Telegram sends
        an `edited_message` update."""
        with self._cond:
            messages = self.user_messages[chat_id if chat_id is not None else user_id]
            original = next((m for m in reversed(messages)
                             if message_id is None or m["message_id"] == message_id), None)
            if original is None:
                raise ApiError(400, "Bad Request: message to edit not found")
            edited = {**original, **content, "edit_date": int(time.time())}
            if text is not None:
                edited["text"] = text
                edited.pop("entities", None)
                if text.startswith("/"):
                    edited["entities"] = [{"type": "bot_command", "offset": 0,
                                           "length": len(text.split()[0])}]
            original.update(edited)
            return self._queue({"edited_message": edited})

    def push_command(self, user_id: int, command: str, **kw: Any) -> dict[str, Any]:
        return self.push_text(user_id, command if command.startswith("/") else f"/{command}", **kw)

    def push_contact(self, user_id: int, phone: str, contact_user_id: int | None = -1,
                     first_name: str = "Pengguna", **kw: Any) -> dict[str, Any]:
        """Share a contact; by default the user's own (contact_user_id = user_id)."""
        contact = {"phone_number": phone, "first_name": first_name}
        owner = user_id if contact_user_id == -1 else contact_user_id
        if owner is not None:
            contact["user_id"] = owner
        return self.push_message(user_id, first_name=first_name, contact=contact, **kw)

    def push_sticker(self, user_id: int, **kw: Any) -> dict[str, Any]:
        sticker = {"file_id": "CAACAgIAAxkBAAIB", "file_unique_id": "AgADsticker",
                   "type": "regular", "width": 512, "height": 512,
                   "is_animated": False, "is_video": False, "emoji": "😀"}
        return self.push_message(user_id, sticker=sticker, **kw)

    def push_photo(self, user_id: int, **kw: Any) -> dict[str, Any]:
        photo = [{"file_id": "AgACAgIAAxkBphoto", "file_unique_id": "AQADphoto",
                  "width": 90, "height": 90, "file_size": 1200}]
        return self.push_message(user_id, photo=photo, **kw)

    def push_voice(self, user_id: int, **kw: Any) -> dict[str, Any]:
        voice = {"file_id": "AwACAgIAAxkBvoice", "file_unique_id": "AgADvoice", "duration": 3}
        return self.push_message(user_id, voice=voice, **kw)

    def push_document(self, user_id: int, **kw: Any) -> dict[str, Any]:
        document = {"file_id": "BQACAgIAAxkBdoc", "file_unique_id": "AgADdoc",
                    "file_name": "ktp.pdf"}
        return self.push_message(user_id, document=document, **kw)

    def push_location(self, user_id: int, **kw: Any) -> dict[str, Any]:
        return self.push_message(user_id, location={"latitude": -6.2, "longitude": 106.8}, **kw)

    def push_callback(self, user_id: int, message_id: int, data: str,
                      first_name: str = "Pengguna") -> dict[str, Any]:
        """Press an inline button of a message the bot sent to this user."""
        with self._cond:
            target = self._find_sent(user_id, message_id)
            query_id = str(next(self._callback_ids))
            self.pending_callbacks.add(query_id)
            query = {"id": query_id, "from": self._user(user_id, first_name),
                     "message": target.message, "chat_instance": f"ci{user_id}", "data": data}
            return self._queue({"callback_query": query})

    def _queue(self, update: dict[str, Any]) -> dict[str, Any]:
        update = {"update_id": next(self._update_ids), **update}
        self.updates.append(update)
        self._cond.notify_all()
        return update

    # ----------------------------------------------------------------- webhook delivery
    def _dispatch_webhooks(self) -> None:
        """Deliver pending updates to the webhook the way Telegram does: up to
        `max_connections` requests at once, one user's (chat's) updates one after the other
        in update_id order (the next only after the previous got a 2xx), and a failed
        delivery (no connection, a timeout, any status but 2xx) tried again after a back-off
        that doubles from `webhook_retry_first` up to `webhook_retry_max` seconds."""
        while True:
            with self._cond:
                if self._closed:
                    return
                url = self.webhook.get("url")
                wait = 1.0
                picked: list[tuple[int, dict[str, Any]]] = []
                if url:
                    now = time.monotonic()
                    limit = self.webhook.get("max_connections", 40)
                    heads: set[int] = set()
                    for update in self.updates:
                        chat = _update_chat(update)
                        if chat in heads:
                            continue  # only a chat's first pending update may go
                        heads.add(chat)
                        if chat in self._in_flight:
                            continue
                        retry_at = self._retry_at.get(chat, 0.0)
                        if retry_at > now:
                            wait = min(wait, retry_at - now)
                            continue
                        if len(self._in_flight) >= limit:
                            break
                        self._in_flight.add(chat)
                        picked.append((chat, update))
                    secret = self.webhook.get("secret_token")
                for chat, update in picked:
                    threading.Thread(target=self._deliver_one, daemon=True,
                                     args=(chat, update, url, secret)).start()
                if not picked:
                    self._cond.wait(max(wait, 0.005))

    def _deliver_one(self, chat: int, update: dict[str, Any], url: str,
                     secret: str | None) -> None:
        request = urllib.request.Request(url, data=json.dumps(update).encode(), method="POST",
                                         headers={"Content-Type": "application/json"})
        if secret:
            request.add_header("X-Telegram-Bot-Api-Secret-Token", secret)
        error = None
        try:
            with urllib.request.urlopen(request, timeout=self.webhook_timeout) as response:
                if not 200 <= response.status < 300:
                    error = f"Wrong response from the webhook: {response.status}"
        except urllib.error.HTTPError as exc:
            error = f"Wrong response from the webhook: {exc.code} {exc.reason}"
        except OSError as exc:  # refused, reset, timed out
            error = f"Connection failed: {exc}"
        with self._cond:
            self._in_flight.discard(chat)
            self.webhook_attempts.append((update["update_id"], time.time(), error))
            if error is None:
                with contextlib.suppress(ValueError):
                    self.updates.remove(update)
                self._retry_at.pop(chat, None)
                self._backoff.pop(chat, None)
            else:
                self.webhook_errors.append(error)
                backoff = min(self._backoff.get(chat, self.webhook_retry_first / 2) * 2,
                              self.webhook_retry_max)
                self._backoff[chat] = backoff
                self._retry_at[chat] = time.monotonic() + backoff
            self._cond.notify_all()

    def webhook_stats(self) -> dict[str, int]:
        """Delivery attempts, deliveries that failed, updates delivered (2xx), pending."""
        with self._cond:
            failed = sum(1 for _, _, error in self.webhook_attempts if error)
            return {"attempts": len(self.webhook_attempts), "failed": failed,
                    "delivered": len(self.webhook_attempts) - failed,
                    "pending": len(self.updates)}

    def messages(self, chat_id: int) -> list[SentMessage]:
        """Everything the bot sent to this chat (deleted messages included, marked)."""
        with self._cond:
            return list(self.sent.get(chat_id, []))

    def texts(self, chat_id: int) -> list[str]:
        return [m.text for m in self.messages(chat_id) if not m.deleted]

    def wait_for(self, predicate, timeout: float = 10.0):
        """Block until `predicate()` is truthy (checked on each change); return its value."""
        deadline = time.monotonic() + timeout
        with self._cond:
            while True:
                value = predicate()
                if value:
                    return value
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return value
                self._cond.wait(min(remaining, 0.2))

    def calls_to(self, method: str) -> list[dict[str, Any]]:
        with self._cond:
            return [params for name, params, _ in self.calls if name == method]

    def _find_sent(self, chat_id: int, message_id: int) -> SentMessage:
        for sent in self.sent.get(chat_id, []):
            if sent.message_id == message_id and not sent.deleted:
                return sent
        raise ApiError(400, "Bad Request: message to edit not found")

    # ----------------------------------------------------------------- Bot API
    def call(self, method: str, params: dict[str, Any]) -> Any:
        """Run one Bot API method; raise ApiError the way Telegram would."""
        with self._cond:
            self.calls.append((method, params, time.time()))
            fault = next((f for f in self.faults if f.matches(method, params)), None)
            if fault is not None and fault.count is not None:
                fault.count -= 1
                if fault.count <= 0:
                    self.faults.remove(fault)
        if fault is not None:
            if fault.kind == "slow":
                time.sleep(fault.delay)
            elif (error := fault.error()) is not None:
                raise error
        handler = getattr(self, f"api_{method.lower()}", None)
        if handler is None:
            raise ApiError(404, "Not Found: method not found")
        with self._cond:
            result = handler(params)
            self._cond.notify_all()
        return result

    def _bot_user(self) -> dict[str, Any]:
        return {"id": BOT_ID, "is_bot": True, "first_name": "Asisten Prokus (uji)",
                "username": BOT_USERNAME}

    def api_getme(self, params):
        return {**self._bot_user(), "can_join_groups": True,
                "can_read_all_group_messages": False, "supports_inline_queries": False,
                "can_connect_to_business": False, "has_main_web_app": False}

    def api_logout(self, params):
        return True

    def api_close(self, params):
        return True

    def api_getupdates(self, params):
        if self.webhook.get("url"):
            raise ApiError(409, "Conflict: can't use getUpdates method while webhook is active;"
                                " use deleteWebhook to delete the webhook first")
        offset = _int(params.get("offset")) or 0
        limit = max(1, min(_int(params.get("limit")) or 100, 100))
        timeout = max(0, _int(params.get("timeout")) or 0)
        if offset:
            self.updates = [u for u in self.updates if u["update_id"] >= offset]
        deadline = time.monotonic() + timeout
        while not self.updates and not self._closed:
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                break
            self._cond.wait(remaining)
        return self.updates[:limit]

    def api_setwebhook(self, params):
        url = params.get("url", "")
        if url and not url.startswith(("https://", "http://127.0.0.1", "http://localhost")):
            raise ApiError(
                400, "Bad Request: bad webhook: An HTTPS URL must be provided for webhook"
            )
        if params.get("drop_pending_updates"):
            self.updates.clear()
        self.webhook = {"url": url, "secret_token": params.get("secret_token"),
                        "max_connections": _int(params.get("max_connections")) or 40,
                        "allowed_updates": params.get("allowed_updates")}
        return True

    def api_deletewebhook(self, params):
        if params.get("drop_pending_updates"):
            self.updates.clear()
        self.webhook = {"url": ""}
        return True

    def api_getwebhookinfo(self, params):
        info = {"url": self.webhook.get("url", ""), "has_custom_certificate": False,
                "pending_update_count": len(self.updates)}
        if self.webhook.get("url"):
            info["max_connections"] = self.webhook.get("max_connections", 40)
        if self.webhook_errors:
            info["last_error_date"] = int(time.time())
            info["last_error_message"] = self.webhook_errors[-1]
        return info

    def _check_chat(self, params) -> int:
        chat_id = _int(params.get("chat_id"))
        if chat_id is None:
            raise ApiError(400, "Bad Request: chat_id is empty")
        if chat_id in self.blocked:
            raise ApiError(403, "Forbidden: bot was blocked by the user")
        if chat_id not in self.known_chats:
            raise ApiError(400, "Bad Request: chat not found")
        return chat_id

    @staticmethod
    def _check_text(params) -> str:
        text = params.get("text")
        if not text or not str(text).strip():
            raise ApiError(400, "Bad Request: message text is empty")
        if len(str(text).encode("utf-16-le")) // 2 > MAX_TEXT:
            raise ApiError(400, "Bad Request: message is too long")
        return str(text)

    def api_sendmessage(self, params):
        chat_id = self._check_chat(params)
        message = {
            "message_id": next(self._message_ids[chat_id]),
            "date": int(time.time()),
            "chat": self.known_chats[chat_id],
            "from": self._bot_user(),
            "text": self._check_text(params),
        }
        if params.get("reply_markup"):
            message["reply_markup"] = params["reply_markup"]
        self.sent[chat_id].append(SentMessage(message))
        self.sent_count += 1
        # Like Telegram, the returned Message carries only an inline keyboard; reply
        # keyboards (contact button, remove_keyboard) are kept above for the tests.
        returned = dict(message)
        if "inline_keyboard" not in (returned.get("reply_markup") or {}):
            returned.pop("reply_markup", None)
        return returned

    def api_editmessagetext(self, params):
        chat_id = self._check_chat(params)
        target = self._find_sent(chat_id, _int(params.get("message_id")) or 0)
        text = self._check_text(params)
        markup = params.get("reply_markup")
        if text == target.text and markup == target.reply_markup:
            raise ApiError(400, "Bad Request: message is not modified: specified new message "
                                "content and reply markup are exactly the same as a current "
                                "content and reply markup of the message")
        target.edits.append({"text": target.text, "reply_markup": target.reply_markup})
        target.message = {**target.message, "text": text, "edit_date": int(time.time())}
        target.message.pop("reply_markup", None)
        if markup:
            target.message["reply_markup"] = markup
        return target.message

    def api_editmessagereplymarkup(self, params):
        chat_id = self._check_chat(params)
        target = self._find_sent(chat_id, _int(params.get("message_id")) or 0)
        markup = params.get("reply_markup")
        if markup == target.reply_markup:
            raise ApiError(400, "Bad Request: message is not modified")
        target.edits.append({"text": target.text, "reply_markup": target.reply_markup})
        target.message = {**target.message, "edit_date": int(time.time())}
        target.message.pop("reply_markup", None)
        if markup:
            target.message["reply_markup"] = markup
        return target.message

    def api_deletemessage(self, params):
        chat_id = self._check_chat(params)
        try:
            target = self._find_sent(chat_id, _int(params.get("message_id")) or 0)
        except ApiError:
            raise ApiError(400, "Bad Request: message to delete not found") from None
        target.deleted = True
        return True

    def api_answercallbackquery(self, params):
        query_id = str(params.get("callback_query_id", ""))
        if query_id not in self.pending_callbacks:
            raise ApiError(400, "Bad Request: query is too old and response timeout expired "
                                "or query ID is invalid")
        self.pending_callbacks.discard(query_id)
        self.callback_answers[query_id] = params
        return True

    def api_sendchataction(self, params):
        chat_id = self._check_chat(params)
        self.chat_actions.append((chat_id, str(params.get("action"))))
        return True

    @staticmethod
    def _scope_key(params) -> str:
        scope = params.get("scope") or {"type": "default"}
        return json.dumps([scope, params.get("language_code") or ""], sort_keys=True)

    def api_setmycommands(self, params):
        commands = params.get("commands")
        if not isinstance(commands, list):
            raise ApiError(400, "Bad Request: can't parse commands JSON object")
        self.commands[self._scope_key(params)] = commands
        return True

    def api_getmycommands(self, params):
        return self.commands.get(self._scope_key(params), [])

    def api_deletemycommands(self, params):
        self.commands.pop(self._scope_key(params), None)
        return True


class _QuietServer(ThreadingHTTPServer):
    """A client that goes away mid-request (a worker killed by SIGKILL) is normal here."""

    daemon_threads = True

    def handle_error(self, request, client_address) -> None:
        import sys

        if not isinstance(sys.exc_info()[1], ConnectionError):
            super().handle_error(request, client_address)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeTelegram
    protocol_version = "HTTP/1.1"

    def log_message(self, *args: Any) -> None:
        pass

    def do_GET(self) -> None:
        self._dispatch()

    def do_POST(self) -> None:
        self._dispatch()

    def _send(self, status: int, body: Any) -> None:
        data = json.dumps(body, ensure_ascii=False).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        # The client may have given up (e.g. a long poll cancelled at shutdown).
        with contextlib.suppress(BrokenPipeError, ConnectionResetError):
            self.wfile.write(data)

    def _params(self) -> dict[str, Any]:
        url = urlparse(self.path)
        raw: dict[str, Any] = {k: v[-1] for k, v in parse_qs(url.query).items()}
        length = int(self.headers.get("Content-Length") or 0)
        body = self.rfile.read(length) if length else b""
        ctype = self.headers.get("Content-Type", "")
        if body and ctype.startswith("application/json"):
            return {**raw, **json.loads(body)}
        if body and ctype.startswith("application/x-www-form-urlencoded"):
            form = parse_qs(body.decode(), keep_blank_values=True)
            raw.update({k: v[-1] for k, v in form.items()})
        elif body and ctype.startswith("multipart/form-data"):
            message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(
                f"Content-Type: {ctype}\r\n\r\n".encode() + body
            )
            for part in message.iter_parts():
                name = part.get_param("name", header="content-disposition")
                if name and not part.get_filename():
                    raw[name] = part.get_content().strip()
        return {k: _decode(k, v) for k, v in raw.items()}

    def _dispatch(self) -> None:
        path = urlparse(self.path).path
        try:
            params = self._params()
        except (ValueError, UnicodeDecodeError):
            self._send(400, ApiError(400, "Bad Request: can't parse request body").body())
            return
        if path.startswith("/control/"):
            self._control(path.removeprefix("/control/"), params)
            return
        parts = path.strip("/").split("/")
        if len(parts) != 2 or not parts[0].startswith("bot"):
            self._send(404, ApiError(404, "Not Found").body())
            return
        token, method = parts[0][3:], parts[1]
        if token != self.fake.token:
            self._send(401, ApiError(401, "Unauthorized").body())
            return
        try:
            result = self.fake.call(method, params)
        except ApiError as exc:
            self._send(exc.code, exc.body())
            return
        self._send(200, {"ok": True, "result": result})

    def _control(self, action: str, params: dict[str, Any]) -> None:
        fake = self.fake
        pushers = {
            "push_text": fake.push_text, "push_command": fake.push_command,
            "push_edit": fake.push_edit,
            "push_contact": fake.push_contact, "push_sticker": fake.push_sticker,
            "push_photo": fake.push_photo, "push_voice": fake.push_voice,
            "push_document": fake.push_document, "push_location": fake.push_location,
            "push_callback": fake.push_callback,
        }
        try:
            if action in pushers:
                result: Any = pushers[action](**params)
            elif action == "messages":
                chat_id = _int(params.get("chat_id"))
                chats = [chat_id] if chat_id is not None else list(fake.sent)
                result = {str(c): [m.as_dict() for m in fake.messages(c)] for c in chats}
            elif action == "calls":
                result = [{"method": m, "params": p, "time": t} for m, p, t in fake.calls]
            elif action == "fault":
                fake.inject(**params)
                result = True
            elif action == "add_chats":
                fake.add_chats(params["user_ids"])
                result = True
            elif action == "deliveries":
                result = [{"chat_id": c, "text": t, "time": at} for c, t, at in fake.deliveries()]
            elif action == "block":
                fake.block(int(params["user_id"]))
                result = True
            elif action == "clear_faults":
                fake.clear_faults()
                result = True
            elif action == "reset":
                fake.reset()
                result = True
            else:
                self._send(404, {"ok": False, "description": f"unknown control action {action}"})
                return
        except (TypeError, KeyError, ValueError) as exc:
            self._send(400, {"ok": False, "description": f"bad control request: {exc}"})
            return
        except ApiError as exc:
            self._send(exc.code, exc.body())
            return
        self._send(200, {"ok": True, "result": result})


def _update_chat(update: dict[str, Any]) -> int:
    """The chat an update belongs to (Telegram keeps one chat's updates in order)."""
    for key in ("message", "edited_message", "callback_query"):
        body = update.get(key)
        if body:
            chat = (body.get("message") or {}).get("chat") or body.get("chat") or body["from"]
            return int(chat["id"])
    return 0


def _decode(key: str, value: Any) -> Any:
    """Form values are strings; nested objects arrive JSON-encoded."""
    if not isinstance(value, str) or key in STRING_PARAMS:
        return value
    if value[:1] in "{[" or value in ("true", "false", "null"):
        try:
            return json.loads(value)
        except ValueError:
            return value
    number = _int(value)
    return number if number is not None and str(number) == value else value


def main() -> None:
    parser = argparse.ArgumentParser(description="Run the fake Telegram Bot API server.")
    parser.add_argument("--port", type=int, default=8081, help="port on 127.0.0.1")
    parser.add_argument("--token", default=DEFAULT_TOKEN, help="the bot token it accepts")
    args = parser.parse_args()
    fake = FakeTelegram(args.token).start(args.port)
    print(f"Fake Bot API on {fake.base_url}  (token {args.token})", flush=True)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        fake.stop()


if __name__ == "__main__":
    main()
