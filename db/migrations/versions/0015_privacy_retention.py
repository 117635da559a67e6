"""The user's own data and retention (issue 16 items 3-4).

- `users.consent_at` / `users.consent_for`: when the account last agreed to the use of its
  data and for which form (recorded from now on; no earlier consent had a timestamp).
- `users.erased_at` / `users.erase_pseudonym`: after /hapus_data, the audit rows of the
  last day keep the account as actor for one more day (so an erasure does not reset the
  NIK lookup limits), then the daily retention gives them the erasure's pseudonym.
- `outbox_messages.text_purged_at`: when retention replaced the text of a delivered
  message (the delivery records stay), so the job never needs to read a sealed text in SQL.
- indexes on `outbox_messages.created_at` and `handoff_messages.created_at` for the daily
  retention run.

The status "ditarik" (withdrawn by the applicant) needs no schema change: `status` is a
free string and the active-NIK index of 0014 already leaves "ditarik" out.

Revision ID: 0015
Revises: 0014
Create Date: 2026-11-28
"""

import sqlalchemy as sa
from alembic import op

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None

TS = sa.DateTime(timezone=True)


def upgrade() -> None:
    with op.batch_alter_table("users") as batch:
        batch.add_column(sa.Column("consent_at", TS, nullable=True))
        batch.add_column(sa.Column("consent_for", sa.String(16), nullable=True))
        batch.add_column(sa.Column("erased_at", TS, nullable=True))
        batch.add_column(sa.Column("erase_pseudonym", sa.String(32), nullable=True))
    with op.batch_alter_table("outbox_messages") as batch:
        batch.add_column(sa.Column("text_purged_at", TS, nullable=True))
    op.create_index("ix_outbox_messages_created", "outbox_messages", ["created_at"])
    op.create_index("ix_handoff_messages_created", "handoff_messages", ["created_at"])


def downgrade() -> None:
    op.drop_index("ix_handoff_messages_created", table_name="handoff_messages")
    op.drop_index("ix_outbox_messages_created", table_name="outbox_messages")
    with op.batch_alter_table("outbox_messages") as batch:
        batch.drop_column("text_purged_at")
    with op.batch_alter_table("users") as batch:
        batch.drop_column("erase_pseudonym")
        batch.drop_column("erased_at")
        batch.drop_column("consent_for")
        batch.drop_column("consent_at")
