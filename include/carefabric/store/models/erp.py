"""What we send to the ERP: postings (journal, inventory, cash), their lines, and per-record shares."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import Date, Index, Integer, Numeric, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from carefabric.store.models.base import Base, cents, created_at, fk, one_of, pk, updated_at

POSTING_KINDS = ("journal", "inventory", "cash")
#: The outbox states (docs/CONTRACTS.md "ERP outbox"): ``pending`` stored, never sent; ``sending``
#: claimed by one sender until ``lease_until``; ``unknown`` a send was tried and its outcome is not
#: known (looked up in the ERP before any re-send); ``posted`` confirmed by the ERP; ``rejected``
#: refused by the ERP, its records free to be rebuilt; ``superseded`` a rejected document whose
#: records went into another document.
POSTING_STATUSES = ("pending", "sending", "unknown", "posted", "rejected", "superseded")
#: Statuses whose records count as taken: never built into a second document.
LIVE_POSTING_STATUSES = ("pending", "sending", "unknown", "posted")


class ErpPosting(Base):
    """One journal batch, inventory movement or cash receipt; key ``external_id`` (the ERP's too).

    ``payload`` is exactly what was (or will be) sent, with no PHI; ``response`` the ERP's answer.
    """

    __tablename__ = "erp_postings"
    __table_args__ = (one_of("kind", POSTING_KINDS), one_of("status", POSTING_STATUSES))

    id: Mapped[int] = pk()
    kind: Mapped[str] = mapped_column(String(16))
    external_id: Mapped[str] = mapped_column(String(128), unique=True)
    source: Mapped[str] = mapped_column(String(16))  # CHARGES, REMIT, SUPPLY, INVENTORY, CASH
    company: Mapped[str] = mapped_column(String(16))
    business_date: Mapped[dt.date] = mapped_column(Date, index=True)
    status: Mapped[str] = mapped_column(String(16), default="pending", index=True)
    erp_document_id: Mapped[str | None] = mapped_column(String(64))
    payload: Mapped[dict[str, Any]]
    response: Mapped[dict[str, Any] | None]
    error_code: Mapped[str | None] = mapped_column(String(40))
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    debit_cents: Mapped[int] = cents(default=0)
    credit_cents: Mapped[int] = cents(default=0)
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()
    posted_at: Mapped[dt.datetime | None]
    claim_token: Mapped[str | None] = mapped_column(String(64))
    lease_until: Mapped[dt.datetime | None]

    lines: Mapped[list[ErpPostingLine]] = relationship(
        back_populates="posting", cascade="all, delete-orphan", order_by="ErpPostingLine.line_no"
    )
    contributions: Mapped[list[PostingContribution]] = relationship(
        back_populates="posting", cascade="all, delete-orphan"
    )
    records: Mapped[list[PostingRecord]] = relationship(back_populates="posting", cascade="all, delete-orphan")


class ErpPostingLine(Base):
    """One line of a posting; key (posting_id, line_no). Journal lines use account/debit/credit;
    inventory lines use location/item/quantity/unit_cost_cents; a cash receipt has one line."""

    __tablename__ = "erp_posting_lines"
    __table_args__ = (UniqueConstraint("posting_id", "line_no"),)

    id: Mapped[int] = pk()
    posting_id: Mapped[int] = fk("erp_postings.id")
    line_no: Mapped[int] = mapped_column(Integer)
    account: Mapped[str | None] = mapped_column(String(32))
    cost_center: Mapped[str | None] = mapped_column(String(64))
    location: Mapped[str | None] = mapped_column(String(64))
    facility: Mapped[str | None] = mapped_column(String(64))
    item: Mapped[str | None] = mapped_column(String(64))
    quantity: Mapped[Decimal | None] = mapped_column(Numeric(18, 4))
    unit_cost_cents: Mapped[int | None] = cents(nullable=True)
    debit_cents: Mapped[int] = cents(default=0)
    credit_cents: Mapped[int] = cents(default=0)
    memo: Mapped[str | None] = mapped_column(Text)

    posting: Mapped[ErpPosting] = relationship(back_populates="lines")


class PostingContribution(Base):
    """How much one record moved one account in a (summary) posting; signed cents, debit positive.

    Key (posting_id, record_type, record_key, account): e.g. ('claim', CLP01, '1200', -12000) is the
    AR relief a claim got, so reconciliation can match per claim even though lines are summarized.
    """

    __tablename__ = "posting_contributions"
    __table_args__ = (UniqueConstraint("posting_id", "record_type", "record_key", "account"),)

    id: Mapped[int] = pk()
    posting_id: Mapped[int] = fk("erp_postings.id")
    record_type: Mapped[str] = mapped_column(String(32))  # charge, claim, remittance, supply, trace
    record_key: Mapped[str] = mapped_column(String(255), index=True)
    account: Mapped[str] = mapped_column(String(32))
    amount_cents: Mapped[int] = cents()

    posting: Mapped[ErpPosting] = relationship(back_populates="contributions")


class PostingRecord(Base):
    """A record a document carries: (``charge``, line key) or (``remittance``, remittance id).

    Whether a record is posted is a fact per document source: a charge line has separate
    CHARGES, SUPPLY and INVENTORY memberships, so a lost SUPPLY journal is rebuilt from exactly
    the lines it lacks. Key (posting_id, record_type, record_key).
    """

    __tablename__ = "posting_records"
    __table_args__ = (
        UniqueConstraint("posting_id", "record_type", "record_key"),
        Index("ix_posting_records_record", "record_type", "record_key"),
    )

    id: Mapped[int] = pk()
    posting_id: Mapped[int] = fk("erp_postings.id")
    record_type: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(255))

    posting: Mapped[ErpPosting] = relationship(back_populates="records")


class OutboxLock(Base):
    """One row per lock scope (``build:<date>``): building a date's documents updates it first.

    The UPDATE is a row lock on PostgreSQL and the database write lock on SQLite, held until the
    build commits, so two runs for one date never put one record into two documents.
    """

    __tablename__ = "outbox_locks"

    scope: Mapped[str] = mapped_column(String(64), primary_key=True)
    locked_at: Mapped[dt.datetime | None]
