"""Sends outbox messages through the Telegram Bot API (sendMessage) and classifies what
happened, for the outbox worker. Plain httpx, so every failure mode is visible: a request
that never left (connection refused) may be retried; one whose answer never came may have
been delivered and is reported as uncertain instead of being sent twice."""

from __future__ import annotations

import asyncio
import importlib.util
import json
import ssl
import sys

import httpx

from outbox.worker import BLOCKED, FAILED, RETRY, RETRY_AFTER, SENT, UNCERTAIN, Outcome

JSON_HEADERS = {"Content-Type": "application/json"}

if "sniffio" not in sys.modules and importlib.util.find_spec("sniffio") is None:
    # httpcore tries `import sniffio` on every request; when it is not installed, each
    # failed try searches sys.path again (a quarter of a worker's CPU at 500 sends/s). A
    # None entry makes the import fail at once, which is what httpcore expects then.
    sys.modules["sniffio"] = None  # type: ignore[assignment]


class LeanTransport(httpx.AsyncBaseTransport):
    """httpx's transport for the outbox: plain HTTP/1.1 keep-alive connections (TLS for
    https) to the Bot API host, at most `max_connections`, one request at a time each.

    httpcore's pool checks every connection's socket on every request, which at 1,000
    sends/s costs more CPU than everything else a worker does; here an idle connection is
    only checked for a close seen by the event loop. Failure classes are httpx's: a
    connection that could not be made raises ConnectError/ConnectTimeout (nothing was
    sent), anything after the request was written raises another httpx.HTTPError (it may
    have been delivered). No proxies: set `lean=False` on TelegramSender to need them."""

    def __init__(self, max_connections: int = 16, timeout: float = 10.0,
                 connect_timeout: float = 5.0) -> None:
        self.max_connections = max_connections
        self.timeout, self.connect_timeout = timeout, connect_timeout
        self.idle: list[tuple[asyncio.StreamReader, asyncio.StreamWriter]] = []
        self.slots: asyncio.Semaphore | None = None

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.slots is None:
            self.slots = asyncio.Semaphore(self.max_connections)
        async with self.slots:
            reader, writer = self._reuse() or await self._connect(request)
            head = [f"{request.method} {request.url.raw_path.decode()} HTTP/1.1\r\n".encode()]
            head += [name + b": " + value + b"\r\n" for name, value in request.headers.raw]
            try:
                writer.write(b"".join(head) + b"\r\n" + request.content)
                await writer.drain()
                status, headers, body = await asyncio.wait_for(self._read(reader),
                                                               self.timeout)
            except TimeoutError as exc:
                writer.close()
                raise httpx.ReadTimeout("no answer in time", request=request) from exc
            except (OSError, EOFError, ValueError, asyncio.IncompleteReadError) as exc:
                writer.close()
                raise httpx.ReadError(f"connection lost: {type(exc).__name__}",
                                      request=request) from exc
            if any(n == b"connection" and v.lower() == b"close" for n, v in headers):
                writer.close()
            else:
                self.idle.append((reader, writer))
            return httpx.Response(status, headers=headers, content=body, request=request)

    def _reuse(self):
        while self.idle:
            reader, writer = self.idle.pop()
            if not reader.at_eof() and not writer.is_closing():
                return reader, writer
            writer.close()
        return None

    async def _connect(self, request: httpx.Request):
        url = request.url
        tls = url.scheme == "https"
        port = url.port or (443 if tls else 80)
        try:
            return await asyncio.wait_for(asyncio.open_connection(
                url.host, port, ssl=ssl.create_default_context() if tls else None,
                server_hostname=url.host if tls else None), self.connect_timeout)
        except TimeoutError as exc:
            raise httpx.ConnectTimeout("connect timed out", request=request) from exc
        except OSError as exc:
            raise httpx.ConnectError(f"cannot connect: {type(exc).__name__}",
                                     request=request) from exc

    @staticmethod
    async def _read(reader: asyncio.StreamReader):
        line = await reader.readline()
        if not line:
            raise EOFError("closed before the answer")
        status = int(line.split(b" ", 2)[1])
        headers: list[tuple[bytes, bytes]] = []
        while (line := await reader.readline()) not in (b"\r\n", b"\n", b""):
            name, _, value = line.partition(b":")
            headers.append((name.strip().lower(), value.strip()))
        fields = dict(headers)
        if fields.get(b"transfer-encoding", b"").lower() == b"chunked":
            chunks = []
            while size := int((await reader.readline()).split(b";")[0], 16):
                chunks.append(await reader.readexactly(size))
                await reader.readline()
            while (await reader.readline()) not in (b"\r\n", b"\n", b""):
                pass
            body = b"".join(chunks)
            headers = [(n, v) for n, v in headers if n != b"transfer-encoding"]
        elif b"content-length" in fields:
            body = await reader.readexactly(int(fields[b"content-length"]))
        else:
            body = await reader.read()
            headers.append((b"connection", b"close"))
        return status, headers, body

    async def aclose(self) -> None:
        for _, writer in self.idle:
            writer.close()
        self.idle.clear()


