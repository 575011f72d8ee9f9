"""Judging a business-day run: the store's summary, the faults' exceptions, each date's close.

Used by ``tools/dayrun.py`` (``make demo`` and the whole-DAG tests). What the ERP holds is judged
by ``sandbox.judge``; this module reads carefabric's store: what the faults left open, and each
date's last reconciliation run against the truth's expected items and AR roll-forward.
"""

from __future__ import annotations

from typing import Any


def store_summary(db_url: str | None = None) -> dict[str, Any]:
    from sqlalchemy import func, select

    from carefabric.store.db import get_engine, session_scope
    from carefabric.store.models import (
        Charge,
        Encounter,
        ErpPosting,
        ExceptionRecord,
        InboundFile,
        RawMessage,
        ReconciliationItem,
        ReconciliationRun,
        RemitClaim,
        Remittance,
        SupplyUsage,
    )

    engine = get_engine(db_url)
    out: dict[str, Any] = {}
    with session_scope(engine) as s:
        out["files_in"] = dict(s.execute(select(InboundFile.source, func.count()).group_by(InboundFile.source)).all())
        out["files_by_status"] = dict(s.execute(select(InboundFile.status, func.count()).group_by(InboundFile.status)).all())
        out["messages_by_type"] = dict(s.execute(select(RawMessage.message_type, func.count()).group_by(RawMessage.message_type)).all())
        out["messages_by_status"] = dict(s.execute(select(RawMessage.status, func.count()).group_by(RawMessage.status)).all())
        out["records"] = {
            "encounters": s.scalar(select(func.count()).select_from(Encounter)),
            "charges": s.scalar(select(func.count()).select_from(Charge)),
            "charges_by_status": dict(s.execute(select(Charge.status, func.count()).group_by(Charge.status)).all()),
            "supply_usage": s.scalar(select(func.count()).select_from(SupplyUsage)),
            "remittances": s.scalar(select(func.count()).select_from(Remittance)),
            "remit_claims": s.scalar(select(func.count()).select_from(RemitClaim)),
        }
        out["exceptions_by_reason"] = {
            f"{reason} ({status})": n
            for reason, status, n in s.execute(
                select(ExceptionRecord.reason_code, ExceptionRecord.status, func.count()).group_by(
                    ExceptionRecord.reason_code, ExceptionRecord.status
                )
            ).all()
        }
        postings = list(s.scalars(select(ErpPosting).order_by(ErpPosting.id)))
        out["erp_postings"] = [
            {"kind": p.kind, "source": p.source, "status": p.status, "external_id": p.external_id,
             "debits": p.debit_cents / 100, "credits": p.credit_cents / 100, "document": p.erp_document_id}
            for p in postings
        ]
        run = s.scalars(select(ReconciliationRun).order_by(ReconciliationRun.id.desc())).first()
        if run is not None:
            out["reconciliation"] = {
                "run": run.run_number,
                "by_check_and_status": {
                    f"{c}:{st}": n
                    for c, st, n in s.execute(
                        select(ReconciliationItem.check_name, ReconciliationItem.status, func.count())
                        .where(ReconciliationItem.run_id == run.id)
                        .group_by(ReconciliationItem.check_name, ReconciliationItem.status)
                    ).all()
                },
                "unmatched": [
                    {"check": i.check_name, "key": i.item_key, "status": i.status, "variance_cents": i.variance_cents}
                    for i in s.scalars(
                        select(ReconciliationItem).where(ReconciliationItem.run_id == run.id, ReconciliationItem.status != "matched")
                    )
                ],
            }
        exceptions = [
            {"reason": e.reason_code, "status": e.status, "record": e.record_key, "summary": e.summary, "detail": e.detail or {}}
            for e in s.scalars(select(ExceptionRecord))
        ]
    engine.dispose()
    out["exceptions"] = exceptions
    return out


def _names(exception: dict[str, Any], value: str) -> bool:
    """Whether the exception names ``value`` as its record or as one of its detail's values
    (a whole value or a path ending in it, never a substring of a message text)."""
    def values(node: Any) -> list[str]:
        if isinstance(node, dict):
            return [v for item in node.values() for v in values(item)]
        if isinstance(node, list):
            return [v for item in node for v in values(item)]
        return [str(node)]

    candidates = [str(exception.get("record") or ""), *values(exception.get("detail") or {})]
    return any(c == value or c.endswith("/" + value) for c in candidates)


