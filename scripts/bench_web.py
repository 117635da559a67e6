"""Benchmark of the operator console (issue 13): the verification queue, the registration
page and the dashboard under 20 concurrent operators, with 100,000 registrations on
PostgreSQL.

1. creates its own database bench_web_<pid> on 127.0.0.1:5432 (trust auth; TEST_DATABASE_URL
   names the server) and migrates it (Alembic);
2. bulk-loads (COPY) --rows registrations spread over 90 days, the four statuses, 40
   kecamatan in 8 provinces and the business fields, each with its KPM registry record,
   and one audited status change per non-submitted registration; then VACUUM ANALYZE;
3. creates 20 operator accounts (10 supervisors, 10 verifiers limited to a kabupaten);
4. for each --workers count (default 2; e.g. `--workers 1,2` compares), starts
   `prokus serve --workers N` on a free 127.0.0.1 port, signs each operator in and runs two
   scenarios, each phase by phase (queue, detail, dashboard) for --seconds:
   - "operators (think 1 s)": the issue's target. --clients operators each wait a think
     time between requests (uniform 0.5-1.5 x --think, mean --think seconds, default 1.0;
     the operators start staggered over the first think time);
   - "stress (no think time)": the same clients send requests back to back, a closed loop
     that measures the server's saturation throughput (latency ~ clients / throughput);
   the queue with a random mix of filters (status, region, field, WIB dates, exact search)
   and paging (the next page through the keyset cursor), the detail page of a random
   registration in the operator's region, and `/`;
5. prints p50/p95/max per page, writes results/bench-web.json (the targets are judged on
   the operators scenario), stops the server and drops the database.

    .venv/bin/python scripts/bench_web.py                    # the issue's figures
    .venv/bin/python scripts/bench_web.py --workers 1,2      # 1 and 2 worker processes
    .venv/bin/python scripts/bench_web.py --rows 20000 --seconds 5 --think 0.5
"""

from __future__ import annotations

import argparse
import io
import json
import os
import random
import re
import socket
import statistics
import subprocess
import sys
import threading
import time
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402
import psycopg  # noqa: E402
from sqlalchemy.engine import make_url  # noqa: E402

from db import crypto  # noqa: E402
from db import operators as accounts  # noqa: E402
from db.engine import make_engine, make_sessionmaker  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from domain import eligibility  # noqa: E402

PROKUS = str(Path(sys.executable).with_name("prokus"))
PG_ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RESULTS = ROOT / "results" / "bench-web.json"
PASSWORD = "bench-kata-sandi"
STATUS_WEIGHTS = {"diajukan": 45, "diverifikasi": 20, "diterima": 25, "ditolak": 10}
PROVINCES = ("11", "32", "33", "35", "51", "63", "73", "91")
SECTORS = (*eligibility.SECTORS, eligibility.REVIEW)
FIRST = ("Siti", "Budi", "Dewi", "Agus", "Rina", "Putri", "Joko", "Sri", "Andi", "Nur",
         "Wahyu", "Ika", "Yusuf", "Lina", "Rudi", "Maya")
LAST = ("Aminah", "Santoso", "Lestari", "Wibowo", "Marlina", "Hidayat", "Susanti",
        "Pratama", "Rahmawati", "Saputra", "Kurniawan", "Wati")
TARGETS_P95_MS = {"queue": 150, "detail": 150, "dashboard": 500}
_CSRF = re.compile(r'name="csrf_token" value="([^"]+)"')
_NEXT = re.compile(r'rel="next" href="([^"]+)"')


def log(message: str) -> None:
    print(f"[bench-web] {message}", flush=True)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


# ---------------------------------------------------------------------- data
def kecamatan_codes(rng: random.Random) -> list[str]:
    """40 six-digit kecamatan codes: 8 provinces x 5 (kabupaten, kecamatan) pairs."""
    return [f"{p}{rng.randint(1, 9):02d}{rng.randint(1, 20):02d}" for p in PROVINCES
            for _ in range(5)]


