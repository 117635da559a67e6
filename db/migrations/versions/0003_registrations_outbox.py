"""Registrations, their per-year number counter, and the durable outbox.

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None

NOW = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "registrations",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("number", sa.String(16), nullable=False, unique=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="SET NULL"),
                  nullable=True),
        sa.Column("nik", sa.String(16), nullable=False),
        sa.Column("nama", sa.String(120), nullable=False),
        sa.Column("tanggal_lahir", sa.Date(), nullable=False),
        sa.Column("no_hp", sa.String(16), nullable=False),
        sa.Column("kabupaten", sa.String(60), nullable=False),
        sa.Column("kecamatan", sa.String(60), nullable=False),
        sa.Column("desa", sa.String(60), nullable=False),
        sa.Column("bidang_usaha", sa.String(32), nullable=False),
        sa.Column("deskripsi_usaha", sa.String(300), nullable=False),
        sa.Column("lama_usaha_bulan", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("alasan", sa.String(300), nullable=True),
        sa.Column("created_at", NOW, nullable=False),
        sa.Column("updated_at", NOW, nullable=False),
    )
    op.create_index("uq_registrations_active_nik", "registrations", ["nik"], unique=True,
                    sqlite_where=sa.text("status != 'ditolak'"),
                    postgresql_where=sa.text("status != 'ditolak'"))
    op.create_index("ix_registrations_user", "registrations", ["user_id"])
    op.create_index("ix_registrations_status", "registrations", ["status"])
    op.create_table(
        "registration_counters",
        sa.Column("year", sa.Integer(), primary_key=True, autoincrement=False),
        sa.Column("last", sa.Integer(), nullable=False),
    )
    op.create_table(
        "outbox_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("kind", sa.String(16), nullable=False),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("reference", sa.String(64), nullable=True),
        sa.Column("created_by", sa.String(64), nullable=False),
        sa.Column("created_at", NOW, nullable=False),
    )
    op.create_table(
        "outbox",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("message_id", sa.Integer(),
                  sa.ForeignKey("outbox_messages.id", ondelete="CASCADE"), nullable=False),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("state", sa.String(16), nullable=False),
        sa.Column("due_at", NOW, nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.Column("error", sa.String(200), nullable=True),
        sa.Column("sent_at", NOW, nullable=True),
        sa.UniqueConstraint("message_id", "user_id", name="uq_outbox_message_user"),
    )
    op.create_index("ix_outbox_state_due", "outbox", ["state", "due_at"])


def downgrade() -> None:
    op.drop_index("ix_outbox_state_due", table_name="outbox")
    op.drop_table("outbox")
    op.drop_table("outbox_messages")
    op.drop_table("registration_counters")
    op.drop_index("ix_registrations_status", table_name="registrations")
    op.drop_index("ix_registrations_user", table_name="registrations")
    op.drop_index("uq_registrations_active_nik", table_name="registrations")
    op.drop_table("registrations")
