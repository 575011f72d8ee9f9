"""ERP master data replicated on a schedule (the ERP is the system of record); keyed by ERP ids."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Boolean, String
from sqlalchemy.orm import Mapped, mapped_column

from carefabric.store.models.base import Base, cents, pk, updated_at


class ErpCompany(Base):
    __tablename__ = "erp_companies"

    id: Mapped[int] = pk()
    company_id: Mapped[str] = mapped_column(String(16), unique=True)
    name: Mapped[str | None] = mapped_column(String(128))
    currency: Mapped[str | None] = mapped_column(String(3))
    synced_at: Mapped[dt.datetime] = updated_at()


class ErpCostCenter(Base):
    __tablename__ = "erp_cost_centers"

    id: Mapped[int] = pk()
    cost_center: Mapped[str] = mapped_column(String(64), unique=True)
    company_id: Mapped[str | None] = mapped_column(String(16))
    facility: Mapped[str | None] = mapped_column(String(64))
    department: Mapped[str | None] = mapped_column(String(32))
    name: Mapped[str | None] = mapped_column(String(128))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    synced_at: Mapped[dt.datetime] = updated_at()


class ErpGlAccount(Base):
    __tablename__ = "erp_gl_accounts"

    id: Mapped[int] = pk()
    account: Mapped[str] = mapped_column(String(32), unique=True)
    name: Mapped[str | None] = mapped_column(String(128))
    type: Mapped[str | None] = mapped_column(String(32))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    synced_at: Mapped[dt.datetime] = updated_at()


class ErpItem(Base):
    __tablename__ = "erp_items"

    id: Mapped[int] = pk()
    item: Mapped[str] = mapped_column(String(64), unique=True)
    description: Mapped[str | None] = mapped_column(String(255))
    unit_cost_cents: Mapped[int | None] = cents(nullable=True)  # NULL: master-data drift
    uom: Mapped[str | None] = mapped_column(String(16))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    synced_at: Mapped[dt.datetime] = updated_at()


class ErpLocation(Base):
    __tablename__ = "erp_locations"

    id: Mapped[int] = pk()
    location: Mapped[str] = mapped_column(String(64), unique=True)
    facility: Mapped[str | None] = mapped_column(String(64))
    name: Mapped[str | None] = mapped_column(String(128))
    synced_at: Mapped[dt.datetime] = updated_at()


class ErpPayer(Base):
    __tablename__ = "erp_payers"

    id: Mapped[int] = pk()
    payer_id: Mapped[str] = mapped_column(String(64), unique=True)
    name: Mapped[str | None] = mapped_column(String(128))
    x12_id: Mapped[str | None] = mapped_column(String(64))
    active: Mapped[bool] = mapped_column(Boolean, default=True)
    synced_at: Mapped[dt.datetime] = updated_at()


class ErpPeriod(Base):
    __tablename__ = "erp_periods"

    id: Mapped[int] = pk()
    period: Mapped[str] = mapped_column(String(7), unique=True)  # YYYY-MM
    status: Mapped[str] = mapped_column(String(16))  # open, closed
    synced_at: Mapped[dt.datetime] = updated_at()
