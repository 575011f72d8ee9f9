"""What the operator console and CLI show: interface health, the exception queue, traces, crosswalks.

Plain functions over a SQLAlchemy ``Session`` returning JSON-ready dicts (amounts as decimal
strings, times in ISO 8601). Shared by the FastAPI console and the ``carefabric`` CLI, so both
show the same thing. No PHI leaves here: raw payloads (``raw_messages.payload``) are never
read, and neither are patient tokens or encounter ids; what is shown is control ids, line keys,
claim ids, file names, codes and amounts.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Iterable, Iterator, Sequence
from typing import Any

from sqlalchemy import Select, func, or_, select
from sqlalchemy.orm import Session

from carefabric.money import format_cents
from carefabric.store.crosswalks import SPECS
from carefabric.store.models import (
    AuditLog,
    BillingClaim,
    Charge,
    CrosswalkHistory,
    ErpCompany,
    ErpCostCenter,
    ErpGlAccount,
    ErpItem,
    ErpLocation,
    ErpPayer,
    ErpPeriod,
    ErpPosting,
    ExceptionEvent,
    ExceptionRecord,
    InboundFile,
    PostingContribution,
    RawMessage,
    ReconciliationItem,
    ReconciliationRun,
    RemitClaim,
    Remittance,
    Watermark,
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
    actor: str = "operator",
) -> str:
    """The ``airflow dags trigger`` command that replays these exceptions through the DAG."""
    import json

    conf: dict[str, Any] = {}
    if exception_ids:
        conf["exception_ids"] = [int(i) for i in exception_ids]
    if reason_code:
        conf["reason_code"] = reason_code
    if interface:
        conf["interface"] = interface
    conf["actor"] = actor
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


# --------------------------------------------------------------------------- health


def health(session: Session, day: dt.date | None = None) -> dict[str, Any]:
    """Per interface: files today and in total, open exceptions by kind and reason, last activity."""
    day = day or today()
    start, end = _day_bounds(day)

    files_total: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for interface, status, n in session.execute(
        select(InboundFile.interface, InboundFile.status, func.count()).group_by(InboundFile.interface, InboundFile.status)
    ):
        files_total[interface or ""][status] += n
    received_today = dict(
        session.execute(
            select(InboundFile.interface, func.count())
            .where(InboundFile.received_at >= start, InboundFile.received_at < end)
            .group_by(InboundFile.interface)
        ).all()
    )
    done_today: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for interface, status, n in session.execute(
        select(InboundFile.interface, InboundFile.status, func.count())
        .where(InboundFile.processed_at >= start, InboundFile.processed_at < end)
        .group_by(InboundFile.interface, InboundFile.status)
    ):
        done_today[interface or ""][status] += n
    last_files: dict[str, InboundFile] = {}
    for f in session.scalars(
        select(InboundFile).where(
            InboundFile.id.in_(select(func.max(InboundFile.id)).group_by(InboundFile.interface).scalar_subquery())
        )
    ):
        last_files[f.interface or ""] = f

    open_exc: dict[str, dict[str, Any]] = defaultdict(
        lambda: {"open": 0, "business": 0, "transient": 0, "by_reason": {}}
    )
    for interface, kind, reason, n in session.execute(
        select(ExceptionRecord.interface, ExceptionRecord.kind, ExceptionRecord.reason_code, func.count())
        .where(ExceptionRecord.status == "open")
        .group_by(ExceptionRecord.interface, ExceptionRecord.kind, ExceptionRecord.reason_code)
        .order_by(ExceptionRecord.reason_code)
    ):
        entry = open_exc[interface]
        entry["open"] += n
        entry[kind] = entry.get(kind, 0) + n
        entry["by_reason"][reason] = entry["by_reason"].get(reason, 0) + n
    opened_today = dict(
        session.execute(
            select(ExceptionRecord.interface, func.count())
            .where(ExceptionRecord.created_at >= start, ExceptionRecord.created_at < end)
            .group_by(ExceptionRecord.interface)
        ).all()
    )

    erp = erp_summary(session)
    recon = last_reconciliation(session)
    extras: dict[str, dict[str, Any]] = {
        "erp_posting": {"last_posting": erp["last_posting"], "postings_by_status": erp["by_status"]},
        "claims_reconciliation": {"last_run": recon},
        "billing_sync": _billing_sync(session),
        "erp_master_data": _master_data(session),
        "exception_replay": _replays(session),
    }

    names = list(INTERFACES) + sorted(
        n for n in set(files_total) | set(open_exc) if n and n not in INTERFACES
    )
    interfaces = []
    for name in names:
        totals = files_total.get(name, {})
        today_done = done_today.get(name, {})
        last = last_files.get(name)
        exc = open_exc.get(name) or {"open": 0, "business": 0, "transient": 0, "by_reason": {}}
        entry: dict[str, Any] = {
            "interface": name,
            "files": {
                "today": {
                    "received": received_today.get(name, 0),
                    "processed": today_done.get("processed", 0),
                    "rejected": today_done.get("rejected", 0),
                    "duplicate": today_done.get("duplicate", 0),
                },
                "total": {
                    "received": sum(totals.values()),
                    "processed": totals.get("processed", 0),
                    "rejected": totals.get("rejected", 0),
                    "duplicate": totals.get("duplicate", 0),
                    "in_progress": totals.get("received", 0) + totals.get("processing", 0),
                },
                "last_file_at": iso(last.received_at) if last else None,
                "last_file_name": last.name if last else None,
                "last_file_status": last.status if last else None,
            },
            "exceptions": {**exc, "opened_today": opened_today.get(name, 0)},
            **extras.get(name, {}),
        }
        entry["state"] = _state(entry)
        interfaces.append(entry)

    totals_open = {"open": 0, "business": 0, "transient": 0}
    for entry in interfaces:
        for k in totals_open:
            totals_open[k] += entry["exceptions"].get(k, 0)
    return {
        "day": day.isoformat(),
        "generated_at": iso(dt.datetime.now(dt.UTC)),
        "interfaces": interfaces,
        "exceptions": totals_open,
        "erp": erp,
        "reconciliation": {"last_run": recon},
    }


def _state(entry: dict[str, Any]) -> str:
    """``failing`` (transient exceptions open, postings rejected/failed, files rejected today),
    ``attention`` (business exceptions open, unmatched reconciliation items), ``ok``, or ``idle``."""
    exc = entry["exceptions"]
    last_posting = entry.get("last_posting") or {}
    if exc.get("transient") or last_posting.get("status") in ("rejected", "failed"):
        return "failing"
    if entry["files"]["today"]["rejected"]:
        return "failing"
    run = entry.get("last_run") or {}
    if exc.get("business") or (run.get("unmatched") or 0) > 0 or run.get("status") == "failed":
        return "attention"
    active = (
        entry["files"]["total"]["received"]
        or last_posting
        or run
        or entry.get("last_sync_at")
        or entry.get("last_replay")
    )
    return "ok" if active else "idle"


def erp_summary(session: Session) -> dict[str, Any]:
    last = session.scalars(select(ErpPosting).order_by(ErpPosting.updated_at.desc(), ErpPosting.id.desc()).limit(1)).first()
    by_status = dict(session.execute(select(ErpPosting.status, func.count()).group_by(ErpPosting.status)).all())
    return {"last_posting": posting_json(last) if last else None, "by_status": by_status}


def last_reconciliation(session: Session) -> dict[str, Any] | None:
    run = session.scalars(
        select(ReconciliationRun).order_by(ReconciliationRun.started_at.desc(), ReconciliationRun.id.desc()).limit(1)
    ).first()
    if run is None:
        return None
    items = dict(
        session.execute(
            select(ReconciliationItem.status, func.count())
            .where(ReconciliationItem.run_id == run.id)
            .group_by(ReconciliationItem.status)
        ).all()
    )
    return run_json(run, items)


def _billing_sync(session: Session) -> dict[str, Any]:
    marks = {w.name: w.value for w in session.scalars(select(Watermark).where(Watermark.interface == "billing_sync"))}
    last = session.scalar(select(func.max(Watermark.updated_at)).where(Watermark.interface == "billing_sync"))
    claims = session.scalar(select(func.count()).select_from(BillingClaim)) or 0
    return {"watermarks": marks, "last_sync_at": iso(last), "billing_claims": claims}


def _master_data(session: Session) -> dict[str, Any]:
    tables = {
        "companies": ErpCompany,
        "cost_centers": ErpCostCenter,
        "gl_accounts": ErpGlAccount,
        "items": ErpItem,
        "locations": ErpLocation,
        "payers": ErpPayer,
        "periods": ErpPeriod,
    }
    counts = {name: session.scalar(select(func.count()).select_from(model)) or 0 for name, model in tables.items()}
    last = max(
        (t for t in (session.scalar(select(func.max(m.synced_at))) for m in tables.values()) if t is not None),
        default=None,
    )
    inactive = session.scalar(select(func.count()).select_from(ErpCostCenter).where(ErpCostCenter.active.is_(False))) or 0
    return {"master_rows": counts, "last_sync_at": iso(last), "inactive_cost_centers": inactive}


def _replays(session: Session) -> dict[str, Any]:
    last = session.scalars(
        select(AuditLog).where(AuditLog.action.in_(("replay", "exception.replay"))).order_by(AuditLog.id.desc()).limit(1)
    ).first()
    replayed = session.scalar(select(func.count()).select_from(ExceptionRecord).where(ExceptionRecord.status == "replayed")) or 0
    return {
        "last_replay": {"at": iso(last.at), "actor": last.actor, "target": last.target} if last else None,
        "replayed_exceptions": replayed,
    }


# --------------------------------------------------------------------------- exceptions


def _exception_filters(
    stmt: Select[Any], status: str | None, interface: str | None, reason_code: str | None, kind: str | None
) -> Select[Any]:
    if status and status != "all":
        stmt = stmt.where(ExceptionRecord.status == status)
    if interface:
        stmt = stmt.where(ExceptionRecord.interface == interface)
    if reason_code:
        stmt = stmt.where(ExceptionRecord.reason_code == reason_code)
    if kind:
        stmt = stmt.where(ExceptionRecord.kind == kind)
    return stmt


def list_exceptions(
    session: Session,
    *,
    status: str | None = None,
    interface: str | None = None,
    reason_code: str | None = None,
    kind: str | None = None,
    page: int = 1,
    page_size: int = 50,
) -> dict[str, Any]:
    """One page of exceptions (newest first) with the total and the values filters can take."""
    page = max(1, page)
    page_size = max(1, min(page_size, 500))
    total = session.scalar(
        _exception_filters(select(func.count()).select_from(ExceptionRecord), status, interface, reason_code, kind)
    )
    rows = session.scalars(
        _exception_filters(select(ExceptionRecord), status, interface, reason_code, kind)
        .order_by(ExceptionRecord.id.desc())
        .offset((page - 1) * page_size)
        .limit(page_size)
    )
    return {
        "total": total or 0,
        "page": page,
        "page_size": page_size,
        "pages": max(1, -(-(total or 0) // page_size)),
        "filters": {"status": status, "interface": interface, "reason_code": reason_code, "kind": kind},
        "items": [exception_json(e) for e in rows],
    }


def exception_facets(session: Session) -> dict[str, list[str]]:
    """Distinct statuses, interfaces and reason codes present (for filter menus)."""
    return {
        "status": sorted(set(session.scalars(select(ExceptionRecord.status).distinct()))),
        "interface": sorted(set(session.scalars(select(ExceptionRecord.interface).distinct()))),
        "reason_code": sorted(set(session.scalars(select(ExceptionRecord.reason_code).distinct()))),
    }


def exception_detail(session: Session, exception_id: int) -> dict[str, Any]:
    """One exception with its event history, related audit entries and how to replay it."""
    exc = session.get(ExceptionRecord, exception_id)
    if exc is None:
        raise LookupError(f"no exception {exception_id}")
    out = exception_json(exc, events=True)
    out["audit"] = [
        {"at": iso(a.at), "actor": a.actor, "action": a.action, "detail": a.detail}
        for a in session.scalars(
            select(AuditLog)
            .where(AuditLog.target.startswith(f"exception:{exc.id}:", autoescape=True))
            .order_by(AuditLog.id)
        )
    ]
    out["trace_key"] = trace_key_for(exc)
    out["replay_command"] = replay_command([exc.id]) if exc.status == "open" else None
    return out


def trace_key_for(exc: ExceptionRecord) -> str:
    """The key to trace an exception's record with (a line key, a file name, a message key)."""
    if exc.record_type == "file" and "|" in exc.record_key:
        return exc.record_key.split("|", 1)[0]
    if exc.record_type == "message" and exc.detail and exc.detail.get("control_id"):
        return str(exc.detail["control_id"])
    return exc.record_key


