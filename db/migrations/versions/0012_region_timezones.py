"""Time zones from the regions table (issue 15 item 5): `regions.zone` (WIB, WITA or WIT)
on provinces, filled here for a table already loaded and by `prokus regions load` from
domain.regions.zone_name, which stays the single source of the mapping.

Revision ID: 0012
Revises: 0011
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

from domain.regions import zone_name

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("regions") as batch:
        batch.add_column(sa.Column("zone", sa.String(4), nullable=True))
    regions = sa.table("regions", sa.column("code", sa.String), sa.column("level", sa.String),
                       sa.column("zone", sa.String))
    bind = op.get_bind()
    codes = bind.execute(sa.select(regions.c.code).where(regions.c.level == "province")).scalars()
    for code in list(codes):
        bind.execute(sa.update(regions).where(regions.c.code == code)
                     .values(zone=zone_name(code)))


def downgrade() -> None:
    with op.batch_alter_table("regions") as batch:
        batch.drop_column("zone")
