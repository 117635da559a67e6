"""Mentors, assignments, mentoring sessions; outbox claiming, expiry, workers and pacing.

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("expires_at", TS, nullable=True))
        batch.add_column(sa.Column("claimed_by", sa.String(40), nullable=True))
        batch.add_column(sa.Column("claimed_at", TS, nullable=True))
        batch.add_column(sa.Column("attempted_at", TS, nullable=True))
    op.create_index("ix_outbox_user_attempted", "outbox", ["user_id", "attempted_at"])
    op.create_index("ix_outbox_message_state", "outbox", ["message_id", "state"])
    with op.batch_alter_table("outbox_messages") as batch:
        batch.add_column(sa.Column("report_to", sa.Integer(),
                                   sa.ForeignKey("users.id", ondelete="SET NULL",
                                                 name="fk_outbox_messages_report_to"),
                                   nullable=True))
        batch.add_column(sa.Column("reported_at", TS, nullable=True))
    op.create_table(
        "outbox_workers",
        sa.Column("id", sa.String(40), primary_key=True),
        sa.Column("started_at", TS, nullable=False),
        sa.Column("beat_at", TS, nullable=False),
    )
    op.create_table(
        "outbox_pacer",
        sa.Column("name", sa.String(16), primary_key=True),
        sa.Column("next_at", sa.Float(), nullable=False),
    )
    op.create_table(
        "mentors",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False, unique=True),
        sa.Column("nama", sa.String(120), nullable=False),
        sa.Column("no_hp", sa.String(16), nullable=False),
        sa.Column("kode_wilayah", sa.String(10), nullable=False),
        sa.Column("created_at", TS, nullable=False),
    )
    op.create_table(
        "mentor_assignments",
        sa.Column("registration_id", sa.Integer(),
                  sa.ForeignKey("registrations.id", ondelete="CASCADE"), primary_key=True),
        sa.Column("mentor_id", sa.Integer(), sa.ForeignKey("mentors.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("assigned_at", TS, nullable=False),
    )
    op.create_index("ix_mentor_assignments_mentor_id", "mentor_assignments", ["mentor_id"])
    op.create_table(
        "mentoring_sessions",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("mentor_id", sa.Integer(), sa.ForeignKey("mentors.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("starts_at", TS, nullable=False),
        sa.Column("tempat", sa.String(120), nullable=False),
        sa.Column("topik", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("updated_at", TS, nullable=False),
    )
    op.create_index("ix_sessions_mentor_start", "mentoring_sessions", ["mentor_id", "starts_at"])


def downgrade() -> None:
    op.drop_index("ix_sessions_mentor_start", table_name="mentoring_sessions")
    op.drop_table("mentoring_sessions")
    op.drop_index("ix_mentor_assignments_mentor_id", table_name="mentor_assignments")
    op.drop_table("mentor_assignments")
    op.drop_table("mentors")
    op.drop_table("outbox_pacer")
    op.drop_table("outbox_workers")
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_column("reported_at")
        batch.drop_column("report_to")
    op.drop_index("ix_outbox_message_state", table_name="outbox")
    op.drop_index("ix_outbox_user_attempted", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("attempted_at")
        batch.drop_column("claimed_at")
        batch.drop_column("claimed_by")
        batch.drop_column("expires_at")
