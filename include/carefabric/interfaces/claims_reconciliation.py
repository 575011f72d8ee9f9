"""Nightly claims-to-ledger reconciliation and the finance email.

For one business date, five checks run set-based. carefabric's store is one side of each
comparison, never two: the GL side is always the ERP's own ledger read back through its API
(``ErpClient.journals``/``cash_receipts``/``inventory_movements``), billing's side billing's
records (synced from its API in the same run), the bank's side the bank statement.

- charges: EHR charges routed to billing = billing's accepted charges = ERP ledger gross revenue,
  per cost center (charges held in the exception queue are reported as money held, by reason);
- claims: 835 CLP04 = billing claim payments, per claim and payer;
- cash: BPR02 per EFT/check trace of the posted 835s = the ERP's cash receipt;
- bank: every 835 payment received (posted or not: cash reached the bank either way) = the bank
  deposit on the day's statement, per trace (``carefabric.bank.match_deposits``); deposits no
  835 claims are items too;
- ledger: carefabric's documents of the date = the ERP ledger, per account, cost center,
  facility and location (``carefabric.reconciliation.ledger``);
- integrity: each document carefabric posted is in the ERP unchanged, once, and nothing else was
  posted for the date (manual journals are items naming their ERP document);
- rollforward: per facility, the ERP's AR (1200 + 1210) through the day before + what carefabric
  posted (charges, payments, adjustments, PLB) = the ERP's AR through the day
  (``carefabric.reconciliation.rollforward``).

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

from carefabric.bank import match_deposits
from carefabric.clients.erp import ErpClient
from carefabric.interfaces.bank_statement import cash_sides, deposits_on
from carefabric.interfaces.erp_posting import balanced_remittances
from carefabric.posting import remit_events_frame
from carefabric.reconciliation import (
    control_totals,
    ledger,
    receipts_frame,
    reconcile_cash,
    reconcile_charges,
    reconcile_claims,
    rollforward,
)
from carefabric.store import outbox
from carefabric.store.db import session_scope
from carefabric.store.models import (
    BillingCharge,
    BillingPayment,
    Charge,
    ErpPosting,
    ErpPostingLine,
    ExceptionRecord,
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
    """carefabric's side of every check, and billing's records synced from its API."""
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
        traces = s.execute(
            select(Remittance.trace_number, Remittance.payment_cents, Remittance.business_date).where(
                Remittance.business_date == day, Remittance.status.in_(POSTED_REMIT)
            )
        ).all()
        our_lines = s.execute(
            select(ErpPosting.business_date, ErpPosting.source, ErpPosting.erp_document_id, ErpPosting.external_id,
                   ErpPostingLine.account, ErpPostingLine.cost_center, ErpPostingLine.facility, ErpPostingLine.location,
                   ErpPostingLine.debit_cents, ErpPostingLine.credit_cents)
            .join(ErpPosting)
            .where(ErpPosting.business_date == day, ErpPosting.kind == "journal", ErpPosting.status != "superseded")
        ).all()
        our_docs = [
            ledger.document(p.kind, p.business_date, p.external_id, p.erp_document_id or "", p.source, p.payload)
            for p in s.scalars(select(ErpPosting).where(ErpPosting.business_date == day, ErpPosting.status == "posted"))
        ]
    return {
        "ehr": _frame(ehr, ["business_date", "cost_center", "amount_cents", "line_key"]),
        "billing": _frame(billing, ["business_date", "cost_center", "amount_cents", "line_key"]),
        "remit": _frame(remit, ["claim_id", "payer_id", "amount_cents", "business_date"]),
        "payments": _frame(payments, ["claim_id", "payer_id", "amount_cents", "business_date"]),
        "traces": _frame(traces, ["trace_number", "amount_cents", "business_date"]),
        "our_lines": ledger.stored_lines_frame(our_lines),
        "our_docs": ledger.documents_frame(our_docs),
    }


def read_erp(erp: ErpClient, day: dt.date) -> dict[str, pd.DataFrame]:
    """The ERP's side: every journal line, document and cash receipt it holds for the date."""
    journals = erp.journals(day.isoformat())
    receipts = erp.cash_receipts(day.isoformat())
    movements = erp.inventory_movements(day.isoformat())
    lines = ledger.erp_lines_frame(journals)
    return {
        "gl": lines,
        "documents": ledger.erp_documents(journals, movements, receipts),
        "receipts": receipts_frame(receipts),
    }


SIDE_COLUMNS = ("ehr", "billing", "remit", "gl", "bank", "carefabric")


