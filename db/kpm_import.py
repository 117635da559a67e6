"""Import the KPM registry from CSV: streaming, validated row by row, upserted by NIK.

Header: nik,nama,tanggal_lahir,jenis_kelamin,kode_wilayah,status_pkh,tanggal_graduasi,no_hp
A row is stored whole or not at all; rejected rows go to a report (line, reason, masked
NIK). Importing the same file twice changes nothing: unchanged rows are not written (a
keyed digest per row tells them; the NIK, name, birth date and phone are sealed, db.crypto).

Each `kode_wilayah` must be a desa/kelurahan of the regions table (issue 15): the table's
desa codes are read once into a set, so the check costs a set lookup per row; a code it
lacks is a rejected row ("kode_wilayah: unknown ..."). When the table is empty (`prokus
regions load` not run), codes are checked on their shape only and the result says so
(`regions_unchecked`, REGIONS_UNCHECKED for the CLI).
"""

from __future__ import annotations

import csv
import os
import random
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any, TextIO
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from db import crypto
from db import regions as region_table
from db.models import Kpm
from domain import nik as nik_rules
from domain import phone as phone_rules
from domain.numbers import is_ascii_digits

HEADER = ["nik", "nama", "tanggal_lahir", "jenis_kelamin", "kode_wilayah", "status_pkh",
          "tanggal_graduasi", "no_hp"]
DATA_COLUMNS = HEADER[1:]
BATCH = 5000
# The registry's calendar: "today" for the birth- and graduation-date checks is the date in
# Jakarta (WIB), whatever the server's own time zone.
WIB = ZoneInfo("Asia/Jakarta")
REGIONS_UNCHECKED = ("regions table empty: kode_wilayah not checked; "
                     "run prokus regions load")


def _utcnow() -> datetime:
    """The current instant (a seam for tests)."""
    return datetime.now(UTC)


def today_wib() -> date:
    """Today's date in Jakarta (WIB)."""
    return _utcnow().astimezone(WIB).date()


class RowError(ValueError):
    pass


@dataclass
class ImportResult:
    rows: int = 0
    inserted: int = 0
    updated: int = 0
    unchanged: int = 0
    rejected: int = 0
    duplicates_in_file: int = 0
    warnings: int = 0
    rejects_path: Path | None = None
    reasons: dict[str, int] = field(default_factory=dict)
    regions_unchecked: bool = False  # the regions table was empty: codes not checked


def _date(value: str, column: str) -> date:
    try:
        if len(value) != 10:
            raise ValueError
        return date.fromisoformat(value)
    except ValueError:
        raise RowError(f"{column}: expected a date YYYY-MM-DD, got {value!r}") from None


def validate(row: list[str], today: date) -> tuple[dict[str, Any], list[str]]:
    """Return the row as stored values and its warnings, or raise RowError."""
    if len(row) != len(HEADER):
        raise RowError(f"expected {len(HEADER)} columns, got {len(row)}")
    raw = dict(zip(HEADER, (cell.strip() for cell in row), strict=True))
    warnings: list[str] = []
    try:
        parsed = nik_rules.parse(raw["nik"])
    except nik_rules.NikError as error:
        raise RowError(f"nik: {error.key} {error.values or ''}".strip()) from None
    nama = " ".join(raw["nama"].split())
    if not nama or len(nama) > 120 or not any(ch.isalpha() for ch in nama):
        raise RowError("nama: empty, too long or without letters")
    born = _date(raw["tanggal_lahir"], "tanggal_lahir")
    if born.year < 1900 or born > today:
        raise RowError("tanggal_lahir: out of range")
    sex = raw["jenis_kelamin"].upper()
    if sex not in ("L", "P"):
        raise RowError("jenis_kelamin: expected L or P")
    region = raw["kode_wilayah"].replace(".", "")
    if (len(region) != 10 or not is_ascii_digits(region)
            or int(region[:2]) not in nik_rules.PROVINCES):
        raise RowError("kode_wilayah: expected a 10-digit desa/kelurahan code")
    status = raw["status_pkh"].lower()
    if status not in ("aktif", "graduasi"):
        raise RowError("status_pkh: expected aktif or graduasi")
    graduated = None
    if raw["tanggal_graduasi"]:
        graduated = _date(raw["tanggal_graduasi"], "tanggal_graduasi")
        if status != "graduasi":
            raise RowError("tanggal_graduasi: given for a KPM whose status is aktif")
        if graduated < born or graduated > today:
            raise RowError("tanggal_graduasi: before birth or in the future")
    phone = None
    if raw["no_hp"]:
        phone = phone_rules.normalise(raw["no_hp"])
        if phone is None:
            raise RowError("no_hp: not a valid 08... or +628... number")
    if not parsed.matches_birth_date(born):
        warnings.append("nik_date_mismatch")
    if parsed.female != (sex == "P"):
        warnings.append("nik_sex_mismatch")
    return {
        "nik": parsed.value, "nama": nama, "tanggal_lahir": born, "jenis_kelamin": sex,
        "kode_wilayah": region, "status_pkh": status, "tanggal_graduasi": graduated,
        "no_hp": phone,
    }, warnings


