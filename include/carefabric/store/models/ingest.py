"""What arrived: inbound files and the message store (raw payloads, the only place PHI lives)."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import BigInteger, Date, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from carefabric.store.models.base import Base, created_at, fk, one_of, pk

FILE_SOURCES = ("ehr", "payer", "billing", "bank")
VERSION_STATUSES = ("held", "accepted", "discarded")
FILE_STATUSES = ("received", "processing", "processed", "rejected", "duplicate")
MESSAGE_STATUSES = ("received", "parsed", "routed", "skipped", "error")


class InboundFile(Base):
    """One file picked up from a landing folder or SFTP; key (source, sha256)."""

    __tablename__ = "inbound_files"
    __table_args__ = (
        UniqueConstraint("source", "sha256"),
        one_of("source", FILE_SOURCES),
        one_of("status", FILE_STATUSES),
    )

    id: Mapped[int] = pk()
    source: Mapped[str] = mapped_column(String(16))
    interface: Mapped[str | None] = mapped_column(String(40))  # ehr_ingest, payer_remittance, ...
    name: Mapped[str] = mapped_column(String(255))
    sha256: Mapped[str] = mapped_column(String(64))
    size_bytes: Mapped[int] = mapped_column(BigInteger, default=0)
    status: Mapped[str] = mapped_column(String(16), default="received", index=True)
    received_at: Mapped[dt.datetime] = created_at()
    processed_at: Mapped[dt.datetime | None]
    archive_path: Mapped[str | None] = mapped_column(String(1024))
    detail: Mapped[str | None] = mapped_column(Text)
    purged_at: Mapped[dt.datetime | None]  # archived copy deleted by retention (store.retention)


class RawMessage(Base):
    """One HL7 message, FHIR resource or X12 transaction set as received; key (sender, control_id, type).

    ``sender`` is ``MSH-3|MSH-4`` (HL7), ``ISA06`` (X12) or ``fhir``; ``control_id`` is MSH-10,
    ``ISA13|GS06|ST02`` or the resource id. ``payload`` keeps the raw text (PHI) for replay and
    audit; nothing else in the store holds names, MRNs or member ids.
    """

    __tablename__ = "raw_messages"
    __table_args__ = (
        UniqueConstraint("sender", "control_id", "message_type"),
        one_of("status", MESSAGE_STATUSES),
    )

    id: Mapped[int] = pk()
    sender: Mapped[str] = mapped_column(String(128))
    control_id: Mapped[str] = mapped_column(String(128))
    message_type: Mapped[str] = mapped_column(String(32))  # ADT^A01, DFT^P03, 835, Encounter ...
    interface: Mapped[str | None] = mapped_column(String(40))
    status: Mapped[str] = mapped_column(String(16), default="received", index=True)
    payload: Mapped[str] = mapped_column(Text)
    file_id: Mapped[int | None] = fk("inbound_files.id", nullable=True, ondelete="SET NULL")
    position: Mapped[int | None] = mapped_column(Integer)  # 1-based position in the file
    received_at: Mapped[dt.datetime] = created_at()
    processed_at: Mapped[dt.datetime | None]
    error: Mapped[str | None] = mapped_column(Text)  # no PHI: parser position and reason only
    # Retention (store.retention): once purged, ``payload`` is empty and these say what it was.
    payload_sha256: Mapped[str | None] = mapped_column(String(64))
    payload_bytes: Mapped[int | None] = mapped_column(Integer)
    purged_at: Mapped[dt.datetime | None]


class RawMessageVersion(Base):
    """A later version of a stored message: same sender and MSH-10, different content; key
    (message_id, version).

    The first version stays in ``raw_messages``; a re-send with other content lands here as
    version 2, 3 ... with its payload (PHI, like every raw payload) and waits for a person's
    decision (exception ``CONFLICTING_RESEND``): ``held`` until then, ``accepted`` (its lines
    replaced the previous version's, which were reversed) or ``discarded`` (the previous stands).
    ``content_sha256`` tells an identical re-send, which stays silent, from a new version.
    """

    __tablename__ = "raw_message_versions"
    __table_args__ = (UniqueConstraint("message_id", "version"), one_of("status", VERSION_STATUSES))

    id: Mapped[int] = pk()
    message_id: Mapped[int] = fk("raw_messages.id")
    version: Mapped[int] = mapped_column(Integer)
    content_sha256: Mapped[str] = mapped_column(String(64))
    payload: Mapped[str] = mapped_column(Text)
    file_id: Mapped[int | None] = fk("inbound_files.id", nullable=True, ondelete="SET NULL")
    position: Mapped[int | None] = mapped_column(Integer)
    business_date: Mapped[dt.date | None] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(16), default="held", index=True)
    received_at: Mapped[dt.datetime] = created_at()
    decided_at: Mapped[dt.datetime | None]
    decided_by: Mapped[str | None] = mapped_column(String(64))
    payload_sha256: Mapped[str | None] = mapped_column(String(64))
    payload_bytes: Mapped[int | None] = mapped_column(Integer)
    purged_at: Mapped[dt.datetime | None]
