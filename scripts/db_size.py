"""Measure the PostgreSQL bytes per KPM registry row and per registration (for the sizing in
docs/deploy.md): a throw-away database `prokus_deploy_size_<random>` is created, migrated,
given the regions table, N synthetic KPM rows (the real import: `db.kpm_import`, sealed as in
production) and M registrations written through the real functions (`registrations.submit`,
`registrations.set_status`, `repo.audit`), each with its Telegram account, its conversation
row, the audit rows of a registration and the status notices in the outbox. After VACUUM
ANALYZE it reads `pg_total_relation_size` (heap + indexes + TOAST) per table and the size of
a `pg_dump -Fc` of the whole database, prints the figures, writes results/db-size.json and
drops the database.

    .venv/bin/python scripts/db_size.py [--kpm 100000] [--registrations 20000]
        [--pg-admin postgresql://postgres@127.0.0.1:5432/postgres]

Without PROKUS_DATA_KEY a throw-away key is generated for the run (the sizes do not depend
on which key is used, only on its presence: every sealed value has the same overhead).
"""

from __future__ import annotations

import argparse
import json
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from db import crypto  # noqa: E402

if not crypto.configured():  # before anything loads the keyring
    os.environ[crypto.ENV_KEY] = crypto.generate_key()

import psycopg  # noqa: E402

from db import regions, registrations, repo  # noqa: E402
from db.engine import make_engine, make_sessionmaker  # noqa: E402
from db.kpm_import import import_csv, write_demo  # noqa: E402
from db.migrate import upgrade  # noqa: E402
from db.models import Conversation, User  # noqa: E402
from domain import eligibility  # noqa: E402
from scripts.throwaway_db import throwaway_database  # noqa: E402

PG_ADMIN = os.environ.get("TEST_DATABASE_URL", "postgresql://postgres@127.0.0.1:5432/postgres")
RESULTS = ROOT / "results" / "db-size.json"
# The queue's mix in scripts/bench_web.py: what share of registrations reach which status.
STATUS_WEIGHTS = {"diajukan": 45, "diverifikasi": 20, "diterima": 25, "ditolak": 10}
PER_REGISTRATION = ("users", "conversations", "registrations", "registration_counters",
                    "audit_log", "outbox_messages", "outbox")
NOTICE = ("Kabar pendaftaran Prokus {number}: status Anda sekarang {status}. Petugas akan "
          "menghubungi Anda bila ada yang perlu dilengkapi. Terima kasih.")
DESCRIPTIONS = ("Jualan gorengan dan es teh di depan SD", "Menjahit pakaian dan permak celana",
                "Ternak ayam kampung di belakang rumah", "Warung kelontong kecil",
                "Anyaman bambu untuk dijual di pasar", "Bengkel tambal ban dan ganti oli")


def libpq(url: str) -> str:
    return url.replace("postgresql+psycopg://", "postgresql://")


def sizes(url: str) -> tuple[dict[str, int], int]:
    """pg_total_relation_size per table of the public schema, and pg_database_size."""
    with psycopg.connect(libpq(url), autocommit=True) as conn:
        conn.execute("VACUUM ANALYZE")
        rows = conn.execute(
            "SELECT c.relname, pg_total_relation_size(c.oid) FROM pg_class c "
            "JOIN pg_namespace n ON n.oid = c.relnamespace "
            "WHERE c.relkind = 'r' AND n.nspname = 'public'").fetchall()
        database = conn.execute("SELECT pg_database_size(current_database())").fetchone()[0]
    return {name: int(size) for name, size in rows}, int(database)


def dump_bytes(url: str, folder: Path) -> int | None:
    """Size of `pg_dump -Fc` of the database (what a nightly backup takes), None without
    pg_dump. Sealed values are random bytes: they hardly compress."""
    pg_dump = shutil.which("pg_dump")
    if pg_dump is None:
        return None
    target = folder / "dump.pgc"
    subprocess.run([pg_dump, "-Fc", "-f", str(target), "--dbname", libpq(url)], check=True,
                   capture_output=True, timeout=1800)
    size = target.stat().st_size
    target.unlink()
    return size