def judge_faults(truth: dict[str, Any], summary: dict[str, Any], *, payer_fixed: bool = False) -> list[str]:
    """Every injected fault surfaces as its exception; nothing else is left open. (Reconciliation
    items, the faults' and all others, are judged by ``judge_close`` against ``expected_items``.)"""
    diffs: list[str] = []
    fixed = {truth.get("after_fix", {}).get("crosswalk", {}).get("cdm_code")}
    if payer_fixed:
        fixed |= {f["reference"] for f in truth["faults"] if f["fault"] == "unknown_payer"}
    exceptions = summary["exceptions"]
    open_exc = [e for e in exceptions if e["status"] == "open"]
    expected_reasons = set()
    for fault in truth["faults"]:
        ref = str(fault.get("reference"))
        if "reconciliation" in fault:
            continue
        if not fault.get("expect_open", True):
            if any(e["reason"] == fault["exception"] for e in open_exc):
                diffs.append(f"fault {fault['fault']}: an exception {fault['exception']} is still open")
            continue
        expected_reasons.add(fault["exception"])
        want = "replayed" if ref in fixed else "open"  # the faults the demo fixes must be replayed
        hits = [e for e in exceptions if e["reason"] == fault["exception"] and _names(e, ref)]
        original = (fault.get("details") or {}).get("original")
        if not hits:
            diffs.append(f"fault {fault['fault']}: no exception {fault['exception']} naming {ref}")
        elif original and not any(_names(e, original) for e in hits):
            diffs.append(f"fault {fault['fault']}: exception {fault['exception']} for {ref} does not name the original {original}")
        elif any(e["status"] != want for e in hits):
            diffs.append(f"fault {fault['fault']}: exception {fault['exception']} for {ref} is not {want}")
    for e in open_exc:
        if e["reason"] not in expected_reasons:
            diffs.append(f"unexpected open exception {e['reason']}: {e['summary']}")
    return diffs


def judge_close(truth: dict[str, Any], dates: list[str], db_url: str | None = None) -> dict[str, Any]:
    """Each date's last reconciliation run, read from the store (``reconciliation_runs`` and
    ``reconciliation_items``), against the truth: the items not matched equal the expected items,
    the AR roll-forward opens and closes as the truth says and each closing is the next opening."""
    import datetime as dt

    from sqlalchemy import select

    from carefabric.store.db import get_engine, session_scope
    from carefabric.store.models import ReconciliationItem, ReconciliationRun
    from sandbox.judge import compare_items, compare_rollforward

    engine = get_engine(db_url)
    diffs: list[str] = []
    by_date: dict[str, Any] = {}
    previous_closing: dict[str, Any] = {}
    with session_scope(engine) as s:
        for date in dates:
            run = s.scalars(select(ReconciliationRun).where(ReconciliationRun.business_date == dt.date.fromisoformat(date))
                            .order_by(ReconciliationRun.run_number.desc())).first()
            if run is None:
                diffs.append(f"{date}: no reconciliation run")
                continue
            items = [{"check": i.check_name, "status": i.status, "key": i.item_key}
                     for i in s.scalars(select(ReconciliationItem).where(ReconciliationItem.run_id == run.id))]
            table = (run.control_totals or {}).get("ar_rollforward") or []
            found = compare_items([i for i in truth.get("expected_items", []) if i["business_date"] == date], items)
            found += compare_rollforward([r for r in truth.get("ar_rollforward", []) if r["business_date"] == date], table)
            for row in table:
                facility = str(row.get("facility"))
                if facility in previous_closing and previous_closing[facility] != row.get("opening_cents"):
                    found.append(f"roll-forward {facility}: opens at {row.get('opening_cents')} cents, the day before "
                                 f"closed at {previous_closing[facility]}")
            previous_closing = {str(r.get("facility")): r.get("closing_cents") for r in table}
            diffs += [f"{date}: {d}" for d in found]
            by_date[date] = {"run": run.run_number,
                             "not_matched": sorted(f"{i['check']}:{i['status']}:{i['key']}" for i in items
                                                   if i["status"] != "matched"),
                             "ar_rollforward": {str(r.get("facility")): [r.get("opening_cents"), r.get("closing_cents")]
                                                for r in table}}
    engine.dispose()
    return {"differences": diffs, "by_date": by_date}
