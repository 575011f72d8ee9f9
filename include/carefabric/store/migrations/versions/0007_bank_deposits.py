"""The bank side of the cash check: ``bank_deposits`` (BAI2 credits) and ``bank`` as a file source.

A re-delivered statement stores nothing twice: deposits are keyed by account, statement date and
a digest of the credit with its occurrence (``deposit_key``).

Revision ID: 0007
Revises: 0006
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

from carefabric.store.types import BigIntPK, UTCDateTime

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_SOURCES = ("ehr", "payer", "billing")
NEW_SOURCES = (*OLD_SOURCES, "bank")


def _sources(values: tuple[str, ...]) -> None:
    with op.batch_alter_table("inbound_files") as batch:
        batch.drop_constraint(batch.f("ck_inbound_files_source"), type_="check")
        batch.create_check_constraint("source", f"source IN ({', '.join(repr(v) for v in values)})")


def upgrade() -> None:
    _sources(NEW_SOURCES)
    op.create_table(
        "bank_deposits",
        sa.Column("id", BigIntPK, autoincrement=True, nullable=False),
        sa.Column("file_id", sa.BigInteger(), nullable=True),
        sa.Column("statement_date", sa.Date(), nullable=False),
        sa.Column("bank_account", sa.String(length=34), nullable=False),
        sa.Column("deposit_key", sa.String(length=64), nullable=False),
        sa.Column("currency", sa.String(length=3), nullable=False),
        sa.Column("type_code", sa.String(length=3), nullable=False),
        sa.Column("amount_cents", sa.BigInteger(), nullable=False),
        sa.Column("funds_type", sa.String(length=1), nullable=True),
        sa.Column("bank_reference", sa.String(length=64), nullable=True),
        sa.Column("customer_reference", sa.String(length=64), nullable=True),
        sa.Column("trace_number", sa.String(length=64), nullable=True),
        sa.Column("trace_originator", sa.String(length=32), nullable=True),
        sa.Column("trace_source", sa.String(length=24), nullable=True),
        sa.Column("text", sa.Text(), nullable=True),
        sa.Column("business_date", sa.Date(), nullable=True),
        sa.Column("created_at", UTCDateTime(), nullable=False),
        sa.ForeignKeyConstraint(
            ["file_id"], ["inbound_files.id"], name=op.f("fk_bank_deposits_file_id_inbound_files"), ondelete="SET NULL"
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_bank_deposits")),
        sa.UniqueConstraint("bank_account", "statement_date", "deposit_key", name=op.f("uq_bank_deposits_bank_account")),
    )
    for column in ("file_id", "statement_date", "trace_number", "business_date"):
        op.create_index(op.f(f"ix_bank_deposits_{column}"), "bank_deposits", [column], unique=False)


def downgrade() -> None:
    for column in ("business_date", "trace_number", "statement_date", "file_id"):
        op.drop_index(op.f(f"ix_bank_deposits_{column}"), table_name="bank_deposits")
    op.drop_table("bank_deposits")
    op.execute("DELETE FROM inbound_files WHERE source = 'bank'")
    _sources(OLD_SOURCES)
