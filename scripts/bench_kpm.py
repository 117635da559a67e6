"""Benchmark the KPM registry: import of N demo rows into SQLite and PostgreSQL, and NIK
lookups at that size, with the personal columns sealed (AES-256-GCM) and lookups by the
blind index, as in production. Prints the figures and writes results/bench-kpm.json.

    .venv/bin/python scripts/bench_kpm.py [--rows 1000000] [--lookups 10000]
"""

from __future__ import annotations

import argparse
import io
import json
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))


from db import crypto, repo  # noqa: E402
from db.engine import make_engine, make_sessionmaker  # noqa: E402
from db.kpm_import import import_csv, write_demo  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from scripts.throwaway_db import throwaway_database  # noqa: E402


def bench(url: str, csv_path: Path, lookups: int) -> dict:
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    started = time.perf_counter()
    with open(csv_path, encoding="utf-8", newline="") as source:
        result = import_csv(sessions, source, io.StringIO())
    import_seconds = time.perf_counter() - started
    with open(csv_path, encoding="utf-8") as fh:
        next(fh)
        niks = [line.split(",", 1)[0] for line in fh]
    sample = random.Random(1).sample(niks, min(lookups, len(niks)))
    sample += [f"32010501019{i:05d}" for i in range(len(sample) // 10)]  # misses too
    timings = []
    for nik in sample:
        t0 = time.perf_counter()
        with sessions() as session:  # one session per turn, as the bot does
            repo.find_kpm(session, nik)
        timings.append((time.perf_counter() - t0) * 1000)
    timings.sort()
    engine.dispose()
    return {
        "rows": result.rows, "inserted": result.inserted, "rejected": result.rejected,
        "import_seconds": round(import_seconds, 1),
        "rows_per_second": round(result.rows / import_seconds),
        "lookups": len(timings),
        "lookup_ms_mean": round(statistics.fmean(timings), 3),
        "lookup_ms_p50": round(timings[len(timings) // 2], 3),
        "lookup_ms_p95": round(timings[int(len(timings) * 0.95)], 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=1_000_000)
    parser.add_argument("--lookups", type=int, default=10_000)
    parser.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-kpm-"))
    csv_path = work / "kpm.csv"
    t0 = time.perf_counter()
    with open(csv_path, "w", encoding="utf-8", newline="") as out:
        write_demo(out, args.rows)
    print(f"generated {args.rows} demo rows in {time.perf_counter() - t0:.1f} s", flush=True)
    ring = crypto.keyring()
    results = {"rows": args.rows,
               "encryption": f"AES-256-GCM, key {ring.current.label} from {ring.source}; "
                             "NIK lookups by HMAC-SHA256 blind index"}
    print(f"encryption on: {results['encryption']}", flush=True)
    print("SQLite ...", flush=True)
    results["sqlite"] = bench(f"sqlite:///{work / 'bench.db'}", csv_path, args.lookups)
    print(json.dumps(results["sqlite"]), flush=True)
    with throwaway_database(args.pg_admin, "prokus_bench") as url:
        if url is not None:
            print("PostgreSQL ...", flush=True)
            results["postgresql"] = bench(url, csv_path, args.lookups)
            print(json.dumps(results["postgresql"]), flush=True)
    out = ROOT / "results" / "bench-kpm.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print("\n| database | rows | import s | rows/s | lookup mean ms | p50 | p95 |")
    print("|---|---|---|---|---|---|---|")
    for db in ("sqlite", "postgresql"):
        if db in results:
            r = results[db]
            print(f"| {db} | {r['rows']} | {r['import_seconds']} | {r['rows_per_second']} | "
                  f"{r['lookup_ms_mean']} | {r['lookup_ms_p50']} | {r['lookup_ms_p95']} |")
    print(f"written: {out}")
    csv_path.unlink()


if __name__ == "__main__":
    main()
