"""HTTP client for the Rasa NLU server's `/model/parse`."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field

import httpx

log = logging.getLogger(__name__)


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
        selected = self.response_selector.get("faq", {}).get("response", {})
        return selected.get("intent_response_key")

    def entity(self, name: str) -> str | None:
        """The first value found for entity `name`."""
        return next((e.value for e in self.entities if e.entity == name), None)

    @classmethod
    def from_rasa(cls, data: dict) -> Parse:
        intent = data.get("intent") or {}
        entities = tuple(
            Entity(e["entity"], str(e.get("value", "")), e.get("start"), e.get("end"))
            for e in data.get("entities") or []
        )
        ranking = tuple(
            (r.get("name", ""), float(r.get("confidence", 0.0)))
            for r in data.get("intent_ranking") or []
        )
        return cls(
            intent=intent.get("name") or "nlu_fallback",
            confidence=float(intent.get("confidence") or 0.0),
            entities=entities,
            ranking=ranking,
            response_selector=data.get("response_selector") or {},
        )


class NLUClient:
    """Parse text through a Rasa server; one connection pool for the process."""

    def __init__(self, base_url: str, timeout: float = 3.0, retries: int = 1) -> None:
        self.base_url = base_url.rstrip("/")
        self.retries = retries
        self._http = httpx.Client(base_url=self.base_url, timeout=timeout)

    def parse(self, text: str) -> Parse:
        """Return the parse of `text`; raise NLUUnavailable after the retries are spent."""
        last_error: Exception | None = None
        for attempt in range(self.retries + 1):
            started = time.perf_counter()
            try:
                response = self._http.post("/model/parse", json={"text": text})
                response.raise_for_status()
                parse = Parse.from_rasa(response.json())
            except (httpx.HTTPError, ValueError, KeyError) as exc:
                last_error = exc
                log.warning(
                    "nlu request failed",
                    extra={"attempt": attempt + 1, "error": type(exc).__name__},
                )
                continue
            log.debug("nlu parse", extra={"ms": round((time.perf_counter() - started) * 1000, 1)})
            return parse
        raise NLUUnavailable(str(last_error)) from last_error

    def is_ready(self) -> bool:
        """Return True when the server answers and has a model loaded."""
        try:
            response = self._http.get("/status", timeout=2.0)
            return response.status_code == 200 and bool(response.json().get("model_file"))
        except (httpx.HTTPError, ValueError):
            return False

    def close(self) -> None:
        self._http.close()
