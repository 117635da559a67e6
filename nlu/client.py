"""HTTP client for the Rasa NLU server's `/model/parse`, and the one reader of its replies
(`Parse.from_rasa`), used by the bot and by the evaluation (`nlu/evaluation.py`).

httpx is imported by the client only, so `Parse` also loads in the Rasa environment
(`.venv-nlu`, which has no httpx) for `scripts/nlu_compare.py`.
"""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import httpx

# Our config names the ResponseSelector "faq"; Rasa's default config calls it "default".
SELECTOR_NAMES = ("faq", "default")

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


class NLUClient:
    """Parse text through a Rasa server; one connection pool for the process."""

    def __init__(self, base_url: str, timeout: float = 3.0, retries: int = 1,
                 token: str | None = None) -> None:
        import httpx

        self.base_url = base_url.rstrip("/")
        self.retries = retries
        # Rasa's --auth-token is sent as the `token` query parameter on every request.
        params = {"token": token} if token else None
        self._http: httpx.Client = httpx.Client(base_url=self.base_url, timeout=timeout,
                                                params=params)

    def parse(self, text: str) -> Parse:
        """Return the parse of `text`; raise NLUUnavailable after the retries are spent."""
        import httpx

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
        import httpx

        try:
            response = self._http.get("/status", timeout=2.0)
            return response.status_code == 200 and bool(response.json().get("model_file"))
        except (httpx.HTTPError, ValueError):
            return False

    def close(self) -> None:
        self._http.close()