def add_registrations(sessions, csv_path: Path, count: int, seed: int) -> dict[str, int]:
    """`count` registrations of registry rows (eligible or not does not change the size),
    as the bot and the console write them; returns how many ended in each status."""
    rng = random.Random(seed)
    statuses, weights = list(STATUS_WEIGHTS), list(STATUS_WEIGHTS.values())
    year = datetime.now(UTC).year
    with open(csv_path, encoding="utf-8") as fh:
        next(fh)
        rows = [line.rstrip("\n").split(",") for _, line in zip(range(count), fh, strict=False)]
    done: dict[str, int] = dict.fromkeys(statuses, 0)
    batch = 500
    for start in range(0, len(rows), batch):
        with sessions() as session:
            for i, (nik, nama, lahir, _jk, kode, _pkh, _grad, hp) in enumerate(
                    rows[start:start + batch], start=start):
                user = User(channel="telegram", external_id=str(6_000_000_000 + i))
                session.add(user)
                session.flush()
                session.add(Conversation(user_id=user.id, state={}))
                actor = f"user:{user.id}"
                masked = f"{nik[:4]}********{nik[-4:]}"
                repo.audit(session, actor, "nik_lookup", "verified", subject=masked,
                           detail={"purpose": "registration"})
                if hp:
                    repo.audit(session, actor, "contact_check", "matched", subject=masked,
                               detail={"purpose": "registration"})
                dotted = f"{kode[:2]}.{kode[2:4]}"
                fields = {
                    "nik": nik, "nama": nama.replace(" (FIKTIF)", ""),
                    "tanggal_lahir": datetime.fromisoformat(lahir).date(),
                    "no_hp": hp or f"+62812{rng.randint(10**7, 10**8 - 1)}",
                    "kabupaten": "Kabupaten Contoh", "kecamatan": "Kecamatan Contoh",
                    "desa": "Desa Contoh", "bidang_usaha": rng.choice(eligibility.SECTORS),
                    "deskripsi_usaha": rng.choice(DESCRIPTIONS),
                    "lama_usaha_bulan": rng.randint(6, 120),
                    "kode_kabupaten": dotted, "kode_kecamatan": f"{dotted}.{kode[4:6]}",
                    "kode_desa": f"{dotted}.{kode[4:6]}.{kode[6:10] or '2001'}",
                    "wilayah_status": "cocok", "kode_wilayah": kode,
                    "kontak_berbeda": not hp,
                }
                result = registrations.submit(session, fields, user.id, year)
                number = result.registration.number
                repo.audit(session, actor, "registration_submit", "submitted", subject=number,
                           detail={"nik": masked, "kontak_berbeda": not hp})
                target = rng.choices(statuses, weights)[0]
                steps = {"diajukan": [], "diverifikasi": ["diverifikasi"],
                         "diterima": ["diverifikasi", "diterima"], "ditolak": ["ditolak"]}
                for status in steps[target]:
                    registrations.set_status(
                        session, number, status,
                        "Usaha belum berjalan saat survei" if status == "ditolak" else None,
                        "operator:verifikator-contoh",
                        lambda r, s=status: NOTICE.format(number=r.number, status=s))
                done[target] += 1
            session.commit()
        print(f"  {min(start + batch, len(rows)):,} registrations", flush=True)
    return done