class TelegramSender:
    def __init__(self, token: str, base_url: str = "https://api.telegram.org/bot",
                 timeout: float = 10.0, max_connections: int = 16, lean: bool = True) -> None:
        self.url = f"{base_url}{token}/sendMessage"  # as python-telegram-bot builds it
        transport = LeanTransport(max_connections, timeout) if lean else None
        self.client = httpx.AsyncClient(
            timeout=httpx.Timeout(timeout, connect=5.0), transport=transport,
            limits=httpx.Limits(max_connections=max_connections))

    async def send(self, chat_id: str, text: str, markup: dict | None = None,
                   paid: bool = False) -> Outcome:
        """sendMessage; `paid` adds allow_paid_broadcast (up to 1,000 messages/s, paid in
        Telegram Stars), sent only when asked."""
        numeric = chat_id.lstrip("-").isascii() and chat_id.lstrip("-").isdigit()
        body: dict = {"chat_id": int(chat_id) if numeric else chat_id, "text": text}
        reply_markup = telegram_markup(markup)
        if reply_markup is not None:
            body["reply_markup"] = reply_markup
        if paid:
            body["allow_paid_broadcast"] = True
        try:
            response = await self.client.post(self.url, content=json.dumps(body).encode(),
                                              headers=JSON_HEADERS)
        except (httpx.ConnectError, httpx.ConnectTimeout, httpx.PoolTimeout) as exc:
            return Outcome(RETRY, f"cannot reach Telegram: {type(exc).__name__}")
        except httpx.HTTPError as exc:  # sent, but no (complete) answer
            return Outcome(UNCERTAIN, f"no answer from Telegram: {type(exc).__name__}")
        return classify(response)

    async def close(self) -> None:
        await self.client.aclose()


def telegram_markup(markup: dict | None) -> dict | None:
    """The Bot API's reply_markup for the outbox's channel-neutral markup
    (db.outbox.markup_of): inline buttons, a one-time "share contact" keyboard, or the
    removal of that keyboard."""
    if not markup:
        return None
    buttons = markup.get("buttons") or []
    if markup.get("contact"):
        rows = [[{"text": markup["contact"], "request_contact": True}]]
        rows += [[{"text": label}] for label, _ in buttons]
        return {"keyboard": rows, "one_time_keyboard": True, "resize_keyboard": True}
    if buttons:
        return {"inline_keyboard": [[{"text": label, "callback_data": payload}]
                                    for label, payload in buttons]}
    if markup.get("remove_keyboard"):
        return {"remove_keyboard": True}
    return None


def classify(response: httpx.Response) -> Outcome:
    try:
        body = response.json()
    except ValueError:
        body = {}
    description = str(body.get("description") or response.reason_phrase)[:150]
    if response.status_code == 200 and body.get("ok"):
        return Outcome(SENT)
    if response.status_code == 429:
        retry_after = float((body.get("parameters") or {}).get("retry_after") or 1)
        return Outcome(RETRY_AFTER, description, retry_after)
    if response.status_code == 403:
        return Outcome(BLOCKED, "blocked the bot")
    if response.status_code >= 500:
        return Outcome(RETRY, f"Telegram {response.status_code}: {description}")
    return Outcome(FAILED, f"Telegram {response.status_code}: {description}")
