"""Replies go through the outbox: a message may carry buttons (markup), and rows have a
priority (0 replies, 1 notices and reminders, 2 broadcasts) that orders the shared budget.

Revision ID: 0006
Revises: 0005
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages") as batch:
        batch.add_column(sa.Column(
            "markup", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=True))
    with op.batch_alter_table("outbox") as batch:
        batch.add_column(sa.Column("priority", sa.SmallInteger(), nullable=False,
                                   server_default="1"))
    op.create_index("ix_outbox_claim", "outbox", ["state", "priority", "due_at", "id"])


def downgrade() -> None:
    op.drop_index("ix_outbox_claim", table_name="outbox")
    with op.batch_alter_table("outbox") as batch:
        batch.drop_column("priority")
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_column("markup")
