"""The three nightly checks (charges, claims, cash), their input frames, and control totals.

Column contracts (every amount int64 cents; extra columns are ignored):

- ``reconcile_charges``: ``ehr`` and ``billing``: ``business_date``, ``cost_center``,
  ``amount_cents`` (signed; a credit is negative), optional ``line_key`` (detects a line twice).
  ``gl``: ``business_date``, ``cost_center``, ``account``, ``amount_cents`` signed debit
  positive (journal lines or contributions), optional ``line_key``. GL gross revenue is the
  net credit to revenue accounts.
- ``reconcile_claims``: ``remit`` (one row per CLP: CLP04), ``billing_payments`` (one row per
  payment) and ``gl_ar_relief`` (one row per CLP contribution, positive = AR relieved):
  ``claim_id``, ``payer_id``, ``amount_cents``, optional ``business_date``.
- ``reconcile_cash``: ``remit_traces`` (one row per 835: BPR02), ``gl_cash`` (one row per
  posted document and trace: net debit to cash clearing), ``receipts`` (one row per ERP cash
  receipt): ``trace_number``, ``amount_cents``, optional ``business_date``.

The ``*_frame`` helpers build those frames from what posting returns, from ERP journal
batches, and from the billing and ERP API items, so the caller only fetches and passes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection, Iterable, Mapping
from typing import Any

import numpy as np
import pandas as pd

from carefabric.canonical import CashReceipt, JournalBatch, MappedRemittance
from carefabric.money import to_cents
from carefabric.posting import policy
from carefabric.posting.cash import remit_traces_frame
from carefabric.posting.journals import _postable, remit_events_frame
from carefabric.reconciliation.engine import STATUSES, Side, compare

EHR = Side("ehr", "EHR", "missing_in_ehr", "record_id", "line_key")
BILLING_CHARGES = Side("billing", "billing", "missing_in_billing", "record_id", "line_key")
GL_REVENUE = Side("gl", "GL", "missing_in_gl", "record_id", "line_key")
REMIT_CLAIMS = Side("remit", "835", "missing_in_remit", "key_amount")
BILLING_PAYMENTS = Side("billing", "billing", "missing_in_billing", "key_amount")
GL_AR_RELIEF = Side("gl", "GL", "missing_in_gl", "key_amount")
REMIT_TRACES = Side("remit", "835", "missing_in_remit", "key")
GL_CASH = Side("gl", "GL cash clearing", "missing_in_gl", "key")
# The ERP is the ledger system, so a trace without its ERP cash receipt is missing in the GL
# family of statuses; the reason names the receipt.
ERP_RECEIPTS = Side("receipt", "ERP cash receipt", "missing_in_gl", "key")
BANK_DEPOSITS = Side("bank", "bank deposit", "missing_in_bank", "key")

SIDE_COLUMNS = {
    "charges": ("ehr", "billing", "gl"),
    "claims": ("remit", "billing", "gl"),
    "cash": ("remit", "bank", "gl", "receipt"),
    "ledger": ("carefabric", "gl"),
    "integrity": ("carefabric", "gl"),
}


def _period(business_date: dt.date | tuple[dt.date, dt.date] | None) -> tuple[dt.date, dt.date] | None:
    if business_date is None:
        return None
    if isinstance(business_date, tuple):
        return business_date
    return (business_date, business_date)


def is_revenue_account(accounts: pd.Series, revenue_accounts: Collection[str] | None = None) -> np.ndarray:
    """Gross revenue accounts: the given set, else the 4000-4899 range of the chart.

    A range rather than the seven reference accounts, because operators add revenue accounts
    through the CDM crosswalk; 4900/4910 are contra-revenue (allowance, denial) and stay out.
    """
    if revenue_accounts is not None:
        return accounts.isin(list(revenue_accounts)).to_numpy()
    numeric = pd.to_numeric(accounts, errors="coerce")
    return ((numeric >= 4000) & (numeric < 4900)).fillna(False).to_numpy(dtype=bool)


# --------------------------------------------------------------------------- checks


def reconcile_charges(
    ehr: pd.DataFrame,
    billing: pd.DataFrame,
    gl: pd.DataFrame,
    *,
    tolerance_cents: int = 0,
    timing_window_days: int = 1,
    revenue_accounts: Collection[str] | None = None,
) -> pd.DataFrame:
    """EHR routed charges vs billing accepted charges vs GL gross revenue, per (date, cost center).

    Timing: a difference on one day undone by the opposite difference on a day within
    ``timing_window_days`` for the same cost center (billing accepted it a day later).
    """
    revenue = gl[is_revenue_account(gl["account"].astype(str), revenue_accounts)]
    gl_side = revenue.assign(amount_cents=-revenue["amount_cents"].astype("int64"))
    return compare(
        "charges",
        [(EHR, ehr), (BILLING_CHARGES, billing), (GL_REVENUE, gl_side)],
        ["business_date", "cost_center"],
        tolerance_cents=tolerance_cents,
        window_days=timing_window_days,
        offset_date_key="business_date",
    )


def reconcile_claims(
    remit: pd.DataFrame,
    billing_payments: pd.DataFrame,
    gl_ar_relief: pd.DataFrame | None,
    *,
    tolerance_cents: int = 0,
    business_date: dt.date | tuple[dt.date, dt.date] | None = None,
    timing_window_days: int = 3,
) -> pd.DataFrame:
    """835 CLP04 vs billing payments vs GL AR relief from CLP04, per (claim_id, payer_id).

    With ``business_date`` (a date or an inclusive (start, end)), rows dated outside it but
    within ``timing_window_days`` explain timing instead of being missing; pass billing
    payments for the wider window to get that. A payment posted twice is ``duplicate``.
    ``gl_ar_relief`` None leaves the GL out: a summary ledger does not carry claims, and the
    nightly close checks AR relief at the ledger's own grain instead (``ledger`` check).
    """
    sides = [(REMIT_CLAIMS, remit), (BILLING_PAYMENTS, billing_payments)]
    if gl_ar_relief is not None:
        sides.append((GL_AR_RELIEF, gl_ar_relief))
    return compare(
        "claims",
        sides,
        ["claim_id", "payer_id"],
        tolerance_cents=tolerance_cents,
        period=_period(business_date),
        window_days=timing_window_days,
    )


def reconcile_cash(
    remit_traces: pd.DataFrame,
    gl_cash: pd.DataFrame | None,
    receipts: pd.DataFrame,
    *,
    bank: pd.DataFrame | None = None,
    tolerance_cents: int = 0,
    business_date: dt.date | tuple[dt.date, dt.date] | None = None,
    timing_window_days: int = 3,
) -> pd.DataFrame:
    """BPR02 per trace vs the bank deposit vs GL cash clearing vs ERP cash receipt, per trace.

    ``bank`` (deposits reassociated by trace) and ``gl_cash`` are left out when None (no bank
    statement for the day; the ERP's receipts read back are the GL side). A trace on two 835s,
    two deposits, in two posted journals or on two receipts is ``duplicate``.
    """
    sides = [(REMIT_TRACES, remit_traces)]
    if bank is not None:
        sides.append((BANK_DEPOSITS, bank))
    if gl_cash is not None:
        sides.append((GL_CASH, gl_cash))
    sides.append((ERP_RECEIPTS, receipts))
    return compare(
        "cash",
        sides,
        ["trace_number"],
        tolerance_cents=tolerance_cents,
        period=_period(business_date),
        window_days=timing_window_days,
    )


def control_totals(items: pd.DataFrame) -> dict[str, Any]:
    """Counts per status and check, side sums and variance: the figures the nightly email shows.

    Shaped as the finance report's ``summary`` takes it (one mapping per check, scalars for the
    overall figures), so the caller passes it on unchanged::

        {"items_total": n, "unmatched_total": u, "variance_total_cents": v,
         "charges": {"items": n, "unmatched": u, "ehr_cents": .., "billing_cents": .., "gl_cents": ..,
                     "variance_cents": v, "items_by_status": {"matched": n, ...}},
         "claims": {...remit/billing/gl...}, "cash": {...remit/gl/receipt...}}

    ``items_by_status`` lists the statuses that occur; ``variance_cents`` sums the items'
    variances (what does not match), not the difference of the side totals, so offsetting
    errors cannot hide each other.
    """
    total_items = int(len(items))
    result: dict[str, Any] = {
        "items_total": total_items,
        "unmatched_total": int((items["status"] != "matched").sum()) if total_items else 0,
        "variance_total_cents": int(items["variance_cents"].sum()) if total_items else 0,
    }
    if not total_items:
        return result
    for check, group in items.groupby("check", sort=False):
        name = str(check)
        sides = SIDE_COLUMNS.get(name) or tuple(
            c[: -len("_cents")] for c in group.columns if c.endswith("_cents") and c != "variance_cents"
        )
        counts = group["status"].value_counts()
        entry: dict[str, Any] = {
            "items": int(len(group)),
            "unmatched": int((group["status"] != "matched").sum()),
        }
        for side in sides:
            column = f"{side}_cents"
            # a side no item of this check has is absent (shown as "-"), not a zero
            if column in group.columns and group[column].notna().any():
                values = pd.to_numeric(group[column], errors="coerce")
                # the ledger nets to zero per key set by construction: show its debits instead
                entry[column] = int(values.clip(lower=0).sum() if name == "ledger" else values.sum())
        entry["variance_cents"] = int(group["variance_cents"].sum())
        entry["items_by_status"] = {s: int(counts[s]) for s in STATUSES if s in counts.index}
        result[name] = entry
    return result


# --------------------------------------------------------------------------- input frames


def ehr_charges_frame(charges: pd.DataFrame, business_date: dt.date) -> pd.DataFrame:
    """EHR routed charges of one business date from a ``posting.charges_frame`` frame."""
    postable = _postable(charges)
    return pd.DataFrame(
        {
            "business_date": business_date,
            "cost_center": postable["cost_center"].to_numpy(),
            "amount_cents": postable["amount_cents"].to_numpy(dtype="int64"),
            "line_key": postable["line_key"].to_numpy(),
        }
    )


def billing_charges_frame(
    items: Iterable[Mapping[str, Any]], business_date: dt.date | None = None
) -> pd.DataFrame:
    """Billing ``GET /charges`` items (accepted ones) as the billing side of the charge check.

    ``business_date`` overrides ``service_date`` when the caller fetched one business day.
    """
    rows = [
        (
            business_date or dt.date.fromisoformat(str(item["service_date"])[:10]),
            item["cost_center"],
            to_cents(str(item["amount"])),
            item.get("line_key"),
        )
        for item in items
        if item.get("status", "accepted") == "accepted"
    ]
    return _frame(rows, ["business_date", "cost_center", "amount_cents", "line_key"])


def billing_payments_frame(items: Iterable[Mapping[str, Any]]) -> pd.DataFrame:
    """Billing ``GET /payments`` items: claim_id, payer_id, amount_cents, business_date (paid_date)."""
    rows = [
        (
            item["claim_id"],
            item["payer_id"],
            to_cents(str(item["amount"])),
            dt.date.fromisoformat(str(item["paid_date"])[:10]) if item.get("paid_date") else None,
            item.get("payment_id"),
            item.get("trace_number"),
        )
        for item in items
    ]
    return _frame(
        rows, ["claim_id", "payer_id", "amount_cents", "business_date", "payment_id", "trace_number"]
    )


def remit_claims_frame(remits: Iterable[MappedRemittance] | pd.DataFrame) -> pd.DataFrame:
    """One row per CLP: claim_id (CLP01), payer_id (ERP), amount_cents (CLP04), business_date, trace."""
    events = remits if isinstance(remits, pd.DataFrame) else remit_events_frame(remits)
    paid = events[events["component"] == policy.COMPONENT_PAYMENT]
    return paid[["claim_id", "payer_id", "amount_cents", "business_date", "trace_number"]].reset_index(
        drop=True
    )


def gl_charges_frame(contributions: pd.DataFrame) -> pd.DataFrame:
    """The GL side of the charge check from CHARGES contributions, with line keys.

    Unlike summary journal lines (``journal_lines_frame``) it keeps one row per charge line, so a
    line posted in two documents shows as ``duplicate`` rather than as a bare amount mismatch.
    """
    c = contributions
    rows = c[(c["source"] == policy.SOURCE_CHARGES) & (c["record_type"] == "charge")]
    return pd.DataFrame(
        {
            "business_date": rows["business_date"].to_numpy(),
            "cost_center": rows["cost_center"].to_numpy(),
            "account": rows["account"].to_numpy(),
            "amount_cents": rows["amount_cents"].to_numpy(dtype="int64"),
            "line_key": rows["record_key"].to_numpy(),
        }
    )


def gl_ar_relief_frame(contributions: pd.DataFrame) -> pd.DataFrame:
    """GL AR relief from CLP04 per CLP: the claim-side Cr 1200 of payment contributions, positive."""
    c = contributions
    rows = c[
        (c["record_type"] == "claim")
        & (c["component"] == policy.COMPONENT_PAYMENT)
        & (c["account"] == policy.AR_INSURANCE)
    ]
    return pd.DataFrame(
        {
            "claim_id": rows["claim_id"].to_numpy(),
            "payer_id": rows["payer_id"].to_numpy(),
            "amount_cents": -rows["amount_cents"].to_numpy(dtype="int64"),
            "business_date": rows["business_date"].to_numpy(),
            "trace_number": rows["trace_number"].to_numpy(),
            "external_id": rows["external_id"].to_numpy(),
        }
    )


def gl_cash_frame(contributions: pd.DataFrame) -> pd.DataFrame:
    """Net cash-clearing debit per (trace, posted document): what the GL holds for each EFT."""
    c = contributions
    rows = c[(c["record_type"] == "trace") & (c["account"] == policy.CASH_CLEARING)]
    if rows.empty:
        return _frame([], ["trace_number", "external_id", "business_date", "amount_cents"])
    return (
        rows.assign(external_id=rows["external_id"].fillna(""))
        .groupby(["trace_number", "external_id", "business_date"], sort=False, dropna=False)["amount_cents"]
        .sum()
        .reset_index()
    )


def receipts_frame(receipts: Iterable[CashReceipt | Mapping[str, Any]]) -> pd.DataFrame:
    """ERP cash receipts (``CashReceipt`` or ``GET /cash-receipts`` items) per receipt."""
    rows = []
    for r in receipts:
        if isinstance(r, CashReceipt):
            rows.append((r.trace_number, r.amount_cents, r.receipt_date, r.external_id))
        else:
            date = r.get("receipt_date")
            rows.append(
                (
                    r["trace_number"],
                    to_cents(str(r["amount"])),
                    dt.date.fromisoformat(str(date)[:10]) if date else None,
                    r.get("external_id"),
                )
            )
    return _frame(rows, ["trace_number", "amount_cents", "business_date", "external_id"])


def journal_lines_frame(batches: Iterable[JournalBatch]) -> pd.DataFrame:
    """Journal lines as a GL frame: business_date, source, external_id, account, cost_center,
    location, facility, amount_cents (debit positive), memo."""
    rows = [
        (
            b.journal_date,
            b.source,
            b.company,
            b.external_id,
            line.account,
            line.cost_center,
            line.location,
            line.facility,
            line.debit_cents - line.credit_cents,
            line.memo,
        )
        for b in batches
        for line in b.lines
    ]
    return _frame(
        rows,
        [
            "business_date",
            "source",
            "company",
            "external_id",
            "account",
            "cost_center",
            "location",
            "facility",
            "amount_cents",
            "memo",
        ],
    )


def _frame(rows: list[tuple], columns: list[str]) -> pd.DataFrame:
    frame = pd.DataFrame.from_records(rows, columns=columns)
    frame["amount_cents"] = frame["amount_cents"].astype("int64")
    return frame


__all__ = [
    "billing_charges_frame",
    "billing_payments_frame",
    "control_totals",
    "ehr_charges_frame",
    "gl_ar_relief_frame",
    "gl_cash_frame",
    "gl_charges_frame",
    "is_revenue_account",
    "journal_lines_frame",
    "receipts_frame",
    "reconcile_cash",
    "reconcile_charges",
    "reconcile_claims",
    "remit_claims_frame",
    "remit_traces_frame",
]
