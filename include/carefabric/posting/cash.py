"""Cash receipts (one per EFT/check trace, TRN02) and the per-trace remittance totals.

The bank deposit is identified by the trace number, so ERP cash application needs one receipt
per trace at BPR02, and nightly cash reconciliation compares exactly that figure with the GL
cash-clearing postings of the same trace.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from carefabric.canonical import CashReceipt, MappedRemittance
from carefabric.money import to_cents
from carefabric.posting import policy
from carefabric.posting.external_ids import external_id

# Columns of remit_traces_frame().
TRACE_COLUMNS = ["trace_number", "amount_cents", "payer_id", "facility", "company", "business_date"]


def remit_traces_frame(remits: Iterable[MappedRemittance]) -> pd.DataFrame:
    """One row per mapped 835 transaction: trace, BPR02 in cents, ERP payer, facility, date.

    Not aggregated per trace on purpose: reconciliation must see a trace that arrives twice.
    """
    rows = [
        (
            mr.remittance.trace_number,
            to_cents(mr.remittance.payment_amount),
            mr.erp_payer_id,
            mr.facility,
            mr.company,
            mr.business_date,
        )
        for mr in remits
    ]
    frame = pd.DataFrame.from_records(rows, columns=TRACE_COLUMNS)
    frame["amount_cents"] = frame["amount_cents"].astype("int64")
    return frame


def build_cash_receipts(remits: Iterable[MappedRemittance] | pd.DataFrame) -> list[CashReceipt]:
    """One ``CashReceipt`` per (company, business date, trace): amount BPR02, payer = ERP payer id.

    Several transactions under one trace (rare: one EFT split over ST/SE sets) add up into one
    receipt, because the bank shows one deposit; they must agree on payer and facility, else
    the trace is ambiguous and raises rather than guessing. ``remits`` may also be a
    ``remit_traces_frame``. Each receipt's external id hashes its own content, so a rerun is a
    no-op in the ERP.
    """
    frame = remits if isinstance(remits, pd.DataFrame) else remit_traces_frame(remits)
    if frame.empty:
        return []
    keys = ["company", "business_date", "trace_number"]
    grouped = frame.groupby(keys, sort=True).agg(
        amount_cents=("amount_cents", "sum"),
        payers=("payer_id", "nunique"),
        facilities=("facility", "nunique"),
        payer_id=("payer_id", "first"),
        facility=("facility", "first"),
    )
    ambiguous = grouped[(grouped["payers"] > 1) | (grouped["facilities"] > 1)]
    if len(ambiguous):
        traces = [key[2] for key in ambiguous.index[:5]]
        raise ValueError(f"trace number(s) {traces} carry more than one payer or facility")
    receipts: list[CashReceipt] = []
    flat = grouped.reset_index()
    columns = ("company", "business_date", "trace_number", "payer_id", "amount_cents", "facility")
    for company, business_date, trace, payer_id, amount_cents, facility in zip(
        *(flat[c].tolist() for c in columns), strict=True
    ):
        receipt = CashReceipt(
            external_id="",
            company=str(company),
            receipt_date=business_date,
            trace_number=str(trace),
            payer_id=str(payer_id),
            amount_cents=int(amount_cents),
            facility=str(facility),
        )
        receipt.external_id = external_id(
            "cash", policy.SOURCE_CASH, receipt.company, receipt.receipt_date, [receipt]
        )
        receipts.append(receipt)
    return receipts
