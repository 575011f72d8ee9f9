"""Facility tax id: some payers name the 835 payee by tax id (N1*PE*..*FI) instead of NPI.

Revision ID: 0003
Revises: 0002
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("cw_facilities") as batch:
        batch.add_column(sa.Column("tax_id", sa.String(length=16), nullable=True))
        batch.create_index(batch.f("ix_cw_facilities_tax_id"), ["tax_id"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("cw_facilities") as batch:
        batch.drop_index(batch.f("ix_cw_facilities_tax_id"))
        batch.drop_column("tax_id")
