"""Reconciliation: the revenue (EHR = GL per account x cost center x facility) and remittance
(835 codes = GL per facility x account) checks; a run's check_set grows to 255 characters
(nine check names no longer fit in 64).

Revision ID: 0008
Revises: 0007
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_CHECKS = ("charges", "claims", "cash", "bank", "ledger", "integrity", "rollforward")
NEW_CHECKS = (*OLD_CHECKS, "revenue", "remittance")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _swap(checks: tuple[str, ...]) -> None:
    with op.batch_alter_table("reconciliation_items") as batch:
        batch.drop_constraint(batch.f("ck_reconciliation_items_check_name"), type_="check")
        batch.create_check_constraint("check_name", _in("check_name", checks))


def upgrade() -> None:
    _swap(NEW_CHECKS)
    with op.batch_alter_table("reconciliation_runs") as batch:
        batch.alter_column("check_set", type_=sa.String(255), existing_type=sa.String(64))


def downgrade() -> None:
    op.execute(f"DELETE FROM reconciliation_items WHERE NOT ({_in('check_name', OLD_CHECKS)})")
    _swap(OLD_CHECKS)
    op.execute("UPDATE reconciliation_runs SET check_set = substr(check_set, 1, 64)")
    with op.batch_alter_table("reconciliation_runs") as batch:
        batch.alter_column("check_set", type_=sa.String(64), existing_type=sa.String(255))
