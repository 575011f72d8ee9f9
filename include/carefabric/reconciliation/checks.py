"""The nightly checks between systems of record (charges, revenue, claims, cash) and control totals.

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

- ``reconcile_charge_lines``: ``ehr`` (dated by business date) and ``billing`` (dated by
  service date): ``line_key``, ``business_date``, ``amount_cents``.
- ``reconcile_revenue``: ``ehr``: ``business_date``, ``account`` (the mapped revenue account),
  ``cost_center``, ``facility``, ``amount_cents``; ``gl``: ERP lines (``ledger.erp_lines_frame``).

The ``*_frame`` helpers (``frames``) build those frames from what posting returns, from ERP
journal batches, and from the billing and ERP API items, so the caller only fetches and passes.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Collection
from typing import Any

import numpy as np
import pandas as pd

from carefabric.reconciliation.engine import STATUSES, Side, compare, net_per_key
from carefabric.reconciliation.frames import (
    billing_charges_frame,
    billing_payments_frame,
    ehr_charges_frame,
    gl_ar_relief_frame,
    gl_cash_frame,
    gl_charges_frame,
    journal_lines_frame,
    receipts_frame,
    remit_claims_frame,
    remit_traces_frame,
)

EHR = Side("ehr", "EHR", "missing_in_ehr", "record_id", "line_key")
BILLING_CHARGES = Side("billing", "billing", "missing_in_billing", "record_id", "line_key")
GL_REVENUE = Side("gl", "GL", "missing_in_gl", "record_id", "line_key")
EHR_REVENUE = Side("ehr", "EHR captured", "missing_in_ehr")
REMIT_CLAIMS = Side("remit", "835", "missing_in_remit", "key_amount")
BILLING_PAYMENTS = Side("billing", "billing", "missing_in_billing", "key_amount")
GL_AR_RELIEF = Side("gl", "GL", "missing_in_gl", "key_amount")
REMIT_TRACES = Side("remit", "835", "missing_in_remit", "key")
GL_CASH = Side("gl", "GL cash clearing", "missing_in_gl", "key")
# The ERP is the ledger system, so a trace without its ERP cash receipt is missing in the GL
# family of statuses; the reason names the receipt.
ERP_RECEIPTS = Side("receipt", "ERP cash receipt", "missing_in_gl", "key")
BANK_DEPOSITS = Side("bank", "bank deposit", "missing_in_bank", "key")

NETTING_CHECKS = ("ledger", "remittance")  # both sides net to zero per document: totals show debits
SIDE_COLUMNS = {
    "charges": ("ehr", "billing", "gl"),
    "revenue": ("ehr", "gl"),
    "remittance": ("remit", "gl"),
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


def reconcile_charge_lines(
    ehr: pd.DataFrame,
    billing: pd.DataFrame,
    *,
    business_date: dt.date | tuple[dt.date, dt.date],
    window_days: int = 7,
    tolerance_cents: int = 0,
) -> pd.DataFrame:
    """Charges captured (EHR, dated by business date) vs billed (billing, dated by service date),
    per line key over a window of days.

    A late charge (service date days before the business date it was captured on) is in both
    systems on different dates: ``timing`` with the other date's amount in the reason, not a
    variance. A line one side never got within ``window_days`` is missing on that side; a line
    billing accepted twice is ``duplicate``. Keys: ``line_key``; columns ``business_date``,
    ``amount_cents``.
    """
    return compare(
        "charges",
        [(EHR, ehr), (BILLING_CHARGES, billing)],
        ["line_key"],
        tolerance_cents=tolerance_cents,
        period=_period(business_date),
        window_days=window_days,
    )


def reconcile_revenue(
    ehr: pd.DataFrame,
    gl: pd.DataFrame,
    *,
    tolerance_cents: int = 0,
    revenue_accounts: Collection[str] | None = None,
) -> pd.DataFrame:
    """Charges captured vs posted, at the grain finance posts: (date, revenue account, cost center,
    facility). EHR: routed charge lines with their mapped ``revenue_account`` (as ``account``);
    GL: the ERP's lines of the date, every source (a manual revenue journal counts), net credit.

    A wrong account in the right cost center, or two errors offsetting within a cost center,
    stay two items instead of netting to "matched". A key whose lines cancel (a charge and its
    credit) is no item: the ERP's summary journal has no line for it either.
    """
    keys = ["business_date", "account", "cost_center", "facility"]
    revenue = gl[is_revenue_account(gl["account"].astype(str), revenue_accounts)]
    gl_side = revenue.assign(amount_cents=-revenue["amount_cents"].astype("int64"))
    ehr_side = ehr.assign(**{k: ehr[k].fillna("").astype(str) for k in keys[1:]})
    gl_side = gl_side.assign(**{k: gl_side[k].fillna("").astype(str) for k in keys[1:]})
    return compare("revenue", [(EHR_REVENUE, net_per_key(ehr_side, keys)), (GL_REVENUE, net_per_key(gl_side, keys))],
                   keys, tolerance_cents=tolerance_cents)


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
                entry[column] = int(values.clip(lower=0).sum() if name in NETTING_CHECKS else values.sum())
        entry["variance_cents"] = int(group["variance_cents"].sum())
        entry["items_by_status"] = {s: int(counts[s]) for s in STATUSES if s in counts.index}
        result[name] = entry
    return result


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
