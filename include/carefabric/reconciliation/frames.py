"""Input frames of the nightly checks: what posting returns, ERP journal batches and the billing
and ERP API items, shaped to the column contracts of ``checks`` so callers only fetch and pass."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

import pandas as pd

from carefabric.canonical import CashReceipt, JournalBatch, MappedRemittance
from carefabric.money import to_cents
from carefabric.posting import policy
from carefabric.posting.cash import remit_traces_frame
from carefabric.posting.journals import _postable, remit_events_frame

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
    rows: list[tuple[Any, ...]] = []
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
    "ehr_charges_frame",
    "gl_ar_relief_frame",
    "gl_cash_frame",
    "gl_charges_frame",
    "journal_lines_frame",
    "receipts_frame",
    "remit_claims_frame",
    "remit_traces_frame",
]
