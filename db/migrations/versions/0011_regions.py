"""Official regions (issue 15): provinces, kabupaten/kota, kecamatan and desa/kelurahan with
their Kemendagri codes, from idn-area-data. The table only: `prokus regions load` (run by
`make db`) fills it from db/regions_data/, so test databases stay small.

Revision ID: 0011
Revises: 0010
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "regions",
        sa.Column("code", sa.String(13), primary_key=True),
        sa.Column("parent_code", sa.String(13), nullable=True),
        sa.Column("level", sa.String(10), nullable=False),
        sa.Column("kind", sa.String(10), nullable=True),
        sa.Column("name", sa.String(100), nullable=False),
        sa.Column("name_norm", sa.String(100), nullable=False),
        sa.Column("digits", sa.String(10), nullable=False),
        sa.CheckConstraint("level IN ('province', 'kabupaten', 'kecamatan', 'desa')",
                           name="ck_regions_level"),
    )
    op.create_index("ix_regions_parent", "regions", ["parent_code"])
    op.create_index("ix_regions_level", "regions", ["level"])
    op.create_index("ix_regions_name_norm", "regions", ["name_norm"])
    op.create_index("uq_regions_digits", "regions", ["digits"], unique=True)


def downgrade() -> None:
    op.drop_index("uq_regions_digits", "regions")
    op.drop_index("ix_regions_name_norm", "regions")
    op.drop_index("ix_regions_level", "regions")
    op.drop_index("ix_regions_parent", "regions")
    op.drop_table("regions")
