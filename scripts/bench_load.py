"""Load benchmark of `prokus run` (issue 19, item 6) against the fake Bot API and the stub NLU.

Scenarios (each on a fresh database and a fresh `prokus run` process):
  1. steady: offered load of 20 turns/s for 60 s, many users (registrations with a side
     question, FAQ chatter, menu buttons, commands), default budget TELEGRAM_MAX_RATE=30
     -> reply latency p50/p95/p99 (push -> first reply at the fake), lost, duplicated,
     out of order per chat;
  2. burst: 200 users writing as fast as the bot answers, TELEGRAM_MAX_RATE=1000 (the
     budget raised to measure the bot's own capacity) -> turns/s and p95, on SQLite and
     PostgreSQL;
  3. nlu-hung: steady load while the stub NLU hangs -> p95 of turns that need no NLU
     (form steps, buttons, commands), and how fast NLU turns get the "gangguan" text;
  4. broadcast: 2,000 broadcast rows queued while the steady load runs -> most sends at the
     fake in any sliding 1 s window (budget 30/s), reply p95 meanwhile.

The NLU stub answers with keyword rules after a fixed delay (--nlu-delay, default 30 ms, a
typical Rasa parse). Prints the figures and writes results/bench-load.json.

    .venv/bin/python scripts/bench_load.py                 # the issue's durations
    .venv/bin/python scripts/bench_load.py --seconds 15 --burst-seconds 10 --skip-postgres
"""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import psycopg  # noqa: E402
from sqlalchemy import insert, select  # noqa: E402

from actions.responses import Responses  # noqa: E402
from db import crypto  # noqa: E402
from db.demo import DemoKpm, load_demo  # noqa: E402
from db.engine import make_engine, make_sessionmaker  # noqa: E402
from db.kpm_import import today_wib  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import Kpm, OutboxItem, OutboxMessage, User, utcnow  # noqa: E402
from db.outbox import enqueue  # noqa: E402
from domain import dates  # noqa: E402
from scripts.bench_broadcast import peak  # noqa: E402
from tests.fakes.nlu_stub import NLUStub  # noqa: E402
from tests.fakes.telegram_api import FakeTelegram, SentMessage  # noqa: E402

PROKUS = str(Path(sys.executable).with_name("prokus"))
PG_ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
FIRST_USER = 5_000_000
FIRST_BROADCAST_CHAT = 9_000_000
KPM_POOL = 3000
REPLY_TIMEOUT = 30.0  # a push with no reply this long after the load ends is lost
DIVERGE_SECONDS = 2.0  # a reply without the expected text for this long: the script stops

NAMES = ["Ahmad", "Bambang", "Citra", "Dian", "Eko", "Fitri", "Gilang", "Hendra", "Indah",
         "Joko", "Kartika", "Lestari", "Mulyadi", "Nurul", "Oki", "Putri", "Rahmat", "Sari",
         "Teguh", "Utami", "Wahyu", "Yanti", "Zainal", "Ayu", "Bayu"]
SURNAMES = ["Saputra", "Wijaya", "Lubis", "Siregar", "Nasution", "Hidayat", "Kusuma",
            "Pratama", "Rahayu", "Setiawan", "Gunawan", "Purnomo"]
PLACES = [("Kabupaten Bogor", "Cibinong", "Pakansari"), ("Kota Bogor", "Bogor Tengah", "Paledang"),
          ("Kota Depok", "Cimanggis", "Tugu"), ("Kabupaten Bekasi", "Tambun Selatan", "Mekarsari"),
          ("Kota Bandung", "Coblong", "Dago")]


