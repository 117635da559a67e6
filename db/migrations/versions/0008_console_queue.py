"""The console's verification queue, dashboard and registry uploads: a region code on each
registration (the NIK's first six digits until addresses are coded, issue 15), indexes for
the queue's filters and the dashboard's figures, and background KPM import jobs.

Revision ID: 0008
Revises: 0007
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("registrations") as batch:
        batch.add_column(sa.Column("kode_wilayah", sa.String(10), nullable=True))
    op.execute("UPDATE registrations SET kode_wilayah = substr(nik, 1, 6)")
    op.create_index("ix_registrations_wilayah", "registrations", ["kode_wilayah"])
    op.create_index("ix_registrations_created_at", "registrations", ["created_at"])
    op.create_index("ix_registrations_status_created", "registrations",
                    ["status", "created_at"])
    op.create_index("ix_registrations_bidang", "registrations", ["bidang_usaha"])
    op.create_index("ix_audit_action_at", "audit_log", ["action", "at"])
    op.create_index("ix_audit_at_id", "audit_log", ["at", "id"])
    op.create_index("ix_audit_subject", "audit_log", ["subject"])
    op.create_index("ix_outbox_messages_kind_id", "outbox_messages", ["kind", "id"])
    op.create_table(
        "kpm_import_jobs",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("operator", sa.String(64), nullable=False),
        sa.Column("filename", sa.String(255), nullable=False),
        sa.Column("path", sa.String(500), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("total_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("done_bytes", sa.BigInteger(), nullable=False, server_default="0"),
        sa.Column("rows_imported", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("rows_rejected", sa.Integer(), nullable=False, server_default="0"),
        sa.Column("rejects_path", sa.String(500), nullable=True),
        sa.Column("error", sa.String(500), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("started_at", TS, nullable=True),
        sa.Column("finished_at", TS, nullable=True),
        sa.CheckConstraint("status IN ('queued', 'running', 'done', 'failed')",
                           name="ck_kpm_import_jobs_status"),
    )


def downgrade() -> None:
    op.drop_table("kpm_import_jobs")
    op.drop_index("ix_outbox_messages_kind_id", "outbox_messages")
    op.drop_index("ix_audit_subject", "audit_log")
    op.drop_index("ix_audit_at_id", "audit_log")
    op.drop_index("ix_audit_action_at", "audit_log")
    op.drop_index("ix_registrations_bidang", "registrations")
    op.drop_index("ix_registrations_status_created", "registrations")
    op.drop_index("ix_registrations_created_at", "registrations")
    op.drop_index("ix_registrations_wilayah", "registrations")
    with op.batch_alter_table("registrations") as batch:
        batch.drop_column("kode_wilayah")