# --------------------------------------------------------------------------- trace


class _Trace:
    def __init__(self) -> None:
        self.files: dict[int, InboundFile] = {}
        self.messages: dict[int, RawMessage] = {}
        self.charges: dict[str, Charge] = {}
        self.remittances: dict[int, Remittance] = {}
        self.claims: dict[str, list[RemitClaim]] = defaultdict(list)
        self.claim_ids: set[str] = set()
        self.trace_numbers: set[str] = set()
        self.truncated: dict[str, bool] = {}
        self.matched_as: list[str] = []


def _add_charges_of_messages(session: Session, t: _Trace, messages: Iterable[RawMessage]) -> None:
    pairs = {(m.sender, m.control_id) for m in messages}
    by_control: dict[str, set[str]] = defaultdict(set)
    for sender, control in pairs:
        by_control[control].add(sender)
    for chunk in _chunks(by_control):
        for c in session.scalars(select(Charge).where(Charge.message_control_id.in_(chunk)).order_by(Charge.id)):
            if c.source in by_control[c.message_control_id]:
                if len(t.charges) >= TRACE_LIMIT:
                    t.truncated["charges"] = True
                    return
                t.charges[c.line_key] = c


def _add_messages_of_charges(session: Session, t: _Trace, charges: Iterable[Charge]) -> None:
    wanted = {(c.source, c.message_control_id) for c in charges}
    for chunk in _chunks({control for _, control in wanted}):
        for m in session.scalars(select(RawMessage).where(RawMessage.control_id.in_(chunk))):
            if (m.sender, m.control_id) in wanted:
                t.messages[m.id] = m


