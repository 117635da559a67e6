"""Observability: Prometheus metrics (`GET /metrics`) and the record of one turn, which ends
as one JSON log line with a correlation id that also travels to the NLU server
(`X-Request-ID`) and onto the turn's outbox rows (`outbox.correlation_id`).

Metrics are in-process counters and histograms (prometheus_client), updated on the hot path
without any database work; the two database figures (outbox queue depth, open handoffs) are
counted when /metrics is scraped, at most every CACHE_SECONDS. Labels never carry personal
data: a channel, a kind of turn, an outcome, an NLU server as host:port, a send result.

prometheus_client is imported on first use, not at import time: in multiprocess mode
(`prokus serve --workers N`, see `use_multiprocess_dir`) PROMETHEUS_MULTIPROC_DIR must be
set before it is imported.
"""

from __future__ import annotations

import contextlib
import hmac
import logging
import os
import secrets
import socket
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)
turn_log = logging.getLogger("prokus.turn")

INSTANCE_ENV = "PROKUS_INSTANCE"
MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
CACHE_SECONDS = 5.0  # the database figures are counted at most this often
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
LATENCY_BUCKETS = (0.05, 0.1, 0.2, 0.3, 0.5, 0.75, 1.0, 2.0, 3.0, 5.0, 10.0, 30.0)
NLU_BUCKETS = (0.01, 0.025, 0.05, 0.1, 0.2, 0.3, 0.5, 1.0, 2.0, 3.0, 5.0)
MAX_ARRIVALS = 20_000  # arrival times kept for updates not yet run (oldest dropped)


# ---------------------------------------------------------------------- instance id
_instance: tuple[int, str] | None = None


def instance_id() -> str:
    """PROKUS_INSTANCE, else hostname:pid (computed again in a forked child)."""
    global _instance
    pid = os.getpid()
    if _instance is None or _instance[0] != pid:
        _instance = (pid, os.environ.get(INSTANCE_ENV) or f"{socket.gethostname()}:{pid}")
    return _instance[1]


# ---------------------------------------------------------------------- the metrics
class Metrics:
    """The process's metric objects (one set per process)."""

    def __init__(self) -> None:
        from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram

        self.multiprocess = bool(os.environ.get(MULTIPROC_ENV))
        self.registry = CollectorRegistry(auto_describe=True)
        reg = self.registry
        self.turns = Counter("prokus_turns", "Turns run, by channel, kind and outcome "
                             "(ok, fallback, nlu_unavailable, error, no_reply).",
                             ["channel", "kind", "outcome"], registry=reg)
        self.reply_latency = Histogram(
            "prokus_reply_latency_seconds", "From the update's arrival in this process "
            "(webhook POST or getUpdates) to the first reply of its turn sent to Telegram.",
            ["channel"], buckets=LATENCY_BUCKETS, registry=reg)
        self.nlu_latency = Histogram("prokus_nlu_request_seconds", "NLU /model/parse requests "
                                     "(each attempt), by server host:port.", ["server"],
                                     buckets=NLU_BUCKETS, registry=reg)
        self.nlu_errors = Counter("prokus_nlu_errors", "Failed NLU requests (each attempt), "
                                  "by server host:port and error class.", ["server", "error"],
                                  registry=reg)
        self.updates_received = Counter("prokus_updates_received", "Updates received, by "
                                        "source (webhook, polling).", ["source"], registry=reg)
        self.duplicates = Counter("prokus_updates_duplicate", "Updates dropped because they "
                                  "were already in the inbox (redelivered), by source.",
                                  ["source"], registry=reg)
        self.requeued = Counter("prokus_updates_requeued", "Stalled stored updates queued "
                                "again by the webhook sweep.", registry=reg)
        self.outbox_sends = Counter("prokus_outbox_sends", "Outbox send attempts by result "
                                    "(sent, failed, blocked, retry, retry_after, uncertain).",
                                    ["result"], registry=reg)
        self.info = Gauge("prokus_process_info", "This process (always 1): its instance id.",
                          ["instance"], registry=reg, multiprocess_mode="liveall")
        self.info.labels(instance=instance_id()).set(1)


_metrics: Metrics | None = None
_metrics_lock = threading.Lock()


