"""Two indexes for the console's verification queue (issue 13, `make bench-web`): a region's
queue and its counts per status without heap visits, and the exact NIK search (the unique
index on nik is partial, it leaves out rejected registrations, so a search by NIK would
otherwise scan the table).

Revision ID: 0009
Revises: 0008
Create Date: 2026-11-29
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index("ix_registrations_wilayah_status", "registrations",
                    ["kode_wilayah", "status", "created_at"])
    op.create_index("ix_registrations_nik", "registrations", ["nik"])


def downgrade() -> None:
    op.drop_index("ix_registrations_nik", "registrations")
    op.drop_index("ix_registrations_wilayah_status", "registrations")
