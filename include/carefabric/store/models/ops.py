"""Operational state: incremental-sync watermarks and the audit log of manual actions."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Boolean, Date, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carefabric.store.models.base import Base, created_at, pk, updated_at


class Watermark(Base):
    """Where an incremental sync got to; key (interface, name)."""

    __tablename__ = "watermarks"

    interface: Mapped[str] = mapped_column(String(40), primary_key=True)
    name: Mapped[str] = mapped_column(String(64), primary_key=True)
    value: Mapped[str] = mapped_column(Text)
    updated_at: Mapped[dt.datetime] = updated_at()


class AuditLog(Base):
    """Who did what by hand: crosswalk edits, replays, discards (no PHI in detail)."""

    __tablename__ = "audit_log"

    id: Mapped[int] = pk()
    at: Mapped[dt.datetime] = created_at()
    actor: Mapped[str] = mapped_column(String(64), index=True)
    action: Mapped[str] = mapped_column(String(64), index=True)
    target: Mapped[str] = mapped_column(String(255))
    detail: Mapped[dict[str, Any] | None]


class QualityResult(Base):
    """One Great Expectations validation of one dataset (a file's charges, a day's remittances).

    Kept so the nightly report can show data quality per dataset without re-running GX.
    Key (interface, dataset, scope): scope names what was validated (a file's sha256, a date).
    """

    __tablename__ = "quality_results"
    __table_args__ = (UniqueConstraint("interface", "dataset", "scope"),)

    id: Mapped[int] = pk()
    interface: Mapped[str] = mapped_column(String(40))
    dataset: Mapped[str] = mapped_column(String(40))
    scope: Mapped[str] = mapped_column(String(128))
    business_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    success: Mapped[bool] = mapped_column(Boolean)
    evaluated: Mapped[int] = mapped_column(Integer, default=0)
    failed: Mapped[int] = mapped_column(Integer, default=0)
    rows: Mapped[int] = mapped_column(Integer, default=0)
    results: Mapped[dict[str, Any] | None]
    created_at: Mapped[dt.datetime] = created_at()
