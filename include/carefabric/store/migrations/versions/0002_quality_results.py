"""Great Expectations results per dataset, for the nightly report.

Revision ID: 0002
Revises: 0001
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "quality_results",
        sa.Column("id", ID, autoincrement=True, nullable=False),
        sa.Column("interface", sa.String(length=40), nullable=False),
        sa.Column("dataset", sa.String(length=40), nullable=False),
        sa.Column("scope", sa.String(length=128), nullable=False),
        sa.Column("business_date", sa.Date(), nullable=True),
        sa.Column("success", sa.Boolean(), nullable=False),
        sa.Column("evaluated", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("rows", sa.Integer(), nullable=False),
        sa.Column("results", sa.JSON(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_quality_results")),
        sa.UniqueConstraint("interface", "dataset", "scope", name=op.f("uq_quality_results_interface")),
    )
    op.create_index(op.f("ix_quality_results_business_date"), "quality_results", ["business_date"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_quality_results_business_date"), table_name="quality_results")
    op.drop_table("quality_results")
