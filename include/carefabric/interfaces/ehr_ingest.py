"""EHR ingest: extract files (HL7 v2 batches, FHIR R4 NDJSON) to canonical records, billing charges.

The story, in the order the ``ehr_ingest`` DAG runs it:

1. ``pending_files``: list the landing folder; a file whose sha256 was already processed is
   skipped (a re-dropped file never posts twice).
2. ``ingest_file`` (one mapped task per file): register the file, copy it to the archive, stream
   its messages (bounded memory, any size), keep every raw message with its MSH-10 control id,
   parse to canonical encounters and charges, validate the file's frames with Great
   Expectations, map through the crosswalks, and write everything in bulk. A message that does
   not parse, or a line that does not map, becomes a business exception; the file goes on.
3. ``route_charges`` (``charge_routing``, re-exported here): send mapped charges to billing, one
   idempotency key per line (``line_key``), and mark them routed. Supply lines also feed ERP
   inventory consumption via ``supply_usage`` (posted, summarized per day, by ``erp_posting``).

A message re-sent under an MSH-10 already stored is skipped when identical and held as a new
version (``CONFLICTING_RESEND``) when not: see ``resends``.
"""

from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from functools import partial
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from carefabric import hl7, phi
from carefabric.fhir import ReadContext, iter_resources
from carefabric.hl7.canonical import type_label
from carefabric.interfaces import fhir_context, resends
from carefabric.interfaces.charge_routing import billing_payload, route_charges
from carefabric.interfaces.common import (
    archive_copy,
    file_digest,
    held_to_exceptions,
    register_file,
)
from carefabric.interfaces.ingest_quality import IngestQuality
from carefabric.interfaces.ingest_rows import (
    IngestBatch,
    apply_mapping,
    charge_row,
    encounter_row,
    map_rows,
    supply_row,
)
from carefabric.store import exceptions_repo
from carefabric.store.bulk import insert_ignore
from carefabric.store.crosswalks import Crosswalks
from carefabric.store.db import session_scope
from carefabric.store.models import Charge as ChargeRow
from carefabric.store.models import Encounter as EncounterRow
from carefabric.store.models import InboundFile, RawMessage, SupplyUsage
from carefabric.store.types import utcnow

__all__ = [
    "apply_mapping", "billing_payload", "charge_row", "encounter_row", "ingest_file", "map_rows", "pending_files",
    "route_charges", "supply_row",
]

log = logging.getLogger(__name__)

INTERFACE = "ehr_ingest"
EXTENSIONS = (".hl7", ".ndjson")
CHUNK = 5000
RAW_KEY = ["sender", "control_id", "message_type"]


# --------------------------------------------------------------------------- listing


def pending_files(landing: Path, engine: Engine, *, include_processed: bool = False) -> list[str]:
    """Extract files in the landing folder that have not been processed yet.

    A sensor calls this on every poke, so it hashes only files whose name and size match a file
    already processed (to tell a re-drop of the same bytes from a new file under an old name);
    a file with a new name or size is pending without reading it.
    """
    candidates = sorted(p for p in landing.iterdir() if p.is_file() and p.suffix.lower() in EXTENSIONS)
    if include_processed or not candidates:
        return [str(p) for p in candidates]
    with session_scope(engine) as session:
        seen = {
            (name, size): sha
            for name, size, sha in session.execute(
                select(InboundFile.name, InboundFile.size_bytes, InboundFile.sha256).where(
                    InboundFile.source == "ehr",
                    InboundFile.name.in_([p.name for p in candidates]),
                    InboundFile.status.in_(("processed", "rejected")),
                )
            )
        }
    pending = []
    for path in candidates:
        known = seen.get((path.name, path.stat().st_size))
        if known is None or file_digest(path)[0] != known:
            pending.append(str(path))
    return pending


# --------------------------------------------------------------------------- one file