def _add_files(session: Session, t: _Trace, file_ids: Iterable[int]) -> None:
    missing = [i for i in set(file_ids) if i is not None and i not in t.files]
    for chunk in _chunks(missing):
        for f in session.scalars(select(InboundFile).where(InboundFile.id.in_(chunk))):
            t.files[f.id] = f


def _add_remittances(session: Session, t: _Trace, remits: Iterable[Remittance], *, with_claims: bool) -> None:
    for r in remits:
        t.remittances[r.id] = r
        t.trace_numbers.add(r.trace_number)
        if with_claims:
            for claim in r.claims:
                t.claims[claim.patient_control_number].append(claim)
                t.claim_ids.add(claim.patient_control_number)
    _add_files(session, t, [r.file_id for r in t.remittances.values() if r.file_id])


def _seed(session: Session, t: _Trace, key: str) -> None:
    # A charge line key.
    charge = session.scalars(select(Charge).where(Charge.line_key == key)).first()
    if charge is not None:
        t.matched_as.append("line_key")
        t.charges[charge.line_key] = charge
        _add_messages_of_charges(session, t, [charge])
    # A message control id (MSH-10, FHIR resource id).
    messages = list(session.scalars(select(RawMessage).where(RawMessage.control_id == key)))
    if messages:
        t.matched_as.append("message_control_id")
        for m in messages:
            t.messages[m.id] = m
        _add_charges_of_messages(session, t, messages)
    # A claim id (CLP01 = billing claim id).
    remit_claims = list(session.scalars(select(RemitClaim).where(RemitClaim.patient_control_number == key)))
    billed = session.scalar(select(func.count()).select_from(BillingClaim).where(BillingClaim.claim_id == key))
    if remit_claims or billed:
        t.matched_as.append("claim_id")
        t.claim_ids.add(key)
        for claim in remit_claims:
            t.claims[key].append(claim)
        _add_remittances(session, t, {c.remittance for c in remit_claims}, with_claims=False)
    # A payment trace number (TRN02).
    remits = list(session.scalars(select(Remittance).where(Remittance.trace_number == key)))
    if remits:
        t.matched_as.append("trace_number")
        _add_remittances(session, t, remits, with_claims=True)
    # A file: sha256 (or a prefix of 8+ hex characters) or its name.
    conds = [InboundFile.name == key, InboundFile.sha256 == key.lower()]
    if len(key) >= 8 and all(ch in "0123456789abcdefABCDEF" for ch in key):
        conds.append(InboundFile.sha256.startswith(key.lower()))
    files = list(session.scalars(select(InboundFile).where(or_(*conds))))
    if files:
        t.matched_as.append("file")
        for f in files:
            t.files[f.id] = f
        ids = [f.id for f in files]
        msgs = list(
            session.scalars(
                select(RawMessage).where(RawMessage.file_id.in_(ids)).order_by(RawMessage.id).limit(TRACE_LIMIT + 1)
            )
        )
        if len(msgs) > TRACE_LIMIT:
            t.truncated["messages"] = True
            msgs = msgs[:TRACE_LIMIT]
        for m in msgs:
            t.messages[m.id] = m
        _add_charges_of_messages(session, t, msgs)
        _add_remittances(
            session, t, session.scalars(select(Remittance).where(Remittance.file_id.in_(ids))), with_claims=True
        )
    # An ERP posting external id.
    posting = session.scalars(select(ErpPosting).where(ErpPosting.external_id == key)).first()
    if posting is not None:
        t.matched_as.append("posting_external_id")
    _add_files(session, t, [m.file_id for m in t.messages.values() if m.file_id])


