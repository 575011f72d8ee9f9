"""PHI retention: purge raw payloads past their retention period, keep what proves they existed.

Raw payloads (``raw_messages.payload``, ``raw_message_versions.payload``) and the archived copies
of inbound files are the only places PHI lives. After ``days`` (per interface, the
``carefabric_retention_days`` policy) the payload is emptied and its SHA-256 and size are kept
beside the control ids and status, and the archived file is deleted (``inbound_files`` keeps its
sha256 and size). Nothing else changes: canonical records, postings, exceptions and the audit
trail stay, and a re-sent message is still recognised by its control id.

Not purged, whatever their age: a message an open exception points at, a message with a version
waiting for a person's decision (both may be replayed from their payload), and a file an open
file-level exception names (``<name>|<sha12>``, replayed from its archive).

Space: SQLite reuses freed pages but only ``VACUUM`` returns them to the file system. On
PostgreSQL the purge writes a new version of every row, so the tables first grow; plain
``VACUUM`` only makes the dead versions reusable, ``VACUUM FULL`` (an exclusive lock on the two
payload tables, seconds for a day's worth) rewrites them without the payloads. Sizes before
and after go into the audit entry.
"""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from sqlalchemy import ColumnElement, select, text, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from carefabric.store import audit
from carefabric.store.db import session_scope
from carefabric.store.models import ExceptionRecord, InboundFile, RawMessage
from carefabric.store.models.ingest import RawMessageVersion
from carefabric.store.types import utcnow

PAYLOAD_TABLES = ("raw_messages", "raw_message_versions")
BATCH = 2000
DEFAULT_DAYS = 30
ACTOR = "phi_retention"


@dataclass(frozen=True)
class RetentionPolicy:
    """Days a raw payload is kept, per interface (``default`` for the others)."""

    days: Mapping[str, int] = field(default_factory=lambda: {"default": DEFAULT_DAYS})

    def __post_init__(self) -> None:
        bad = {k: v for k, v in self.days.items() if not isinstance(v, int) or v < 1}
        if bad:
            raise ValueError(f"retention days must be whole numbers of at least 1: {bad}")

    def days_for(self, interface: str | None) -> int:
        return int(self.days.get(interface or "", self.days.get("default", DEFAULT_DAYS)))


def _digest(payload: str) -> tuple[str, int]:
    data = payload.encode("utf-8")
    return hashlib.sha256(data).hexdigest(), len(data)


def _cutoffs(session: Session, policy: RetentionPolicy, now: dt.datetime) -> Iterator[tuple[str | None, dt.datetime]]:
    interfaces = session.scalars(select(RawMessage.interface).distinct()).all()
    files = session.scalars(select(InboundFile.interface).distinct()).all()
    for interface in sorted(set(interfaces) | set(files), key=lambda i: i or ""):
        yield interface, now - dt.timedelta(days=policy.days_for(interface))


def _same(column: Any, interface: str | None) -> ColumnElement[bool]:
    return column.is_(None) if interface is None else column == interface


def _protected_messages() -> Any:
    """Ids of messages that may still be replayed from their payload."""
    by_exception = select(ExceptionRecord.message_id).where(
        ExceptionRecord.status == "open", ExceptionRecord.message_id.is_not(None))
    held = select(RawMessageVersion.message_id).where(RawMessageVersion.status == "held")
    return by_exception.union(held)


def _purge_messages(session: Session, interface: str | None, cutoff: dt.datetime, now: dt.datetime) -> tuple[int, int]:
    count = freed = 0
    while True:
        rows = session.execute(
            select(RawMessage.id, RawMessage.payload).where(
                RawMessage.purged_at.is_(None), _same(RawMessage.interface, interface), RawMessage.received_at < cutoff,
                RawMessage.id.not_in(_protected_messages()))
            .order_by(RawMessage.id).limit(BATCH)).all()
        if not rows:
            return count, freed
        changes = []
        for row_id, payload in rows:
            sha, size = _digest(payload)
            changes.append({"id": row_id, "payload": "", "payload_sha256": sha, "payload_bytes": size, "purged_at": now})
            freed += size
        session.execute(update(RawMessage), changes)
        count += len(changes)


