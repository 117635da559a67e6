"""Personal data encrypted at rest, NIK lookups by a keyed blind index (issue 16 item 1).

Seals (db.crypto, AES-256-GCM) the NIK, name, birth date, phone and address of the KPM
registry and of registrations, the mentors' name and phone, conversation state, the raw
inbox updates, outbox texts and handoff messages; adds `nik_hash` (blind index) as the
registry's key and the registrations' NIK index, `kpm.digest`, and `data_keys`. Existing
rows are sealed here, in batches, with the configured key (on PostgreSQL a configured key
is required when there is data to seal).

Revision ID: 0014
Revises: 0013
Create Date: 2026-11-28
"""

import json
from datetime import date

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects.postgresql import JSONB

from db import crypto

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None

BATCH = 2000
ACTIVE_ONLY = "status NOT IN ('ditolak', 'ditarik')"

# table -> (primary key, {column: (kind, nullable)})
SEALED = {
    "registrations": ("id", {"nik": ("text", False), "nama": ("text", False),
                             "tanggal_lahir": ("date", False), "no_hp": ("text", False),
                             "kabupaten": ("text", False), "kecamatan": ("text", False),
                             "desa": ("text", False)}),
    "mentors": ("id", {"nama": ("text", False), "no_hp": ("text", False)}),
    "conversations": ("user_id", {"state": ("json", False)}),
    "inbox": ("update_id", {"payload": ("json", True)}),
    "outbox_messages": ("id", {"text": ("text", False)}),
    "handoff_messages": ("id", {"text": ("text", False)}),
}
KINDS = {"text": crypto.SealedText, "date": crypto.SealedDate, "json": crypto.SealedJSON}


def _clear(kind: str, value):
    """A value as stored before this migration, as Python (SQLite keeps text)."""
    if value is None:
        return None
    if kind == "date" and isinstance(value, str):
        return date.fromisoformat(value[:10])
    if kind == "json" and isinstance(value, str | bytes):
        return json.loads(value)
    return value


def _has_rows(bind, table: str) -> bool:
    return bind.execute(sa.text(f"SELECT 1 FROM {table} LIMIT 1")).first() is not None


def _check_key(bind) -> None:
    tables = ["kpm", *SEALED]
    if bind.dialect.name == "postgresql" and not crypto.configured() and any(
            _has_rows(bind, t) for t in tables):
        raise crypto.DataKeyError(
            f"migration 0014 seals existing personal data: set {crypto.ENV_KEY} first "
            "(make one with `prokus keys generate`)")


def _seal_columns(bind, table: str, pk: str, columns: dict) -> None:
    with op.batch_alter_table(table) as batch:
        for name in columns:
            batch.add_column(sa.Column(f"{name}__sealed", sa.LargeBinary(), nullable=True))
        if table == "registrations":
            batch.add_column(sa.Column("nik_hash", sa.String(32), nullable=True))
    types = {name: KINDS[kind](f"{table}.{name}") for name, (kind, _) in columns.items()}
    ring = crypto.keyring()
    last = None
    while True:
        query = f"SELECT {pk}, {', '.join(columns)} FROM {table}"
        if last is not None:
            query += f" WHERE {pk} > :last"
        rows = bind.execute(sa.text(query + f" ORDER BY {pk} LIMIT {BATCH}"),
                            {"last": last}).all()
        if not rows:
            break
        updates = []
        for row in rows:
            values = {"pk": row[0]}
            for i, (name, (kind, _)) in enumerate(columns.items(), start=1):
                values[name] = types[name].process_bind_param(_clear(kind, row[i]), None)
            if table == "registrations":
                values["nik_hash"] = ring.blind(row[1])
            updates.append(values)
        sets = ", ".join(f"{name}__sealed = :{name}" for name in columns)
        if table == "registrations":
            sets += ", nik_hash = :nik_hash"
        bind.execute(sa.text(f"UPDATE {table} SET {sets} WHERE {pk} = :pk"), updates)
        last = rows[-1][0]
    with op.batch_alter_table(table) as batch:
        for name in columns:
            batch.drop_column(name)
    with op.batch_alter_table(table) as batch:
        for name, (_, nullable) in columns.items():
            batch.alter_column(f"{name}__sealed", new_column_name=name,
                               existing_type=sa.LargeBinary(), nullable=nullable)
        if table == "registrations":
            batch.alter_column("nik_hash", existing_type=sa.String(32), nullable=False)