def measure(url: str, kpm_rows: int, registration_rows: int, seed: int) -> dict:
    upgrade(url)
    engine = make_engine(url)
    sessions = make_sessionmaker(engine)
    empty, _ = sizes(url)
    regions.load(engine)
    with_regions, _ = sizes(url)
    work = Path(tempfile.mkdtemp(prefix="db-size-"))
    csv_path = work / "kpm.csv"
    with open(csv_path, "w", encoding="utf-8", newline="") as out:
        write_demo(out, kpm_rows, seed=seed)
    print(f"importing {kpm_rows:,} KPM rows ...", flush=True)
    with open(csv_path, encoding="utf-8", newline="") as source, \
            open(work / "rejects.csv", "w", encoding="utf-8") as rejects:
        imported = import_csv(sessions, source, rejects)
    after_kpm, _ = sizes(url)
    print(f"writing {registration_rows:,} registrations ...", flush=True)
    statuses = add_registrations(sessions, csv_path, registration_rows, seed)
    after, database = sizes(url)
    engine.dispose()
    dump = dump_bytes(url, work)
    with psycopg.connect(libpq(url)) as conn:
        version = conn.info.server_version
    shutil.rmtree(work, ignore_errors=True)

    def grown(table: str, before: dict[str, int]) -> int:
        return after.get(table, 0) - before.get(table, 0)

    kpm_bytes = after_kpm["kpm"] - empty.get("kpm", 0)
    per_table = {t: grown(t, after_kpm) for t in PER_REGISTRATION}
    reg_total = sum(per_table.values())
    return {
        "command": f".venv/bin/python scripts/db_size.py --kpm {kpm_rows} "
                   f"--registrations {registration_rows}",
        "postgresql": version,
        "kpm_rows": imported.inserted,
        "kpm_total_bytes": kpm_bytes,
        "bytes_per_kpm_row": round(kpm_bytes / imported.inserted, 1),
        "registrations": registration_rows,
        "registration_statuses": statuses,
        "registration_bytes_by_table": per_table,
        "bytes_per_registration": round(reg_total / registration_rows, 1),
        "bytes_per_registration_row_only": round(per_table["registrations"]
                                                 / registration_rows, 1),
        "what_a_registration_includes": (
            "the registrations row with its indexes, the applicant's users and "
            "conversations rows (state {} once the form is done), 2-3 audit rows of the "
            "bot (NIK lookup, contact check when the registry has a phone, submit), the "
            "operators' status changes (45% none, 20% diverifikasi, 25% diverifikasi + "
            "diterima, 10% ditolak) with their audit rows and status notices in the outbox"),
        "regions_bytes": with_regions.get("regions", 0),
        "empty_schema_bytes": sum(empty.values()),
        "database_bytes_at_end": database,
        "pg_dump_fc_bytes_at_end": dump,
        "tables_at_end": dict(sorted(after.items(), key=lambda kv: -kv[1])),
        "measured_at": datetime.now(UTC).isoformat(timespec="seconds"),
        "note": "pg_total_relation_size (heap + indexes + TOAST) after VACUUM ANALYZE, "
                "encryption on (AES-256-GCM sealed columns, HMAC blind index). Demo names "
                "carry ' (FIKTIF)' (9 bytes more than a real name before sealing).",
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--kpm", type=int, default=100_000)
    parser.add_argument("--registrations", type=int, default=20_000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--pg-admin", default=PG_ADMIN)
    parser.add_argument("--out", type=Path, default=RESULTS)
    args = parser.parse_args()
    if args.registrations > args.kpm:
        parser.error("--registrations must not exceed --kpm (each registers a KPM row)")
    started = time.perf_counter()
    with throwaway_database(args.pg_admin, "prokus_deploy_size") as url:
        if url is None:
            raise SystemExit("PostgreSQL is needed for this measurement")
        result = measure(url, args.kpm, args.registrations, args.seed)
    result["seconds"] = round(time.perf_counter() - started, 1)
    args.out.parent.mkdir(exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps({k: result[k] for k in ("bytes_per_kpm_row", "bytes_per_registration",
                                             "bytes_per_registration_row_only",
                                             "regions_bytes", "empty_schema_bytes")}))
    print(f"written: {args.out}")


if __name__ == "__main__":
    main()