def log(message: str) -> None:
    print(message, file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------- scripts
@dataclass(frozen=True)
class Step:
    """What a user does and a piece of the bot's last reply to it; `kind` is form, button,
    command or nlu (only nlu turns need the NLU)."""

    kind: str
    action: str  # text | command | press | contact
    value: str
    expect: str


@dataclass
class Push:
    """One turn offered to the bot."""

    chat: int
    kind: str
    at: float
    before: int  # messages the chat had before it
    phase: str = ""
    first_reply: float | None = None
    first_text: str = ""


@dataclass
class Sim:
    """One simulated user running a script."""

    chat: int
    steps: list[Step]
    position: int = 0
    waiting: Push | None = None
    seen: int = 0
    ready_at: float = 0.0
    diverged: bool = False
    replied_at: float | None = None

    @property
    def finished(self) -> bool:
        return self.diverged or self.position >= len(self.steps)


def kpm_pool(today: date) -> list[DemoKpm]:
    """Fake eligible KPM, one per registering user."""
    return [DemoKpm(f"Contoh {NAMES[i % len(NAMES)]} {SURNAMES[(i // len(NAMES)) % len(SURNAMES)]}"
                    f" {NAMES[(i // 300) % len(NAMES)]} (FIKTIF)",
                    25 + i % 12, 1 + i % 12, 1 + i % 28, "L", "3201052001", 100 + i,
                    "graduasi", 2, None, "eligible") for i in range(KPM_POOL)]


def registration_steps(chat: int, person: DemoKpm, today: date, texts: Responses,
                       opener_by_nlu: bool) -> list[Step]:
    """A whole registration with a side question at the description step."""
    kab, kec, desa = PLACES[chat % len(PLACES)]
    opener = (Step("nlu", "text", "sy mau daftar prokus", "Pendaftaran Prokus gratis")
              if opener_by_nlu else Step("command", "command", "/daftar", "Pendaftaran Prokus"))
    return [
        opener,
        Step("form", "press", texts("consent_yes"), "Langkah 1 dari 10"),
        Step("form", "text", person.nik(today), "Langkah 2 dari 10"),
        Step("form", "text", person.nama.removesuffix(" (FIKTIF)"),
             dates.indonesian(person.born(today))),
        Step("form", "press", texts("birth_date_ok"), "Langkah 4 dari 10"),
        Step("form", "contact", f"+62812{chat % 10_000_000:07d}", "Langkah 5 dari 10"),
        Step("form", "text", kab, "Langkah 6 dari 10"),
        Step("form", "text", kec, "Langkah 7 dari 10"),
        Step("form", "text", desa, "Langkah 8 dari 10"),
        Step("form", "press", texts("sector/kuliner"), "Langkah 9 dari 10"),
        Step("nlu", "text", "apa saja syaratnya?", "Langkah 9 dari 10"),
        Step("form", "text", f"Jualan gorengan dan es teh di depan sekolah {chat}",
             "Langkah 10 dari 10"),
        Step("form", "text", f"{6 + chat % 30} bulan", "Periksa lagi data Anda"),
        Step("form", "press", "Kirim", f"PRK-{today.year}-"),
        Step("command", "command", "/status", "Status: diajukan"),
    ]


def chatter_steps(texts: Responses) -> list[Step]:
    """FAQ chatter: commands, a menu button and free text the NLU reads."""
    return [
        Step("command", "command", "/start", "Asisten Prokus"),
        Step("button", "press", texts("label/faq/requirements"), "graduasi"),
        Step("nlu", "text", "biayanya berapa?", "tanpa biaya"),
        Step("nlu", "text", "halo kak", texts("greet").splitlines()[0][:25]),
        Step("command", "command", "/bantuan", texts("help").splitlines()[0][:25]),
        Step("nlu", "text", "makasih", "Sama-sama"),
    ]


def original_text(message: SentMessage) -> str:
    """A message's text as sent (before a button press marked it)."""
    return message.edits[0]["text"] if message.edits else message.text


# ---------------------------------------------------------------------------- load
class Load:
    """Simulated users pushing turns through the fake and following the bot's replies."""

    def __init__(self, fake: FakeTelegram, texts: Responses, today: date, seed: int,
                 first_chat: int = FIRST_USER) -> None:
        self.fake = fake
        self.texts = texts
        self.today = today
        self.rng = random.Random(seed)
        self.people = kpm_pool(today)
        self.users: list[Sim] = []
        self.pushes: list[Push] = []
        self.next_chat = first_chat
        self.phase = ""
        self._seen_count = -1

    def new_user(self) -> Sim:
        """A new user: 60 % register (half open by NLU, half by /daftar), 40 % chat."""
        chat = self.next_chat
        self.next_chat += 1
        if self.rng.random() < 0.6 and self.people:
            steps = registration_steps(chat, self.people.pop(0), self.today, self.texts,
                                       opener_by_nlu=self.rng.random() < 0.5)
        else:
            steps = chatter_steps(self.texts)
        user = Sim(chat, steps)
        self.users.append(user)
        return user

    def push(self, user: Sim, now: float) -> None:
        """The user does their next step."""
        step = user.steps[user.position]
        before = len(self.fake.messages(user.chat))
        record = Push(user.chat, step.kind, now, before, self.phase)
        if step.action == "text":
            self.fake.push_text(user.chat, step.value)
        elif step.action == "command":
            self.fake.push_command(user.chat, step.value)
        elif step.action == "contact":
            self.fake.push_contact(user.chat, step.value)
        else:
            self._press(user, step.value)
        record.at = time.time()
        user.waiting = record
        self.pushes.append(record)

    def _press(self, user: Sim, label: str) -> None:
        for sent in reversed(self.fake.messages(user.chat)):
            for row in (sent.reply_markup or {}).get("inline_keyboard", []):
                for button in row:
                    if button["text"] == label:
                        self.fake.push_callback(user.chat, sent.message_id,
                                                button["callback_data"])
                        return
        self.fake.push_text(user.chat, label)  # no button (a lost reply): type the label

    def follow(self, think: tuple[float, float]) -> None:
        """Advance users whose expected reply arrived; stop the ones the bot led elsewhere."""
        count = self.fake.sent_count
        if count == self._seen_count:
            return
        self._seen_count = count
        now = time.time()
        for user in self.users:
            push = user.waiting
            if push is None:
                continue
            messages = self.fake.messages(user.chat)
            if len(messages) <= push.before:
                continue
            if push.first_reply is None:
                push.first_reply = messages[push.before].at
                push.first_text = messages[push.before].text
            expect = user.steps[user.position].expect.lower()
            found = next((i for i in range(max(user.seen, push.before), len(messages))
                          if expect in original_text(messages[i]).lower()), None)
            if found is not None:
                user.seen, user.waiting = found + 1, None
                user.position += 1
                user.ready_at = now + self.rng.uniform(*think)
            elif now - messages[-1].at > DIVERGE_SECONDS:
                user.diverged, user.waiting = True, None

    def check_diverged(self) -> None:
        """Stop users whose last reply (without the expected text) is old."""
        now = time.time()
        for user in self.users:
            push = user.waiting
            if push is None or push.first_reply is None:
                continue
            messages = self.fake.messages(user.chat)
            if messages and now - messages[-1].at > DIVERGE_SECONDS:
                expect = user.steps[user.position].expect.lower()
                if not any(expect in original_text(m).lower() for m in messages[user.seen:]):
                    user.diverged, user.waiting = True, None

    def ready_user(self, now: float, max_users: int | None) -> Sim | None:
        """An idle user whose think time is over, else a new one (unless at max_users)."""
        idle = [u for u in self.users
                if u.waiting is None and not u.finished and u.ready_at <= now]
        if idle:
            return self.rng.choice(idle)
        live = sum(1 for u in self.users if not u.finished)
        if max_users is not None and live >= max_users:
            return None
        return self.new_user()

    def open_loop(self, rate: float, seconds: float, think: tuple[float, float] = (1.0, 5.0),
                  on_tick: Callable[[float], None] | None = None,
                  max_users: int | None = None,
                  gap: Callable[[], float] | None = None) -> float:
        """Offer `rate` turns/s for `seconds` (evenly spaced, or `gap()` seconds apart, e.g.
        exponential for Poisson arrivals), each by an idle user (a new one unless
        `max_users` are live; with none idle the turn is not offered and counted in
        `not_offered`); returns the start time."""
        started = time.time()
        step = gap or (lambda: 1.0 / rate)
        next_at, last_log, ticks = started + (step() if gap else 0.0), started, 0
        self.not_offered = 0
        while (now := time.time()) < started + seconds:
            self.follow(think)
            if on_tick:
                on_tick(now - started)
            while next_at <= now:
                user = self.ready_user(now, max_users)
                if user is not None:
                    self.push(user, now)
                else:
                    self.not_offered += 1
                next_at += step()
            if now - last_log > 10:
                last_log = now
                log(f"    {now - started:4.0f} s: {len(self.pushes)} turns offered, "
                    f"{sum(1 for p in self.pushes if p.first_reply)} answered")
            ticks += 1
            if ticks % 50 == 0:
                self.check_diverged()
            time.sleep(0.005 if gap is None else 0.002)
        return started

    def closed_loop(self, users: int, seconds: float,
                    think: tuple[float, float] = (0.0, 0.0)) -> tuple[float, float]:
        """`users` users each writing again `think` seconds (none by default) after the bot
        answered; a finished user is replaced by a new one; (start, end)."""
        for _ in range(users):
            self.new_user()
        started = time.time()
        last_log, ticks = started, 0
        while (now := time.time()) < started + seconds:
            self.follow(think)
            for user in list(self.users):
                if user.waiting is None and not user.finished and user.ready_at <= now:
                    self.push(user, now)
            self._replace_finished()
            if now - last_log > 5:
                last_log = now
                log(f"    {now - started:4.0f} s: {self.answered()} turns answered")
            ticks += 1
            if ticks % 50 == 0:
                self.check_diverged()
            time.sleep(0.005)
        return started, time.time()

    def _replace_finished(self) -> None:
        """Keep the number of busy users constant: a finished script starts a new user."""
        finished = [u for u in self.users if u.finished and u.waiting is None]
        for user in finished:
            self.users.remove(user)
            self.new_user()

    def answered(self) -> int:
        return sum(1 for p in self.pushes if p.first_reply)

    def drain(self, timeout: float = REPLY_TIMEOUT) -> None:
        """Wait for the replies to the turns already offered."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            self.follow((3600.0, 3600.0))  # no new turns
            self.check_diverged()
            if all(u.waiting is None for u in self.users):
                return
            time.sleep(0.05)


# ---------------------------------------------------------------------------- figures
def percentiles(values: list[float]) -> dict:
    """p50/p95/p99/max of latencies in seconds, as milliseconds."""
    if not values:
        return {"n": 0}
    ordered = sorted(values)

    def pick(q: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(q * len(ordered)))] * 1000, 1)

    return {"n": len(ordered), "p50_ms": pick(0.50), "p95_ms": pick(0.95),
            "p99_ms": pick(0.99), "max_ms": round(ordered[-1] * 1000, 1)}


def outbox_by_chat(url: str) -> dict[int, list[tuple[int, str, str, int]]]:
    """Outbox rows per chat: (row id, text, state, priority), in id order."""
    engine = make_engine(url)
    try:
        with make_sessionmaker(engine)() as session:
            rows = session.execute(
                select(User.external_id, OutboxItem.id, OutboxMessage.text, OutboxItem.state,
                       OutboxItem.priority)
                .join(OutboxItem, OutboxItem.user_id == User.id)
                .join(OutboxMessage, OutboxMessage.id == OutboxItem.message_id)
                .order_by(OutboxItem.id)).all()
    finally:
        engine.dispose()
    out: dict[int, list] = defaultdict(list)
    for chat, row_id, text, state, priority in rows:
        out[int(chat)].append((row_id, text, state, priority))
    return out


def delivery_checks(fake: FakeTelegram, load: Load, url: str) -> dict:
    """Lost, duplicated and out-of-order replies, from the fake's records and the outbox."""
    rows = outbox_by_chat(url)
    duplicated = out_of_order = direct = 0
    for user in load.users_seen:
        delivered = [original_text(m) for m in fake.messages(user)]
        queued = [text for _, text, state, _ in rows.get(user, [])
                  if state in ("sent", "uncertain")]
        have, want = Counter(delivered), Counter(queued)
        duplicated += sum(max(0, n - want[t]) for t, n in have.items() if t in want)
        direct += sum(n for t, n in have.items() if t not in want)
        in_outbox = [t for t in delivered if t in want]
        expected_order = [t for t in queued if t in have]
        if in_outbox != expected_order:
            out_of_order += 1
    states = Counter(state for chat_rows in rows.values() for _, _, state, _ in chat_rows)
    lost = [p for p in load.pushes if p.first_reply is None]
    return {"turns_offered": len(load.pushes), "lost": len(lost),
            "lost_kinds": dict(Counter(p.kind for p in lost)),
            "duplicated": duplicated, "chats_out_of_order": out_of_order,
            "sent_outside_outbox": direct,
            "diverged_scripts": sum(1 for u in load.users if u.diverged),
            "outbox_states": dict(states)}


def latency(pushes: list[Push], kinds: set[str] | None = None,
            since: float = 0.0, until: float = float("inf")) -> dict:
    return percentiles([p.first_reply - p.at for p in pushes
                        if p.first_reply and (kinds is None or p.kind in kinds)
                        and since <= p.at < until])


# ---------------------------------------------------------------------------- runs
@dataclass
class Env:
    """A database, the fake Bot API, the stub NLU and a `prokus run` process."""

    url: str
    rate: float
    nlu_delay: float
    logs: Path
    fake: FakeTelegram = field(init=False)
    nlu: NLUStub = field(init=False)
    process: subprocess.Popen | None = None

    def __enter__(self) -> Env:
        self.fake = FakeTelegram().start()
        self.nlu = NLUStub(delay=self.nlu_delay).start()
        env = dict(os.environ, TELEGRAM_BOT_TOKEN=self.fake.token,
                   TELEGRAM_API_URL=self.fake.base_url, NLU_URL=self.nlu.url,
                   DATABASE_URL=self.url, LOG_LEVEL="WARNING",
                   TELEGRAM_MAX_RATE=f"{self.rate:g}")
        env.pop("OUTBOX_RATE", None)
        out = open(self.logs / f"run-{uuid.uuid4().hex[:6]}.log", "w")  # noqa: SIM115
        self.process = subprocess.Popen([PROKUS, "run"], env=env, stdout=out, stderr=out)
        deadline = time.time() + 60
        while not self.fake.calls_to("getUpdates"):
            if self.process.poll() is not None or time.time() > deadline:
                raise RuntimeError(f"prokus run did not start; see {out.name}")
            time.sleep(0.05)
        return self

    def __exit__(self, *exc) -> None:
        if self.process and self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
        self.nlu.stop()
        self.fake.stop()


def prepare(url: str, today: date, broadcast_chats: int = 0) -> list[int]:
    """Migrate, load the demo and the KPM pool; add broadcast recipients; their user ids."""
    upgrade(url)
    engine = make_engine(url)
    people = kpm_pool(today)
    with make_sessionmaker(engine).begin() as session:
        load_demo(session, today)
        session.execute(insert(Kpm), [
            {"nik_hash": crypto.blind(p.nik(today)), "nik": p.nik(today), "nama": p.nama,
             "tanggal_lahir": p.born(today),
             "jenis_kelamin": "L", "kode_wilayah": p.kode_wilayah, "status_pkh": "graduasi",
             "tanggal_graduasi": p.graduated(today), "updated_at": utcnow()} for p in people])
        ids: list[int] = []
        if broadcast_chats:
            session.execute(insert(User), [
                {"channel": "telegram", "external_id": str(FIRST_BROADCAST_CHAT + i),
                 "role": "kpm", "is_active": True} for i in range(broadcast_chats)])
            ids = list(session.scalars(select(User.id).where(
                User.external_id.in_([str(FIRST_BROADCAST_CHAT + i)
                                      for i in range(broadcast_chats)]))))
    engine.dispose()
    return ids


@dataclass
class Database:
    """A fresh SQLite file or PostgreSQL database for one scenario."""

    backend: str
    tmp: Path
    url: str = ""
    name: str = ""

    def __enter__(self) -> Database:
        if self.backend == "sqlite":
            self.url = f"sqlite:///{self.tmp}/load-{uuid.uuid4().hex[:6]}.db"
        else:
            self.name = f"bench_load_{uuid.uuid4().hex[:8]}"
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'CREATE DATABASE "{self.name}"')
            self.url = PG_ADMIN.rsplit("/", 1)[0] + f"/{self.name}"
        return self

    def __exit__(self, *exc) -> None:
        if self.name:
            with psycopg.connect(PG_ADMIN, autocommit=True) as conn:
                conn.execute(f'DROP DATABASE IF EXISTS "{self.name}" WITH (FORCE)')


