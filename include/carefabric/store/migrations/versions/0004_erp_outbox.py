"""ERP outbox: claim token and lease per document, explicit outcome states, records per document,
and the build lock.

Revision ID: 0004
Revises: 0003
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0004"
down_revision: str | None = "0003"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

NEW = "status IN ('pending', 'sending', 'unknown', 'posted', 'rejected', 'superseded')"
OLD = "status IN ('pending', 'posted', 'rejected', 'failed')"
ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.execute("UPDATE erp_postings SET status = 'unknown' WHERE status = 'failed'")
    with op.batch_alter_table("erp_postings") as batch:
        batch.drop_constraint(batch.f("ck_erp_postings_status"), type_="check")
        batch.create_check_constraint("status", NEW)
        batch.add_column(sa.Column("claim_token", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("lease_until", sa.DateTime(timezone=True), nullable=True))
    op.create_table(
        "posting_records",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("posting_id", sa.BigInteger(), nullable=False),
        sa.Column("record_type", sa.String(length=32), nullable=False),
        sa.Column("record_key", sa.String(length=255), nullable=False),
        sa.ForeignKeyConstraint(
            ["posting_id"], ["erp_postings.id"], name=op.f("fk_posting_records_posting_id_erp_postings"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_posting_records")),
        sa.UniqueConstraint("posting_id", "record_type", "record_key", name=op.f("uq_posting_records_posting_id")),
    )
    op.create_index(op.f("ix_posting_records_posting_id"), "posting_records", ["posting_id"], unique=False)
    op.create_index("ix_posting_records_record", "posting_records", ["record_type", "record_key"], unique=False)
    op.create_table(
        "outbox_locks",
        sa.Column("scope", sa.String(length=64), nullable=False),
        sa.Column("locked_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("scope", name=op.f("pk_outbox_locks")),
    )


def downgrade() -> None:
    op.drop_table("outbox_locks")
    op.drop_index("ix_posting_records_record", table_name="posting_records")
    op.drop_index(op.f("ix_posting_records_posting_id"), table_name="posting_records")
    op.drop_table("posting_records")
    op.execute("UPDATE erp_postings SET status = 'pending' WHERE status IN ('sending', 'unknown')")
    op.execute("UPDATE erp_postings SET status = 'rejected' WHERE status = 'superseded'")
    with op.batch_alter_table("erp_postings") as batch:
        batch.drop_column("lease_until")
        batch.drop_column("claim_token")
        batch.drop_constraint(batch.f("ck_erp_postings_status"), type_="check")
        batch.create_check_constraint("status", OLD)
