"""The bank side of the cash check: deposits as the bank's BAI2 statement reported them."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import Date, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carefabric.store.models.base import Base, cents, created_at, fk, pk


class BankDeposit(Base):
    """One credit (BAI2 16 record) of one account on one statement date.

    Key (bank_account, statement_date, deposit_key): ``deposit_key`` is a digest of what the
    bank said about the credit (type code, amount, references, text) and its occurrence among
    identical credits of that account and date, so the same statement delivered again, even
    under another file name or with a new file id, stores nothing twice. ``trace_number`` is
    the 835's TRN02 found in the CCD+ addenda (or a check deposit's check number): the key the
    cash check matches on.
    """

    __tablename__ = "bank_deposits"
    __table_args__ = (UniqueConstraint("bank_account", "statement_date", "deposit_key"),)

    id: Mapped[int] = pk()
    file_id: Mapped[int | None] = fk("inbound_files.id", nullable=True, ondelete="SET NULL")
    statement_date: Mapped[dt.date] = mapped_column(Date, index=True)
    bank_account: Mapped[str] = mapped_column(String(34))
    deposit_key: Mapped[str] = mapped_column(String(64))
    currency: Mapped[str] = mapped_column(String(3))
    type_code: Mapped[str] = mapped_column(String(3))
    amount_cents: Mapped[int] = cents()
    funds_type: Mapped[str | None] = mapped_column(String(1))
    bank_reference: Mapped[str | None] = mapped_column(String(64))
    customer_reference: Mapped[str | None] = mapped_column(String(64))
    trace_number: Mapped[str | None] = mapped_column(String(64), index=True)
    trace_originator: Mapped[str | None] = mapped_column(String(32))
    trace_source: Mapped[str | None] = mapped_column(String(24))
    text: Mapped[str | None] = mapped_column(Text)
    business_date: Mapped[dt.date | None] = mapped_column(Date, index=True)
    created_at: Mapped[dt.datetime] = created_at()
