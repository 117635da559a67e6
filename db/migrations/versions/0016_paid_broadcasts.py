"""Paid broadcasts and batched outbox claims (issue 18).

Revision ID: 0016
Revises: 0015
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox_messages") as batch:
        batch.add_column(sa.Column("paid", sa.Boolean(), nullable=False,
                                   server_default="0"))
        batch.add_column(sa.Column("paid_rate", sa.Float(), nullable=True))
    with op.batch_alter_table("outbox_pacer") as batch:
        batch.add_column(sa.Column("scale", sa.Float(), nullable=False, server_default="1"))
        batch.add_column(sa.Column("scaled_at", sa.Float(), nullable=False,
                                   server_default="0"))


def downgrade() -> None:
    with op.batch_alter_table("outbox_pacer") as batch:
        batch.drop_column("scaled_at")
        batch.drop_column("scale")
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_column("paid_rate")
        batch.drop_column("paid")