def metrics() -> Metrics:
    """The metrics of this process, created on first use."""
    global _metrics
    if _metrics is None:
        with _metrics_lock:
            if _metrics is None:
                _metrics = Metrics()
    return _metrics


def use_multiprocess_dir(path: Path | None = None) -> Path | None:
    """Switch this process to prometheus_client's multiprocess mode (before any metric is
    made): several uvicorn workers of one `prokus serve` write to one directory and any of
    them answers /metrics with the sum. Without PROMETHEUS_MULTIPROC_DIR set, the directory
    is one per parent process under the temp dir (the workers of one serve share it).
    Returns the directory; None (and nothing changed) when this process's metrics exist
    already."""
    if _metrics is not None:
        if not _metrics.multiprocess:
            log.warning("metrics made before multiprocess mode was chosen: this process's "
                        "/metrics shows its own figures only")
        return None
    if path is None:
        given = os.environ.get(MULTIPROC_ENV)
        path = Path(given) if given else (Path(tempfile.gettempdir())
                                          / f"prokus-metrics-{os.getppid()}")
    path.mkdir(parents=True, exist_ok=True)
    os.environ[MULTIPROC_ENV] = str(path)
    import sys

    if "prometheus_client.values" in sys.modules:  # imported already: choose again
        from prometheus_client import values

        values.ValueClass = values.get_value_class()
    return path


def mark_process_dead() -> None:
    """At a worker's exit in multiprocess mode: drop its live gauges."""
    if os.environ.get(MULTIPROC_ENV):
        with contextlib.suppress(Exception):
            from prometheus_client import multiprocess

            multiprocess.mark_process_dead(os.getpid())


# ---------------------------------------------------------------------- hot-path helpers
def count(metric: str, amount: float = 1.0, **labels: str) -> None:
    """Add to a counter; a metrics failure never breaks the bot."""
    try:
        target = getattr(metrics(), metric)
        (target.labels(**labels) if labels else target).inc(amount)
    except Exception:  # pragma: no cover - a bug in the metrics only
        log.debug("metric not counted", exc_info=True)


def observe(metric: str, value: float, **labels: str) -> None:
    """Observe a histogram value; a metrics failure never breaks the bot."""
    try:
        target = getattr(metrics(), metric)
        (target.labels(**labels) if labels else target).observe(value)
    except Exception:  # pragma: no cover
        log.debug("metric not observed", exc_info=True)


def observe_nlu(server: str, seconds: float, error: str | None) -> None:
    """The NLU client's observer (nlu.client.NLUClient.observer): one attempt."""
    observe("nlu_latency", seconds, server=server)
    if error is not None:
        count("nlu_errors", server=server, error=error)


_arrivals: dict[int, float] = {}


def arrived(update_id: int, at: float | None = None) -> None:
    """Note when (time.monotonic(), default now) an update reached this process, for the
    reply latency."""
    if len(_arrivals) >= MAX_ARRIVALS:
        with contextlib.suppress(StopIteration, KeyError, RuntimeError):
            _arrivals.pop(next(iter(_arrivals)))
    _arrivals[update_id] = time.monotonic() if at is None else at


def arrival(update_id: int | None) -> float | None:
    """When the update arrived (and forget it), None when not known here."""
    return None if update_id is None else _arrivals.pop(update_id, None)


# ---------------------------------------------------------------------- one turn
def new_correlation_id() -> str:
    """16 hex digits, never shaped like a NIK or a phone number (the log redacts those)."""
    from bot.logging import redact

    while True:
        value = secrets.token_hex(8)
        if redact(value) == value and not value.isdigit():
            return value


