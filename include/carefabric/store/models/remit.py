"""X12 835 remittances as stored: transaction, claims, lines, adjustments, PLB, and 999 acks."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Boolean, Date, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from carefabric.store.models.base import Base, cents, created_at, fk, one_of, pk, updated_at
from carefabric.store.models.records import schema_version

REMITTANCE_STATUSES = ("received", "balanced", "unbalanced", "posted", "rejected")
ADJUSTMENT_LEVELS = ("claim", "line")


class Remittance(Base):
    """One 835 transaction set (ST..SE); key (interchange_control, group_control,
    transaction_control, sender_id) = ISA13, GS06, ST02, ISA06."""

    __tablename__ = "remittances"
    __table_args__ = (
        UniqueConstraint("interchange_control", "group_control", "transaction_control", "sender_id"),
        one_of("status", REMITTANCE_STATUSES),
    )

    id: Mapped[int] = pk()
    schema_version: Mapped[int] = schema_version()
    interchange_control: Mapped[str] = mapped_column(String(16))
    group_control: Mapped[str] = mapped_column(String(16))
    transaction_control: Mapped[str] = mapped_column(String(16))
    sender_id: Mapped[str] = mapped_column(String(32))
    version: Mapped[str | None] = mapped_column(String(16))
    file_id: Mapped[int | None] = fk("inbound_files.id", nullable=True, ondelete="SET NULL")
    message_id: Mapped[int | None] = fk("raw_messages.id", nullable=True, ondelete="SET NULL")
    payer_id: Mapped[str | None] = mapped_column(String(64))  # x12 payer id
    payer_name: Mapped[str | None] = mapped_column(String(128))
    erp_payer_id: Mapped[str | None] = mapped_column(String(64))
    payee_npi: Mapped[str | None] = mapped_column(String(16))
    payee_name: Mapped[str | None] = mapped_column(String(128))
    trace_number: Mapped[str] = mapped_column(String(64), index=True)
    trace_originator: Mapped[str | None] = mapped_column(String(32))
    credit_debit: Mapped[str | None] = mapped_column(String(2))
    payment_method: Mapped[str | None] = mapped_column(String(8))
    payment_cents: Mapped[int] = cents()
    payment_date: Mapped[dt.date | None] = mapped_column(Date)
    business_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    facility: Mapped[str | None] = mapped_column(String(64))
    company: Mapped[str | None] = mapped_column(String(16))
    status: Mapped[str] = mapped_column(String(16), default="received", index=True)
    balance_errors: Mapped[list[Any] | None]
    findings: Mapped[list[Any] | None]
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()

    claims: Mapped[list[RemitClaim]] = relationship(
        back_populates="remittance", cascade="all, delete-orphan", order_by="RemitClaim.seq"
    )
    provider_adjustments: Mapped[list[ProviderAdjustment]] = relationship(
        back_populates="remittance", cascade="all, delete-orphan", order_by="ProviderAdjustment.seq"
    )


class RemitClaim(Base):
    """Loop 2100 (CLP); key (remittance_id, seq)."""

    __tablename__ = "remit_claims"
    __table_args__ = (UniqueConstraint("remittance_id", "seq"),)

    id: Mapped[int] = pk()
    remittance_id: Mapped[int] = fk("remittances.id")
    seq: Mapped[int] = mapped_column(Integer)  # 1-based order in the transaction
    patient_control_number: Mapped[str] = mapped_column(String(64), index=True)  # CLP01 = claim_id
    status: Mapped[str] = mapped_column(String(4))  # CLP02
    charge_cents: Mapped[int] = cents()
    paid_cents: Mapped[int] = cents()
    patient_resp_cents: Mapped[int | None] = cents(nullable=True)
    payer_claim_control: Mapped[str | None] = mapped_column(String(64))

    remittance: Mapped[Remittance] = relationship(back_populates="claims")
    lines: Mapped[list[RemitLine]] = relationship(
        back_populates="claim", cascade="all, delete-orphan", order_by="RemitLine.seq"
    )
    adjustments: Mapped[list[RemitAdjustment]] = relationship(
        back_populates="claim", cascade="all, delete-orphan", order_by="RemitAdjustment.id"
    )


class RemitLine(Base):
    """Loop 2110 (SVC); key (claim_id, seq)."""

    __tablename__ = "remit_lines"
    __table_args__ = (UniqueConstraint("claim_id", "seq"),)

    id: Mapped[int] = pk()
    claim_id: Mapped[int] = fk("remit_claims.id")
    seq: Mapped[int] = mapped_column(Integer)
    procedure: Mapped[str] = mapped_column(String(64))
    charge_cents: Mapped[int] = cents()
    paid_cents: Mapped[int] = cents()
    units: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    service_date: Mapped[dt.date | None] = mapped_column(Date)
    line_ref: Mapped[str | None] = mapped_column(String(64))
    allowed_cents: Mapped[int | None] = cents(nullable=True)

    claim: Mapped[RemitClaim] = relationship(back_populates="lines")
    adjustments: Mapped[list[RemitAdjustment]] = relationship(back_populates="line")


class RemitAdjustment(Base):
    """One CAS triplet at claim or line level; key (claim_id, line_seq, seq), line_seq 0 = claim level."""

    __tablename__ = "remit_adjustments"
    __table_args__ = (
        UniqueConstraint("claim_id", "line_seq", "seq"),
        one_of("level", ADJUSTMENT_LEVELS),
    )

    id: Mapped[int] = pk()
    claim_id: Mapped[int] = fk("remit_claims.id")
    line_id: Mapped[int | None] = fk("remit_lines.id", nullable=True)
    level: Mapped[str] = mapped_column(String(8))
    line_seq: Mapped[int] = mapped_column(Integer, default=0)
    seq: Mapped[int] = mapped_column(Integer)
    group_code: Mapped[str] = mapped_column(String(4))  # CO, PR, OA, PI
    reason_code: Mapped[str] = mapped_column(String(8))  # CARC
    amount_cents: Mapped[int] = cents()
    quantity: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))

    claim: Mapped[RemitClaim] = relationship(back_populates="adjustments")
    line: Mapped[RemitLine | None] = relationship(back_populates="adjustments")


class ProviderAdjustment(Base):
    """One PLB reason/amount pair (positive reduces the payment); key (remittance_id, seq)."""

    __tablename__ = "provider_adjustments"
    __table_args__ = (UniqueConstraint("remittance_id", "seq"),)

    id: Mapped[int] = pk()
    remittance_id: Mapped[int] = fk("remittances.id")
    seq: Mapped[int] = mapped_column(Integer)
    provider_id: Mapped[str | None] = mapped_column(String(32))
    fiscal_date: Mapped[dt.date | None] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(8))
    reference: Mapped[str | None] = mapped_column(String(64))
    amount_cents: Mapped[int] = cents()

    remittance: Mapped[Remittance] = relationship(back_populates="provider_adjustments")


class Ack999(Base):
    """A 999 acknowledgement we produced for one functional group of a file; key (file_id, group_control)."""

    __tablename__ = "ack_999"
    __table_args__ = (UniqueConstraint("file_id", "group_control"),)

    id: Mapped[int] = pk()
    file_id: Mapped[int] = fk("inbound_files.id")
    remittance_id: Mapped[int | None] = fk("remittances.id", nullable=True, ondelete="SET NULL")
    group_control: Mapped[str] = mapped_column(String(16), default="")  # GS06 acknowledged ('' if none)
    content: Mapped[str] = mapped_column(Text)  # the 999 as sent
    accepted: Mapped[bool] = mapped_column(Boolean)
    findings: Mapped[list[Any] | None]
    created_at: Mapped[dt.datetime] = created_at()
