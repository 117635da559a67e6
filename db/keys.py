"""Data keys in the database: the start-up check, rotation, and the scan for unreadable rows.

`data_keys` lists each key that has sealed values here, with a sealed canary. At start
(`check`) every key still in use must be configured and open its canary; otherwise the
process stops with a clear error instead of serving unreadable records. `rotate` re-seals
every value (and recomputes the NIK blind indexes) under the current key, in batches,
while the service keeps running: the old key stays configured until it finishes, and
lookups try every configured key's blind index meanwhile.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass

import sqlalchemy as sa
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session, sessionmaker

from db import crypto
from db.models import Base, DataKeyRecord, utcnow

CANARY = b"prokus data key canary"
CANARY_PURPOSE = b"data_keys.canary"
BATCH = 1000
# Tables whose NIK has a blind index to recompute with the NIK.
NIK_HASH = {"kpm", "registrations"}


@dataclass(frozen=True)
class SealedTable:
    name: str
    pk: str
    columns: tuple[str, ...]

    def raw(self) -> sa.TableClause:
        """The table with its sealed columns as plain bytes (no db.crypto type)."""
        extra = ([sa.column("nik_hash", sa.String)]
                 if self.name in NIK_HASH and self.pk != "nik_hash" else [])
        return sa.table(self.name, sa.column(self.pk),
                        *(sa.column(c, sa.LargeBinary) for c in self.columns), *extra)


def sealed_tables() -> list[SealedTable]:
    out = []
    for name, cols in crypto.sealed_columns(Base.metadata).items():
        table = Base.metadata.tables[name]
        (pk,) = [c.name for c in table.primary_key.columns]
        out.append(SealedTable(name, pk, tuple(c for c, _ in cols)))
    return out


def check(session: Session) -> None:
    """Stop (DataKeyError) when a key that sealed data here is not configured or does not
    open its canary; register the current key on its first use."""
    ring = crypto.keyring()
    records = session.scalars(sa.select(DataKeyRecord)).all()
    for record in records:
        if record.retired_at is not None:
            continue
        key = ring.by_id.get(bytes.fromhex(record.key_id))
        if key is None:
            raise crypto.DataKeyError(
                f"the database holds personal data sealed under key {record.key_id}, which "
                f"is not configured ({crypto.ENV_KEY} from {ring.source}: "
                f"{', '.join(k.label for k in ring.keys)}); wrong key?")
        try:
            if ring.open(record.canary, CANARY_PURPOSE) != CANARY:
                raise crypto.UnreadableValue("canary differs")
        except crypto.UnreadableValue:
            raise crypto.DataKeyError(
                f"key {record.key_id} does not open its canary: the configured key is not "
                "the one that sealed this database's data") from None
    if ring.current.label not in {r.key_id for r in records}:
        try:  # two processes starting at once on a fresh database: one of them registers
            with session.begin_nested():
                session.add(DataKeyRecord(key_id=ring.current.label,
                                          canary=ring.seal(CANARY, CANARY_PURPOSE),
                                          created_at=utcnow()))
        except IntegrityError:
            pass
    else:
        current = next(r for r in records if r.key_id == ring.current.label)
        current.retired_at = None


def check_database(sessions: sessionmaker[Session]) -> None:
    """`check` in its own transaction, when the database has the `data_keys` table."""
    with sessions.begin() as session:
        if not sa.inspect(session.connection()).has_table("data_keys"):
            return
        check(session)


def _key_of(table: SealedTable, row) -> set[str | None]:
    return {crypto.key_id_of(getattr(row, c)) for c in table.columns
            if getattr(row, c) is not None}


def usage(session: Session) -> dict[str, Counter]:
    """{table: Counter(key id -> sealed values)}; "unreadable" for values no key id fits."""
    out: dict[str, Counter] = {}
    for table in sealed_tables():
        raw = table.raw()
        counts: Counter = Counter()
        for row in session.execute(sa.select(raw)).yield_per(BATCH):
            for column in table.columns:
                value = getattr(row, column)
                if value is not None:
                    counts[crypto.key_id_of(value) or "unreadable"] += 1
        out[table.name] = counts
    return out


@dataclass
class RotateResult:
    rows: int = 0
    values: int = 0
    unreadable: list[tuple[str, object, str]] | None = None
    retired: list[str] | None = None


def _page(session: Session, table: SealedTable, after: object) -> list:
    """Up to `BATCH` raw rows in primary-key order, after the key `after` (None: first)."""
    raw = table.raw()
    pk = raw.c[table.pk]
    stmt = sa.select(raw).order_by(pk).limit(BATCH)
    if after is not None:
        stmt = stmt.where(pk > after)
    return session.execute(stmt).all()


def _batches(session: Session, table: SealedTable) -> Iterator[list]:
    """The table's rows, `BATCH` at a time, in primary-key order."""
    last = None
    while rows := _page(session, table, last):
        yield rows
        last = getattr(rows[-1], table.pk)