@dataclass
class TurnRecord:
    """What one turn did, for its log line and the metrics."""

    channel: str
    kind: str
    update_id: int | None
    user: str  # the HMAC user tag (actions.dialogue.user_tag), never the raw id
    correlation_id: str = field(default_factory=new_correlation_id)
    started: float = field(default_factory=time.perf_counter)
    arrived: float | None = None  # time.monotonic() of the update's arrival
    intent: str | None = None
    confidence: float | None = None
    nlu_ms: float | None = None
    nlu_asked: bool = False
    nlu_failed: bool = False
    nlu_fallback: bool = False  # the parse was nlu_fallback or under the threshold
    outbox_ids: list[int] = field(default_factory=list)
    replies: int = 0
    reply_ms: float | None = None
    outcome: str = "ok"

    def first_reply_sent(self) -> None:
        """The first reply of the turn reached Telegram: observe the reply latency."""
        if self.reply_ms is not None or self.arrived is None:
            return
        seconds = time.monotonic() - self.arrived
        self.reply_ms = round(seconds * 1000, 1)
        observe("reply_latency", seconds, channel=self.channel)

    def finish(self, outcome: str | None = None) -> None:
        """Count the turn and write its one log line."""
        if outcome is not None:
            self.outcome = outcome
        count("turns", channel=self.channel, kind=self.kind, outcome=self.outcome)
        fields: dict[str, Any] = {
            "correlation_id": self.correlation_id, "instance": instance_id(),
            "update_id": self.update_id, "user": self.user, "channel": self.channel,
            "kind": self.kind, "outcome": self.outcome, "replies": self.replies,
            "ms": round((time.perf_counter() - self.started) * 1000, 1),
        }
        if self.nlu_asked:
            fields.update(intent=self.intent, confidence=self.confidence, nlu_ms=self.nlu_ms)
        if self.reply_ms is not None:
            fields["reply_ms"] = self.reply_ms
        if self.outbox_ids:
            fields["outbox_ids"] = list(self.outbox_ids)
        turn_log.info("turn done", extra=fields)


@contextlib.contextmanager
def turn_scope(record: TurnRecord) -> Iterator[TurnRecord]:
    """Make `record` the current turn: the NLU client sends its correlation id as
    X-Request-ID and db.outbox writes it on the turn's rows (and notes their ids)."""
    from db.outbox import current_turn
    from nlu.client import request_id

    turn_token = current_turn.set(record)
    request_token = request_id.set(record.correlation_id)
    try:
        yield record
    finally:
        request_id.reset(request_token)
        current_turn.reset(turn_token)


class TurnNLU:
    """Wraps the dialogue's NLU: notes the intent, confidence and time of the current turn's
    parse (or that the NLU was unavailable)."""

    def __init__(self, inner: Any, threshold: float = 0.3) -> None:
        self.inner = inner
        self.threshold = threshold

    def parse(self, text: str):
        from db.outbox import current_turn

        record = current_turn.get()
        started = time.perf_counter()
        try:
            parse = self.inner.parse(text)
        except Exception:
            if record is not None:
                record.nlu_asked = record.nlu_failed = True
                record.nlu_ms = round((time.perf_counter() - started) * 1000, 1)
            raise
        if record is not None:
            record.nlu_asked = True
            record.nlu_ms = round((time.perf_counter() - started) * 1000, 1)
            record.intent = parse.intent
            record.confidence = round(float(parse.confidence), 3)
            record.nlu_fallback = (parse.intent == "nlu_fallback"
                                   or parse.confidence < self.threshold)
        return parse

    def __getattr__(self, name: str) -> Any:  # is_open, close, ... of the wrapped NLU
        if name == "inner":
            raise AttributeError(name)
        return getattr(self.inner, name)


def instrument(assistant: Any) -> None:
    """Hook the metrics and the turn record into an assistant (once): its NLU calls are
    timed per turn and per server (they run in the turn's context: Assistant.handle_async
    copies it into the NLU pool's thread)."""
    dialogue = assistant.dialogue
    if not isinstance(dialogue.nlu, TurnNLU):
        inner = dialogue.nlu
        client = getattr(inner, "inner", inner)  # (nlu.guard.GuardedNLU wraps the client)
        if hasattr(client, "observer") and client.observer is None:
            client.observer = observe_nlu
        dialogue.nlu = TurnNLU(inner, threshold=dialogue.threshold)


def outcome_of(record: TurnRecord, replies: list, error_text: str | None) -> str:
    """ok, fallback (the NLU did not understand), nlu_unavailable, error (the apology),
    no_reply (the update was handled already)."""
    if not replies:
        return "no_reply"
    if error_text is not None and len(replies) == 1 and replies[0].text == error_text:
        return "error"
    if record.nlu_failed:
        return "nlu_unavailable"
    return "fallback" if record.nlu_fallback else "ok"


