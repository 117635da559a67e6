"""HTTP client for the Rasa NLU server's `/model/parse`, and the one reader of its replies
(`Parse.from_rasa`), used by the bot and by the evaluation (`nlu/evaluation.py`).

httpx is imported by the client only, so `Parse` also loads in the Rasa environment
(`.venv-nlu`, which has no httpx) for `scripts/nlu_compare.py`.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from contextvars import ContextVar
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

# Our config names the ResponseSelector "faq"; Rasa's default config calls it "default".
SELECTOR_NAMES = ("faq", "default")

log = logging.getLogger(__name__)

# The correlation id of the turn being run (set by bot.metrics.turn_scope): sent to the
# NLU server as the X-Request-ID header and named in this client's error log lines.
request_id: ContextVar[str | None] = ContextVar("nlu_request_id", default=None)
REQUEST_ID_HEADER = "X-Request-ID"


class NLUUnavailable(Exception):
    """The NLU server did not answer in time, or answered with an error."""


@dataclass(frozen=True)
class Entity:
    entity: str
    value: str
    start: int | None = None
    end: int | None = None


@dataclass(frozen=True)
class Parse:
    """What the NLU understood of one message."""

    intent: str
    confidence: float
    entities: tuple[Entity, ...] = ()
    ranking: tuple[tuple[str, float], ...] = field(default=())
    response_selector: dict = field(default_factory=dict, compare=False)

    @property
    def faq_key(self) -> str | None:
        """The FAQ sub-intent the ResponseSelector chose, e.g. `faq/cost`."""
        for name in SELECTOR_NAMES:
            selected = (self.response_selector.get(name) or {}).get("response") or {}
            if selected.get("intent_response_key"):
                return selected["intent_response_key"]
        return None

    def entity(self, name: str) -> str | None:
        """The first value found for entity `name`."""
        return next((e.value for e in self.entities if e.entity == name), None)

    @classmethod
    def from_rasa(cls, data: Any) -> Parse:
        """Read a `/model/parse` reply; missing or null fields get neutral values, a reply
        that is not an object raises ValueError."""
        try:
            return cls._read(data)
        except (AttributeError, KeyError, TypeError) as error:
            raise ValueError(f"not a Rasa parse reply: {error}") from None

    @classmethod
    def _read(cls, data: dict) -> Parse:
        """from_rasa without the error translation."""
        if not isinstance(data, dict):
            raise TypeError(f"expected a JSON object, got {type(data).__name__}")
        intent = data.get("intent") or {}
        entities = tuple(
            Entity(str(e["entity"]), str(e.get("value", "")), e.get("start"), e.get("end"))
            for e in data.get("entities") or []
        )
        ranking = tuple(
            (str(r.get("name") or ""), _number(r.get("confidence")))
            for r in data.get("intent_ranking") or []
        )
        selector = data.get("response_selector")
        return cls(
            intent=intent.get("name") or "nlu_fallback",
            confidence=_number(intent.get("confidence")),
            entities=entities,
            ranking=ranking,
            response_selector=selector if isinstance(selector, dict) else {},
        )


def _number(value: Any) -> float:
    """A confidence: null or missing is 0.0; anything else must be a number."""
    return 0.0 if value is None else float(value)


def split_urls(value: str | list[str] | tuple[str, ...]) -> list[str]:
    """`NLU_URL` as a list: one URL, or several separated by commas (spaces allowed)."""
    parts = value.split(",") if isinstance(value, str) else list(value)
    urls = [part.strip().rstrip("/") for part in parts if part.strip()]
    if not urls:
        raise ValueError("no NLU server URL given")
    return urls


# A server that failed (no connection, a timeout, a 5xx) is skipped this long.
COOLDOWN_SECONDS = 30.0


def server_label(url: str) -> str:
    """host:port of a server URL, for metrics and logs (never a user, password or token)."""
    from urllib.parse import urlsplit

    parts = urlsplit(url)
    try:
        port = parts.port or (443 if parts.scheme == "https" else 80)
    except ValueError:
        port = 0
    return f"{parts.hostname or '?'}:{port}"


class _Server:
    """One NLU server: its connection pool and until when it is skipped."""

    def __init__(self, url: str, http: httpx.Client) -> None:
        self.url = url
        self.label = server_label(url)
        self.http = http
        self.down_until = 0.0


class NLUClient:
    """Parse text through one or several Rasa servers; one connection pool per server.

    Requests go round robin over the servers. A server that failed (connection error,
    timeout, 5xx) is skipped for `cooldown` seconds, then tried again; when every server
    is cooling down, the one that comes back first is asked anyway. Each attempt (at most
    `retries` + 1 per parse) goes to the next server, so a retry after a failure lands on
    another server when there is one.

    `observer`, when set, is called after each attempt with the server's host:port, the
    seconds it took and the error's class name (None on success): bot.metrics.observe_nlu.
    The current turn's correlation id (`request_id`) goes along as X-Request-ID."""

    def __init__(self, base_url: str | list[str], timeout: float = 3.0, retries: int = 1,
                 token: str | None = None, cooldown: float = COOLDOWN_SECONDS,
                 clock=time.monotonic,
                 observer: Callable[[str, float, str | None], None] | None = None) -> None:
        import httpx

        urls = split_urls(base_url)
        self.base_url = urls[0]
        self.urls = urls
        self.retries = retries
        self.cooldown = cooldown
        self.clock = clock
        self.observer = observer
        # Rasa's --auth-token is sent as the `token` query parameter on every request.
        params = {"token": token} if token else None
        self._servers = [_Server(url, httpx.Client(base_url=url, timeout=timeout,
                                                   params=params)) for url in urls]
        self._next = 0
        self._lock = threading.Lock()
        self._http = self._servers[0].http  # (the single-server attribute of old)

    def _pick(self) -> _Server:
        """The next server in turn that is not cooling down (else the first back)."""
        with self._lock:
            now = self.clock()
            count = len(self._servers)
            for step in range(count):
                server = self._servers[(self._next + step) % count]
                if server.down_until <= now:
                    self._next = (self._next + step + 1) % count
                    return server
            return min(self._servers, key=lambda s: s.down_until)

    def _failed(self, server: _Server) -> None:
        with self._lock:
            server.down_until = self.clock() + self.cooldown

    def parse(self, text: str) -> Parse:
        """Return the parse of `text`; raise NLUUnavailable after the retries are spent."""
        import httpx

        last_error: Exception | None = None
        rid = request_id.get()
        headers = {REQUEST_ID_HEADER: rid} if rid else None
        for attempt in range(self.retries + 1):
            server = self._pick()
            started = time.perf_counter()
            try:
                response = server.http.post("/model/parse", json={"text": text},
                                            headers=headers)
                response.raise_for_status()
                parse = Parse.from_rasa(response.json())
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                last_error = exc
                self._observe(server, started, type(exc).__name__)
                if _server_fault(exc) and len(self._servers) > 1:
                    self._failed(server)
                log.warning(
                    "nlu request failed",
                    extra={"attempt": attempt + 1, "error": type(exc).__name__,
                           "server": self._servers.index(server), "host": server.label,
                           "request_id": rid},
                )
                continue
            ms = self._observe(server, started, None)
            log.debug("nlu parse", extra={"ms": ms, "host": server.label, "request_id": rid})
            return parse
        raise NLUUnavailable(str(last_error)) from last_error

    def _observe(self, server: _Server, started: float, error: str | None) -> float:
        """Report one attempt to the observer; return its milliseconds."""
        seconds = time.perf_counter() - started
        if self.observer is not None:
            try:
                self.observer(server.label, seconds, error)
            except Exception:  # metrics never break a parse
                log.debug("nlu observer failed", exc_info=True)
        return round(seconds * 1000, 1)

    def is_ready(self) -> bool:
        """Return True when at least one server answers and has a model loaded."""
        return any(self.ready_servers())

    def ready_servers(self) -> list[bool]:
        """For each server in order: does it answer with a model loaded?"""
        import httpx

        ready = []
        for server in self._servers:
            try:
                response = server.http.get("/status", timeout=2.0)
                ready.append(response.status_code == 200
                             and bool(response.json().get("model_file")))
            except (httpx.HTTPError, ValueError, AttributeError):
                ready.append(False)
        return ready

    def close(self) -> None:
        for server in self._servers:
            server.http.close()


def _server_fault(exc: Exception) -> bool:
    """A failure that says the server is away or broken (not that our request was bad)."""
    import httpx

    if isinstance(exc, httpx.HTTPStatusError):
        return exc.response.status_code >= 500
    return isinstance(exc, httpx.TransportError)  # connect errors and timeouts
