"""Benchmark the official regions (issue 15): `prokus regions load` time on SQLite and
PostgreSQL, and region matching latency (p50/p95) for a desa within a known kecamatan and
for a kabupaten/kota without a parent. Prints the figures, writes results/bench-regions.json.

    .venv/bin/python scripts/bench_regions.py [--queries 2000]

Queries are real names from the data with one random typo (a letter dropped, doubled or
swapped) and a random type word ("desa", "kel.", "kab", "kota"), each for a different
random parent, so first-touch work on a parent's slice is in the figures. The in-process
index is read once per process (`whole_index_seconds`; a question without a parent reads
only provinces and kabupaten/kota, `first_match_seconds`, and one within a parent only that
parent's subtree, `desa_within_kecamatan_cold`); the `prokus regions match`
command pays that and Python's start-up on every call (`cli_seconds`).
"""

from __future__ import annotations

import argparse
import json
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from sqlalchemy import select  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from db import regions  # noqa: E402
from db.engine import make_engine  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import Region  # noqa: E402
from scripts.throwaway_db import throwaway_database  # noqa: E402


def typo(rng: random.Random, name: str) -> str:
    if len(name) < 4:
        return name
    i = rng.randrange(1, len(name) - 1)
    return rng.choice([name[:i] + name[i + 1:], name[:i] + name[i] + name[i:],
                       name[:i] + name[i + 1] + name[i] + name[i + 2:]])


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def summary(times: list[float], hits: int) -> dict:
    ms = [t * 1000 for t in times]
    return {"queries": len(ms), "p50_ms": round(statistics.median(ms), 2),
            "p95_ms": round(percentile(ms, 0.95), 2), "max_ms": round(max(ms), 2),
            "top1_with_a_typo": round(hits / len(ms), 3)}


def bench(url: str, queries: int, seed: int = 7) -> dict:
    upgrade(url)
    engine = make_engine(url)
    result: dict = {}
    t0 = time.perf_counter()
    load = regions.load(engine)
    result["load_seconds"] = round(time.perf_counter() - t0, 2)
    result["rows"] = sum(load.counts.values())
    t0 = time.perf_counter()
    regions.load(engine)
    result["reload_unchanged_seconds"] = round(time.perf_counter() - t0, 2)
    rng = random.Random(seed)
    with Session(engine) as session:
        desa = session.execute(select(Region.code, Region.parent_code, Region.name)
                               .where(Region.level == "desa")).all()
        kab = session.execute(select(Region.code, Region.name)
                              .where(Region.level == "kabupaten")).all()
        times, hits = [], 0
        for code, parent, name in rng.sample(desa, min(queries, 300)):
            regions.invalidate()  # nothing cached: the kecamatan is read through its index
            t0 = time.perf_counter()
            found = regions.match(session, typo(rng, name), within=parent)
            times.append(time.perf_counter() - t0)
            hits += bool(found) and found[0].code == code
        result["desa_within_kecamatan_cold"] = summary(times, hits)
        regions.invalidate()
        t0 = time.perf_counter()
        regions.match(session, "bogor")  # reads provinces and kabupaten/kota only
        result["first_match_seconds"] = round(time.perf_counter() - t0, 3)
        t0 = time.perf_counter()
        regions.match(session, "pakansari", level="desa")  # reads the whole table once
        result["whole_index_seconds"] = round(time.perf_counter() - t0, 2)
        times, hits = [], 0
        for code, parent, name in rng.sample(desa, queries):
            text = f"{rng.choice(['', 'desa ', 'kel. ', 'Ds '])}{typo(rng, name)}"
            t0 = time.perf_counter()
            found = regions.match(session, text, within=parent)
            times.append(time.perf_counter() - t0)
            hits += bool(found) and found[0].code == code
        result["desa_within_kecamatan"] = summary(times, hits)
        times, hits = [], 0
        for _ in range(queries):
            code, name = rng.choice(kab)
            short = name.replace("Kabupaten ", rng.choice(["kab ", "Kab. ", ""])) \
                        .replace("Kota ", rng.choice(["kota ", "Kodya "]))
            t0 = time.perf_counter()
            found = regions.match(session, typo(rng, short))
            times.append(time.perf_counter() - t0)
            hits += bool(found) and found[0].code == code
        result["kabupaten_no_parent"] = summary(times, hits)
    engine.dispose()
    return result


def cli_seconds(url: str, *args: str) -> float:
    """Wall time of one `prokus regions match ...` (a new Python process)."""
    prokus = Path(sys.executable).with_name("prokus")
    t0 = time.perf_counter()
    subprocess.run([str(prokus), "regions", "match", *args], check=True,
                   capture_output=True, env={"DATABASE_URL": url, "PATH": "/usr/bin:/bin"})
    return round(time.perf_counter() - t0, 2)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--queries", type=int, default=2000)
    parser.add_argument("--pg-admin", default="postgresql://postgres@127.0.0.1:5432/postgres")
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="bench-regions-"))
    results: dict = {"queries": args.queries, "targets_ms": {"desa_within_kecamatan_p95": 20,
                                                             "kabupaten_no_parent_p95": 100}}
    print("SQLite ...", flush=True)
    url = f"sqlite:///{work / 'bench.db'}"
    results["sqlite"] = bench(url, args.queries)
    results["sqlite"]["cli_seconds"] = {
        "kabupaten_no_parent": cli_seconds(url, "kab bogr"),
        "desa_within_kecamatan": cli_seconds(url, "pakan sari", "--within", "32.01.01"),
        "help_only": cli_seconds(url, "--help")}
    print(json.dumps(results["sqlite"]), flush=True)
    with throwaway_database(args.pg_admin, "prokus_bench") as url:
        if url is not None:
            print("PostgreSQL ...", flush=True)
            results["postgresql"] = bench(url, args.queries)
            print(json.dumps(results["postgresql"]), flush=True)
    out = ROOT / "results" / "bench-regions.json"
    out.parent.mkdir(exist_ok=True)
    out.write_text(json.dumps(results, indent=2))
    print("\n| database | load s | reload s | first match s | desa/kec p50 | p95 "
          "| kab p50 | p95 |")
    print("|---|---|---|---|---|---|---|---|")
    failed = False
    for db in ("sqlite", "postgresql"):
        if db in results:
            r = results[db]
            d, k = r["desa_within_kecamatan"], r["kabupaten_no_parent"]
            print(f"| {db} | {r['load_seconds']} | {r['reload_unchanged_seconds']} | "
                  f"{r['first_match_seconds']} | {d['p50_ms']} | {d['p95_ms']} | "
                  f"{k['p50_ms']} | {k['p95_ms']} |")
            failed |= d["p95_ms"] > 20 or k["p95_ms"] > 100
    print(f"written: {out}")
    if failed:
        sys.exit("region matching is slower than the targets (20 ms / 100 ms p95)")


if __name__ == "__main__":
    main()