def total_rows(session: Session) -> int:
    return sum(session.scalar(sa.select(sa.func.count()).select_from(t.raw())) or 0
               for t in sealed_tables())


def _resealed(ring: crypto.Keyring, table: SealedTable, row) -> dict[str, object]:
    """The row's values re-sealed under the current key (and its NIK's blind index)."""
    values: dict[str, object] = {}
    for column in table.columns:
        blob = getattr(row, column)
        if blob is None or crypto.key_id_of(blob) == ring.current.label:
            continue
        purpose = f"{table.name}.{column}".encode()
        values[column] = ring.seal(ring.open(bytes(blob), purpose), purpose)
    if table.name in NIK_HASH:
        nik = ring.open(bytes(row.nik), f"{table.name}.nik".encode())
        values["nik_hash"] = ring.blind(nik.decode())
    return values


def rotate(sessions: sessionmaker[Session],
           progress: Callable[[int], None] = lambda n: None) -> RotateResult:
    """Re-seal every value not under the current key; recompute NIK blind indexes. Each
    batch is its own transaction, so the service keeps running; a row that does not open
    is left as it is and listed. Old keys with nothing left under them are retired."""
    ring = crypto.keyring()
    current = ring.current.label
    result = RotateResult(unreadable=[], retired=[])
    for table in sealed_tables():
        raw = table.raw()
        pk = raw.c[table.pk]
        last = None
        while True:
            with sessions.begin() as session:
                rows = _page(session, table, last)
                if not rows:
                    break
                last = getattr(rows[-1], table.pk)
                for row in rows:
                    result.rows += 1
                    if _key_of(table, row) <= {current}:
                        continue
                    try:
                        values = _resealed(ring, table, row)
                    except crypto.UnreadableValue as error:
                        result.unreadable.append((table.name, getattr(row, table.pk),
                                                  str(error)))
                        continue
                    result.values += len(values) - (1 if "nik_hash" in values else 0)
                    session.execute(sa.update(raw).where(pk == getattr(row, table.pk))
                                    .values(**values))
            progress(len(rows))
    with sessions.begin() as session:
        left = set()
        for counts in usage(session).values():
            left.update(k for k, n in counts.items() if n)
        for record in session.scalars(sa.select(DataKeyRecord)):
            if record.key_id != current and record.key_id not in left \
                    and record.retired_at is None:
                record.retired_at = utcnow()
                result.retired.append(record.key_id)
        check(session)
    return result


def scan(sessions: sessionmaker[Session],
         progress: Callable[[int], None] = lambda n: None) -> list[tuple[str, object, str, str]]:
    """Every sealed value that does not open: (table, primary key, column, reason)."""
    ring = crypto.keyring()
    bad = []
    with sessions() as session:
        for table in sealed_tables():
            for rows in _batches(session, table):
                for row in rows:
                    for column in table.columns:
                        blob = getattr(row, column)
                        if blob is None:
                            continue
                        try:
                            ring.open(bytes(blob), f"{table.name}.{column}".encode())
                        except crypto.UnreadableValue as error:
                            bad.append((table.name, getattr(row, table.pk), column, str(error)))
                progress(len(rows))
    return bad
