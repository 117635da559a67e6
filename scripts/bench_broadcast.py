"""Broadcast benchmark: N recipients through `prokus worker` processes and a fake Bot API at a
global limit (default: the free limit, 30 messages/s), once clean and once with a SIGKILL
halfway and a restart; on SQLite (one worker) and PostgreSQL (two workers).

With --paid (issue 18): a paid broadcast (allow_paid_broadcast) at --rate (up to 1,000/s),
PostgreSQL only, two workers, and the SIGKILL hits one of them (the other keeps going; the
killed one is restarted at once).

The receiver is tests/fakes/fast_bot_api.py, a lean asyncio sendMessage fake in a process of
its own (the threaded full fake in this process does not keep up with 1,000/s on 2 cores).
Duplicates and losses are counted from what it received, not from the database. A
recipient whose row was caught mid-send by the kill is "uncertain": the system reports it
and does not resend it; it counts as lost only if it was neither delivered nor reported.
Prints the figures and writes results/broadcast.json (results/broadcast-paid.json with
--paid).

    .venv/bin/python scripts/bench_broadcast.py --recipients 10000
    .venv/bin/python scripts/bench_broadcast.py --recipients 30000 --rate 1000 --paid
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
import urllib.request
import uuid
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import func, insert, select, update  # noqa: E402

from db.engine import make_engine, make_sessionmaker  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import OutboxItem, User  # noqa: E402
from db.outbox import enqueue  # noqa: E402
from scripts.throwaway_db import throwaway_database  # noqa: E402
from tests.fakes.telegram_api import DEFAULT_TOKEN  # noqa: E402

PROKUS = str(Path(sys.executable).with_name("prokus"))
FIRST_CHAT = 10_000_000
FREE_RATE = 30.0
PG_ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
PORT = int(os.environ.get("BENCH_RECEIVER_PORT", "18101"))  # this task's ports: 18100-18199


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


class Receiver:
    """The lean fake sendMessage (tests/fakes/fast_bot_api.py) in its own process."""

    def __init__(self, chats: int, port: int = PORT) -> None:
        self.port = port
        self.token = DEFAULT_TOKEN
        self.base_url = f"http://127.0.0.1:{port}/bot"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "tests.fakes.fast_bot_api", "--port", str(port),
             "--chats", f"{FIRST_CHAT}:{FIRST_CHAT + chats}"],
            cwd=ROOT, stdout=subprocess.PIPE, text=True)
        line = self.process.stdout.readline()
        if not line.startswith("ready"):
            raise RuntimeError(f"the receiver did not start: {line!r}")

    def _get(self, action: str):
        with urllib.request.urlopen(f"http://127.0.0.1:{self.port}/control/{action}",
                                    timeout=30) as response:
            return json.loads(response.read())

    @property
    def sent_count(self) -> int:
        return self._get("count")["count"]

    def deliveries(self) -> list[tuple[int, str, float, bool]]:
        return [tuple(d) for d in self._get("deliveries")]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(10)


def prepare(url: str, recipients: int) -> list[int]:
    from db import keys

    upgrade(url)
    engine = make_engine(url)
    # Register the data key once here: two workers starting together on a fresh database
    # would both insert it (db.keys.check races: one of them exits with an IntegrityError).
    keys.check_database(make_sessionmaker(engine))
    with make_sessionmaker(engine).begin() as session:
        session.execute(insert(User), [
            {"channel": "telegram", "external_id": str(FIRST_CHAT + i), "role": "kpm",
             "is_active": True} for i in range(recipients)])
        ids = list(session.scalars(select(User.id).order_by(User.id)))
    engine.dispose()
    return ids


def queue(url: str, user_ids: list[int], text: str, paid_rate: float | None) -> int:
    engine = make_engine(url)
    with make_sessionmaker(engine).begin() as session:
        message_id = enqueue(session, "broadcast", text, user_ids, created_by="bench",
                             paid=paid_rate is not None, paid_rate=paid_rate).id
    engine.dispose()
    return message_id


def reset_pacer(url: str) -> None:
    """A scenario starts at full speed (no 429 cut left over from the one before)."""
    from db.models import OutboxPacer

    engine = make_engine(url)
    with make_sessionmaker(engine).begin() as session:
        session.execute(update(OutboxPacer).values(scale=1.0, scaled_at=0.0))
    engine.dispose()


def achieved(url: str, message_id: int) -> float | None:
    from outbox import store

    engine = make_engine(url)
    with make_sessionmaker(engine)() as session:
        rate = store.achieved(session, message_id).rate
    engine.dispose()
    return None if rate is None else round(rate, 1)


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


def start_workers(url: str, fake: Receiver, count: int, rate: float, logs: Path):
    env = dict(os.environ, DATABASE_URL=url, TELEGRAM_BOT_TOKEN=fake.token,
               TELEGRAM_API_URL=fake.base_url, OUTBOX_RATE=str(rate), LOG_LEVEL="WARNING")
    return [subprocess.Popen([PROKUS, "worker", "--until-idle"], env=env,
                             stdout=subprocess.DEVNULL,
                             stderr=open(logs / f"worker-{uuid.uuid4().hex[:6]}.log", "w"))
            for _ in range(count)]


def received(fake: Receiver, text: str) -> list[tuple[int, float, bool]]:
    return [(chat, at, paid) for chat, body, at, paid in fake.deliveries() if body == text]


def wait_workers(processes, fake, base: int, total: int, timeout: float) -> list[int]:
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
    return [p.returncode for p in processes]


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


def scenario(url: str, fake: Receiver, user_ids: list[int], workers: int, rate: float,
             kill: bool, logs: Path, paid: bool) -> dict:
    """One broadcast to everyone; with `kill`, SIGKILL halfway (the first worker only
    when paid, all of them otherwise) and a restart of the killed ones."""
    total = len(user_ids)
    text = f"Bench {'kill' if kill else 'clean'} {uuid.uuid4().hex[:8]}"
    reset_pacer(url)
    message_id = queue(url, user_ids, text, rate if paid else None)
    expected = {FIRST_CHAT + i for i in range(total)}
    started = time.time()
    base = fake.sent_count  # earlier scenarios' deliveries
    free = FREE_RATE if paid else rate  # the workers' free limit (OUTBOX_RATE)
    processes = start_workers(url, fake, workers, free, logs)
    result: dict = {"recipients": total, "workers": workers, "limit": rate, "paid": paid}
    if kill:
        while fake.sent_count - base < total // 2:
            if all(p.poll() is not None for p in processes):
                raise RuntimeError("workers exited before the kill")
            time.sleep(0.005)
        victims = processes[:1] if paid else processes
        for p in victims:
            p.send_signal(signal.SIGKILL)
        for p in victims:
            p.wait()
        at_kill = received(fake, text)
        states, _ = db_states(url, message_id)
        result["killed_workers"] = len(victims)
        result["delivered_at_kill"] = len(at_kill)
        # rows recorded `sending` right after the kill (the survivor's included): the
        # bound for the uncertain ones
        result["in_flight_at_kill"] = states.get("sending", 0)
        result["before_kill"] = rate_figures([t for _, t, _ in at_kill])
        log(f"    killed {len(victims)} worker(s) at {len(at_kill)} delivered, "
            f"{states.get('sending', 0)} in flight; restarting")
        restart = time.time()
        processes = processes[len(victims):] + start_workers(url, fake, len(victims), free,
                                                               logs)
    exits = wait_workers(processes, fake, base, total, timeout=total / min(rate, 1000) * 3 + 120)
    deliveries = received(fake, text)
    counts = Counter(chat for chat, _, _ in deliveries)
    states, uncertain_chats = db_states(url, message_id)
    uncertain = {int(c) for c in uncertain_chats}
    delivered = set(counts)
    result.update({
        "delivered": len(delivered),
        "duplicates": sum(n - 1 for n in counts.values() if n > 1),
        "lost": len(expected - delivered - uncertain),
        "uncertain": len(uncertain),
        "uncertain_delivered": len(uncertain & delivered),
        "with_paid_flag": sum(1 for _, _, p in deliveries if p),
        "db_states": dict(states),
        "seconds": round(time.time() - started, 1),
        "rate_achieved_db": achieved(url, message_id),
        "worker_exit_codes": exits,
        **rate_figures([t for _, t, _ in deliveries]),
    })
    if kill:
        result["after_restart"] = rate_figures([t for _, t, _ in deliveries if t >= restart])
        result["kill_at_s"] = round(restart - min(t for _, t, _ in deliveries), 1)
    result["per_second"] = per_second([t for _, t, _ in deliveries])
    return result


def per_second(times: list[float]) -> list[int]:
    """Deliveries in each second from the first one: the run's timeline."""
    if not times:
        return []
    start = min(times)
    counts = Counter(int(t - start) for t in times)
    return [counts.get(i, 0) for i in range(max(counts) + 1)]