def postgres_reachable() -> bool:
    """Whether the PostgreSQL server of TEST_DATABASE_URL answers."""
    try:
        with psycopg.connect(PG_ADMIN, connect_timeout=2):
            return True
    except psycopg.Error:
        return False


def finish(load: Load, url: str) -> None:
    """Wait for the replies to the offered turns and for every outbox row to be final."""
    load.drain()
    deadline = time.time() + 15
    while time.time() < deadline and any(
            state in ("pending", "claimed", "sending")
            for rows in outbox_by_chat(url).values() for _, _, state, priority in rows
            if priority == 0):
        time.sleep(0.5)
    load.users_seen = sorted({p.chat for p in load.pushes})  # type: ignore[attr-defined]


def steady(args, texts: Responses, today: date, tmp: Path) -> dict:
    """Scenario 1: offered load at the default budget."""
    log(f"  1. steady: {args.rate:g} turns/s for {args.seconds:g} s, budget 30/s, SQLite")
    with Database("sqlite", tmp) as db:
        prepare(db.url, today)
        with Env(db.url, 30.0, args.nlu_delay, tmp) as env:
            load = Load(env.fake, texts, today, args.seed)
            load.open_loop(args.rate, args.seconds)
            finish(load, db.url)
            sends = [t for name, _, t in env.fake.calls if name == "sendMessage"]
            result = {"backend": "sqlite", "offered_per_s": args.rate, "seconds": args.seconds,
                      "budget_per_s": 30, "users": len(load.users),
                      "latency": latency(load.pushes),
                      "latency_by_kind": {k: latency(load.pushes, {k})
                                          for k in ("form", "button", "command", "nlu")},
                      "peak_sends_1s": peak(sends),
                      **delivery_checks(env.fake, load, db.url)}
    return result


