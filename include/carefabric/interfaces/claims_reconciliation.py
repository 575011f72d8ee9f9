"""Nightly claims-to-ledger reconciliation: the checks of a business date, stored as a run.

carefabric's store is one side of each comparison, never two: the GL side is always the ERP's
own ledger read back through its API (``ErpClient.journals``/``cash_receipts``/
``inventory_movements``/``account_balances``), billing's side billing's records (synced from
its API in the same run), the bank's side the bank statement. Checks (item keys in brackets):

- charges: EHR charge lines captured = billing's accepted charges, per line key over a window
  of days, so a late charge is ``timing`` [``line_key``];
- revenue: EHR charges captured = ERP ledger gross revenue, per date x revenue account x cost
  center x facility [``date|account|cost_center|facility``];
- claims: 835 CLP04 = billing claim payments, per claim and payer [``claim|payer``];
- remittance: every CLP04, CAS (CO/OA/PI/PR) and PLB amount of the day's 835s, through the
  posting policy, = the ERP's REMIT lines, per date x facility x account; reasons list the
  835's amounts by code [``date|facility|account``];
- cash: BPR02 per trace of the posted 835s = the ERP's cash receipt [``trace``];
- bank: every 835 payment received = the bank deposit reassociated by TRN02 [``trace``];
- ledger: carefabric's documents = the ERP ledger, per account x cost center x facility x
  location [``date|account|cost_center|facility|location``];
- integrity: each posted document is in the ERP unchanged and once; nothing else was posted
  [``kind|external_id|erp_document_id``];
- rollforward: per facility, the ERP's AR (1200 + 1210) through the day before + what
  carefabric posted = the ERP's AR through the day; negative AR is an item [``AR|facility``].

Money that did not post, exceptions, quality results and missing feeds come from
``close_facts``; ``build_report`` makes the finance email of it all.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from carefabric.bank import match_deposits
from carefabric.clients.billing import BillingClient
from carefabric.clients.erp import ErpClient
from carefabric.interfaces.bank_statement import cash_sides
from carefabric.interfaces.close_facts import (
    POSTED_REMIT,
    exceptions_opened,
    missing_feeds,
    money_held,
    no_activity,
    quality_results,
)
from carefabric.interfaces.erp_posting import balanced_remittances
from carefabric.posting import remit_events_frame
from carefabric.quality.docs_site import data_docs_url
from carefabric.reconciliation import (
    control_totals,
    ledger,
    receipts_frame,
    reconcile_cash,
    reconcile_charge_lines,
    reconcile_claims,
    reconcile_revenue,
    remittance,
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
    ReconciliationItem,
    ReconciliationRun,
    RemitClaim,
    Remittance,
)
from carefabric.store.types import utcnow

INTERFACE = "claims_reconciliation"
CHARGE_WINDOW_DAYS = 7  # a late charge captured up to a week after its service date is timing
__all__ = ["build_report", "exceptions_opened", "missing_feeds", "money_held", "no_activity", "quality_results",
           "read_erp", "reconcile_day", "refresh_billing_charges"]


def refresh_billing_charges(engine: Engine, billing: BillingClient, day: dt.date,
                            window_days: int = CHARGE_WINDOW_DAYS) -> int:
    """Billing's accepted charges for every service date of the charge window, from its API.

    A late charge captured on ``day`` is in billing under its own (earlier) service date, whose
    sync ran before billing had it; reading the window again is what lets the charges check
    find it there (``timing``) instead of reporting it missing in billing.
    """
    from carefabric.interfaces.billing_sync import sync_accepted_charges

    return sum(sync_accepted_charges(engine, billing, day - dt.timedelta(days=back)) for back in range(window_days + 1))


def _frame(rows: Sequence[Any], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame([tuple(r) for r in rows], columns=columns)
    if "amount_cents" in frame.columns:
        frame["amount_cents"] = frame["amount_cents"].astype("int64")
    return frame


def _charge_frames(s: Any, day: dt.date, window_days: int) -> dict[str, pd.DataFrame]:
    """EHR lines captured and billing's accepted lines within the window around ``day``."""
    since, until = day - dt.timedelta(days=window_days), day + dt.timedelta(days=window_days)
    ehr = s.execute(
        select(Charge.line_key, Charge.business_date, Charge.amount_cents, Charge.revenue_account, Charge.cost_center,
               Charge.facility)
        .where(Charge.business_date.between(since, until), Charge.status == "routed",
               Charge.transaction_type.in_(("CG", "CD")))
    ).all()
    billing = s.execute(
        select(BillingCharge.line_key, BillingCharge.service_date, BillingCharge.amount_cents)
        .where(BillingCharge.service_date.between(since, until), BillingCharge.status == "accepted")
    ).all()
    ehr_frame = _frame(ehr, ["line_key", "business_date", "amount_cents", "account", "cost_center", "facility"])
    return {
        "ehr": ehr_frame,
        "ehr_today": ehr_frame[ehr_frame["business_date"] == day],
        "billing": _frame(billing, ["line_key", "business_date", "amount_cents"]),
    }


