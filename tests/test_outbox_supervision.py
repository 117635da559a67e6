"""The outbox worker inside `prokus run`: supervised (restarted after an error, with its
liveness visible), and the mentor menu sync logs what goes wrong instead of hiding it."""

from __future__ import annotations

import asyncio
import logging
import time
from types import SimpleNamespace

from bot.background import HEALTH_KEY, add_background, mentor_sync, supervise
from outbox.worker import Worker, WorkerConfig, WorkerHealth


def test_a_failing_worker_is_logged_and_restarted_with_backoff(caplog):
    health = WorkerHealth()
    runs: list[float] = []

    async def main() -> None:
        stop = asyncio.Event()

        async def worker() -> None:
            runs.append(time.monotonic())
            if len(runs) < 3:
                raise RuntimeError("database away")
            await stop.wait()

        task = asyncio.create_task(supervise("outbox worker", worker, stop, health,
                                             min_pause=0.05, max_pause=1.0))
        while len(runs) < 3:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5)

    with caplog.at_level(logging.ERROR, logger="bot.background"):
        asyncio.run(main())
    assert health.restarts == 2 and health.last_error == "RuntimeError"
    assert runs[2] - runs[1] >= runs[1] - runs[0] >= 0.05  # the pause grows
    failed = [r for r in caplog.records if r.getMessage().startswith("background task failed")]
    assert len(failed) == 2 and failed[0].task == "outbox worker"


def test_a_worker_that_ends_early_is_restarted_and_a_stop_ends_the_supervisor():
    health = WorkerHealth()
    runs = []

    async def main() -> None:
        stop = asyncio.Event()

        async def worker() -> None:
            runs.append(1)
            if len(runs) == 2:
                stop.set()

        await asyncio.wait_for(supervise("w", worker, stop, health, min_pause=0.01), 5)

    asyncio.run(main())
    assert len(runs) == 2 and health.restarts == 1


def test_mentor_sync_logs_the_errors_it_survives(caplog):
    """Before: contextlib.suppress(Exception) hid every error."""
    rounds = []

    def broken_sessions():
        rounds.append(1)
        raise ConnectionError("database away")

    assistant = SimpleNamespace(sessions=broken_sessions)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(mentor_sync(None, assistant, stop, every=0.01))
        while len(rounds) < 2:
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5)

    with caplog.at_level(logging.WARNING, logger="bot.background"):
        asyncio.run(main())
    logged = [r for r in caplog.records if r.getMessage() == "mentor command sync failed"]
    assert len(logged) >= 2 and logged[0].error == "ConnectionError"


def test_the_worker_health_is_published_for_a_health_check():
    from telegram.ext import Application

    app = Application.builder().token("123456:TEST").build()
    health = add_background(app, SimpleNamespace(), SimpleNamespace(), with_worker=True)
    assert app.bot_data[HEALTH_KEY] is health
    assert not health.alive()


def test_a_running_worker_shows_it_is_alive(sqlite_engine):
    from db.engine import make_sessionmaker

    health = WorkerHealth()
    worker = Worker(make_sessionmaker(sqlite_engine), sender=None,  # type: ignore[arg-type]
                    config=WorkerConfig(poll_seconds=0.02, heartbeat_seconds=0.05),
                    health=health)

    async def main() -> None:
        stop = asyncio.Event()
        task = asyncio.create_task(worker.run(stop))
        while not (health.alive(max_age=1.0) and health.beat_at):
            await asyncio.sleep(0.01)
        stop.set()
        await asyncio.wait_for(task, 5)

    asyncio.run(main())
    assert not health.alive() and health.failures == 0 and health.ok_at >= health.started_at