def load(url: str, rows: int, seed: int) -> dict[str, list[str]]:
    """COPY `rows` registrations (and their registry records and status history) into the
    database; returns PRK numbers per kecamatan code (the detail phase picks from them)."""
    rng = random.Random(seed)
    regions = kecamatan_codes(rng)
    statuses = list(STATUS_WEIGHTS)
    weights = list(STATUS_WEIGHTS.values())
    now = datetime.now(UTC)
    used: set[str] = set()
    ring = crypto.keyring()

    def seal(column: str, value: object) -> bytes:  # as db.crypto's column types do
        return ring.seal(str(value).encode(), column.encode())

    registrations: list[tuple] = []
    kpm: list[tuple] = []
    audits = io.StringIO()
    by_region: dict[str, list[str]] = {}
    created = sorted(now - timedelta(seconds=rng.uniform(0, 90 * 86400)) for _ in range(rows))
    for i, at in enumerate(created, start=1):
        region = rng.choice(regions)
        while True:
            born = date(rng.randint(1987, 2004), rng.randint(1, 12), rng.randint(1, 28))
            female = rng.random() < 0.6
            day = born.day + (40 if female else 0)
            nik = (f"{region}{day:02d}{born.month:02d}{born.year % 100:02d}"
                   f"{rng.randint(1, 9999):04d}")
            if nik not in used:
                used.add(nik)
                break
        status = rng.choices(statuses, weights)[0]
        name = f"{rng.choice(FIRST)} {rng.choice(LAST)}"
        number = f"PRK-{at.year}-{i:06d}"
        sector = rng.choice(SECTORS)
        updated = at + timedelta(hours=rng.uniform(1, 72)) if status != "diajukan" else at
        reason = "Usaha belum berjalan saat survei" if status == "ditolak" else "\\N"
        registrations.append((
            number, ring.blind(nik), seal("registrations.nik", nik),
            seal("registrations.nama", name), seal("registrations.tanggal_lahir", born),
            seal("registrations.no_hp", f"+62812{rng.randint(10**7, 10**8 - 1)}"),
            seal("registrations.kabupaten", f"Kab. Contoh {region[2:4]}"),
            seal("registrations.kecamatan", f"Kecamatan {region[4:6]}"),
            seal("registrations.desa", "Desa Contoh"), sector,
            "Jualan gorengan dan es teh di depan sekolah dasar", rng.randint(6, 120),
            status, None if reason == "\\N" else reason, region, at, updated))
        kpm.append((ring.blind(nik), seal("kpm.nik", nik), seal("kpm.nama", name),
                    seal("kpm.tanggal_lahir", born), "P" if female else "L",
                    f"{region}{rng.randint(2001, 2020):04d}",
                    "graduasi" if rng.random() < 0.85 else "aktif", None, None, at))
        if status != "diajukan":
            detail = json.dumps({"from": "diajukan" if status != "diterima" else "diverifikasi",
                                 "reason": None if reason == "\\N" else reason,
                                 "nik": f"{nik[:4]}********{nik[-4:]}", "notice": "queued"})
            audits.write("\t".join([updated.isoformat(), "operator:bench",
                                    "registration_status", number, status, detail]) + "\n")
        by_region.setdefault(region, []).append(number)
    with psycopg.connect(libpq(url)) as conn, conn.cursor() as cur:
        for table, columns, rows in (
                ("registrations", "number, nik_hash, nik, nama, tanggal_lahir, no_hp, "
                 "kabupaten, kecamatan, desa, bidang_usaha, deskripsi_usaha, "
                 "lama_usaha_bulan, status, alasan, kode_wilayah, created_at, updated_at",
                 registrations),
                ("kpm", "nik_hash, nik, nama, tanggal_lahir, jenis_kelamin, kode_wilayah, "
                 "status_pkh, tanggal_graduasi, no_hp, updated_at", kpm)):
            with cur.copy(f"COPY {table} ({columns}) FROM STDIN") as copy:
                for row in rows:
                    copy.write_row(row)
        with cur.copy("COPY audit_log (at, actor, action, subject, outcome, detail) "
                      "FROM STDIN") as copy:
            copy.write(audits.getvalue())
        cur.execute("INSERT INTO registration_counters (year, last) SELECT "
                    "substr(number, 5, 4)::int, max(substr(number, 10)::int) "
                    "FROM registrations GROUP BY 1")
        conn.commit()
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
    return by_region


