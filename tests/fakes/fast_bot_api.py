"""A lean fake of the Bot API's sendMessage for throughput benchmarks (1,000+ messages/s on
a small machine): one asyncio process, a minimal HTTP/1.1 keep-alive parser, nothing but
sendMessage. It records what arrived (chat, text, arrival time, whether
allow_paid_broadcast was set) and can play Telegram's limits (429 with retry_after when
more than the free or the paid limit arrive within one second).

The full fake (tests/fakes/telegram_api.py) stays the one the tests use: it answers every
method the bot uses, but a threaded http.server in the benchmark's own process does not
keep up with 1,000 requests/s on 2 cores.

    python -m tests.fakes.fast_bot_api --port 18101 --chats 10000000:10030000

Control (GET): /control/count -> {"count": n, "paid": n, "refused": n};
/control/deliveries -> [[chat, text, time, paid], ...]; /control/reset.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import time
from collections import deque

from tests.fakes.telegram_api import DEFAULT_TOKEN


class Receiver:
    def __init__(self, token: str, chats: range, free_limit: float | None = None,
                 paid_limit: float | None = None) -> None:
        self.path = f"/bot{token}/sendMessage".encode()
        self.chats = chats
        self.free_limit, self.paid_limit = free_limit, paid_limit
        self.reset()

    def reset(self) -> None:
        self.deliveries: list[tuple[int, str, float, bool]] = []
        self.paid = 0
        self.refused = 0
        self.window: deque[float] = deque()  # arrivals in the last second (limits)
        self.message_ids = 0

    def send_message(self, body: dict) -> tuple[int, dict]:
        now = time.time()
        paid = body.get("allow_paid_broadcast") is True
        limit = self.paid_limit if paid else self.free_limit
        if limit is not None:
            while self.window and self.window[0] <= now - 1.0:
                self.window.popleft()
            if len(self.window) >= limit:
                self.refused += 1
                return 429, {"ok": False, "error_code": 429,
                             "description": "Too Many Requests: retry after 1",
                             "parameters": {"retry_after": 1}}
            self.window.append(now)
        try:
            chat = int(body.get("chat_id"))
        except (TypeError, ValueError):
            chat = None
        if chat is None or chat not in self.chats:
            return 400, {"ok": False, "error_code": 400,
                         "description": "Bad Request: chat not found"}
        text = str(body.get("text") or "")
        self.deliveries.append((chat, text, now, paid))
        self.paid += paid
        self.message_ids += 1
        return 200, {"ok": True, "result": {
            "message_id": self.message_ids, "date": int(now),
            "chat": {"id": chat, "type": "private"}, "text": text}}

    def control(self, action: str) -> tuple[int, object]:
        if action == "count":
            return 200, {"count": len(self.deliveries), "paid": self.paid,
                         "refused": self.refused}
        if action == "deliveries":
            return 200, self.deliveries
        if action == "reset":
            self.reset()
            return 200, True
        return 404, {"ok": False}


class _Protocol(asyncio.Protocol):
    def __init__(self, receiver: Receiver) -> None:
        self.receiver = receiver
        self.buffer = b""

    def connection_made(self, transport) -> None:
        self.transport = transport

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while True:
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                return
            head = self.buffer[:end].decode("latin-1").split("\r\n")
            length = 0
            for line in head[1:]:
                name, _, value = line.partition(":")
                if name.strip().lower() == "content-length":
                    length = int(value.strip() or 0)
            if len(self.buffer) < end + 4 + length:
                return
            body = self.buffer[end + 4:end + 4 + length]
            self.buffer = self.buffer[end + 4 + length:]
            self.handle(head[0], body)

    def handle(self, request_line: str, body: bytes) -> None:
        parts = request_line.split(" ")
        path = parts[1] if len(parts) > 1 else "/"
        if path.startswith("/control/"):
            status, answer = self.receiver.control(path.removeprefix("/control/"))
        elif path.encode() == self.receiver.path:
            try:
                status, answer = self.receiver.send_message(json.loads(body or b"{}"))
            except ValueError:
                status, answer = 400, {"ok": False, "error_code": 400,
                                       "description": "Bad Request: can't parse JSON"}
        else:
            status, answer = 404, {"ok": False, "error_code": 404, "description": "Not Found"}
        data = json.dumps(answer).encode()
        reason = {200: "OK", 400: "Bad Request", 404: "Not Found",
                  429: "Too Many Requests"}.get(status, "Error")
        self.transport.write(
            f"HTTP/1.1 {status} {reason}\r\nContent-Type: application/json\r\n"
            f"Content-Length: {len(data)}\r\n\r\n".encode() + data)


async def serve(receiver: Receiver, port: int) -> None:
    loop = asyncio.get_running_loop()
    server = await loop.create_server(lambda: _Protocol(receiver), "127.0.0.1", port,
                                      backlog=1024)
    stop = asyncio.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    print(f"ready http://127.0.0.1:{port}/bot", flush=True)
    async with server:
        await stop.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description="A lean fake sendMessage for benchmarks.")
    parser.add_argument("--port", type=int, default=18101)
    parser.add_argument("--token", default=DEFAULT_TOKEN)
    parser.add_argument("--chats", default="10000000:10100000",
                        help="FIRST:END, the chats that exist (END excluded)")
    parser.add_argument("--free-limit", type=float, default=None,
                        help="answer 429 beyond this many plain messages in any second")
    parser.add_argument("--paid-limit", type=float, default=None,
                        help="answer 429 beyond this many paid messages in any second")
    args = parser.parse_args()
    first, _, end = args.chats.partition(":")
    receiver = Receiver(args.token, range(int(first), int(end)), args.free_limit,
                        args.paid_limit)
    asyncio.run(serve(receiver, args.port))


if __name__ == "__main__":
    main()