def _purge_versions(session: Session, interface: str | None, cutoff: dt.datetime, now: dt.datetime) -> tuple[int, int]:
    rows = session.execute(
        select(RawMessageVersion.id, RawMessageVersion.payload)
        .join(RawMessage, RawMessage.id == RawMessageVersion.message_id)
        .where(RawMessageVersion.purged_at.is_(None), RawMessageVersion.status != "held",
               _same(RawMessage.interface, interface), RawMessageVersion.received_at < cutoff)).all()
    changes: list[dict[str, Any]] = []
    total_bytes = 0
    for row_id, payload in rows:
        sha, size = _digest(payload)
        changes.append({"id": row_id, "payload": "", "payload_sha256": sha, "payload_bytes": size, "purged_at": now})
        total_bytes += size
    if changes:
        session.execute(update(RawMessageVersion), changes)
    return len(changes), total_bytes


def _purge_files(session: Session, interface: str | None, cutoff: dt.datetime, now: dt.datetime) -> tuple[int, int]:
    """Delete archived copies of old files no open file-level exception needs; keep the rows."""
    held = set(session.scalars(select(ExceptionRecord.record_key).where(
        ExceptionRecord.status == "open", ExceptionRecord.record_type == "file")))
    files = session.scalars(select(InboundFile).where(
        InboundFile.purged_at.is_(None), InboundFile.archive_path.is_not(None), _same(InboundFile.interface, interface),
        InboundFile.received_at < cutoff, InboundFile.status != "processing")).all()
    count = freed = 0
    for row in files:
        if f"{row.name}|{row.sha256[:12]}" in held:
            continue
        path = Path(row.archive_path or "")
        if path.is_file():
            freed += path.stat().st_size
            path.unlink()
        row.purged_at = now
        count += 1
    return count, freed


def purge(engine: Engine, policy: RetentionPolicy, *, now: dt.datetime | None = None) -> dict[str, dict[str, int]]:
    """Purge what the policy says is past retention; counts and bytes per interface."""
    now = now or utcnow()
    report: dict[str, dict[str, int]] = {}
    with session_scope(engine) as session:
        for interface, cutoff in list(_cutoffs(session, policy, now)):
            messages, message_bytes = _purge_messages(session, interface, cutoff, now)
            versions, version_bytes = _purge_versions(session, interface, cutoff, now)
            files, file_bytes = _purge_files(session, interface, cutoff, now)
            if messages or versions or files:
                report[interface or "unknown"] = {
                    "messages": messages, "versions": versions, "files": files,
                    "payload_bytes": message_bytes + version_bytes, "archive_bytes": file_bytes,
                    "days": policy.days_for(interface)}
    return report


def payload_size(engine: Engine) -> int:
    """Bytes the payload tables take on disk: the SQLite file (after a WAL checkpoint), or
    ``pg_total_relation_size`` (table, TOAST and indexes) of both tables on PostgreSQL."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            pages = conn.exec_driver_sql("PRAGMA page_count").scalar_one()
            return int(pages) * int(conn.exec_driver_sql("PRAGMA page_size").scalar_one())
        return int(sum(conn.execute(text("SELECT pg_total_relation_size(CAST(:t AS regclass))"), {"t": t}).scalar_one()
                       for t in PAYLOAD_TABLES))


def reclaim(engine: Engine, *, full: bool = False) -> str:
    """Return freed space: ``VACUUM`` (SQLite: the whole file); PostgreSQL ``VACUUM (ANALYZE)``
    of the payload tables, or ``VACUUM (FULL, ANALYZE)`` with ``full``. The statement run."""
    with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
        if engine.dialect.name == "sqlite":
            conn.exec_driver_sql("VACUUM")
            conn.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)")
            return "VACUUM"
        statement = f"VACUUM ({'FULL, ' if full else ''}ANALYZE) {', '.join(PAYLOAD_TABLES)}"
        conn.exec_driver_sql(statement)
        return statement


def run(engine: Engine, policy: RetentionPolicy, *, full_vacuum: bool = False, actor: str = ACTOR,
        now: dt.datetime | None = None) -> dict[str, Any]:
    """Purge, reclaim, measure, and leave one audit entry saying what was done (no PHI)."""
    before = payload_size(engine)
    purged = purge(engine, policy, now=now)
    statement = reclaim(engine, full=full_vacuum) if purged else None
    after = payload_size(engine)
    summary = {"purged": purged, "size_before_bytes": before, "size_after_bytes": after, "reclaim": statement,
               "policy_days": dict(policy.days)}
    with session_scope(engine) as session:
        audit.record(session, actor, "retention_purge", "raw_payloads", detail=summary)
    return summary

