"""Replicated from the billing platform's API: claims, payments, patient balances, accepted charges.

``source_updated_at`` is the API's ``updated_at`` (the incremental-sync watermark compares it);
``synced_at`` is when we last wrote the row.
"""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, String
from sqlalchemy.orm import Mapped, mapped_column

from carefabric.store.models.base import Base, cents, pk, updated_at


class BillingClaim(Base):
    """A billing claim; key ``claim_id`` (= the 835's CLP01 patient control number)."""

    __tablename__ = "billing_claims"

    id: Mapped[int] = pk()
    claim_id: Mapped[str] = mapped_column(String(64), unique=True)
    encounter_id: Mapped[str | None] = mapped_column(String(64), index=True)
    facility: Mapped[str | None] = mapped_column(String(64))
    payer_id: Mapped[str | None] = mapped_column(String(64))
    total_charge_cents: Mapped[int] = cents(default=0)
    status: Mapped[str | None] = mapped_column(String(32))
    status_date: Mapped[dt.date | None] = mapped_column(Date)
    submitted_date: Mapped[dt.date | None] = mapped_column(Date)
    source_updated_at: Mapped[dt.datetime | None]
    synced_at: Mapped[dt.datetime] = updated_at()


class BillingPayment(Base):
    """A payment billing applied to a claim; key ``payment_id``."""

    __tablename__ = "billing_payments"

    id: Mapped[int] = pk()
    payment_id: Mapped[str] = mapped_column(String(64), unique=True)
    claim_id: Mapped[str] = mapped_column(String(64), index=True)
    payer_id: Mapped[str | None] = mapped_column(String(64))
    amount_cents: Mapped[int] = cents()
    paid_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    trace_number: Mapped[str | None] = mapped_column(String(64), index=True)
    source_updated_at: Mapped[dt.datetime | None]
    synced_at: Mapped[dt.datetime] = updated_at()


class PatientBalance(Base):
    """A patient account balance (tokens only, no names); key ``account_token``."""

    __tablename__ = "patient_balances"

    id: Mapped[int] = pk()
    account_token: Mapped[str] = mapped_column(String(64), unique=True)
    encounter_id: Mapped[str | None] = mapped_column(String(64), index=True)
    balance_cents: Mapped[int] = cents(default=0)
    source_updated_at: Mapped[dt.datetime | None]
    synced_at: Mapped[dt.datetime] = updated_at()


class BillingCharge(Base):
    """A charge billing accepted (``GET /charges``), for the charges reconciliation; key ``charge_id``."""

    __tablename__ = "billing_charges"

    id: Mapped[int] = pk()
    charge_id: Mapped[str] = mapped_column(String(64), unique=True)
    line_key: Mapped[str | None] = mapped_column(String(255), index=True)
    encounter_id: Mapped[str | None] = mapped_column(String(64))
    facility: Mapped[str | None] = mapped_column(String(64))
    service_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    cdm_code: Mapped[str | None] = mapped_column(String(32))
    cost_center: Mapped[str | None] = mapped_column(String(64))
    revenue_account: Mapped[str | None] = mapped_column(String(32))
    amount_cents: Mapped[int] = cents()
    status: Mapped[str | None] = mapped_column(String(32))
    synced_at: Mapped[dt.datetime] = updated_at()
