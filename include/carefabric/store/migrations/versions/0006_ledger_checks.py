"""Ledger-true reconciliation: bank, ledger, integrity and AR roll-forward checks, bank and carefabric sides, new statuses.

Revision ID: 0006
Revises: 0005
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

OLD_CHECKS = ("charges", "claims", "cash")
NEW_CHECKS = (*OLD_CHECKS, "bank", "ledger", "integrity", "rollforward")
OLD_STATUSES = ("matched", "missing_in_ehr", "missing_in_billing", "missing_in_remit", "missing_in_gl",
                "amount_mismatch", "duplicate", "timing")
NEW_STATUSES = (*OLD_STATUSES, "missing_in_bank", "missing_in_carefabric", "changed_in_erp", "added_in_erp")


def _in(column: str, values: tuple[str, ...]) -> str:
    return f"{column} IN ({', '.join(repr(v) for v in values)})"


def _swap(checks: tuple[str, ...], statuses: tuple[str, ...]) -> None:
    with op.batch_alter_table("reconciliation_items") as batch:
        batch.drop_constraint(batch.f("ck_reconciliation_items_check_name"), type_="check")
        batch.drop_constraint(batch.f("ck_reconciliation_items_status"), type_="check")
        batch.create_check_constraint("check_name", _in("check_name", checks))
        batch.create_check_constraint("status", _in("status", statuses))


def upgrade() -> None:
    with op.batch_alter_table("reconciliation_items") as batch:
        batch.add_column(sa.Column("bank_cents", sa.BigInteger(), nullable=True))
        batch.add_column(sa.Column("carefabric_cents", sa.BigInteger(), nullable=True))
    _swap(NEW_CHECKS, NEW_STATUSES)


def downgrade() -> None:
    op.execute(f"DELETE FROM reconciliation_items WHERE NOT ({_in('check_name', OLD_CHECKS)}) "
               f"OR NOT ({_in('status', OLD_STATUSES)})")
    _swap(OLD_CHECKS, OLD_STATUSES)
    with op.batch_alter_table("reconciliation_items") as batch:
        batch.drop_column("carefabric_cents")
        batch.drop_column("bank_cents")
