"""Talking to a person (issue 14): handoff tickets and their messages, and the messages the
bot did not understand, kept (masked) for operators to label.

Revision ID: 0010
Revises: 0009
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)
JSON_TYPE = sa.JSON().with_variant(postgresql.JSONB(), "postgresql")


def upgrade() -> None:
    op.create_table(
        "handoff_tickets",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("user_id", sa.Integer(), sa.ForeignKey("users.id", ondelete="CASCADE"),
                  nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("kode_wilayah", sa.String(10), nullable=True),
        sa.Column("topic", sa.String(32), nullable=True),
        sa.Column("assigned_to", sa.String(32), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.Column("assigned_at", TS, nullable=True),
        sa.Column("first_response_at", TS, nullable=True),
        sa.Column("last_user_at", TS, nullable=True),
        sa.Column("last_operator_at", TS, nullable=True),
        sa.Column("closed_at", TS, nullable=True),
        sa.Column("closed_by", sa.String(64), nullable=True),
        sa.Column("outcome", sa.String(32), nullable=True),
        sa.CheckConstraint("status IN ('confirming', 'waiting', 'assigned', 'closed')",
                           name="ck_handoff_tickets_status"),
    )
    op.create_index("ix_handoff_tickets_status_created", "handoff_tickets",
                    ["status", "created_at"])
    op.create_index("ix_handoff_tickets_user", "handoff_tickets", ["user_id", "status"])
    # At most one ticket that is not closed per user.
    op.create_index("uq_handoff_tickets_open_user", "handoff_tickets", ["user_id"],
                    unique=True, sqlite_where=sa.text("status != 'closed'"),
                    postgresql_where=sa.text("status != 'closed'"))
    op.create_table(
        "handoff_messages",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("ticket_id", sa.Integer(),
                  sa.ForeignKey("handoff_tickets.id", ondelete="CASCADE"), nullable=False),
        sa.Column("sender", sa.String(16), nullable=False),
        sa.Column("author", sa.String(64), nullable=True),
        sa.Column("kind", sa.String(16), nullable=False, server_default="text"),
        sa.Column("text", sa.Text(), nullable=False),
        sa.Column("outbox_message_id", sa.Integer(),
                  sa.ForeignKey("outbox_messages.id", ondelete="SET NULL"), nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("sender IN ('user', 'operator', 'system')",
                           name="ck_handoff_messages_sender"),
    )
    op.create_index("ix_handoff_messages_ticket", "handoff_messages", ["ticket_id", "id"])
    op.create_table(
        "nlu_misses",
        sa.Column("id", sa.Integer(), primary_key=True),
        sa.Column("text", sa.String(4096), nullable=False),
        sa.Column("intent", sa.String(64), nullable=True),
        sa.Column("confidence", sa.Float(), nullable=True),
        sa.Column("ranking", JSON_TYPE, nullable=True),
        sa.Column("reason", sa.String(16), nullable=False),
        sa.Column("status", sa.String(16), nullable=False, server_default="new"),
        sa.Column("label", sa.String(64), nullable=True),
        sa.Column("reviewed_by", sa.String(64), nullable=True),
        sa.Column("reviewed_at", TS, nullable=True),
        sa.Column("created_at", TS, nullable=False),
        sa.CheckConstraint("status IN ('new', 'labelled', 'discarded')",
                           name="ck_nlu_misses_status"),
    )
    op.create_index("ix_nlu_misses_status_created", "nlu_misses", ["status", "created_at"])


def downgrade() -> None:
    op.drop_index("ix_nlu_misses_status_created", "nlu_misses")
    op.drop_table("nlu_misses")
    op.drop_index("ix_handoff_messages_ticket", "handoff_messages")
    op.drop_table("handoff_messages")
    op.drop_index("uq_handoff_tickets_open_user", "handoff_tickets")
    op.drop_index("ix_handoff_tickets_user", "handoff_tickets")
    op.drop_index("ix_handoff_tickets_status_created", "handoff_tickets")
    op.drop_table("handoff_tickets")
