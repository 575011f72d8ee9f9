"""Nightly claims-to-ledger reconciliation and the finance email.

For one business date, three checks run set-based over frames read in a handful of queries:

- charges: EHR charges routed to billing = billing's accepted charges = GL gross revenue, per
  cost center (charges held in the exception queue are reported there, not here);
- claims: 835 CLP04 = billing claim payments = GL AR relief from CLP04, per claim and payer;
- cash: BPR02 per EFT/check trace = GL cash clearing = ERP cash receipt.

Every item is stored with its status and variance in cents under a numbered run, and finance
gets an HTML report (control totals, what did not match and why, exceptions opened that day by
reason, Great Expectations results per dataset, a chart) with the unmatched items as CSV.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from carefabric.reconciliation import control_totals, reconcile_cash, reconcile_charges, reconcile_claims
from carefabric.store.db import session_scope
from carefabric.store.models import (
    BillingCharge,
    BillingPayment,
    Charge,
    ErpPosting,
    ErpPostingLine,
    ExceptionRecord,
    PostingContribution,
    QualityResult,
    ReconciliationItem,
    ReconciliationRun,
    RemitClaim,
    Remittance,
)
from carefabric.store.types import utcnow

INTERFACE = "claims_reconciliation"
POSTED_REMIT = ("balanced", "posted")


def _frame(rows: list[Any], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame([tuple(r) for r in rows], columns=columns)
    if "amount_cents" in frame.columns:
        frame["amount_cents"] = frame["amount_cents"].astype("int64")
    return frame


def load_frames(engine: Engine, day: dt.date, window_days: int) -> dict[str, pd.DataFrame]:
    """The nine input frames of the three checks, one query each."""
    since = day - dt.timedelta(days=window_days)
    until = day + dt.timedelta(days=window_days)
    with session_scope(engine) as s:
        ehr = s.execute(
            select(Charge.business_date, Charge.cost_center, Charge.amount_cents, Charge.line_key).where(
                Charge.business_date == day, Charge.status == "routed", Charge.transaction_type.in_(("CG", "CD"))
            )
        ).all()
        billing = s.execute(
            select(BillingCharge.service_date, BillingCharge.cost_center, BillingCharge.amount_cents, BillingCharge.line_key).where(
                BillingCharge.service_date == day, BillingCharge.status == "accepted"
            )
        ).all()
        gl = s.execute(
            select(ErpPosting.business_date, ErpPostingLine.cost_center, ErpPostingLine.account,
                   ErpPostingLine.debit_cents - ErpPostingLine.credit_cents)
            .join(ErpPosting)
            .where(ErpPosting.business_date == day, ErpPosting.status == "posted", ErpPosting.source == "CHARGES")
        ).all()
        remit = s.execute(
            select(RemitClaim.patient_control_number, Remittance.erp_payer_id, RemitClaim.paid_cents, Remittance.business_date)
            .join(Remittance)
            .where(Remittance.business_date == day, Remittance.status.in_(POSTED_REMIT))
        ).all()
        payments = s.execute(
            select(BillingPayment.claim_id, BillingPayment.payer_id, BillingPayment.amount_cents, BillingPayment.paid_date).where(
                BillingPayment.paid_date.between(since, until)
            )
        ).all()
        contributions = s.execute(
            select(PostingContribution.record_type, PostingContribution.record_key, PostingContribution.account,
                   PostingContribution.amount_cents, ErpPosting.external_id, ErpPosting.business_date)
            .join(ErpPosting)
            .where(ErpPosting.business_date == day, ErpPosting.status == "posted", ErpPosting.source == "REMIT")
        ).all()
        traces = s.execute(
            select(Remittance.trace_number, Remittance.payment_cents, Remittance.business_date).where(
                Remittance.business_date == day, Remittance.status.in_(POSTED_REMIT)
            )
        ).all()
        receipts = s.execute(
            select(PostingContribution.record_key, PostingContribution.amount_cents, ErpPosting.business_date)
            .join(ErpPosting)
            .where(ErpPosting.business_date == day, ErpPosting.status == "posted", ErpPosting.kind == "cash")
        ).all()
    contrib = _frame(contributions, ["record_type", "record_key", "account", "amount_cents", "external_id", "business_date"])
    relief = contrib[(contrib["record_type"] == "claim:payment") & (contrib["account"] == "1200")]
    keys = relief["record_key"].str.split("|", n=1, expand=True) if len(relief) else pd.DataFrame({0: [], 1: []})
    cash = contrib[contrib["record_type"].str.startswith("trace:") & (contrib["account"] == "1010")]
    return {
        "ehr": _frame(ehr, ["business_date", "cost_center", "amount_cents", "line_key"]),
        "billing": _frame(billing, ["business_date", "cost_center", "amount_cents", "line_key"]),
        "gl": _frame(gl, ["business_date", "cost_center", "account", "amount_cents"]),
        "remit": _frame(remit, ["claim_id", "payer_id", "amount_cents", "business_date"]),
        "payments": _frame(payments, ["claim_id", "payer_id", "amount_cents", "business_date"]),
        "relief": pd.DataFrame(
            {"claim_id": keys[0].to_numpy(), "payer_id": keys[1].to_numpy(),
             "amount_cents": -relief["amount_cents"].to_numpy(dtype="int64"), "business_date": relief["business_date"].to_numpy()}
        ),
        "gl_cash": cash.groupby(["record_key", "external_id", "business_date"], sort=False)["amount_cents"].sum().reset_index()
        .rename(columns={"record_key": "trace_number"}),
        "traces": _frame(traces, ["trace_number", "amount_cents", "business_date"]),
        "receipts": _frame(receipts, ["trace_number", "amount_cents", "business_date"]),
    }


def reconcile_day(engine: Engine, day: dt.date, *, window_days: int = 3) -> tuple[int, pd.DataFrame, dict[str, Any]]:
    """Run the three checks for ``day``; store the run and its items; return (run id, items, totals)."""
    f = load_frames(engine, day, window_days)
    items = pd.concat(
        [
            reconcile_charges(f["ehr"], f["billing"], f["gl"]),
            reconcile_claims(f["remit"], f["payments"], f["relief"], business_date=day, timing_window_days=window_days),
            reconcile_cash(f["traces"], f["gl_cash"], f["receipts"], business_date=day, timing_window_days=window_days),
        ],
        ignore_index=True,
    )
    totals = control_totals(items)
    with session_scope(engine) as s:
        number = (s.scalar(select(func.max(ReconciliationRun.run_number)).where(ReconciliationRun.business_date == day)) or 0) + 1
        run = ReconciliationRun(business_date=day, run_number=number, status="running")
        s.add(run)
        s.flush()
        run_id = run.id
        rows = []
        for item in items.to_dict("records"):
            def cents(side: str, item: dict[str, Any] = item) -> int | None:
                value = item.get(f"{side}_cents")
                return None if value is None or pd.isna(value) else int(value)

            detail = {k: (None if pd.isna(v) else v) for k, v in item.items() if k.endswith("_count")}
            if cents("receipt") is not None:
                detail["receipt_cents"] = cents("receipt")
            rows.append(
                ReconciliationItem(
                    run_id=run_id, check_name=item["check"], item_key=str(item["key"])[:255], status=item["status"],
                    ehr_cents=cents("ehr"), billing_cents=cents("billing"), remit_cents=cents("remit"), gl_cents=cents("gl"),
                    variance_cents=int(item["variance_cents"] or 0), reason=str(item.get("reason") or "")[:255],
                    detail={k: int(v) if v is not None else None for k, v in detail.items()},
                )
            )
        s.add_all(rows)
        run.status = "completed"
        run.finished_at = utcnow()
        run.control_totals = totals
    return run_id, items, totals


def exceptions_opened(engine: Engine, day: dt.date) -> dict[str, int]:
    """Open exceptions by reason code: what still holds money back when the day closes.

    The business date is usually closed the next morning, so "opened that day" means opened in
    the run window: anything created since the start of the business date and still open.
    """
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    with session_scope(engine) as s:
        rows = s.execute(
            select(ExceptionRecord.reason_code, func.count())
            .where(ExceptionRecord.created_at >= start, ExceptionRecord.status == "open")
            .group_by(ExceptionRecord.reason_code)
        ).all()
    return {reason: int(n) for reason, n in rows}


def quality_results(engine: Engine, day: dt.date) -> list[dict[str, Any]]:
    """GX results of the day, one per dataset: files validated separately are merged (rows add up,
    an expectation failed in any file is failed, with the unexpected counts summed)."""
    with session_scope(engine) as s:
        stored = [r.results for r in s.scalars(select(QualityResult).where(QualityResult.business_date == day)) if r.results]
    merged: dict[str, dict[str, Any]] = {}
    for result in stored:
        into = merged.get(result["dataset"])
        if into is None:
            merged[result["dataset"]] = {**result, "results": [dict(o) for o in result.get("results", [])], "files": 1}
            continue
        into["files"] += 1
        into["rows"] += result.get("rows", 0)
        into["duration_ms"] = into.get("duration_ms", 0) + result.get("duration_ms", 0)
        outcomes = {(o["expectation_type"], o.get("column")): o for o in into["results"]}
        for outcome in result.get("results", []):
            key = (outcome["expectation_type"], outcome.get("column"))
            if key not in outcomes:
                into["results"].append(dict(outcome))
                continue
            kept = outcomes[key]
            kept["success"] = kept["success"] and outcome["success"]
            if outcome.get("unexpected_count"):
                kept["unexpected_count"] = (kept.get("unexpected_count") or 0) + outcome["unexpected_count"]
                kept["unexpected_values"] = (kept.get("unexpected_values") or []) + (outcome.get("unexpected_values") or [])
    for result in merged.values():
        result["evaluated"] = len(result["results"])
        result["failed"] = sum(1 for o in result["results"] if not o["success"])
        result["success"] = result["failed"] == 0
    return sorted(merged.values(), key=lambda r: r["dataset"])


def build_report(engine: Engine, day: dt.date, items: pd.DataFrame, totals: dict[str, Any]) -> Any:
    """The finance email for the day (``carefabric.report.FinanceReport``)."""
    from carefabric.report import build_finance_report

    with session_scope(engine) as s:
        posted = s.execute(
            select(func.count(), func.coalesce(func.sum(ErpPosting.debit_cents), 0), func.coalesce(func.sum(ErpPosting.credit_cents), 0)).where(
                ErpPosting.business_date == day, ErpPosting.kind == "journal", ErpPosting.status == "posted"
            )
        ).one()
    summary = {**totals, "journals_posted": int(posted[0]), "debits_cents": int(posted[1]), "credits_cents": int(posted[2])}
    return build_finance_report(summary, items, quality_results(engine, day), exceptions_opened(engine, day), business_date=day)
