"""Keep a slow or dead NLU server from stalling the bot: a limit on concurrent calls and a
circuit breaker. After `failures` failed calls in a row the breaker opens and calls fail at
once (the user gets the "gangguan" text immediately) for `open_seconds`; then one call is
let through as a probe, and its success closes the breaker again."""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from typing import Protocol

from nlu.client import NLUUnavailable, Parse

log = logging.getLogger(__name__)


class _Parser(Protocol):
    def parse(self, text: str) -> Parse: ...


class GuardedNLU:
    """Wraps an NLU client; same `parse` interface, raises NLUUnavailable fast."""

    def __init__(self, inner: _Parser, max_concurrent: int = 4, failures: int = 3,
                 open_seconds: float = 30.0, wait_seconds: float = 2.0,
                 clock: Callable[[], float] = time.monotonic,
                 max_waiting: int | None = None) -> None:
        self.inner = inner
        self.slots = threading.BoundedSemaphore(max_concurrent)
        # Calls waiting for a slot; beyond this many, a call is refused at once. Generous:
        # a burst of 40-60 users writing at once is ordinary (a broadcast, a class of KPM
        # with their pendamping) and waits about a second; only a queue this long behind a
        # slow NLU is refused (each wait is still bounded by wait_seconds).
        self.max_waiting = max_concurrent * 16 if max_waiting is None else max_waiting
        self._waiting = 0
        self.failures = failures
        self.open_seconds = open_seconds
        self.wait_seconds = wait_seconds  # longest wait for a free slot
        self.clock = clock
        self._lock = threading.Lock()
        self._failed = 0
        self._open_until = 0.0
        self._probing = False

    @property
    def is_open(self) -> bool:
        """True while calls are refused without asking the server."""
        with self._lock:
            return self._failed >= self.failures and self.clock() < self._open_until

    def _admit(self) -> bool:
        """May a call go to the server now? (closed, or the one probe of a half-open one)"""
        with self._lock:
            if self._failed < self.failures:
                return True
            if self.clock() < self._open_until or self._probing:
                return False
            self._probing = True
            return True

    def _record(self, ok: bool) -> None:
        with self._lock:
            self._probing = False
            if ok:
                if self._failed >= self.failures:
                    log.info("nlu breaker closed")
                self._failed = 0
                return
            self._failed += 1
            if self._failed >= self.failures:
                self._open_until = self.clock() + self.open_seconds
                log.warning("nlu breaker open", extra={"seconds": self.open_seconds})

    def parse(self, text: str) -> Parse:
        """The parse of `text`; NLUUnavailable at once while the breaker is open or too
        many calls wait, and after `wait_seconds` without a free slot."""
        if not self._admit():
            raise NLUUnavailable("nlu circuit open")
        if not self._enter_queue():
            self._release_probe()
            raise NLUUnavailable("nlu busy")
        try:
            got = self.slots.acquire(timeout=self.wait_seconds)
        finally:
            self._leave_queue()
        if not got:  # every slot held that long: shed this call. Not a failure of the
            # server: a busy NLU (a burst of users) must not open the breaker and answer
            # "gangguan" to everyone for open_seconds; a hung one trips it through the
            # timeouts of the calls that hold the slots.
            raise NLUUnavailable("nlu busy")
        try:
            parse = self.inner.parse(text)
        except Exception as exc:  # any failure counts, so a probe never stays stuck
            self._record(False)
            if isinstance(exc, NLUUnavailable):
                raise
            raise NLUUnavailable(f"nlu call failed: {type(exc).__name__}") from exc
        finally:
            self.slots.release()
        self._record(True)
        return parse

    def _enter_queue(self) -> bool:
        with self._lock:
            if self._waiting >= self.max_waiting:
                return False
            self._waiting += 1
            return True

    def _leave_queue(self) -> None:
        with self._lock:
            self._waiting -= 1

    def _release_probe(self) -> None:
        with self._lock:
            self._probing = False

    def close(self) -> None:
        """Close the wrapped client when it can be closed."""
        close = getattr(self.inner, "close", None)
        if close is not None:
            close()
