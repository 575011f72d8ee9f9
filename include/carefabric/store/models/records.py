"""Canonical EHR records: encounters, charge lines and supply usage (no PHI, tokens only)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

from sqlalchemy import BigInteger, Date, ForeignKey, Integer, Numeric, String, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carefabric.canonical import SCHEMA_VERSION
from carefabric.store.models.base import Base, cents, created_at, fk, one_of, pk, updated_at

CHARGE_STATUSES = ("received", "mapped", "routed", "held")
QUANTITY = Numeric(18, 4)


def schema_version() -> Mapped[int]:
    return mapped_column(Integer, default=SCHEMA_VERSION)


class Encounter(Base):
    """One encounter event (ADT, the PV1 of a DFT, or FHIR Encounter); key (source, encounter_id,
    event_type, message_control_id)."""

    __tablename__ = "encounters"
    __table_args__ = (UniqueConstraint("source", "encounter_id", "event_type", "message_control_id"),)

    id: Mapped[int] = pk()
    schema_version: Mapped[int] = schema_version()
    source: Mapped[str] = mapped_column(String(128))
    facility: Mapped[str] = mapped_column(String(64), index=True)
    encounter_id: Mapped[str] = mapped_column(String(64), index=True)
    event_type: Mapped[str] = mapped_column(String(16))
    message_control_id: Mapped[str] = mapped_column(String(128))
    message_id: Mapped[int | None] = fk("raw_messages.id", nullable=True, ondelete="SET NULL")
    patient_token: Mapped[str | None] = mapped_column(String(64))
    patient_class: Mapped[str | None] = mapped_column(String(8))
    hospital_service: Mapped[str | None] = mapped_column(String(32))
    location: Mapped[str | None] = mapped_column(String(128))
    financial_class: Mapped[str | None] = mapped_column(String(32))
    admit_time: Mapped[dt.datetime | None]
    discharge_time: Mapped[dt.datetime | None]
    insurance_plan: Mapped[str | None] = mapped_column(String(64))
    insurance_company: Mapped[str | None] = mapped_column(String(64))
    message_time: Mapped[dt.datetime | None]
    created_at: Mapped[dt.datetime] = created_at()


class Charge(Base):
    """One charge line (FT1 or FHIR ChargeItem) and what mapping made of it; key ``line_key``.

    ``line_key`` is ``canonical.Charge.line_key`` (``source|message_control_id|line_number``).
    ``amount_cents`` is FT1-11 signed (a credit is negative). Mapping fills cost_center,
    revenue_account and erp_item; routing fills billing_charge_id.
    """

    __tablename__ = "charges"
    __table_args__ = (one_of("status", CHARGE_STATUSES),)

    id: Mapped[int] = pk()
    schema_version: Mapped[int] = schema_version()
    line_key: Mapped[str] = mapped_column(String(255), unique=True)
    source: Mapped[str] = mapped_column(String(128))
    facility: Mapped[str] = mapped_column(String(64))
    encounter_id: Mapped[str] = mapped_column(String(64), index=True)
    message_control_id: Mapped[str] = mapped_column(String(128))
    message_id: Mapped[int | None] = fk("raw_messages.id", nullable=True, ondelete="SET NULL")
    line_number: Mapped[int] = mapped_column(Integer)
    transaction_id: Mapped[str | None] = mapped_column(String(64))
    transaction_date: Mapped[dt.date] = mapped_column(Date, index=True)
    transaction_type: Mapped[str] = mapped_column(String(4))  # FT1-6: CG, CD, PY, AJ
    cdm_code: Mapped[str] = mapped_column(String(32))
    quantity: Mapped[Decimal] = mapped_column(QUANTITY)
    amount_cents: Mapped[int] = cents()
    unit_amount_cents: Mapped[int | None] = cents(nullable=True)
    department: Mapped[str | None] = mapped_column(String(32))
    procedure_code: Mapped[str | None] = mapped_column(String(32))
    modifiers: Mapped[str | None] = mapped_column(String(64))  # joined with '^'
    patient_token: Mapped[str | None] = mapped_column(String(64))
    business_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(16), default="received", index=True)
    company: Mapped[str | None] = mapped_column(String(16))
    cost_center: Mapped[str | None] = mapped_column(String(64))
    revenue_account: Mapped[str | None] = mapped_column(String(32))
    erp_item: Mapped[str | None] = mapped_column(String(64))
    billing_charge_id: Mapped[str | None] = mapped_column(String(64))
    # NULL: the message carried the amount; 'cdm': priced from the chargemaster price at mapping;
    # 'pending': no amount in the message and no CDM price yet (held UNPRICED_CHARGE).
    priced_from: Mapped[str | None] = mapped_column(String(16))
    # Re-sends under the same MSH-10 (raw_message_versions): the message version this line came
    # from (NULL = 1) and, for a reversal line, the line_key it reverses.
    message_version: Mapped[int | None] = mapped_column(Integer)
    reversal_of: Mapped[str | None] = mapped_column(String(255))
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()


class SupplyUsage(Base):
    """Inventory consumption from a charge line whose CDM maps to an ERP item; key ``line_key``."""

    __tablename__ = "supply_usage"
    __table_args__ = (one_of("status", CHARGE_STATUSES),)

    id: Mapped[int] = pk()
    schema_version: Mapped[int] = schema_version()
    line_key: Mapped[str] = mapped_column(
        String(255), ForeignKey("charges.line_key", ondelete="CASCADE"), unique=True
    )
    facility: Mapped[str] = mapped_column(String(64))
    transaction_date: Mapped[dt.date] = mapped_column(Date)
    business_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    item: Mapped[str] = mapped_column(String(64))
    location: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[Decimal] = mapped_column(QUANTITY)  # as charged (positive = consumed)
    unit_cost_cents: Mapped[int | None] = mapped_column(BigInteger)
    cost_center: Mapped[str | None] = mapped_column(String(64))
    company: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="received", index=True)
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()
