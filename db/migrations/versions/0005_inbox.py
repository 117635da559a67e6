"""Inbox of incoming updates: stored (unique by update_id) before they are confirmed to
Telegram, marked processed in the transaction of their turn.

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    op.create_table(
        "inbox",
        sa.Column("update_id", sa.BigInteger(), primary_key=True, autoincrement=False),
        sa.Column("user_key", sa.String(64), nullable=True),
        sa.Column("payload", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"),
                  nullable=True),
        sa.Column("received_at", TS, nullable=False),
        sa.Column("processed_at", TS, nullable=True),
    )
    op.create_index("ix_inbox_pending", "inbox", ["processed_at", "update_id"])
    op.create_index("ix_inbox_user_pending", "inbox", ["user_key", "processed_at", "update_id"])


def downgrade() -> None:
    op.drop_index("ix_inbox_user_pending", table_name="inbox")
    op.drop_index("ix_inbox_pending", table_name="inbox")
    op.drop_table("inbox")
