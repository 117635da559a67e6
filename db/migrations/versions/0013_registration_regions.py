"""Registrations keep the official region codes and names of their address (issue 15 item 3).

Adds the dotted codes `kode_kabupaten`, `kode_kecamatan`, `kode_desa` and `wilayah_status`
("cocok" | "tidak_ada" | NULL) with an index on the latter. The schema only: existing rows
stay NULL (unmatched) until `prokus regions match-registrations` matches their text against
the loaded regions table (a migration cannot assume the table is loaded).

Revision ID: 0013
Revises: 0012
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None

COLUMNS = (("kode_kabupaten", 13), ("kode_kecamatan", 13), ("kode_desa", 13),
           ("wilayah_status", 16))


def upgrade() -> None:
    # Plain ADD COLUMN on both back-ends (no table copy on SQLite).
    for name, size in COLUMNS:
        op.add_column("registrations", sa.Column(name, sa.String(size), nullable=True))
    op.create_index("ix_registrations_region_match", "registrations", ["wilayah_status"])


def downgrade() -> None:
    op.drop_index("ix_registrations_region_match", "registrations")
    # DROP COLUMN directly (SQLite >= 3.35 has it): a batch copy of the table would have
    # to rebuild its partial unique index by reflection.
    for name, _size in reversed(COLUMNS):
        op.execute(f"ALTER TABLE registrations DROP COLUMN {name}")