def burst(args, texts: Responses, today: date, tmp: Path, backend: str) -> dict:
    """Scenario 2: the bot's own capacity, budget raised to 1,000/s."""
    log(f"  2. burst: {args.users} users for {args.burst_seconds:g} s, budget 1000/s, {backend}")
    with Database(backend, tmp) as db:
        prepare(db.url, today)
        with Env(db.url, 1000.0, args.nlu_delay, tmp) as env:
            load = Load(env.fake, texts, today, args.seed)
            started, ended = load.closed_loop(args.users, args.burst_seconds)
            finish(load, db.url)
            answered = [p for p in load.pushes if p.first_reply and started <= p.first_reply
                        <= ended]
            result = {"backend": backend, "users": args.users, "seconds": args.burst_seconds,
                      "budget_per_s": 1000,
                      "turns_per_s": round(len(answered) / (ended - started), 1),
                      "latency": latency(load.pushes),
                      **delivery_checks(env.fake, load, db.url)}
    return result


def nlu_hung(args, texts: Responses, today: date, tmp: Path) -> dict:
    """Scenario 3: the NLU hangs during steady load."""
    hang_at, total = args.hung_seconds / 3, args.hung_seconds
    log(f"  3. nlu-hung: {args.rate:g} turns/s for {total:g} s, NLU hung from "
        f"{hang_at:.0f} s to the end, SQLite")
    with Database("sqlite", tmp) as db:
        prepare(db.url, today)
        with Env(db.url, 30.0, args.nlu_delay, tmp) as env:
            load = Load(env.fake, texts, today, args.seed)

            def tick(elapsed: float) -> None:
                if elapsed >= hang_at and not env.nlu.hung:
                    env.nlu.hang()
                    load.phase = "hung"

            started = load.open_loop(args.rate, total, on_tick=tick)
            load.drain(10)
            env.nlu.release()
            finish(load, db.url)
            hung_from = started + hang_at
            gangguan = texts("nlu_down").splitlines()[0][:30]
            nlu_pushes = [p for p in load.pushes if p.kind == "nlu" and p.at >= hung_from
                          and p.first_reply]
            result = {"backend": "sqlite", "offered_per_s": args.rate, "seconds": total,
                      "hung_after_s": round(hang_at, 1),
                      "before_hang": latency(load.pushes, since=started, until=hung_from),
                      "no_nlu_turns_while_hung": latency(load.pushes, {"form", "button",
                                                                      "command"}, hung_from),
                      "nlu_turns_while_hung": latency(load.pushes, {"nlu"}, hung_from),
                      "nlu_turns_got_gangguan": sum(gangguan in p.first_text
                                                    for p in nlu_pushes),
                      "nlu_turns_answered_while_hung": len(nlu_pushes),
                      **delivery_checks(env.fake, load, db.url)}
    return result


