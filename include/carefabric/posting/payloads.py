"""The one place an ERP document's payload is written: what the outbox stores is what is sent.

Journal batches, inventory movements and cash receipts each become the JSON body of the ERP's
API (docs/CONTRACTS.md "ERP API"). The outbox stores this dict before anything is sent and the
client sends the stored dict unchanged, so a re-send after a crash is byte-for-byte the first.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from carefabric.canonical import CashReceipt, InventoryMovementLine, JournalBatch
from carefabric.money import format_cents, to_cents

#: The ERP API path of each document kind.
DOCUMENT_PATHS = {"journal": "/journal-batches", "inventory": "/inventory-movements", "cash": "/cash-receipts"}


def journal_payload(batch: JournalBatch) -> dict[str, Any]:
    """A journal batch as the ERP takes it (amounts as decimal strings, no PHI in memos)."""
    return {
        "external_id": batch.external_id,
        "company": batch.company,
        "journal_date": batch.journal_date.isoformat(),
        "source": batch.source,
        "description": f"carefabric {batch.source} {batch.journal_date.isoformat()}",
        "lines": [
            {
                "account": line.account,
                "cost_center": line.cost_center,
                "location": line.location,
                "facility": line.facility,
                "debit": format_cents(line.debit_cents),
                "credit": format_cents(line.credit_cents),
                "memo": line.memo,
            }
            for line in batch.lines
        ],
    }


def journal_lines(batch: JournalBatch) -> list[dict[str, Any]]:
    """The stored copy of a journal's lines (integer cents), numbered as sent."""
    return [
        {"line_no": i, "account": ln.account, "cost_center": ln.cost_center, "location": ln.location,
         "facility": ln.facility, "debit_cents": ln.debit_cents, "credit_cents": ln.credit_cents, "memo": ln.memo}
        for i, ln in enumerate(batch.lines, start=1)
    ]


def inventory_payload(
    external_id: str, company: str, movement_date: dt.date, movements: Iterable[InventoryMovementLine]
) -> dict[str, Any]:
    """One day's consumption document; quantities and unit costs as exact decimal strings."""
    return {
        "external_id": external_id,
        "company": company,
        "movement_date": movement_date.isoformat(),
        "lines": [
            {"location": m.location, "item": m.item, "quantity": str(m.quantity), "unit_cost": str(m.unit_cost),
             "cost_center": m.cost_center, "movement_type": "consumption"}
            for m in movements
        ],
    }


def inventory_lines(movements: Iterable[InventoryMovementLine]) -> list[dict[str, Any]]:
    """The stored copy of a movement document's lines; unit cost in cents with the money helper."""
    return [
        {"line_no": i, "location": m.location, "item": m.item, "quantity": m.quantity,
         "unit_cost_cents": to_cents(m.unit_cost), "cost_center": m.cost_center, "debit_cents": 0, "credit_cents": 0}
        for i, m in enumerate(movements, start=1)
    ]


def cash_payload(receipt: CashReceipt) -> dict[str, Any]:
    """One cash receipt per EFT/check trace at BPR02."""
    return {
        "external_id": receipt.external_id,
        "company": receipt.company,
        "receipt_date": receipt.receipt_date.isoformat(),
        "trace_number": receipt.trace_number,
        "payer_id": receipt.payer_id,
        "amount": format_cents(receipt.amount_cents),
        "facility": receipt.facility,
    }