def reconcile_day(
    engine: Engine, erp: ErpClient, day: dt.date, *, window_days: int = 3,
) -> tuple[int, pd.DataFrame, dict[str, Any]]:
    """Run the six checks for ``day``; store the run and its items; return (run id, items, totals).

    Without a bank statement for the date there is no bank check (the email says the statement
    is missing) rather than every trace reported missing in the bank.
    """
    f = load_frames(engine, day, window_days)
    theirs = read_erp(erp, day)
    table, rollforward_items = ar_rollforward_of(engine, erp, day)
    items = pd.concat(
        [
            reconcile_charges(f["ehr"], f["billing"], theirs["gl"]),
            reconcile_claims(f["remit"], f["payments"], None, business_date=day, timing_window_days=window_days),
            reconcile_cash(f["traces"], None, theirs["receipts"], business_date=day, timing_window_days=window_days),
            bank_items(engine, day),
            ledger.reconcile_ledger(f["our_lines"], theirs["gl"]),
            ledger.reconcile_integrity(f["our_docs"], theirs["documents"]),
            rollforward_items,
        ],
        ignore_index=True,
    )
    totals = control_totals(items)
    totals["money_held"] = money_held(engine, day)
    totals["ar_rollforward"] = table
    run_id = _store_run(engine, day, items, totals)
    return run_id, items, totals


def ar_rollforward_of(engine: Engine, erp: ErpClient, day: dt.date) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """Opening and closing AR from the ERP's trial balance; the day's activity from what posted."""
    accounts = list(rollforward.AR_ACCOUNTS)
    opening = rollforward.balances_by_facility(erp.account_balances((day - dt.timedelta(days=1)).isoformat(), accounts))
    closing = rollforward.balances_by_facility(erp.account_balances(day.isoformat(), accounts))
    with session_scope(engine) as s:
        charges = s.execute(
            select(ErpPostingLine.facility, ErpPostingLine.debit_cents - ErpPostingLine.credit_cents)
            .join(ErpPosting)
            .where(ErpPosting.business_date == day, ErpPosting.status == "posted", ErpPosting.source == "CHARGES",
                   ErpPostingLine.account.in_(accounts))
        ).all()
        keyed = balanced_remittances(s, day)
        posted = outbox.posted_keys(s, "REMIT", "remittance", [k for k, _ in keyed])
    events = remit_events_frame([m for k, m in keyed if k in posted])
    activity = rollforward.ar_activity(_frame(charges, ["facility", "amount_cents"]), events)
    return rollforward.ar_rollforward(opening, activity, closing)


BANK_STATUS = {"missing_in_835": "missing_in_remit"}


def bank_items(engine: Engine, day: dt.date) -> pd.DataFrame:
    """The bank check's items: 835 payments received on the date against the statement's deposits."""
    remits, deposits = cash_sides(engine, day)
    if deposits.empty:
        return pd.DataFrame(columns=["check", "key", "status", "remit_cents", "bank_cents", "variance_cents", "reason"])
    matched = match_deposits(remits, deposits)
    return pd.DataFrame({
        "check": "bank",
        "key": [t if isinstance(t, str) and t else f"untraced|{i}" for i, t in enumerate(matched["trace_number"])],
        "business_date": day,
        "status": matched["status"].map(lambda s: BANK_STATUS.get(s, s)),
        "remit_cents": matched["bpr02_cents"],
        "bank_cents": matched["deposit_cents"],
        "variance_cents": matched["variance_cents"].abs(),
        "reason": matched["reason"],
    })


def _store_run(engine: Engine, day: dt.date, items: pd.DataFrame, totals: dict[str, Any]) -> int:
    with session_scope(engine) as s:
        number = (s.scalar(select(func.max(ReconciliationRun.run_number)).where(ReconciliationRun.business_date == day)) or 0) + 1
        run = ReconciliationRun(business_date=day, run_number=number, status="running",
                                check_set=",".join(dict.fromkeys(items["check"].astype(str))) if len(items) else "")
        s.add(run)
        s.flush()
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
                    run_id=run.id, check_name=item["check"], item_key=str(item["key"])[:255], status=item["status"],
                    **{f"{side}_cents": cents(side) for side in SIDE_COLUMNS},
                    variance_cents=int(item["variance_cents"] or 0), reason=str(item.get("reason") or "")[:255],
                    detail={k: int(v) if v is not None else None for k, v in detail.items()},
                )
            )
        s.add_all(rows)
        run.status = "completed"
        run.finished_at = utcnow()
        run.control_totals = totals
        return run.id


