"""Nightly claims-to-ledger reconciliation, set-based on pandas DataFrames.

Charges (EHR = billing per line key over a window; EHR = GL revenue per account, cost center,
facility and day), claims (835 CLP04 = billing payments per claim and payer), remittance (835
codes = GL per facility and account, ``remittance``), cash (BPR02 = GL cash clearing = ERP
receipt per trace), the ledger checks (``ledger``) and the AR roll-forward (``rollforward``).
Pure: the caller fetches the sides and stores the items.
"""

from carefabric.reconciliation.checks import (
    billing_charges_frame,
    billing_payments_frame,
    control_totals,
    ehr_charges_frame,
    gl_ar_relief_frame,
    gl_cash_frame,
    gl_charges_frame,
    is_revenue_account,
    journal_lines_frame,
    receipts_frame,
    reconcile_cash,
    reconcile_charge_lines,
    reconcile_charges,
    reconcile_claims,
    reconcile_revenue,
    remit_claims_frame,
    remit_traces_frame,
)
from carefabric.reconciliation.engine import MATCHED_REASON, STATUSES, Side, compare

__all__ = [
    "MATCHED_REASON",
    "STATUSES",
    "Side",
    "billing_charges_frame",
    "billing_payments_frame",
    "compare",
    "control_totals",
    "ehr_charges_frame",
    "gl_ar_relief_frame",
    "gl_cash_frame",
    "gl_charges_frame",
    "is_revenue_account",
    "journal_lines_frame",
    "receipts_frame",
    "reconcile_cash",
    "reconcile_charge_lines",
    "reconcile_charges",
    "reconcile_claims",
    "reconcile_revenue",
    "remit_claims_frame",
    "remit_traces_frame",
]