def _rebuild_kpm(bind) -> None:
    """The registry's key becomes the blind index: a new table, filled in batches."""
    op.create_table(
        "kpm_sealed",
        sa.Column("nik_hash", sa.String(32), nullable=False),
        sa.Column("nik", sa.LargeBinary(), nullable=False),
        sa.Column("nama", sa.LargeBinary(), nullable=False),
        sa.Column("tanggal_lahir", sa.LargeBinary(), nullable=False),
        sa.Column("jenis_kelamin", sa.String(1), nullable=False),
        sa.Column("kode_wilayah", sa.String(10), nullable=False),
        sa.Column("status_pkh", sa.String(10), nullable=False),
        sa.Column("tanggal_graduasi", sa.Date(), nullable=True),
        sa.Column("no_hp", sa.LargeBinary(), nullable=True),
        sa.Column("digest", sa.String(32), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nik_hash", name="kpm_sealed_pkey"),
    )
    text_type, date_type = crypto.SealedText, crypto.SealedDate
    seal = {"nik": text_type("kpm.nik"), "nama": text_type("kpm.nama"),
            "tanggal_lahir": date_type("kpm.tanggal_lahir"), "no_hp": text_type("kpm.no_hp")}
    ring = crypto.keyring()
    cols = ["nik", "nama", "tanggal_lahir", "jenis_kelamin", "kode_wilayah", "status_pkh",
            "tanggal_graduasi", "no_hp", "updated_at"]
    insert = sa.text(f"INSERT INTO kpm_sealed (nik_hash, digest, {', '.join(cols)}) "
                     f"VALUES (:nik_hash, NULL, {', '.join(':' + c for c in cols)})")
    last = None
    while True:
        query = f"SELECT {', '.join(cols)} FROM kpm"
        if last is not None:
            query += " WHERE nik > :last"
        rows = bind.execute(sa.text(query + f" ORDER BY nik LIMIT {BATCH}"),
                            {"last": last}).mappings().all()
        if not rows:
            break
        out = []
        for row in rows:
            values = dict(row)
            values["nik_hash"] = ring.blind(row["nik"])
            values["tanggal_lahir"] = _clear("date", row["tanggal_lahir"])
            for name, kind in seal.items():
                values[name] = kind.process_bind_param(values[name], None)
            out.append(values)
        bind.execute(insert, out)
        last = rows[-1]["nik"]
    op.drop_index("ix_kpm_kode_wilayah", table_name="kpm")
    op.drop_table("kpm")
    op.rename_table("kpm_sealed", "kpm")
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE kpm RENAME CONSTRAINT kpm_sealed_pkey TO kpm_pkey")
    op.create_index("ix_kpm_kode_wilayah", "kpm", ["kode_wilayah"])


def upgrade() -> None:
    bind = op.get_bind()
    _check_key(bind)
    op.drop_index("uq_registrations_active_nik", table_name="registrations")
    op.drop_index("ix_registrations_nik", table_name="registrations")
    for table, (pk, columns) in SEALED.items():
        _seal_columns(bind, table, pk, columns)
    op.create_index("uq_registrations_active_nik", "registrations", ["nik_hash"], unique=True,
                    sqlite_where=sa.text(ACTIVE_ONLY), postgresql_where=sa.text(ACTIVE_ONLY))
    op.create_index("ix_registrations_nik", "registrations", ["nik_hash"])
    _rebuild_kpm(bind)
    op.create_table(
        "data_keys",
        sa.Column("key_id", sa.String(8), nullable=False),
        sa.Column("canary", sa.LargeBinary(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("retired_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("key_id"),
    )
    # Item 5: a NIK tried from several accounts; a registration whose contact differs.
    op.create_table(
        "nik_attempts",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("nik_hash", sa.String(32), nullable=False),
        sa.Column("user_id", sa.Integer(), nullable=False),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["user_id"], ["users.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_nik_attempts_hash_at", "nik_attempts", ["nik_hash", "at"])
    with op.batch_alter_table("registrations") as batch:
        batch.add_column(sa.Column("kontak_berbeda", sa.Boolean(), nullable=False,
                                   server_default=sa.false()))


CLEAR_TYPES = {
    ("registrations", "nik"): sa.String(16), ("registrations", "nama"): sa.String(120),
    ("registrations", "tanggal_lahir"): sa.Date(), ("registrations", "no_hp"): sa.String(16),
    ("registrations", "kabupaten"): sa.String(60), ("registrations", "kecamatan"): sa.String(60),
    ("registrations", "desa"): sa.String(60), ("mentors", "nama"): sa.String(120),
    ("mentors", "no_hp"): sa.String(16),
}


def _clear_type(table: str, name: str, kind: str):
    if kind == "json":
        return sa.JSON().with_variant(JSONB(), "postgresql")
    return CLEAR_TYPES.get((table, name), sa.Text())


def _unseal_columns(bind, table: str, pk: str, columns: dict) -> None:
    with op.batch_alter_table(table) as batch:
        for name, (kind, _) in columns.items():
            batch.add_column(sa.Column(f"{name}__clear", _clear_type(table, name, kind),
                                       nullable=True))
    types = {name: KINDS[kind](f"{table}.{name}") for name, (kind, _) in columns.items()}
    clear = sa.table(table, sa.column(pk), *(
        sa.column(f"{name}__clear", _clear_type(table, name, kind))
        for name, (kind, _) in columns.items()))
    rows = bind.execute(sa.text(f"SELECT {pk}, {', '.join(columns)} FROM {table}")).all()
    for row in rows:
        values = {f"{name}__clear": types[name].process_result_value(row[i], None)
                  for i, name in enumerate(columns, start=1)}
        bind.execute(sa.update(clear).where(clear.c[pk] == row[0]).values(**values))
    with op.batch_alter_table(table) as batch:
        for name in columns:
            batch.drop_column(name)
        if table == "registrations":
            batch.drop_column("nik_hash")
    with op.batch_alter_table(table) as batch:
        for name, (kind, nullable) in columns.items():
            batch.alter_column(f"{name}__clear", new_column_name=name,
                               existing_type=_clear_type(table, name, kind), nullable=nullable)


def downgrade() -> None:
    """Back to clear text (needs the key): for development only."""
    bind = op.get_bind()
    with op.batch_alter_table("registrations") as batch:
        batch.drop_column("kontak_berbeda")
    op.drop_index("ix_nik_attempts_hash_at", table_name="nik_attempts")
    op.drop_table("nik_attempts")
    op.drop_table("data_keys")
    op.drop_index("uq_registrations_active_nik", table_name="registrations")
    op.drop_index("ix_registrations_nik", table_name="registrations")
    for table, (pk, columns) in SEALED.items():
        _unseal_columns(bind, table, pk, columns)
    op.create_index("uq_registrations_active_nik", "registrations", ["nik"], unique=True,
                    sqlite_where=sa.text("status != 'ditolak'"),
                    postgresql_where=sa.text("status != 'ditolak'"))
    op.create_index("ix_registrations_nik", "registrations", ["nik"])
    op.create_table(
        "kpm_clear",
        sa.Column("nik", sa.String(16), nullable=False),
        sa.Column("nama", sa.String(120), nullable=False),
        sa.Column("tanggal_lahir", sa.Date(), nullable=False),
        sa.Column("jenis_kelamin", sa.String(1), nullable=False),
        sa.Column("kode_wilayah", sa.String(10), nullable=False),
        sa.Column("status_pkh", sa.String(10), nullable=False),
        sa.Column("tanggal_graduasi", sa.Date(), nullable=True),
        sa.Column("no_hp", sa.String(16), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("nik", name="kpm_clear_pkey"),
    )
    seal = {"nik": crypto.SealedText("kpm.nik"), "nama": crypto.SealedText("kpm.nama"),
            "tanggal_lahir": crypto.SealedDate("kpm.tanggal_lahir"),
            "no_hp": crypto.SealedText("kpm.no_hp")}
    cols = ["nik", "nama", "tanggal_lahir", "jenis_kelamin", "kode_wilayah", "status_pkh",
            "tanggal_graduasi", "no_hp", "updated_at"]
    clear = sa.table("kpm_clear", *(sa.column(c) for c in cols))
    rows = bind.execute(sa.text(f"SELECT {', '.join(cols)} FROM kpm")).mappings().all()
    for row in rows:
        values = dict(row)
        for name, kind in seal.items():
            values[name] = kind.process_result_value(values[name], None)
        bind.execute(sa.insert(clear).values(**values))
    op.drop_index("ix_kpm_kode_wilayah", table_name="kpm")
    op.drop_table("kpm")
    op.rename_table("kpm_clear", "kpm")
    if bind.dialect.name == "postgresql":
        op.execute("ALTER TABLE kpm RENAME CONSTRAINT kpm_clear_pkey TO kpm_pkey")
    op.create_index("ix_kpm_kode_wilayah", "kpm", ["kode_wilayah"])
