"""Broadcast benchmark: N recipients through `prokus worker` processes and the fake Bot API
at a global limit (default 30 messages/s), once clean and once with every worker killed
by SIGKILL halfway and restarted; on SQLite (one worker) and PostgreSQL (two workers).

Duplicates and losses are counted from what the fake server received, not from the
database. A recipient whose row was caught mid-send by the kill is "uncertain": the
system reports it and does not resend it; it counts as lost only if it was neither
delivered nor reported. Prints the figures and writes results/broadcast.json.

    .venv/bin/python scripts/bench_broadcast.py --recipients 10000
"""

from __future__ import annotations

import argparse
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import func, insert, select  # noqa: E402

from db.engine import make_engine, make_sessionmaker  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import OutboxItem, User  # noqa: E402
from db.outbox import enqueue  # noqa: E402
from tests.fakes.telegram_api import FakeTelegram  # noqa: E402

PROKUS = str(Path(sys.executable).with_name("prokus"))
FIRST_CHAT = 10_000_000
PG_ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


def prepare(url: str, recipients: int) -> list[int]:
    upgrade(url)
    engine = make_engine(url)
    with make_sessionmaker(engine).begin() as session:
        session.execute(insert(User), [
            {"channel": "telegram", "external_id": str(FIRST_CHAT + i), "role": "kpm",
             "is_active": True} for i in range(recipients)])
        ids = list(session.scalars(select(User.id).order_by(User.id)))
    engine.dispose()
    return ids


def queue(url: str, user_ids: list[int], text: str) -> int:
    engine = make_engine(url)
    with make_sessionmaker(engine).begin() as session:
        message_id = enqueue(session, "broadcast", text, user_ids, created_by="bench").id
    engine.dispose()
    return message_id


def db_states(url: str, message_id: int) -> Counter:
    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        rows = session.execute(select(OutboxItem.state, func.count())
                               .where(OutboxItem.message_id == message_id)
                               .group_by(OutboxItem.state)).all()
        uncertain = set(session.scalars(select(User.external_id).join(
            OutboxItem, OutboxItem.user_id == User.id).where(
            OutboxItem.message_id == message_id, OutboxItem.state == "uncertain")))
    engine.dispose()
    return Counter(dict(rows)), uncertain


def start_workers(url: str, fake: FakeTelegram, count: int, rate: float, logs: Path):
    env = dict(os.environ, DATABASE_URL=url, TELEGRAM_BOT_TOKEN=fake.token,
               TELEGRAM_API_URL=fake.base_url, OUTBOX_RATE=str(rate), LOG_LEVEL="WARNING")
    return [subprocess.Popen([PROKUS, "worker", "--until-idle"], env=env,
                             stdout=subprocess.DEVNULL,
                             stderr=open(logs / f"worker-{uuid.uuid4().hex[:6]}.log", "w"))
            for _ in range(count)]


def received(fake: FakeTelegram, text: str) -> list[tuple[int, float]]:
    return [(chat, at) for chat, body, at in fake.deliveries() if body == text]


