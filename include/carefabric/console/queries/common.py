"""Shared by the console's queries: constants, formatting, and the JSON shapes of store rows.

No PHI leaves here: raw payloads (``raw_messages.payload``) are never read, and neither are
patient tokens or encounter ids; what is shown is control ids, line keys, claim ids, file names,
codes and amounts.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from carefabric.money import format_cents
from carefabric.store.models import (
    Charge,
    ErpPosting,
    ExceptionEvent,
    ExceptionRecord,
    InboundFile,
    RawMessage,
    ReconciliationItem,
    ReconciliationRun,
    Remittance,
)

INTERFACES = (
    "ehr_ingest",
    "payer_remittance",
    "billing_sync",
    "erp_posting",
    "claims_reconciliation",
    "exception_replay",
    "erp_master_data",
)
REPLAY_DAG = "exception_replay"
CHUNK = 500
TRACE_LIMIT = 500  # rows per section of a trace (a file can hold thousands of messages)


# --------------------------------------------------------------------------- helpers


def iso(value: dt.datetime | dt.date | None) -> str | None:
    return value.isoformat() if value is not None else None


def money(cents: int | None) -> str | None:
    return format_cents(cents) if cents is not None else None


def _chunks(values: Iterable[Any], size: int = CHUNK) -> Iterator[list[Any]]:
    items = list(values)
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _day_bounds(day: dt.date) -> tuple[dt.datetime, dt.datetime]:
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    return start, start + dt.timedelta(days=1)


def today() -> dt.date:
    return dt.datetime.now(dt.UTC).date()


def replay_command(
    exception_ids: Sequence[int] | None = None,
    reason_code: str | None = None,
    interface: str | None = None,
) -> str:
    """The ``airflow dags trigger`` command that replays these exceptions through the DAG.

    No actor in the conf: Airflow records who triggers (``airflow dags trigger`` names the OS
    user, the REST API the login) and the DAG audits the replay under that name."""
    import json

    conf: dict[str, Any] = {}
    if exception_ids:
        conf["exception_ids"] = [int(i) for i in exception_ids]
    if reason_code:
        conf["reason_code"] = reason_code
    if interface:
        conf["interface"] = interface
    text = json.dumps(conf, separators=(",", ":")).replace("'", "'\\''")
    return f"airflow dags trigger {REPLAY_DAG} --conf '{text}'"


# --------------------------------------------------------------------------- serializers


def file_json(f: InboundFile) -> dict[str, Any]:
    return {
        "id": f.id,
        "source": f.source,
        "interface": f.interface,
        "name": f.name,
        "sha256": f.sha256,
        "size_bytes": f.size_bytes,
        "status": f.status,
        "received_at": iso(f.received_at),
        "processed_at": iso(f.processed_at),
        "detail": f.detail,
    }


def message_json(m: RawMessage) -> dict[str, Any]:
    """A raw message without its payload (the payload is PHI and never leaves the store)."""
    return {
        "id": m.id,
        "sender": m.sender,
        "control_id": m.control_id,
        "message_type": m.message_type,
        "interface": m.interface,
        "status": m.status,
        "file_id": m.file_id,
        "position": m.position,
        "received_at": iso(m.received_at),
        "error": m.error,
    }


def charge_json(c: Charge) -> dict[str, Any]:
    return {
        "line_key": c.line_key,
        "facility": c.facility,
        "message_control_id": c.message_control_id,
        "line_number": c.line_number,
        "transaction_id": c.transaction_id,
        "transaction_date": iso(c.transaction_date),
        "business_date": iso(c.business_date),
        "transaction_type": c.transaction_type,
        "cdm_code": c.cdm_code,
        "quantity": str(c.quantity.normalize()) if hasattr(c.quantity, "normalize") else str(c.quantity),
        "amount": money(c.amount_cents),
        "department": c.department,
        "procedure_code": c.procedure_code,
        "status": c.status,
        "company": c.company,
        "cost_center": c.cost_center,
        "revenue_account": c.revenue_account,
        "erp_item": c.erp_item,
        "billing_charge_id": c.billing_charge_id,
    }


def exception_json(e: ExceptionRecord, *, events: bool = False) -> dict[str, Any]:
    out = {
        "id": e.id,
        "kind": e.kind,
        "reason_code": e.reason_code,
        "interface": e.interface,
        "record_type": e.record_type,
        "record_key": e.record_key,
        "summary": e.summary,
        "detail": e.detail,
        "status": e.status,
        "attempts": e.attempts,
        "created_at": iso(e.created_at),
        "updated_at": iso(e.updated_at),
        "closed_at": iso(e.closed_at),
    }
    if events:
        out["events"] = [event_json(ev) for ev in e.events]
    return out


def event_json(ev: ExceptionEvent) -> dict[str, Any]:
    return {"id": ev.id, "at": iso(ev.at), "action": ev.action, "actor": ev.actor, "note": ev.note}


def posting_json(p: ErpPosting) -> dict[str, Any]:
    return {
        "id": p.id,
        "kind": p.kind,
        "source": p.source,
        "external_id": p.external_id,
        "company": p.company,
        "business_date": iso(p.business_date),
        "status": p.status,
        "erp_document_id": p.erp_document_id,
        "error_code": p.error_code,
        "attempts": p.attempts,
        "debits": money(p.debit_cents),
        "credits": money(p.credit_cents),
        "posted_at": iso(p.posted_at),
        "updated_at": iso(p.updated_at),
    }


def run_json(run: ReconciliationRun, items: dict[str, int] | None = None) -> dict[str, Any]:
    totals = run.control_totals or {}
    out = {
        "id": run.id,
        "business_date": iso(run.business_date),
        "run_number": run.run_number,
        "check_set": run.check_set,
        "status": run.status,
        "started_at": iso(run.started_at),
        "finished_at": iso(run.finished_at),
        "items": totals.get("items_total"),
        "unmatched": totals.get("unmatched_total"),
        "variance": money(totals.get("variance_total_cents")),
    }
    if items is not None:
        out["items"] = sum(items.values())
        out["unmatched"] = sum(n for status, n in items.items() if status != "matched")
        out["items_by_status"] = dict(sorted(items.items()))
    return out


def recon_item_json(item: ReconciliationItem, run: ReconciliationRun) -> dict[str, Any]:
    return {
        "run_id": run.id,
        "business_date": iso(run.business_date),
        "run_number": run.run_number,
        "check": item.check_name,
        "item_key": item.item_key,
        "status": item.status,
        "ehr": money(item.ehr_cents),
        "billing": money(item.billing_cents),
        "remit": money(item.remit_cents),
        "gl": money(item.gl_cents),
        "variance": money(item.variance_cents),
        "reason": item.reason,
    }


def remittance_json(r: Remittance) -> dict[str, Any]:
    return {
        "id": r.id,
        "control_numbers": f"{r.interchange_control}|{r.group_control}|{r.transaction_control}",
        "sender_id": r.sender_id,
        "payer_id": r.payer_id,
        "erp_payer_id": r.erp_payer_id,
        "trace_number": r.trace_number,
        "payment": money(r.payment_cents),
        "payment_date": iso(r.payment_date),
        "business_date": iso(r.business_date),
        "facility": r.facility,
        "status": r.status,
        "file_id": r.file_id,
    }