SEALED = ("nik", "nama", "tanggal_lahir", "no_hp")  # sealed columns (db.crypto)
COLUMNS = ["nik_hash", "nik", *DATA_COLUMNS, "digest", "updated_at"]


class _Sealer:
    """Seals a batch's personal values in one go (the import's hot path): AES-GCM under the
    current key with the column as associated data, exactly as db.crypto's column types do,
    with the nonces of a whole batch drawn at once."""

    def __init__(self, ring: crypto.Keyring) -> None:
        self.ring = ring
        self.prefix = crypto.VERSION + ring.current.key_id
        self.aead = ring.current.aead
        self.aad = {name: f"kpm.{name}".encode() for name in SEALED}

    def rows(self, rows: list[dict[str, Any]], now: datetime) -> list[dict[str, Any]]:
        nonces = os.urandom(12 * len(rows) * len(SEALED))
        out, at = [], 0
        for row in rows:
            sealed = dict(row)
            for name in SEALED:
                value = row[name]
                if value is None:
                    continue
                data = (value.isoformat() if name == "tanggal_lahir" else value).encode()
                nonce = nonces[at:at + 12]
                at += 12
                sealed[name] = self.prefix + nonce + self.aead.encrypt(nonce, data,
                                                                       self.aad[name])
            sealed["updated_at"] = now
            out.append(sealed)
        return out


def _upsert(session: Session, rows: list[dict[str, Any]]) -> None:
    """INSERT ... ON CONFLICT (nik_hash) DO UPDATE, as one executemany on the driver.

    This bypasses SQLAlchemy's per-row parameter processing, which was half the import
    time; values are converted the way SQLAlchemy stores them (ISO text on SQLite) and the
    personal ones arrive sealed (`_Sealer`).
    """
    connection = session.connection()
    if connection.dialect.name == "postgresql":
        _upsert_copy(connection.connection.driver_connection, rows)
        return
    sqlite = connection.dialect.name == "sqlite"
    mark = "?" if sqlite else "%s"
    sql = (
        f"INSERT INTO kpm ({', '.join(COLUMNS)}) VALUES ({', '.join([mark] * len(COLUMNS))}) "
        "ON CONFLICT (nik_hash) DO UPDATE SET "
        + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
    )

    def convert(value: Any) -> Any:
        if sqlite and isinstance(value, datetime):
            return value.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")
        if sqlite and isinstance(value, date):
            return value.isoformat()
        return value

    connection.exec_driver_sql(sql, [tuple(convert(row[c]) for c in COLUMNS) for row in rows])