def trace(session: Session, key: str) -> dict[str, Any]:
    """Everything the store knows about ``key``: a line key, a message control id, a claim id
    (CLP01), a payment trace number, a file sha256 (or 8+ character prefix) or file name.

    Path: inbound files -> raw messages (status only, never the payload) -> charges -> exceptions
    -> ERP postings the records contributed to -> reconciliation items (latest run per date).
    """
    key = key.strip()
    if not key:
        raise ValueError("give a line key, control id, claim id, trace number, file sha256 or file name")
    t = _Trace()
    _seed(session, t, key)

    # Exceptions about any of these records.
    conds: list[Any] = [ExceptionRecord.record_key == key, ExceptionRecord.record_key.startswith(f"{key}|", autoescape=True)]
    if t.charges:
        for chunk in _chunks(t.charges):
            conds.append((ExceptionRecord.record_type == "charge") & ExceptionRecord.record_key.in_(chunk))
    for f in t.files.values():
        conds.append(ExceptionRecord.record_key == f.sha256)
        conds.append(ExceptionRecord.record_key == f"{f.name}|{f.sha256[:12]}")
        # The same bytes delivered under another name (a duplicate) are keyed by that name.
        conds.append((ExceptionRecord.record_type == "file") & ExceptionRecord.record_key.endswith(f"|{f.sha256[:12]}"))
    error_keys = [
        f"{t.files[m.file_id].sha256[:12]}#{m.position}"
        for m in t.messages.values()
        if m.status == "error" and m.file_id in t.files and m.position is not None
    ]
    if error_keys:
        conds.append((ExceptionRecord.record_type == "message") & ExceptionRecord.record_key.in_(error_keys))
    if t.messages:
        conds.append(ExceptionRecord.message_id.in_(list(t.messages)[:CHUNK]))
    if t.remittances:
        conds.append(
            (ExceptionRecord.record_type == "remittance")
            & ExceptionRecord.record_key.in_(
                [
                    f"{r.interchange_control}|{r.group_control}|{r.transaction_control}|{r.sender_id}"
                    for r in t.remittances.values()
                ]
            )
        )
    exceptions = list(session.scalars(select(ExceptionRecord).where(or_(*conds)).order_by(ExceptionRecord.id)))

    # ERP postings: contributions of these lines, claims, traces.
    contrib_conds: list[Any] = [PostingContribution.record_key == key]
    for chunk in _chunks(t.charges):
        contrib_conds.append(PostingContribution.record_key.in_(chunk))
    for value in sorted(t.claim_ids | t.trace_numbers):
        contrib_conds.append(PostingContribution.record_key == value)
        contrib_conds.append(PostingContribution.record_key.startswith(f"{value}|", autoescape=True))
    if "posting_external_id" in t.matched_as:
        contrib_conds = [ErpPosting.external_id == key]
    postings: dict[int, dict[str, Any]] = {}
    rows = session.execute(
        select(ErpPosting, PostingContribution)
        .join(PostingContribution, PostingContribution.posting_id == ErpPosting.id)
        .where(or_(*contrib_conds))
        .order_by(ErpPosting.id, PostingContribution.id)
        .limit(5000)
    ).all()
    for posting, contribution in rows:
        entry = postings.setdefault(posting.id, {**posting_json(posting), "contributions": {}})
        if "posting_external_id" in t.matched_as and len(entry["contributions"]) >= 50:
            continue  # a whole document: show a sample of what it carries
        label = f"{contribution.record_type} {contribution.record_key}"
        by_account = entry["contributions"].setdefault(label, defaultdict(int))
        by_account[contribution.account] += contribution.amount_cents
    posting_list = []
    for entry in postings.values():
        entry["contributions"] = [
            {"record": label, "account": account, "amount": money(cents)}
            for label, accounts in entry["contributions"].items()
            for account, cents in sorted(accounts.items())
        ]
        posting_list.append(entry)

    # Reconciliation items (latest run of each business date) that mention these records.
    latest_runs = {
        run.business_date: run
        for run in session.scalars(select(ReconciliationRun).order_by(ReconciliationRun.business_date, ReconciliationRun.run_number))
    }
    runs_by_id = {run.id: run for run in latest_runs.values()}
    item_conds: list[Any] = []
    charge_keys = {f"{c.business_date.isoformat()}|{c.cost_center}" for c in t.charges.values() if c.business_date and c.cost_center}
    if charge_keys:
        item_conds.append((ReconciliationItem.check_name == "charges") & ReconciliationItem.item_key.in_(sorted(charge_keys)))
    for claim_id in sorted(t.claim_ids):
        item_conds.append(
            (ReconciliationItem.check_name == "claims")
            & or_(ReconciliationItem.item_key == claim_id, ReconciliationItem.item_key.startswith(f"{claim_id}|", autoescape=True))
        )
    if t.trace_numbers:
        item_conds.append((ReconciliationItem.check_name == "cash") & ReconciliationItem.item_key.in_(sorted(t.trace_numbers)))
    recon: list[dict[str, Any]] = []
    if item_conds and runs_by_id:
        for item in session.scalars(
            select(ReconciliationItem)
            .where(ReconciliationItem.run_id.in_(list(runs_by_id)), or_(*item_conds))
            .order_by(ReconciliationItem.run_id, ReconciliationItem.id)
        ):
            recon.append(recon_item_json(item, runs_by_id[item.run_id]))

    billing = []
    if t.claim_ids:
        for chunk in _chunks(t.claim_ids):
            for b in session.scalars(select(BillingClaim).where(BillingClaim.claim_id.in_(chunk))):
                billing.append(
                    {"claim_id": b.claim_id, "facility": b.facility, "payer_id": b.payer_id,
                     "total_charge": money(b.total_charge_cents), "status": b.status,
                     "submitted_date": iso(b.submitted_date)}
                )
    claims = [
        {
            "claim_id": claim_id,
            "remittance_id": c.remittance_id,
            "clp02_status": c.status,
            "charge": money(c.charge_cents),
            "paid": money(c.paid_cents),
            "patient_responsibility": money(c.patient_resp_cents),
        }
        for claim_id, items in sorted(t.claims.items())
        for c in items
    ]
    found = bool(t.matched_as or exceptions or posting_list or recon)
    return {
        "key": key,
        "found": found,
        "matched_as": t.matched_as or (["exception_record_key"] if exceptions else []),
        "files": [file_json(f) for f in sorted(t.files.values(), key=lambda f: f.id)],
        "messages": [message_json(m) for m in sorted(t.messages.values(), key=lambda m: m.id)],
        "charges": [charge_json(c) for c in sorted(t.charges.values(), key=lambda c: c.id)],
        "remittances": [remittance_json(r) for r in sorted(t.remittances.values(), key=lambda r: r.id)],
        "claims": claims,
        "billing_claims": sorted(billing, key=lambda b: b["claim_id"]),
        "exceptions": [exception_json(e) for e in exceptions],
        "postings": posting_list,
        "reconciliation": recon,
        "truncated": t.truncated,
    }