# ---------------------------------------------------------------------- scrape time
class DatabaseFigures:
    """prokus_outbox_queue_depth and prokus_handoffs_open, counted at scrape time (one
    cheap COUNT each, on non-sealed columns), cached CACHE_SECONDS."""

    def __init__(self, sessions: Callable[[], Any], clock: Callable[[], float] = time.monotonic
                 ) -> None:
        self.sessions = sessions
        self.clock = clock
        self._at = -1e9
        self._values: tuple[dict[str, int], int | None] | None = None
        self._lock = threading.Lock()

    def _count(self) -> tuple[dict[str, int], int | None]:
        from sqlalchemy import func, select

        from db.models import HandoffTicket
        from outbox import store

        with self.sessions() as session:
            depth = store.queue_depth(session)
            handoffs = session.scalar(select(func.count()).select_from(HandoffTicket)
                                      .where(HandoffTicket.status != "closed"))
        return depth, int(handoffs or 0)

    def values(self) -> tuple[dict[str, int], int | None] | None:
        with self._lock:
            if self._values is None or self.clock() - self._at >= CACHE_SECONDS:
                try:
                    self._values = self._count()
                except Exception as exc:  # the database is away: no figures this scrape
                    log.warning("metrics: database figures failed",
                                extra={"error": type(exc).__name__})
                    self._values = None
                self._at = self.clock()
            return self._values

    def collect(self):
        from prometheus_client.core import GaugeMetricFamily

        found = self.values()
        up = GaugeMetricFamily("prokus_metrics_database_up", "1 when the database figures "
                               "below were counted at this scrape (or within 5 s).")
        up.add_metric([], 0 if found is None else 1)
        yield up
        if found is None:
            return
        depth, handoffs = found
        queue = GaugeMetricFamily("prokus_outbox_queue_depth", "Outbox rows not yet sent, by "
                                  "state (pending, claimed, sending).", labels=["state"])
        for state in ("pending", "claimed", "sending"):
            queue.add_metric([state], depth.get(state, 0))
        yield queue
        opened = GaugeMetricFamily("prokus_handoffs_open", "Handoff tickets not closed.")
        opened.add_metric([], handoffs or 0)
        yield opened


def render(figures: DatabaseFigures | None = None) -> bytes:
    """The exposition text: this process's metrics (or, in multiprocess mode, every worker's
    summed), plus the database figures."""
    from prometheus_client import CollectorRegistry, generate_latest

    own = metrics()
    if own.multiprocess:
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = own.registry
    text = generate_latest(registry)
    if figures is not None:
        extra = CollectorRegistry()
        extra.register(figures)
        text += generate_latest(extra)
    return text


def authorised(header: str | None, token: str | None) -> bool:
    """Whether an Authorization header carries the metrics token (any, when none is set)."""
    if token is None:
        return True
    if not header or not header.startswith("Bearer "):
        return False
    return hmac.compare_digest(header[len("Bearer "):].strip().encode(), token.encode())


# ---------------------------------------------------------------------- polling mode
class MetricsServer:
    """`prokus run --metrics-port`: GET /metrics on its own small HTTP server (a thread)."""

    def __init__(self, host: str, port: int, figures: DatabaseFigures | None,
                 token: str | None = None) -> None:
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def log_message(self, *args: Any) -> None:
                pass

            def do_GET(self) -> None:  # noqa: N802 (http.server's name)
                if self.path.split("?")[0] != "/metrics":
                    self._send(404, b"Not Found\n", "text/plain")
                    return
                if not authorised(self.headers.get("Authorization"), owner.token):
                    self._send(403, b"Forbidden\n", "text/plain")
                    return
                self._send(200, render(owner.figures), CONTENT_TYPE)

            def _send(self, status: int, body: bytes, kind: str) -> None:
                self.send_response(status)
                self.send_header("Content-Type", kind)
                self.send_header("Content-Length", str(len(body)))
                self.send_header("Cache-Control", "no-store")
                self.end_headers()
                self.wfile.write(body)

        self.figures = figures
        self.token = token
        self.server = ThreadingHTTPServer((host, port), Handler)
        self.server.daemon_threads = True
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True,
                                       name="metrics")

    @property
    def port(self) -> int:
        return self.server.server_address[1]

    def start(self) -> MetricsServer:
        self.thread.start()
        return self

    def stop(self) -> None:
        self.server.shutdown()
        self.server.server_close()