def wait_workers(processes, fake, base: int, total: int, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    last = 0.0
    while any(p.poll() is None for p in processes):
        if time.monotonic() > deadline:
            for p in processes:
                p.kill()
            raise TimeoutError("workers did not finish")
        if time.monotonic() - last > 10:
            log(f"    {fake.sent_count - base}/{total} delivered")
            last = time.monotonic()
        time.sleep(0.5)


def peak(times: list[float], window: float = 1.0) -> int:
    """The most events in any sliding window of `window` seconds."""
    times = sorted(times)
    best, j = 0, 0
    for i in range(len(times)):
        while times[i] - times[j] >= window:
            j += 1
        best = max(best, i - j + 1)
    return best


def rate_figures(times: list[float]) -> dict:
    """Sustained rate, and the most messages the server received in any 1 s and any 5 s
    (arrival jitter on the loopback adds a few to the 1 s figure)."""
    times = sorted(times)
    if len(times) < 2:
        return {"rate": None, "peak_1s": len(times), "peak_5s_rate": None}
    span = times[-1] - times[0]
    return {"rate": round((len(times) - 1) / span, 2) if span else None,
            "peak_1s": peak(times, 1.0), "peak_5s_rate": round(peak(times, 5.0) / 5, 1)}


def scenario(url: str, fake: FakeTelegram, user_ids: list[int], workers: int, rate: float,
             kill: bool, logs: Path) -> dict:
    total = len(user_ids)
    text = f"Bench {'kill' if kill else 'clean'} {uuid.uuid4().hex[:8]}"
    message_id = queue(url, user_ids, text)
    expected = {FIRST_CHAT + i for i in range(total)}
    started = time.time()
    base = fake.sent_count  # earlier scenarios' deliveries
    processes = start_workers(url, fake, workers, rate, logs)
    result: dict = {"recipients": total, "workers": workers, "limit": rate}
    if kill:
        while fake.sent_count - base < total // 2:  # O(1): do not slow the fake server down
            if all(p.poll() is not None for p in processes):
                raise RuntimeError("workers exited before the kill")
            time.sleep(0.01)
        for p in processes:
            p.send_signal(signal.SIGKILL)
        for p in processes:
            p.wait()
        at_kill = received(fake, text)
        states, _ = db_states(url, message_id)
        result["delivered_at_kill"] = len(at_kill)
        result["in_flight_at_kill"] = states.get("sending", 0)
        result["before_kill"] = rate_figures([t for _, t in at_kill])
        log(f"    killed at {len(at_kill)} delivered, {states.get('sending', 0)} in flight; "
            "restarting")
        restart = time.time()
        processes = start_workers(url, fake, workers, rate, logs)
    wait_workers(processes, fake, base, total, timeout=total / rate * 3 + 120)
    deliveries = received(fake, text)
    counts = Counter(chat for chat, _ in deliveries)
    states, uncertain_chats = db_states(url, message_id)
    uncertain = {int(c) for c in uncertain_chats}
    delivered = set(counts)
    result.update({
        "delivered": len(delivered),
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        "lost": len(expected - delivered - uncertain),
        "uncertain": len(uncertain),
        "uncertain_delivered": len(uncertain & delivered),
        "db_states": dict(states),
        "seconds": round(time.time() - started, 1),
        **rate_figures([t for _, t in deliveries]),
    })
    if kill:
        result["after_restart"] = rate_figures([t for _, t in deliveries if t >= restart])
    return result


def run_backend(name: str, url: str, recipients: int, workers: int, rate: float,
                logs: Path) -> dict:
    out = {}
    fake = FakeTelegram().start()
    try:
        fake.add_chats(range(FIRST_CHAT, FIRST_CHAT + recipients))
        user_ids = prepare(url, recipients)
        for kill in (False, True):
            label = "sigkill_and_restart" if kill else "clean"
            log(f"  {name}: {label}, {recipients} recipients, {workers} worker(s), "
                f"limit {rate:g}/s")
            out[label] = scenario(url, fake, user_ids, workers, rate, kill, logs)
            log(f"    {summary(out[label])}")
    finally:
        fake.stop()
    return out


def summary(r: dict) -> str:
    text = (f"rate {r['rate']}/s (peak {r['peak_1s']} in 1 s, {r['peak_5s_rate']}/s over 5 s), "
            f"delivered {r['delivered']}, "
            f"duplicates {r['duplicates']}, lost {r['lost']}, uncertain {r['uncertain']}")
    if "in_flight_at_kill" in r:
        text += (f" (in flight at kill {r['in_flight_at_kill']}, "
                 f"uncertain but delivered {r['uncertain_delivered']})")
    return text


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=30.0)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "broadcast.json")
    args = parser.parse_args()
    results: dict = {"recipients": args.recipients, "limit_per_s": args.rate}
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tmp)
        results["sqlite"] = run_backend("SQLite", f"sqlite:///{tmp}/bench.db", args.recipients,
                                        1, args.rate, logs)
        if not args.skip_postgres:
            name = f"prokus_bench_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{name}"')
            try:
                url = PG_ADMIN.rsplit("/", 1)[0] + f"/{name}"
                results["postgresql"] = run_backend("PostgreSQL", url, args.recipients, 2,
                                                    args.rate, logs)
            finally:
                with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                    conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(f"broadcast benchmark, {args.recipients} recipients, limit {args.rate:g}/s")
    for backend in ("sqlite", "postgresql"):
        for label, r in results.get(backend, {}).items():
            print(f"  {backend:<10} {label:<20} {summary(r)}")
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
