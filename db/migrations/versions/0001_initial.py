"""Initial schema: users, conversations, kpm.

Revision ID: 0001
Revises:
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "users",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("channel", sa.String(16), nullable=False),
        sa.Column("external_id", sa.String(64), nullable=False),
        sa.Column("role", sa.String(16), nullable=False, server_default="kpm"),
        sa.Column("is_active", sa.Boolean(), nullable=False, server_default=sa.true()),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("last_seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("channel", "external_id", name="uq_users_channel_external"),
    )
    op.create_table(
        "conversations",
        sa.Column(
            "user_id",
            sa.Integer(),
            sa.ForeignKey("users.id", ondelete="CASCADE"),
            primary_key=True,
        ),
        sa.Column(
            "state",
            sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
            nullable=False,
        ),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "kpm",
        sa.Column("nik", sa.String(16), primary_key=True),
        sa.Column("nama", sa.String(120), nullable=False),
        sa.Column("tanggal_lahir", sa.Date(), nullable=False),
        sa.Column("jenis_kelamin", sa.String(1), nullable=False),
        sa.Column("kode_wilayah", sa.String(10), nullable=False),
        sa.Column("status_pkh", sa.String(10), nullable=False),
        sa.Column("tanggal_graduasi", sa.Date(), nullable=True),
        sa.Column("no_hp", sa.String(16), nullable=True),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_kpm_kode_wilayah", "kpm", ["kode_wilayah"])


def downgrade() -> None:
    op.drop_index("ix_kpm_kode_wilayah", table_name="kpm")
    op.drop_table("kpm")
    op.drop_table("conversations")
    op.drop_table("users")
