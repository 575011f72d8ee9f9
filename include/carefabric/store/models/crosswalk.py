"""Governed crosswalks: operator-maintained mappings, versioned, every change kept in history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import BigInteger, Integer, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carefabric.store.models.base import Base, created_at, one_of, pk

CROSSWALK_NAMES = ("departments", "cdm", "payers", "facilities")


class Governed:
    """Columns every governed crosswalk row carries: its version and who made it when."""

    version: Mapped[int] = mapped_column(Integer, default=1)
    valid_from: Mapped[dt.datetime] = created_at()
    changed_by: Mapped[str] = mapped_column(String(64))


class CwDepartment(Governed, Base):
    """(facility, department) -> cost center."""

    __tablename__ = "cw_departments"
    __table_args__ = (UniqueConstraint("facility", "department"),)

    id: Mapped[int] = pk()
    facility: Mapped[str] = mapped_column(String(64))
    department: Mapped[str] = mapped_column(String(32))
    cost_center: Mapped[str] = mapped_column(String(64))


class CwCdm(Governed, Base):
    """Chargemaster code -> revenue account, ERP item (supplies), procedure code."""

    __tablename__ = "cw_cdm"

    id: Mapped[int] = pk()
    cdm_code: Mapped[str] = mapped_column(String(32), unique=True)
    revenue_account: Mapped[str] = mapped_column(String(32))
    erp_item: Mapped[str | None] = mapped_column(String(64))
    procedure_code: Mapped[str | None] = mapped_column(String(32))
    description: Mapped[str | None] = mapped_column(String(255))
    # Chargemaster price per unit, in cents: prices a line that arrives without an amount
    # (DFT without FT1-11/12, FHIR ChargeItem without priceOverride).
    price_cents: Mapped[int | None] = mapped_column(BigInteger)


class CwPayer(Governed, Base):
    """X12 payer id (N1*PR / REF*2U / TRN03) -> ERP payer id."""

    __tablename__ = "cw_payers"

    id: Mapped[int] = pk()
    x12_payer_id: Mapped[str] = mapped_column(String(64), unique=True)
    erp_payer_id: Mapped[str] = mapped_column(String(64))


class CwFacility(Governed, Base):
    """Facility -> NPI, tax id, inventory location, company (the payee of an 835 is named by one of them)."""

    __tablename__ = "cw_facilities"

    id: Mapped[int] = pk()
    facility: Mapped[str] = mapped_column(String(64), unique=True)
    npi: Mapped[str | None] = mapped_column(String(16), index=True)
    tax_id: Mapped[str | None] = mapped_column(String(16), index=True)
    location: Mapped[str | None] = mapped_column(String(64))
    company: Mapped[str] = mapped_column(String(16))


class CrosswalkHistory(Base):
    """Every version of every crosswalk row; key (crosswalk, key, version)."""

    __tablename__ = "crosswalk_history"
    __table_args__ = (
        UniqueConstraint("crosswalk", "key", "version"),
        one_of("crosswalk", CROSSWALK_NAMES),
    )

    id: Mapped[int] = pk()
    crosswalk: Mapped[str] = mapped_column(String(16))
    key: Mapped[str] = mapped_column(String(128))  # natural key, '|'-joined
    version: Mapped[int] = mapped_column(Integer)
    action: Mapped[str] = mapped_column(String(16))  # create, update
    before: Mapped[dict[str, Any] | None]
    after: Mapped[dict[str, Any]]
    changed_at: Mapped[dt.datetime] = created_at()
    changed_by: Mapped[str] = mapped_column(String(64))