def add_operators(url: str, by_region: dict[str, list[str]], count: int) -> list[dict]:
    """Half supervisors, half verifiers each limited to the kabupaten of a kecamatan."""
    engine = make_engine(url)
    people = []
    regions = sorted(by_region)
    try:
        with make_sessionmaker(engine).begin() as session:
            for i in range(count):
                verifier = i % 2 == 1
                region = regions[i % len(regions)][:4] if verifier else None
                name = f"bench{i:02d}"
                accounts.add_operator(session, name, "verifier" if verifier else "supervisor",
                                      PASSWORD, region, now=datetime.now(UTC))
                people.append({"username": name, "region": region})
    finally:
        engine.dispose()
    return people


# ---------------------------------------------------------------------- load
class Client:
    def __init__(self, base: str, person: dict, numbers: list[str]) -> None:
        self.http = httpx.Client(base_url=base, timeout=30, follow_redirects=False)
        self.person, self.numbers = person, numbers
        page = self.http.get("/login")
        token = _CSRF.search(page.text).group(1)  # type: ignore[union-attr]
        done = self.http.post("/login", data={"username": person["username"],
                                              "password": PASSWORD, "csrf_token": token})
        if done.status_code != 303:
            raise RuntimeError(f"login of {person['username']} failed: {done.status_code}")


def queue_url(rng: random.Random, client: Client) -> str:
    """A realistic queue request: a mix of filters, sometimes a search."""
    params: dict[str, str] = {}
    if rng.random() < 0.6:
        params["status"] = rng.choices(list(STATUS_WEIGHTS), [60, 20, 10, 10])[0]
    if client.person["region"] is None and rng.random() < 0.4:
        params["wilayah"] = rng.choice(PROVINCES) + ("" if rng.random() < 0.5
                                                     else f"{rng.randint(1, 9):02d}")
    if rng.random() < 0.3:
        params["bidang"] = rng.choice(SECTORS)
    if rng.random() < 0.3:
        start = date.today() - timedelta(days=rng.randint(7, 90))
        params["dari"] = start.isoformat()
        params["sampai"] = (start + timedelta(days=rng.randint(1, 30))).isoformat()
    if rng.random() < 0.2:
        params["urut"] = "lama"
    if rng.random() < 0.05 and client.numbers:
        params = {"q": rng.choice(client.numbers)}
    return "/registrations?" + "&".join(f"{k}={v}" for k, v in params.items())


def run_phase(name: str, clients: list[Client], seconds: float, pick,
              think: float = 0.0) -> dict:
    """Every client sends requests for `seconds`, back to back (think 0) or pausing a
    random 0.5-1.5 x `think` seconds after each answer; latency per request."""
    latencies: list[float] = []
    errors: list[str] = []
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def work(index: int, client: Client) -> None:
        rng = random.Random(index * 7919 + len(name))
        mine: list[float] = []
        follow: str | None = None
        if think:  # operators do not all start at the same instant
            time.sleep(rng.uniform(0, think))
        while time.monotonic() < stop:
            path = follow or pick(rng, client)
            started = time.perf_counter()
            try:
                response = client.http.get(path)
                ok = response.status_code == 200
            except httpx.HTTPError as exc:
                ok, response = False, None
                with lock:
                    errors.append(f"{path}: {exc!r}")
            mine.append((time.perf_counter() - started) * 1000)
            if not ok and response is not None:
                with lock:
                    errors.append(f"{path}: HTTP {response.status_code}")
            follow = None
            if ok and name == "queue" and response is not None and rng.random() < 0.3:
                found = _NEXT.search(response.text)  # the operator pages on
                follow = found.group(1).replace("&amp;", "&") if found else None
            if think:
                time.sleep(rng.uniform(0.5 * think, 1.5 * think))
        with lock:
            latencies.extend(mine)

    threads = [threading.Thread(target=work, args=(i, c)) for i, c in enumerate(clients)]
    began = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - began
    ordered = sorted(latencies)

    def pct(p: float) -> float:
        return round(ordered[min(len(ordered) - 1, int(p * len(ordered)))], 1) if ordered else 0.0

    return {"requests": len(ordered), "errors": len(errors), "error_samples": errors[:5],
            "throughput_per_s": round(len(ordered) / elapsed, 1),
            "p50_ms": pct(0.50), "p95_ms": pct(0.95), "p99_ms": pct(0.99),
            "max_ms": round(ordered[-1], 1) if ordered else 0.0,
            "mean_ms": round(statistics.fmean(ordered), 1) if ordered else 0.0}