def load_frames(engine: Engine, day: dt.date, window_days: int,
                charge_window_days: int = CHARGE_WINDOW_DAYS) -> dict[str, pd.DataFrame]:
    """carefabric's side of every check, and billing's records synced from its API."""
    since, until = day - dt.timedelta(days=window_days), day + dt.timedelta(days=window_days)
    with session_scope(engine) as s:
        frames = _charge_frames(s, day, charge_window_days)
        remit = s.execute(
            select(RemitClaim.patient_control_number, Remittance.erp_payer_id, RemitClaim.paid_cents, Remittance.business_date)
            .join(Remittance)
            .where(Remittance.business_date == day, Remittance.status.in_(POSTED_REMIT))
        ).all()
        payments = s.execute(
            select(BillingPayment.claim_id, BillingPayment.payer_id, BillingPayment.amount_cents, BillingPayment.paid_date)
            .where(BillingPayment.paid_date.between(since, until))
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
    return frames | {
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
    charge_window_days: int = CHARGE_WINDOW_DAYS,
) -> tuple[int, pd.DataFrame, dict[str, Any]]:
    """Run the checks for ``day``; store the run and its items; return (run id, items, totals).

    Without a bank statement for the date there is no bank check (the email says the statement
    is missing) rather than every trace reported missing in the bank.
    """
    f = load_frames(engine, day, window_days, charge_window_days)
    theirs = read_erp(erp, day)
    all_events, posted_events = remit_events_of(engine, day)
    table, rollforward_items = ar_rollforward_of(engine, erp, day, posted_events)
    items = pd.concat(
        [
            reconcile_charge_lines(f["ehr"], f["billing"], business_date=day, window_days=charge_window_days),
            reconcile_revenue(f["ehr_today"], theirs["gl"]),
            reconcile_claims(f["remit"], f["payments"], None, business_date=day, timing_window_days=window_days),
            remittance.reconcile_remittance(all_events, theirs["gl"]),
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


def remit_events_of(engine: Engine, day: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The money events of the date's balanced, mapped 835s: all of them, and those posted."""
    with session_scope(engine) as s:
        keyed = balanced_remittances(s, day)
        posted = outbox.posted_keys(s, "REMIT", "remittance", [k for k, _ in keyed])
    all_events = remit_events_frame([m for _, m in keyed])
    return all_events, remit_events_frame([m for k, m in keyed if k in posted])


def ar_rollforward_of(engine: Engine, erp: ErpClient, day: dt.date,
                      events: pd.DataFrame) -> tuple[list[dict[str, Any]], pd.DataFrame]:
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
        s.add_all([_item_row(run.id, {str(k): v for k, v in item.items()}) for item in items.to_dict("records")])
        run.status = "completed"
        run.finished_at = utcnow()
        run.control_totals = totals
        return run.id


def _item_row(run_id: int, item: dict[str, Any]) -> ReconciliationItem:
    """One item as its store row: a side's cents or NULL, the counts (and an ERP receipt's cents) as detail."""
    def cents(side: str) -> int | None:
        value = item.get(f"{side}_cents")
        return None if value is None or pd.isna(value) else int(value)

    detail: dict[str, int | None] = {k: (None if pd.isna(v) else int(v)) for k, v in item.items() if k.endswith("_count")}
    if cents("receipt") is not None:
        detail["receipt_cents"] = cents("receipt")
    return ReconciliationItem(
        run_id=run_id, check_name=item["check"], item_key=str(item["key"])[:255], status=item["status"],
        **{f"{side}_cents": cents(side) for side in SIDE_COLUMNS},
        variance_cents=int(item["variance_cents"] or 0), reason=str(item.get("reason") or "")[:255], detail=detail,
    )


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
        data_docs_url=data_docs_url(day),
    )