def money_held(engine: Engine, day: dt.date) -> dict[str, Any]:
    """Money of the date that did not post, in cents, by reason: held charge lines (by the reason
    of their open exception), 835 cash not posted, and 835 cash posted to suspense because the
    bank confirmed it (by the remittance's status)."""
    with session_scope(engine) as s:
        charges = s.execute(
            select(ExceptionRecord.reason_code, func.count(), func.coalesce(func.sum(Charge.amount_cents), 0))
            .join(ExceptionRecord, (ExceptionRecord.record_key == Charge.line_key) & (ExceptionRecord.record_type == "charge"))
            .where(Charge.business_date == day, Charge.status == "held", ExceptionRecord.status == "open")
            .group_by(ExceptionRecord.reason_code)
        ).all()
        remits = s.execute(
            select(Remittance.status, Remittance.trace_number, Remittance.payment_cents)
            .where(Remittance.business_date == day, Remittance.status.not_in(POSTED_REMIT))
        ).all()
        in_suspense = outbox.posted_keys(s, "SUSPENSE", "suspense", [t for _, t, _ in remits if t])
    not_posted: dict[str, dict[str, int]] = {}
    suspense: dict[str, dict[str, int]] = {}
    for status, trace, cents in remits:
        into = (suspense if trace in in_suspense else not_posted).setdefault(status, {"transactions": 0, "cents": 0})
        into["transactions"] += 1
        into["cents"] += int(cents or 0)
    return {
        "charges": {reason: {"lines": int(n), "cents": int(c)} for reason, n, c in charges},
        "remittances": not_posted,
        "suspense": suspense,
        "charges_cents": sum(int(c) for _, _, c in charges),
        "remittances_cents": sum(v["cents"] for v in not_posted.values()),
        "suspense_cents": sum(v["cents"] for v in suspense.values()),
    }


def exceptions_opened(engine: Engine, day: dt.date) -> dict[str, int]:
    """Open exceptions of the business date, by reason code: what still holds the day back.

    An exception belongs to the date of its record where the record has one (a held charge line,
    an ERP document); file, remittance and task exceptions have none, and count for the date
    when they were opened on it or on the morning after (the close runs the next morning), so a
    later day's exceptions never land in this day's email.
    """
    start = dt.datetime.combine(day, dt.time(), tzinfo=dt.UTC)
    end = start + dt.timedelta(days=2)
    by_record = (
        (Charge, "charge", Charge.line_key, Charge.business_date),
        (ErpPosting, "posting", ErpPosting.external_id, ErpPosting.business_date),
    )
    counts: dict[str, int] = {}
    with session_scope(engine) as s:
        for model, record_type, key, date in by_record:
            rows = s.execute(
                select(ExceptionRecord.reason_code, func.count(func.distinct(ExceptionRecord.id)))
                .join(model, key == ExceptionRecord.record_key)
                .where(ExceptionRecord.record_type == record_type, ExceptionRecord.status == "open", date == day)
                .group_by(ExceptionRecord.reason_code)
            ).all()
            for reason, n in rows:
                counts[reason] = counts.get(reason, 0) + int(n)
        rows = s.execute(
            select(ExceptionRecord.reason_code, func.count())
            .where(ExceptionRecord.record_type.not_in([t for _, t, _, _ in by_record]), ExceptionRecord.status == "open",
                   ExceptionRecord.created_at >= start, ExceptionRecord.created_at < end)
            .group_by(ExceptionRecord.reason_code)
        ).all()
    for reason, n in rows:
        counts[reason] = counts.get(reason, 0) + int(n)
    return counts


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
    summary = {k: v for k, v in totals.items() if k not in ("money_held", "ar_rollforward")}
    summary |= {"journals_posted": int(posted[0]), "debits_cents": int(posted[1]), "credits_cents": int(posted[2])}
    return build_finance_report(
        summary, items, quality_results(engine, day), exceptions_opened(engine, day), business_date=day,
        held=totals.get("money_held") or money_held(engine, day), warnings=missing_feeds(engine, day),
        rollforward=totals.get("ar_rollforward") or [], no_activity=no_activity(engine, day),
    )


def no_activity(engine: Engine, day: dt.date) -> bool:
    """Nothing reached carefabric for the date: no charge, no remittance, no ERP document."""
    with session_scope(engine) as s:
        return not any(
            s.scalar(select(func.count()).select_from(model).where(model.business_date == day))
            for model in (Charge, Remittance, ErpPosting)
        )


def missing_feeds(engine: Engine, day: dt.date, *, lookback_days: int = 7) -> list[str]:
    """Feeds a finance user expects for the date that did not arrive: no EHR extract at all, or
    no 835 from a payer that sent one on most of the previous ``lookback_days`` days."""
    since = day - dt.timedelta(days=lookback_days)
    with session_scope(engine) as s:
        charges = s.scalar(select(func.count()).select_from(Charge).where(Charge.business_date == day)) or 0
        history = s.execute(
            select(Remittance.payer_id, func.count(func.distinct(Remittance.business_date)))
            .where(Remittance.business_date >= since, Remittance.business_date < day)
            .group_by(Remittance.payer_id)
        ).all()
        today = set(s.scalars(select(Remittance.payer_id).where(Remittance.business_date == day)))
    warnings = [] if charges else [f"no EHR charges arrived for {day.isoformat()} (no extract, or an empty one)"]
    if not deposits_on(engine, day):
        warnings.append(f"no bank statement for {day.isoformat()}: deposits could not be tied to the 835s")
    for payer, days in sorted(history, key=lambda r: str(r[0])):
        if days * 2 > lookback_days and payer not in today:
            warnings.append(f"no 835 from payer {payer} for {day.isoformat()} (it sent one on {days} of the "
                            f"previous {lookback_days} days)")
    return warnings
