"""The exception queue: business and transient failures, one row per (reason, record), with history."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column, relationship

from carefabric.store.models.base import Base, created_at, fk, one_of, pk, updated_at

EXCEPTION_KINDS = ("business", "transient")
EXCEPTION_STATUSES = ("open", "resolved", "replayed", "discarded")


class ExceptionRecord(Base):
    """One exception; key (reason_code, record_type, record_key) so a re-run never opens it twice.

    ``record_type``/``record_key`` say what it concerns: ``('charge', line_key)``,
    ``('file', sha256)``, ``('remittance', 'ISA13|GS06|ST02|ISA06')``, ``('message', sender|control_id)``,
    ``('posting', external_id)`` ... ``summary`` and ``detail`` never carry PHI.
    """

    __tablename__ = "exceptions"
    __table_args__ = (
        UniqueConstraint("reason_code", "record_type", "record_key"),
        one_of("kind", EXCEPTION_KINDS),
        one_of("status", EXCEPTION_STATUSES),
    )

    id: Mapped[int] = pk()
    kind: Mapped[str] = mapped_column(String(16))
    reason_code: Mapped[str] = mapped_column(String(40), index=True)
    interface: Mapped[str] = mapped_column(String(40), index=True)
    record_type: Mapped[str] = mapped_column(String(32))
    record_key: Mapped[str] = mapped_column(String(255))
    message_id: Mapped[int | None] = fk("raw_messages.id", nullable=True, ondelete="SET NULL")
    summary: Mapped[str] = mapped_column(String(500))
    detail: Mapped[dict[str, Any] | None]
    status: Mapped[str] = mapped_column(String(16), default="open", index=True)
    attempts: Mapped[int] = mapped_column(Integer, default=1)
    created_at: Mapped[dt.datetime] = created_at()
    updated_at: Mapped[dt.datetime] = updated_at()
    closed_at: Mapped[dt.datetime | None]

    events: Mapped[list[ExceptionEvent]] = relationship(
        back_populates="exception", cascade="all, delete-orphan", order_by="ExceptionEvent.id"
    )


class ExceptionEvent(Base):
    """History of an exception: opened, reoccurred, reopened, resolved, replayed, discarded."""

    __tablename__ = "exception_events"

    id: Mapped[int] = pk()
    exception_id: Mapped[int] = fk("exceptions.id")
    at: Mapped[dt.datetime] = created_at()
    action: Mapped[str] = mapped_column(String(32))
    actor: Mapped[str] = mapped_column(String(64))
    note: Mapped[str | None] = mapped_column(Text)

    exception: Mapped[ExceptionRecord] = relationship(back_populates="events")