def _flush(engine: Engine, batch: IngestBatch, cw: Crosswalks, stats: Counter[str], quality: IngestQuality,
           mapped: threading.Event) -> None:
    """Write one batch in one transaction; ``mapped`` is set once the batch no longer needs
    ``quality`` (its rows are kept for GX), so the caller may validate while the writes run."""
    full = False
    try:
        with session_scope(engine) as session:
            new = insert_ignore(session, RawMessage, batch.raw, RAW_KEY)
            if batch.hl7 and (new < len(batch.raw) or batch.repeats):
                resent = resends.triage(session, batch.candidates(), interface=INTERFACE, business_date=batch.business_date)
                batch.drop(resent)
                stats["resent"] += len(resent)
            supply, held = map_rows(batch.charges, batch.charge_rows, cw)
            full = quality.collect(batch)
            if not full:
                mapped.set()
            stats["encounters"] += insert_ignore(
                session, EncounterRow, batch.encounters, ["source", "encounter_id", "event_type", "message_control_id"]
            )
            stats["charges"] += insert_ignore(session, ChargeRow, batch.charge_rows, ["line_key"])
            stats["supply_lines"] += insert_ignore(session, SupplyUsage, supply, ["line_key"])
            items = held_to_exceptions(held, interface=INTERFACE) + batch.errors
            if items:
                exceptions_repo.open_exceptions(session, items, returning=False)
        if full:  # a full slice is validated and kept after the commit, as a file's last rows are
            quality.store(quality.validate())
    finally:
        mapped.set()
    for h in held:
        stats[f"held:{h.reason_code}"] += 1
    stats["held"] += len(held)


def _message_error(
    sha: str, position: int, *, reason: str, reason_code: str, summary: str, detail: dict[str, Any],
    payload: str, file_id: int, control_id: str | None = None,
) -> tuple[dict[str, Any], dict[str, Any]]:
    """The raw-message row and the business exception of one message that cannot be read.

    Keyed by file and position (the message has no trustworthy control id). The payload stays in
    the message store for replay, NULs shown as U+FFFD because PostgreSQL text cannot hold NUL;
    the exception carries the reason only.
    """
    raw = {
        "sender": f"file:{sha[:12]}",
        "control_id": control_id or f"#{position}",
        "message_type": "UNPARSED",
        "interface": INTERFACE,
        "status": "error",
        "error": reason[:2000],
        "position": position,
        "payload": payload.replace("\x00", "\ufffd"),
        "file_id": file_id,
    }
    exc = {
        "kind": "business",
        "reason_code": reason_code,
        "interface": INTERFACE,
        "record_type": "message",
        "record_key": f"{sha[:12]}#{position}",
        "summary": summary[:480],
        "detail": detail,
    }
    return raw, exc


def _hl7_units(path: Path, sha: str, file_id: int, business_date: dt.date | None, stats: Counter[str]) -> Iterable[IngestBatch]:
    batch = IngestBatch(business_date)
    report = hl7.FileReport()
    # Per-message counts stay local and reach ``stats`` once per batch (one Counter update per
    # message type, not an f-string and two dict writes per message).
    types: Counter[str] = Counter()
    for raw in hl7.iter_messages(path, report=report):
        try:
            if raw.error:
                raise hl7.HL7ParseError(raw.error)
            result = hl7.canonicalize(raw)
        except hl7.HL7ParseError as exc:
            position = raw.index + 1
            row, error = _message_error(
                sha, position, reason=exc.reason, reason_code="HL7_PARSE_ERROR", control_id=exc.control_id,
                summary=f"{path.name} message {position}: {exc.reason}", payload=raw.text, file_id=file_id,
                detail={"file": path.name, "position": position, "control_id": phi.code(exc.control_id, "MSH-10"),
                        "reason": exc.reason},
            )
            batch.raw.append(row)
            batch.errors.append(error)
            stats["message_errors"] += 1
        else:
            skipped = result.skipped_reason
            types[result.message_type] += 1
            if skipped is not None:
                stats["skipped"] += 1
            batch.add_hl7(
                {
                    "sender": result.sender,
                    "control_id": result.control_id,
                    "message_type": result.message_type,
                    "interface": INTERFACE,
                    "status": "parsed" if skipped is None else "skipped",
                    "payload": raw.text,
                    "file_id": file_id,
                    "position": raw.index + 1,
                    "error": skipped,
                },
                result,
            )
        if len(batch) >= CHUNK:
            _count(stats, types, len(batch))
            yield batch
            batch = IngestBatch(business_date)
    _count(stats, types, len(batch))
    if report.empty_reason and stats["messages"] == 0:
        stats["empty"] += 1
        stats["empty_reason:" + report.empty_reason] += 1
    yield batch


def _count(stats: Counter[str], types: Counter[str], messages: int) -> None:
    """Fold a batch's message counts into the file's ``stats`` (``type:`` labels carry no PHI)."""
    if messages:
        stats["messages"] += messages
    for message_type, n in types.items():
        stats[f"type:{type_label(message_type)}"] += n
    types.clear()