def _upsert_copy(pg: Any, rows: list[dict[str, Any]]) -> None:
    """PostgreSQL: COPY the batch into a temporary table, then one INSERT ... SELECT
    ... ON CONFLICT. Much faster than row-by-row statements."""
    with pg.cursor() as cursor:
        cursor.execute(
            "CREATE TEMP TABLE IF NOT EXISTS kpm_stage (LIKE kpm INCLUDING DEFAULTS) "
            "ON COMMIT DELETE ROWS"
        )
        with cursor.copy(f"COPY kpm_stage ({', '.join(COLUMNS)}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(tuple(row[c] for c in COLUMNS))
        cursor.execute(
            f"INSERT INTO kpm ({', '.join(COLUMNS)}) SELECT {', '.join(COLUMNS)} FROM kpm_stage "
            "ON CONFLICT (nik_hash) DO UPDATE SET "
            + ", ".join(f"{c} = excluded.{c}" for c in COLUMNS[1:])
        )
        cursor.execute("TRUNCATE kpm_stage")


def _store(session: Session, batch: dict[str, dict[str, Any]], result: ImportResult) -> None:
    """Write the rows that are new or changed; count the rest as unchanged.

    A row is found by its blind index and compared by its keyed digest, never by clear
    values. While a key rotation runs (several keys configured), a row still under an old
    key is replaced by one under the current key."""
    ring = crypto.keyring()
    table = Kpm.__table__
    for values in batch.values():
        values["nik_hash"] = ring.blind(values["nik"])
        values["digest"] = ring.digest(*(values[c] for c in HEADER))
    existing = dict(session.execute(
        select(table.c.nik_hash, table.c.digest)
        .where(table.c.nik_hash.in_([v["nik_hash"] for v in batch.values()]))).all())
    stale: list[str] = []
    if len(ring.keys) > 1:
        old = {h: nik for nik in batch for h in ring.blinds(nik)[1:]}
        stale = list(session.scalars(select(table.c.nik_hash)
                                     .where(table.c.nik_hash.in_(list(old)))))
        found = {old[h] for h in stale}
    else:
        found = set()
    to_write = []
    for nik, values in batch.items():
        if values["nik_hash"] in existing:
            if existing[values["nik_hash"]] == values["digest"]:
                result.unchanged += 1
                continue
            result.updated += 1
        elif nik in found:
            result.updated += 1
        else:
            result.inserted += 1
        to_write.append(values)
    if stale:
        session.execute(table.delete().where(table.c.nik_hash.in_(stale)))
    if to_write:
        _upsert(session, _Sealer(ring).rows(to_write, _utcnow()))


def _counting(lines: Iterable[str], progress: Callable[[int], None]) -> Iterator[str]:
    for line in lines:
        progress(len(line))
        yield line


def header_matches(cells: list[str]) -> bool:
    """True when a CSV's first record is the registry header (a BOM and spaces ignored)."""
    return [h.strip().lstrip("\ufeff") for h in cells] == HEADER


def import_csv(sessions: sessionmaker[Session], source: TextIO, rejects: TextIO,
               progress: Callable[[int], None] = lambda n: None,
               today: date | None = None, result: ImportResult | None = None) -> ImportResult:
    """Stream `source` into the registry; write rejected rows to `rejects`.

    `today` (for the date checks) defaults to today's date in WIB, not the server's.
    Pass `result` to watch the counts grow while it runs (the console's background job
    reads it from `progress`); `progress(n)` is called with each line's length."""
    today = today or today_wib()
    result = result if result is not None else ImportResult()
    reader = csv.reader(_counting(source, progress))
    first = next(reader, [])
    if not header_matches(first):
        header = [h.strip().lstrip("\ufeff") for h in first]
        raise RowError(f"unexpected header {header}; expected {','.join(HEADER)}")
    report = csv.writer(rejects)
    report.writerow(["line", "reason", "nik_masked"])
    with sessions() as session:
        desa = region_table.digits_at(session, "desa")
    result.regions_unchecked = not desa
    batch: dict[str, dict[str, Any]] = {}
    for row in reader:
        if not any(cell.strip() for cell in row):
            continue
        result.rows += 1
        try:
            values, warnings = validate(row, today)
            if desa and values["kode_wilayah"] not in desa:
                raise RowError("kode_wilayah: unknown "
                               f"{region_table.dotted(values['kode_wilayah'])}")
        except RowError as error:
            result.rejected += 1
            reason = str(error)
            result.reasons[reason.split(":")[0]] = result.reasons.get(reason.split(":")[0], 0) + 1
            report.writerow([reader.line_num, reason, nik_rules.mask(row[0]) if row else ""])
            continue
        result.warnings += len(warnings)
        if values["nik"] in batch:
            result.duplicates_in_file += 1  # the later row wins
        batch[values["nik"]] = values
        if len(batch) >= BATCH:
            with sessions.begin() as session:
                _store(session, batch, result)
            batch = {}
    if batch:
        with sessions.begin() as session:
            _store(session, batch, result)
    return result


FIRST_NAMES = ["Budi", "Siti", "Agus", "Dewi", "Rina", "Ahmad", "Sri", "Joko", "Nur", "Putri",
               "Wahyu", "Ayu", "Eko", "Fitri", "Hendra", "Lestari", "Rudi", "Yanti"]
LAST_NAMES = ["Santoso", "Aminah", "Wibowo", "Lestari", "Marlina", "Hidayat", "Rahayu",
              "Saputra", "Kurniawan", "Wati", "Pratama", "Susanti", "Nugroho", "Handayani"]
# Real desa/kelurahan-shaped codes in several provinces (the people are fake).
REGIONS = ["3201052001", "3374021003", "3578101004", "7371111002", "1271051001",
           "5171011002", "6371041001", "9171011001"]


def write_demo(out: TextIO, count: int, seed: int = 7,
               progress: Callable[[int], None] = lambda n: None) -> None:
    """Write `count` clearly fake KPM rows ("Contoh ... (FIKTIF)", phones 0812000xxxxx)."""
    rng = random.Random(seed)
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(HEADER)
    first_day = date(1966, 1, 1)
    days = 14000  # birth dates 1966-2004
    for i in range(count):
        region = REGIONS[i % len(REGIONS)]
        born = first_day + timedelta(days=(i // len(REGIONS)) % days)
        serial = i // (len(REGIONS) * days) + 1
        female = rng.random() < 0.5
        day = born.day + (40 if female else 0)
        nik = f"{region[:6]}{day:02d}{born.month:02d}{born.year % 100:02d}{serial:04d}"
        graduated = rng.random() < 0.7
        grad_date = date(2019, 1, 1) + timedelta(days=rng.randrange(2400)) if graduated else None
        phone = f"081200{rng.randrange(10**6):06d}" if rng.random() < 0.8 else ""
        name = f"Contoh {rng.choice(FIRST_NAMES)} {rng.choice(LAST_NAMES)} (FIKTIF)"
        writer.writerow([nik, name, born.isoformat(), "P" if female else "L", region,
                         "graduasi" if graduated else "aktif",
                         grad_date.isoformat() if grad_date else "", phone])
        progress(1)
