"""Nightly claims-to-ledger reconciliation: runs with control totals, and one item per key and check."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Date, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from carefabric.store.models.base import Base, cents, created_at, fk, one_of, pk

RUN_STATUSES = ("running", "completed", "failed")
RECON_CHECKS = ("charges", "claims", "cash", "bank", "ledger", "integrity", "rollforward", "revenue", "remittance")
RECON_STATUSES = (
    "matched",
    "missing_in_ehr",
    "missing_in_billing",
    "missing_in_remit",
    "missing_in_gl",
    "amount_mismatch",
    "duplicate",
    "timing",
    "missing_in_bank",
    "missing_in_carefabric",
    "changed_in_erp",
    "added_in_erp",
)


class ReconciliationRun(Base):
    """One reconciliation of a business date; key (business_date, check_set, run_number)."""

    __tablename__ = "reconciliation_runs"
    __table_args__ = (
        UniqueConstraint("business_date", "check_set", "run_number"),
        one_of("status", RUN_STATUSES),
    )

    id: Mapped[int] = pk()
    business_date: Mapped[dt.date] = mapped_column(Date, index=True)
    check_set: Mapped[str] = mapped_column(String(255), default="charges,claims,cash")
    run_number: Mapped[int] = mapped_column(Integer, default=1)
    status: Mapped[str] = mapped_column(String(16), default="running")
    started_at: Mapped[dt.datetime] = created_at()
    finished_at: Mapped[dt.datetime | None]
    control_totals: Mapped[dict[str, Any] | None]

    items: Mapped[list[ReconciliationItem]] = relationship(
        back_populates="run", cascade="all, delete-orphan", order_by="ReconciliationItem.id"
    )


class ReconciliationItem(Base):
    """The outcome for one key of one check; key (run_id, check_name, item_key).

    ``check_name`` is one of ``RECON_CHECKS`` (``check`` is an SQL keyword). Amounts
    per side are cents, NULL where that side has nothing; ``gl_cents`` is always the ERP's own
    ledger as read back through its API; ``variance_cents`` is what does not match.
    """

    __tablename__ = "reconciliation_items"
    __table_args__ = (
        UniqueConstraint("run_id", "check_name", "item_key"),
        one_of("check_name", RECON_CHECKS),
        one_of("status", RECON_STATUSES),
    )

    id: Mapped[int] = pk()
    run_id: Mapped[int] = fk("reconciliation_runs.id")
    check_name: Mapped[str] = mapped_column(String(16))
    item_key: Mapped[str] = mapped_column(String(255))
    status: Mapped[str] = mapped_column(String(24), index=True)
    ehr_cents: Mapped[int | None] = cents(nullable=True)
    billing_cents: Mapped[int | None] = cents(nullable=True)
    remit_cents: Mapped[int | None] = cents(nullable=True)
    gl_cents: Mapped[int | None] = cents(nullable=True)
    bank_cents: Mapped[int | None] = cents(nullable=True)
    carefabric_cents: Mapped[int | None] = cents(nullable=True)  # what carefabric posted (ledger checks)
    variance_cents: Mapped[int] = cents(default=0)
    reason: Mapped[str | None] = mapped_column(String(255))  # short explanation, no PHI
    detail: Mapped[dict[str, Any] | None]

    run: Mapped[ReconciliationRun] = relationship(back_populates="items")
