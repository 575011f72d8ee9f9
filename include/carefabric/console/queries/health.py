"""Interface health: files, open exceptions, last postings and reconciliation per interface."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carefabric.console.queries.common import (
    INTERFACES,
    _day_bounds,
    iso,
    posting_json,
    run_json,
    today,
)
from carefabric.store.models import (
    AuditLog,
    BillingClaim,
    ErpCompany,
    ErpCostCenter,
    ErpGlAccount,
    ErpItem,
    ErpLocation,
    ErpPayer,
    ErpPeriod,
    ErpPosting,
    ExceptionRecord,
    InboundFile,
    ReconciliationItem,
    ReconciliationRun,
    Watermark,
)

# --------------------------------------------------------------------------- health


def health(session: Session, day: dt.date | None = None) -> dict[str, Any]:
    """Per interface: files today and in total, open exceptions by kind and reason, last activity."""
    day = day or today()
    start, end = _day_bounds(day)
    files = _file_counts(session, start, end)
    open_exc, opened_today = _exception_counts(session, start, end)
    erp = erp_summary(session)
    recon = last_reconciliation(session)
    extras: dict[str, dict[str, Any]] = {
        "erp_posting": {"last_posting": erp["last_posting"], "postings_by_status": erp["by_status"]},
        "claims_reconciliation": {"last_run": recon},
        "billing_sync": _billing_sync(session),
        "erp_master_data": _master_data(session),
        "exception_replay": _replays(session),
    }
    names = list(INTERFACES) + sorted(n for n in set(files["total"]) | set(open_exc) if n and n not in INTERFACES)
    interfaces = []
    for name in names:
        exc = open_exc.get(name) or {"open": 0, "business": 0, "transient": 0, "by_reason": {}}
        entry: dict[str, Any] = {
            "interface": name,
            "files": _files_entry(files, name),
            "exceptions": {**exc, "opened_today": opened_today.get(name, 0)},
            **extras.get(name, {}),
        }
        entry["state"] = _state(entry)
        interfaces.append(entry)
    totals_open = {k: sum(e["exceptions"].get(k, 0) for e in interfaces) for k in ("open", "business", "transient")}
    return {
        "day": day.isoformat(),
        "generated_at": iso(dt.datetime.now(dt.UTC)),
        "interfaces": interfaces,
        "exceptions": totals_open,
        "erp": erp,
        "reconciliation": {"last_run": recon},
    }


def _file_counts(session: Session, start: dt.datetime, end: dt.datetime) -> dict[str, Any]:
    """Inbound files per interface: by status in total, received and finished today, the last one."""
    total: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for interface, status, n in session.execute(
        select(InboundFile.interface, InboundFile.status, func.count()).group_by(InboundFile.interface, InboundFile.status)
    ):
        total[interface or ""][status] += n
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
    last = {
        f.interface or "": f
        for f in session.scalars(
            select(InboundFile).where(
                InboundFile.id.in_(select(func.max(InboundFile.id)).group_by(InboundFile.interface).scalar_subquery())
            )
        )
    }
    return {"total": total, "received_today": received_today, "done_today": done_today, "last": last}


def _files_entry(files: dict[str, Any], name: str) -> dict[str, Any]:
    totals = files["total"].get(name, {})
    today_done = files["done_today"].get(name, {})
    last = files["last"].get(name)
    return {
        "today": {
            "received": files["received_today"].get(name, 0),
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
    }


def _exception_counts(session: Session, start: dt.datetime, end: dt.datetime) -> tuple[dict[str, Any], dict[str, int]]:
    """Open exceptions per interface (by kind and reason) and exceptions opened today."""
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
    return open_exc, opened_today


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
    tables: dict[str, Any] = {  # every model here has synced_at (ERP master replicas)
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