def with_broadcast(args, texts: Responses, today: date, tmp: Path) -> dict:
    """Scenario 4: a broadcast queued while the steady load runs, budget 30/s."""
    log(f"  4. broadcast: {args.broadcast} rows queued, {args.rate:g} turns/s for "
        f"{args.seconds:g} s, budget 30/s, SQLite")
    with Database("sqlite", tmp) as db:
        recipients = prepare(db.url, today, args.broadcast)
        with Env(db.url, 30.0, args.nlu_delay, tmp) as env:
            env.fake.add_chats(range(FIRST_BROADCAST_CHAT, FIRST_BROADCAST_CHAT + args.broadcast))
            engine = make_engine(db.url)
            with make_sessionmaker(engine).begin() as session:
                enqueue(session, "broadcast", "Pengumuman uji beban: pertemuan Sabtu pindah "
                        "ke balai desa", recipients, created_by="bench")
            engine.dispose()
            queued = time.time()
            load = Load(env.fake, texts, today, args.seed)
            started = load.open_loop(args.rate, args.seconds)
            finish(load, db.url)
            ended = time.time()
            calls = [(p, t) for name, p, t in env.fake.calls if name == "sendMessage"]
            sends = [t for _, t in calls]
            bulk = [t for p, t in calls if int(p.get("chat_id", 0)) >= FIRST_BROADCAST_CHAT]
            result = {"backend": "sqlite", "offered_per_s": args.rate, "seconds": args.seconds,
                      "budget_per_s": 30, "broadcast_rows": args.broadcast,
                      "peak_sends_1s": peak(sends),
                      "peak_sends_1s_limit": 31,
                      "mean_sends_per_s": round(len([t for t in sends if started <= t <= ended])
                                                / (ended - started), 1),
                      "broadcast_sent_during_load": len([t for t in bulk if t <= ended]),
                      "broadcast_per_s": round(len([t for t in bulk if queued <= t <= ended])
                                               / (ended - queued), 1),
                      "latency": latency(load.pushes),
                      **delivery_checks(env.fake, load, db.url)}
    return result


