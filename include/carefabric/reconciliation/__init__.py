"""Nightly claims-to-ledger reconciliation, set-based on pandas DataFrames.

Charges (EHR = billing = GL revenue per day and cost center), claims (835 CLP04 = billing
payments = GL AR relief per claim and payer) and cash (BPR02 = GL cash clearing = ERP receipt
per trace). Pure: the caller fetches the sides and stores the items.
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
    reconcile_charges,
    reconcile_claims,
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
    "reconcile_charges",
    "reconcile_claims",
    "remit_claims_frame",
    "remit_traces_frame",
]