# --------------------------------------------------------------------------- crosswalks


def crosswalk_rows(session: Session, table: str) -> dict[str, Any]:
    """Every row of one crosswalk with its version and who changed it last."""
    if table not in SPECS:
        raise LookupError(f"no crosswalk {table!r} (one of {', '.join(SPECS)})")
    spec = SPECS[table]
    order = [getattr(spec.model, c) for c in spec.key]
    rows = []
    for r in session.scalars(select(spec.model).order_by(*order)):
        row = {c: getattr(r, c) for c in (*spec.key, *spec.values)}
        row.update(key="|".join(str(getattr(r, c)) for c in spec.key), version=r.version,
                   valid_from=iso(r.valid_from), changed_by=r.changed_by)
        rows.append(row)
    return {"table": table, "key": list(spec.key), "values": list(spec.values), "rows": rows}


def crosswalks_overview(session: Session) -> dict[str, Any]:
    out = {}
    for name, spec in SPECS.items():
        count, version = session.execute(select(func.count(), func.max(spec.model.version)).select_from(spec.model)).one()
        out[name] = {"rows": count, "max_version": version or 0}
    return out


def crosswalk_history(session: Session, table: str | None = None, key: str | None = None, limit: int = 100) -> list[dict[str, Any]]:
    stmt = select(CrosswalkHistory)
    if table:
        stmt = stmt.where(CrosswalkHistory.crosswalk == table)
    if key:
        stmt = stmt.where(CrosswalkHistory.key == key)
    return [
        {"crosswalk": h.crosswalk, "key": h.key, "version": h.version, "action": h.action, "before": h.before,
         "after": h.after, "changed_at": iso(h.changed_at), "changed_by": h.changed_by}
        for h in session.scalars(stmt.order_by(CrosswalkHistory.id.desc()).limit(max(1, min(limit, 1000))))
    ]


def audit_entries(session: Session, limit: int = 100) -> list[dict[str, Any]]:
    return [
        {"id": a.id, "at": iso(a.at), "actor": a.actor, "action": a.action, "target": a.target, "detail": a.detail}
        for a in session.scalars(select(AuditLog).order_by(AuditLog.id.desc()).limit(max(1, min(limit, 1000))))
    ]