def run_backend(name: str, url: str, recipients: int, workers: int, rate: float,
                logs: Path, paid: bool) -> dict:
    out = {}
    fake = Receiver(recipients)
    try:
        user_ids = prepare(url, recipients)
        for kill in (False, True):
            label = "sigkill_and_restart" if kill else "clean"
            log(f"  {name}: {label}, {recipients} recipients, {workers} worker(s), "
                f"{'paid ' if paid else ''}limit {rate:g}/s")
            out[label] = scenario(url, fake, user_ids, workers, rate, kill, logs, paid)
            log(f"    {summary(out[label])}")
    finally:
        fake.stop()
    return out


def summary(r: dict) -> str:
    text = (f"rate {r['rate']}/s (peak {r['peak_1s']} in 1 s, {r['peak_5s_rate']}/s over 5 s, "
            f"worker-recorded {r['rate_achieved_db']}/s), "
            f"delivered {r['delivered']}, "
            f"duplicates {r['duplicates']}, lost {r['lost']}, uncertain {r['uncertain']}")
    if "in_flight_at_kill" in r:
        text += (f" (in flight at kill {r['in_flight_at_kill']}, "
                 f"uncertain but delivered {r['uncertain_delivered']})")
    return text


def load() -> dict:
    """The machine's load when the run ended (2 cores shared with others)."""
    try:
        one, five, fifteen = os.getloadavg()
    except OSError:
        return {}
    return {"loadavg_1_5_15": [round(one, 2), round(five, 2), round(fifteen, 2)],
            "cpus": os.cpu_count()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--recipients", type=int, default=10_000)
    parser.add_argument("--rate", type=float, default=FREE_RATE)
    parser.add_argument("--paid", action="store_true",
                        help="a paid broadcast (allow_paid_broadcast) at --rate, PostgreSQL, "
                             "two workers, SIGKILL of one")
    parser.add_argument("--workers", type=int, default=2, help="PostgreSQL workers")
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--skip-sqlite", action="store_true")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    if not os.environ.get("PROKUS_DATA_KEY") and not os.environ.get("PROKUS_DATA_KEY_FILE"):
        from db import crypto  # PostgreSQL needs a data key; the workers inherit this one

        os.environ["PROKUS_DATA_KEY"] = crypto.generate_key()
    out = args.out or ROOT / "results" / ("broadcast-paid.json" if args.paid
                                          else "broadcast.json")
    results: dict = {"recipients": args.recipients, "limit_per_s": args.rate,
                     "paid": args.paid, "receiver": "tests/fakes/fast_bot_api.py",
                     "started": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())}
    with tempfile.TemporaryDirectory() as tmp:
        logs = Path(tempfile.mkdtemp(prefix="bench_broadcast_logs_"))  # kept: worker stderr
        results["worker_logs"] = str(logs)
        if not (args.skip_sqlite or args.paid):
            results["sqlite"] = run_backend("SQLite", f"sqlite:///{tmp}/bench.db",
                                            args.recipients, 1, args.rate, logs, args.paid)
        if not args.skip_postgres:
            with throwaway_database(PG_ADMIN, "b18_bench") as url:
                if url is not None:
                    results["postgresql"] = run_backend(
                        "PostgreSQL", url, args.recipients, args.workers, args.rate, logs,
                        args.paid)
    results["machine"] = load()
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print(f"broadcast benchmark, {args.recipients} recipients, "
          f"{'paid ' if args.paid else ''}limit {args.rate:g}/s")
    for backend in ("sqlite", "postgresql"):
        for label, r in results.get(backend, {}).items():
            print(f"  {backend:<10} {label:<20} {summary(r)}")
    print(f"load {results['machine']}; written to {out}")


if __name__ == "__main__":
    main()