def summary(name: str, r: dict) -> str:
    lat = r.get("latency") or r.get("no_nlu_turns_while_hung") or {}
    parts = [f"{name:<22}"]
    if "turns_per_s" in r:
        parts.append(f"capacity {r['turns_per_s']} turns/s")
    parts.append(f"p50 {lat.get('p50_ms')} ms, p95 {lat.get('p95_ms')} ms, "
                 f"p99 {lat.get('p99_ms')} ms (n={lat.get('n')})")
    if "peak_sends_1s" in r:
        parts.append(f"peak {r['peak_sends_1s']} sends/1 s")
    parts.append(f"lost {r['lost']}, duplicated {r['duplicated']}, "
                 f"out of order {r['chats_out_of_order']}")
    return "; ".join(parts)


def main() -> None:
    # The processes started here share one data key (a throw-away one unless configured).
    os.environ.setdefault("PROKUS_DATA_KEY", crypto.generate_key())
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rate", type=float, default=20.0, help="offered turns per second")
    parser.add_argument("--seconds", type=float, default=60.0, help="steady and broadcast runs")
    parser.add_argument("--users", type=int, default=200, help="users in the burst")
    parser.add_argument("--burst-seconds", type=float, default=30.0)
    parser.add_argument("--hung-seconds", type=float, default=45.0)
    parser.add_argument("--broadcast", type=int, default=2000, help="broadcast rows queued")
    parser.add_argument("--nlu-delay", type=float, default=0.03, help="stub NLU parse time")
    parser.add_argument("--seed", type=int, default=19)
    parser.add_argument("--skip-postgres", action="store_true")
    parser.add_argument("--only", choices=["steady", "burst", "hung", "broadcast"],
                        action="append", help="run only these scenarios (repeatable)")
    parser.add_argument("--out", type=Path, default=ROOT / "results" / "bench-load.json")
    args = parser.parse_args()
    texts, today = Responses.load(), today_wib()
    only = set(args.only or ["steady", "burst", "hung", "broadcast"])
    results: dict = {"settings": {k: (str(v) if isinstance(v, Path) else v)
                                  for k, v in vars(args).items()},
                     "cpus": os.cpu_count()}
    log(f"load benchmark of prokus run (fake Bot API, stub NLU {args.nlu_delay * 1000:g} ms)")
    with tempfile.TemporaryDirectory(prefix="bench-load-") as tmp_name:
        tmp = Path(tmp_name)
        if "steady" in only:
            results["steady"] = steady(args, texts, today, tmp)
            log("    " + summary("steady", results["steady"]))
        if "burst" in only:
            results["burst_sqlite"] = burst(args, texts, today, tmp, "sqlite")
            log("    " + summary("burst sqlite", results["burst_sqlite"]))
            if not args.skip_postgres and not postgres_reachable():
                log(f"    PostgreSQL skipped: {PG_ADMIN} does not answer (--skip-postgres)")
                results["burst_postgresql"] = {"skipped": "PostgreSQL not reachable"}
            elif not args.skip_postgres:
                results["burst_postgresql"] = burst(args, texts, today, tmp, "postgresql")
                log("    " + summary("burst postgresql", results["burst_postgresql"]))
        if "hung" in only:
            results["nlu_hung"] = nlu_hung(args, texts, today, tmp)
            log("    " + summary("nlu hung (no-NLU turns)", results["nlu_hung"]))
        if "broadcast" in only:
            results["broadcast"] = with_broadcast(args, texts, today, tmp)
            log("    " + summary("with broadcast", results["broadcast"]))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(results, indent=2))
    print(json.dumps({k: v for k, v in results.items() if k != "settings"}, indent=2))
    print(f"written to {args.out}")


if __name__ == "__main__":
    main()