def _fhir_units(path: Path, sha: str, file_id: int, business_date: dt.date | None, stats: Counter[str],
                *, context: ReadContext | None = None) -> Iterable[IngestBatch]:
    batch = IngestBatch()
    for item in iter_resources(path, context):
        stats["messages"] += 1
        key = item.resource_id or f"#{item.line_number}"
        if item.error:
            row, error = _message_error(
                sha, item.line_number, reason=item.error, reason_code=item.reason_code or "FHIR_PARSE_ERROR",
                summary=f"{path.name}: {item.error}", payload=item.raw, file_id=file_id,
                detail={"file": path.name, "line": item.line_number},
            )
            batch.raw.append(row)
            batch.errors.append(error)
            stats["message_errors"] += 1
            continue
        stats[f"type:FHIR {item.resource_type}"] += 1
        batch.raw.append(
            {"sender": "FHIR", "control_id": key, "message_type": f"FHIR {item.resource_type}", "interface": INTERFACE,
             "status": "skipped" if item.skipped_reason else "parsed", "payload": item.raw, "file_id": file_id,
             "position": item.line_number, "error": item.skipped_reason or "; ".join(item.warnings) or None}
        )
        if item.warnings:
            stats["warnings"] += len(item.warnings)
        if item.encounter is not None:
            batch.encounters.append(encounter_row(item.encounter))
        for charge in item.charges:
            batch.charges.append(charge)
            batch.charge_rows.append(charge_row(charge, business_date))
        if len(batch) >= CHUNK:
            yield batch
            batch = IngestBatch()
    yield batch


def ingest_file(path: Path, engine: Engine, *, business_date: dt.date | None = None, validate: bool = True) -> dict[str, Any]:
    """Ingest one extract file end to end (except routing); returns counts, no PHI."""
    sha, size = file_digest(path)
    with session_scope(engine) as session:
        row, _ = register_file(session, source="ehr", interface=INTERFACE, name=path.name, sha256=sha, size=size)
        if row.status in ("processed", "rejected"):
            return {"file": path.name, "sha256": sha, "status": "duplicate", "previous_status": row.status}
        file_id = row.id
        row.status = "processing"
        row.archive_path = str(archive_copy(path, "ehr", sha, business_date or dt.date.today()))
    stats: Counter[str] = Counter()
    quality = IngestQuality(engine, INTERFACE, sha, business_date, validate)
    with session_scope(engine) as session:
        cw = Crosswalks.load(session)
    units: Callable[..., Iterable[IngestBatch]] = _hl7_units
    if path.suffix.lower() == ".ndjson":
        units = partial(_fhir_units, context=fhir_context.read_context(engine, cw))
    # One writer thread: while it maps and writes batch n (the database driver releases the GIL),
    # this thread parses batch n+1. At most two batches are in memory; writes stay in file order.
    # Once the last batch is mapped, this thread runs GX on the file's rows while the writer waits
    # on the database; the results are stored only after the writes succeeded.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ehr-writer") as writer:
        pending: Future[None] | None = None
        mapped = threading.Event()
        for batch in units(path, sha, file_id, business_date, stats):
            if not len(batch):
                continue
            if pending is not None:
                pending.result()
            mapped = threading.Event()
            pending = writer.submit(_flush, engine, batch, cw, stats, quality, mapped)
        if pending is not None:
            mapped.wait()
            if pending.done():
                pending.result()  # a failed write raises before any validation
        validated = quality.validate()
        if pending is not None:
            pending.result()
    quality.store(validated)
    # An HL7 file with no message is malformed; a FHIR bulk export with no resource is a quiet day.
    empty_is_error = path.suffix.lower() != ".ndjson"
    status = "rejected" if stats["messages"] == 0 and empty_is_error else "processed"
    with session_scope(engine) as session:
        file_row = session.get(InboundFile, file_id)
        assert file_row is not None
        file_row.status = status
        file_row.processed_at = utcnow()
        file_row.detail = ", ".join(f"{k}={v}" for k, v in sorted(stats.items()))
        if status == "rejected":
            exceptions_repo.open_exception(
                session, kind="business", reason_code="HL7_PARSE_ERROR", interface=INTERFACE, record_type="file",
                record_key=sha, summary=f"{path.name}: no HL7 message could be read ({_why_empty(stats)})"[:480],
                detail={"file": path.name},
            )
    return {"file": path.name, "sha256": sha, "status": status, **dict(stats)}


def _why_empty(stats: Counter[str]) -> str:
    """The framer's own reason a file yielded no message (empty, no MSH, truncated ...)."""
    return next((key.split(":", 1)[1] for key in stats if key.startswith("empty_reason:")), "empty or not HL7")
