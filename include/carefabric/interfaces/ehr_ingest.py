"""EHR ingest: extract files (HL7 v2 batches, FHIR R4 NDJSON) to canonical records, billing charges.

The story, in the order the ``ehr_ingest`` DAG runs it:

1. ``pending_files``: list the landing folder; a file whose sha256 was already processed is
   skipped (a re-dropped file never posts twice).
2. ``ingest_file`` (one mapped task per file): register the file, copy it to the archive, stream
   its messages (bounded memory, any size), keep every raw message with its MSH-10 control id,
   parse to canonical encounters and charges, validate the file's frames with Great
   Expectations, map through the crosswalks, and write everything in bulk. A message that does
   not parse, or a line that does not map, becomes a business exception; the file goes on.
3. ``route_charges``: send mapped charges to billing, one idempotency key per line
   (``line_key``), and mark them routed. Supply lines also feed ERP inventory consumption via
   ``supply_usage`` (posted, summarized per day, by ``erp_posting``).
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import Counter
from collections.abc import Iterable
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import fields
from pathlib import Path
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Engine

from carefabric import hl7
from carefabric.canonical import Charge, Encounter, MappedCharge
from carefabric.clients.billing import BillingClient
from carefabric.fhir import iter_resources
from carefabric.interfaces.common import (
    archive_copy,
    file_digest,
    held_to_exceptions,
    register_file,
    store_quality,
)
from carefabric.mapping import CHARGEABLE_TYPES, Held, map_charge
from carefabric.money import format_cents, to_cents
from carefabric.store import exceptions_repo
from carefabric.store.bulk import insert_ignore
from carefabric.store.crosswalks import Crosswalks
from carefabric.store.db import session_scope
from carefabric.store.models import Charge as ChargeRow
from carefabric.store.models import Encounter as EncounterRow
from carefabric.store.models import InboundFile, RawMessage, SupplyUsage
from carefabric.store.types import utcnow

log = logging.getLogger(__name__)

INTERFACE = "ehr_ingest"
EXTENSIONS = (".hl7", ".ndjson")
CHUNK = 5000


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


# --------------------------------------------------------------------------- canonical -> rows


def charge_row(charge: Charge, business_date: dt.date | None = None) -> dict[str, Any]:
    """The store row of a canonical charge (status received; mapping fills the rest)."""
    return {
        "line_key": charge.line_key,
        "source": charge.source,
        "facility": charge.facility,
        "encounter_id": charge.encounter_id,
        "message_control_id": charge.message_control_id,
        "line_number": charge.line_number,
        "transaction_id": charge.transaction_id,
        "transaction_date": charge.transaction_date,
        "transaction_type": charge.transaction_type,
        "cdm_code": charge.cdm_code,
        "quantity": charge.quantity,
        "amount_cents": to_cents(charge.extended_amount),
        "unit_amount_cents": to_cents(charge.unit_amount) if charge.unit_amount is not None else None,
        "department": charge.department,
        "procedure_code": charge.procedure_code,
        "modifiers": "^".join(charge.modifiers) or None,
        "patient_token": charge.patient_token,
        "business_date": business_date or charge.transaction_date,
        "status": "received",
    }


def apply_mapping(row: dict[str, Any], outcome: MappedCharge | Held | None) -> None:
    """Write a mapping outcome onto a charge row (status mapped/held)."""
    if isinstance(outcome, MappedCharge):
        row.update(
            status="mapped",
            company=outcome.company,
            cost_center=outcome.cost_center,
            revenue_account=outcome.revenue_account,
            erp_item=outcome.erp_item,
        )
    elif isinstance(outcome, Held):
        row.update(status="held", company=None, cost_center=None, revenue_account=None, erp_item=None)


def supply_row(mapped: MappedCharge, business_date: dt.date) -> dict[str, Any]:
    charge = mapped.charge
    return {
        "line_key": charge.line_key,
        "facility": charge.facility,
        "transaction_date": charge.transaction_date,
        "business_date": business_date,
        "item": mapped.erp_item,
        "location": mapped.location,
        "quantity": charge.quantity,
        "unit_cost_cents": to_cents(mapped.item_unit_cost) if mapped.item_unit_cost is not None else None,
        "cost_center": mapped.cost_center,
        "company": mapped.company,
        "status": "mapped",
    }


_ENCOUNTER_COLUMNS = tuple(f.name for f in fields(Encounter) if not f.name.endswith("_phi"))


def encounter_row(enc: Encounter) -> dict[str, Any]:
    """Encounter columns without the ``*_phi`` fields (they stay in the raw message only).

    A shallow read of the fields: every value is a str, datetime or None, so ``asdict``'s
    recursive deep copy (a third of the ingest profile) bought nothing.
    """
    row = {k: getattr(enc, k) for k in _ENCOUNTER_COLUMNS}
    row["encounter_id"] = row["encounter_id"] or ""
    return row


def map_rows(charges: list[Charge], rows: list[dict[str, Any]], cw: Crosswalks) -> tuple[list[dict[str, Any]], list[Held]]:
    """Map charges in memory; return supply rows and held records. Rows are updated in place."""
    supply: list[dict[str, Any]] = []
    held: list[Held] = []
    for charge, row in zip(charges, rows, strict=True):
        if charge.transaction_type not in CHARGEABLE_TYPES:
            continue  # payments/adjustments in FT1 are billing's business, not charge capture
        outcome = map_charge(charge, cw)
        apply_mapping(row, outcome)
        if isinstance(outcome, Held):
            held.append(outcome)
        elif outcome.is_supply:
            supply.append(supply_row(outcome, row["business_date"]))
    return supply, held


# --------------------------------------------------------------------------- one file


class _Batch:
    """Rows gathered from up to ``CHUNK`` messages, written in one transaction."""

    def __init__(self) -> None:
        self.raw: list[dict[str, Any]] = []
        self.encounters: list[dict[str, Any]] = []
        self.charges: list[Charge] = []
        self.charge_rows: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []

    def __len__(self) -> int:
        return len(self.raw)


class _Quality:
    """Canonical rows waiting for Great Expectations, validated a slice at a time.

    GX costs ~70 ms a call whatever the size, so validating per message is out; validating a
    whole 1 GB file as one frame would hold millions of rows. Slices of ``SLICE`` rows keep
    memory bounded and calls few; the nightly report merges the slices of a file per dataset.
    """

    SLICE = 25_000
    CHARGE_COLUMNS = ("line_key", "facility", "encounter_id", "transaction_date", "transaction_type", "cdm_code",
                      "quantity", "amount_cents", "department")

    def __init__(self, engine: Engine, sha: str, business_date: dt.date | None, enabled: bool) -> None:
        self.engine, self.sha, self.business_date, self.enabled = engine, sha, business_date, enabled
        self.rows: dict[str, list[dict[str, Any]]] = {"charges": [], "encounters": []}
        self.parts = 0

    def add(self, batch: _Batch) -> None:
        if not self.enabled:
            return
        self.rows["charges"].extend({k: row[k] for k in self.CHARGE_COLUMNS} for row in batch.charge_rows)
        self.rows["encounters"].extend(
            {"encounter_id": e["encounter_id"], "event_type": e["event_type"], "facility": e["facility"]} for e in batch.encounters
        )
        if max(len(rows) for rows in self.rows.values()) >= self.SLICE:
            self.validate()

    def validate(self) -> None:
        import pandas as pd

        from carefabric.quality import validate_frame

        self.parts += 1
        scope = self.sha if self.parts == 1 else f"{self.sha}#{self.parts}"
        with session_scope(self.engine) as session:
            for dataset, rows in self.rows.items():
                if not rows:
                    continue
                frame = pd.DataFrame(rows)
                if "amount_cents" in frame:
                    frame["amount_cents"] = frame["amount_cents"].astype("int64")
                store_quality(session, interface=INTERFACE, dataset=dataset, scope=scope,
                              business_date=self.business_date, result=validate_frame(dataset, frame))
                rows.clear()

    def finish(self) -> None:
        if self.enabled and any(self.rows.values()):
            self.validate()


def _flush(engine: Engine, batch: _Batch, cw: Crosswalks, stats: Counter[str], quality: _Quality) -> None:
    supply, held = map_rows(batch.charges, batch.charge_rows, cw)
    with session_scope(engine) as session:
        insert_ignore(session, RawMessage, batch.raw, ["sender", "control_id", "message_type"])
        stats["encounters"] += insert_ignore(
            session, EncounterRow, batch.encounters, ["source", "encounter_id", "event_type", "message_control_id"]
        )
        stats["charges"] += insert_ignore(session, ChargeRow, batch.charge_rows, ["line_key"])
        stats["supply_lines"] += insert_ignore(session, SupplyUsage, supply, ["line_key"])
        items = held_to_exceptions(held, interface=INTERFACE) + batch.errors
        if items:
            exceptions_repo.open_exceptions(session, items)
    for h in held:
        stats[f"held:{h.reason_code}"] += 1
    stats["held"] += len(held)
    quality.add(batch)


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


def _hl7_units(path: Path, sha: str, file_id: int, business_date: dt.date | None, stats: Counter[str]) -> Iterable[_Batch]:
    batch = _Batch()
    report = hl7.FileReport()
    for raw in hl7.iter_messages(path, report=report):
        stats["messages"] += 1
        try:
            if raw.error:
                raise hl7.HL7ParseError(raw.error)
            result = hl7.canonicalize(raw)
        except hl7.HL7ParseError as exc:
            position = raw.index + 1
            row, error = _message_error(
                sha, position, reason=exc.reason, reason_code="HL7_PARSE_ERROR", control_id=exc.control_id,
                summary=f"{path.name} message {position}: {exc.reason}", payload=raw.text, file_id=file_id,
                detail={"file": path.name, "position": position, "control_id": exc.control_id, "reason": exc.reason},
            )
            batch.raw.append(row)
            batch.errors.append(error)
            stats["message_errors"] += 1
        else:
            status = "skipped" if result.skipped else "parsed"
            stats[f"type:{result.message_type}"] += 1
            if result.skipped:
                stats["skipped"] += 1
            batch.raw.append(
                {
                    "sender": result.sender,
                    "control_id": result.control_id,
                    "message_type": result.message_type,
                    "interface": INTERFACE,
                    "status": status,
                    "payload": raw.text,
                    "file_id": file_id,
                    "position": raw.index + 1,
                    "error": result.skipped_reason,
                }
            )
            if result.encounter is not None:
                batch.encounters.append(encounter_row(result.encounter))
            for charge in result.charges:
                batch.charges.append(charge)
                batch.charge_rows.append(charge_row(charge, business_date))
        if len(batch) >= CHUNK:
            yield batch
            batch = _Batch()
    if report.empty_reason and stats["messages"] == 0:
        stats["empty"] += 1
        stats["empty_reason:" + report.empty_reason] += 1
    yield batch


def _fhir_units(path: Path, sha: str, file_id: int, business_date: dt.date | None, stats: Counter[str]) -> Iterable[_Batch]:
    batch = _Batch()
    for item in iter_resources(path):
        stats["messages"] += 1
        key = item.resource_id or f"#{item.line_number}"
        if item.error:
            row, error = _message_error(
                sha, item.line_number, reason=item.error, reason_code="FHIR_PARSE_ERROR",
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
             "position": item.line_number, "error": item.skipped_reason}
        )
        if item.encounter is not None:
            batch.encounters.append(encounter_row(item.encounter))
        for charge in item.charges:
            batch.charges.append(charge)
            batch.charge_rows.append(charge_row(charge, business_date))
        if len(batch) >= CHUNK:
            yield batch
            batch = _Batch()
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
    quality = _Quality(engine, sha, business_date, validate)
    with session_scope(engine) as session:
        cw = Crosswalks.load(session)
    units = _fhir_units if path.suffix.lower() == ".ndjson" else _hl7_units
    # One writer thread: while it maps and writes batch n (the database driver releases the GIL),
    # this thread parses batch n+1. At most two batches are in memory; writes stay in file order.
    with ThreadPoolExecutor(max_workers=1, thread_name_prefix="ehr-writer") as writer:
        pending: Future[None] | None = None
        for batch in units(path, sha, file_id, business_date, stats):
            if not len(batch):
                continue
            if pending is not None:
                pending.result()
            pending = writer.submit(_flush, engine, batch, cw, stats, quality)
        if pending is not None:
            pending.result()
    quality.finish()
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


# --------------------------------------------------------------------------- routing


def billing_payload(row: ChargeRow) -> dict[str, Any]:
    """What billing receives for one line: tokens and codes, never names or MRNs."""
    return {
        "idempotency_key": row.line_key,
        "line_key": row.line_key,
        "encounter_id": row.encounter_id,
        "facility": row.facility,
        "transaction_id": row.transaction_id,
        "service_date": row.transaction_date.isoformat(),
        "cdm_code": row.cdm_code,
        "quantity": str(row.quantity.normalize()) if hasattr(row.quantity, "normalize") else str(row.quantity),
        "amount": format_cents(row.amount_cents),
        "department": row.department,
        "cost_center": row.cost_center,
        "revenue_account": row.revenue_account,
        "procedure_code": row.procedure_code,
        "patient_token": row.patient_token,
    }


def route_charges(engine: Engine, billing: BillingClient, *, line_keys: list[str] | None = None) -> dict[str, int]:
    """Send every mapped, unrouted charge to billing; idempotent per line, safe to retry."""
    with session_scope(engine) as session:
        query = select(ChargeRow).where(ChargeRow.status == "mapped").order_by(ChargeRow.id)
        if line_keys is not None:
            query = query.where(ChargeRow.line_key.in_(line_keys))
        rows = list(session.scalars(query))
        payloads = [billing_payload(r) for r in rows]
    if not payloads:
        return {"routed": 0, "replayed": 0, "conflicts": 0}
    results = billing.post_charges(payloads)
    by_key = {r["idempotency_key"]: r for r in results}
    updates, conflicts = [], []
    counts: Counter[str] = Counter()
    for payload in payloads:
        result = by_key.get(payload["idempotency_key"], {})
        counts[result.get("status", "missing")] += 1
        if result.get("status") in ("accepted", "replayed"):
            updates.append({"b_key": payload["line_key"], "b_id": str(result.get("charge_id"))})
        else:
            conflicts.append(payload["line_key"])
    with session_scope(engine) as session:
        if updates:
            session.connection().execute(
                update(ChargeRow.__table__)
                .where(ChargeRow.__table__.c.line_key == bindparam("b_key"))
                .values(status="routed", billing_charge_id=bindparam("b_id"), updated_at=utcnow()),
                updates,
            )
        if conflicts:
            exceptions_repo.open_exceptions(
                session,
                [
                    {"kind": "business", "reason_code": "BILLING_REJECTED", "interface": INTERFACE, "record_type": "charge",
                     "record_key": key, "summary": "billing refused the charge (idempotency key reused with other content)"}
                    for key in conflicts
                ],
            )
    return {"routed": counts["accepted"], "replayed": counts["replayed"], "conflicts": len(conflicts)}