def workers_list(text: str) -> list[int]:
    """--workers: one count or a comma-separated list, e.g. "2" or "1,2"."""
    try:
        counts = [int(part) for part in text.split(",") if part.strip()]
    except ValueError:
        counts = []
    if not counts or any(not 1 <= n <= 16 for n in counts):
        raise argparse.ArgumentTypeError("worker counts from 1 to 16, e.g. 2 or 1,2")
    return counts


def start_server(port: int, workers: int, env: dict[str, str], output) -> subprocess.Popen:
    """`prokus serve --workers N` on 127.0.0.1:port, once it answers /login."""
    base = f"http://127.0.0.1:{port}"
    server = subprocess.Popen([PROKUS, "serve", "--host", "127.0.0.1", "--port", str(port),
                               "--workers", str(workers)], env=env, stdout=output,
                              stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 60
    while True:
        try:
            if httpx.get(f"{base}/login", timeout=2).status_code == 200:
                break
        except httpx.HTTPError:
            pass
        if server.poll() is not None or time.monotonic() > deadline:
            stop_server(server)
            raise RuntimeError("prokus serve did not start; see results/bench-web-serve.log")
        time.sleep(0.2)
    if workers > 1:  # the first worker answers; give the others time to import the app
        time.sleep(3)
    return server


def stop_server(server: subprocess.Popen) -> None:
    server.terminate()
    try:
        server.wait(timeout=15)
    except subprocess.TimeoutExpired:
        server.kill()
        server.wait()


def scenario_names(think: float) -> tuple[str, str]:
    return f"operators (think {think:g} s)", "stress (no think time)"


def measure(base: str, people: list[dict], by_region: dict[str, list[str]],
            seconds: float, think: float) -> tuple[dict, str]:
    """Sign the operators in and run both scenarios; ({scenario: figures}, dashboard kind)."""
    clients = []
    for person in people:
        numbers = ([n for region, found in by_region.items()
                    if region.startswith(person["region"]) for n in found]
                   if person["region"] else [n for found in by_region.values()
                                             for n in found])
        clients.append(Client(base, person, numbers))

    def detail(rng: random.Random, client: Client) -> str:
        return f"/registrations/{rng.choice(client.numbers)}"

    home = clients[0].http.get("/").text
    dashboard_kind = "dashboard" if "<svg" in home else "landing page"
    picks = (("queue", queue_url), ("detail", detail), ("dashboard", lambda rng, client: "/"))
    for _ in range(2):  # warm up: first requests compile templates (in every worker)
        for _page, pick in picks:
            for client in clients:
                client.http.get(pick(random.Random(1), client))
    scenarios = {}
    for label, pause in zip(scenario_names(think), (think, 0.0), strict=True):
        log(f"scenario {label}: {len(clients)} operators, {seconds:g} s per page")
        pages = {}
        for page, pick in picks:
            pages[page] = figures = run_phase(page, clients, seconds, pick, think=pause)
            log(f"  {page:9s} n={figures['requests']:5d} "
                f"{figures['throughput_per_s']:6.1f}/s p50={figures['p50_ms']:6.1f} ms "
                f"p95={figures['p95_ms']:6.1f} ms max={figures['max_ms']:7.1f} ms "
                f"errors={figures['errors']}")
        scenarios[label] = {
            "think_seconds": pause,
            "met": {page: pages[page]["p95_ms"] <= limit
                    for page, limit in TARGETS_P95_MS.items()},
            "pages": pages,
        }
    for client in clients:
        client.http.close()
    return scenarios, dashboard_kind


def main() -> int:
    # `prokus serve` on PostgreSQL needs a data key: a throw-away one unless configured.
    os.environ.setdefault("PROKUS_DATA_KEY", crypto.generate_key())
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--clients", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=20.0,
                        help="Seconds per page and scenario (default 20).")
    parser.add_argument("--think", type=float, default=1.0,
                        help="Mean think time of an operator between requests, seconds "
                             "(default 1.0; the stress scenario has none).")
    parser.add_argument("--workers", type=workers_list, default=[2],
                        help="`prokus serve --workers` (default 2); a list such as 1,2 "
                             "measures each count in turn on the same data.")
    parser.add_argument("--seed", type=int, default=13)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.think <= 0:
        parser.error("--think must be more than 0 (the stress scenario has no think time)")

    name = f"bench_web_{os.getpid()}"
    admin = libpq(PG_ADMIN)
    url = make_url(admin).set(database=name).render_as_string(hide_password=False)
    with psycopg.connect(admin, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    server = None
    load_before = [round(x, 2) for x in os.getloadavg()]
    try:
        log(f"database {name}: migrating (load average {load_before})")
        upgrade(url)
        began = time.monotonic()
        by_region = load(url, args.rows, args.seed)
        load_seconds = round(time.monotonic() - began, 1)
        log(f"{args.rows:,} registrations loaded in {load_seconds} s")
        people = add_operators(url, by_region, args.clients)
        env = {**os.environ, "DATABASE_URL": url, "LOG_JSON": "0", "LOG_LEVEL": "WARNING"}
        runs = []
        dashboard_kind = "dashboard"
        with open(ROOT / "results" / "bench-web-serve.log", "w") as server_log:
            for workers in args.workers:
                port = free_port()
                log(f"prokus serve --workers {workers} on 127.0.0.1:{port}")
                server = start_server(port, workers, env, server_log)
                scenarios, dashboard_kind = measure(f"http://127.0.0.1:{port}", people,
                                                    by_region, args.seconds, args.think)
                stop_server(server)
                server = None
                runs.append({"workers": workers,
                             "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
                             "scenarios": scenarios})
        operators_label = scenario_names(args.think)[0]
        result = {
            "benchmark": "make bench-web", "at": datetime.now(UTC).isoformat(timespec="seconds"),
            "rows": args.rows, "clients": args.clients, "seconds_per_page": args.seconds,
            "think_seconds": args.think, "database": "postgresql",
            "load_seconds": load_seconds, "cpus": os.cpu_count(),
            "load_average_at_start_1_5_15": load_before,
            "dashboard_page": dashboard_kind,
            "indexes": "as migrated (0009 adds ix_registrations_wilayah_status, "
                       "ix_registrations_nik)",
            "targets_p95_ms": TARGETS_P95_MS,
            "targets_judged_on": operators_label,
            "met": all(all(run["scenarios"][operators_label]["met"].values())
                       for run in runs),
            "runs": runs,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")
        log(f"written {args.out.relative_to(ROOT) if args.out.is_relative_to(ROOT) else args.out}"
            f" (dashboard measured on the {dashboard_kind})")
        for run in runs:
            for label, scenario in run["scenarios"].items():
                figures = "  ".join(f"{page} p95 {scenario['pages'][page]['p95_ms']:.0f} ms"
                                    for page in TARGETS_P95_MS)
                log(f"workers={run['workers']} {label:24s} {figures}")
        return 0 if result["met"] else 1
    finally:
        if server is not None:
            stop_server(server)
        with psycopg.connect(admin, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        log(f"database {name} dropped")


if __name__ == "__main__":
    sys.exit(main())
