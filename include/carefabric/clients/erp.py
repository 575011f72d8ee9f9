"""ERP REST client: master data reads and idempotent postings (journals, inventory, cash).

Every write carries an external id derived from its content (see ``carefabric.posting``); the
ERP answers a re-used id with the first result, so a retry or a rerun never posts twice.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

from carefabric.canonical import CashReceipt, InventoryMovementLine, JournalBatch
from carefabric.clients.rest import RestClient
from carefabric.money import format_cents

MASTER_DATA = ("companies", "cost-centers", "gl-accounts", "items", "locations", "payers", "periods")


@dataclass(frozen=True)
class PostResult:
    """What the ERP said about one posting."""

    external_id: str
    document_id: str
    replayed: bool  # True when the ERP already had this external id


class ErpClient:
    """Typed calls over the ERP's ``/api/v1``."""

    def __init__(self, rest: RestClient) -> None:
        self.rest = rest

    def master_data(self, kind: str) -> Iterator[dict[str, Any]]:
        """All rows of one master-data list (``companies``, ``cost-centers``, ...)."""
        if kind not in MASTER_DATA:
            raise ValueError(f"unknown master data list: {kind}")
        return self.rest.paginate(f"/{kind}")

    def post_journal(self, batch: JournalBatch, description: str = "") -> PostResult:
        payload = {
            "external_id": batch.external_id,
            "company": batch.company,
            "journal_date": batch.journal_date.isoformat(),
            "source": batch.source,
            "description": description or f"carefabric {batch.source} {batch.journal_date.isoformat()}",
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
        return self._post("/journal-batches", payload)

    def post_inventory(
        self, external_id: str, company: str, movement_date: str, lines: list[InventoryMovementLine]
    ) -> PostResult:
        payload = {
            "external_id": external_id,
            "company": company,
            "movement_date": movement_date,
            "lines": [
                {
                    "location": line.location,
                    "item": line.item,
                    "quantity": str(line.quantity),
                    "unit_cost": str(line.unit_cost),
                    "cost_center": line.cost_center,
                    "movement_type": "consumption",
                }
                for line in lines
            ],
        }
        return self._post("/inventory-movements", payload)

    def post_cash_receipt(self, receipt: CashReceipt) -> PostResult:
        payload = {
            "external_id": receipt.external_id,
            "company": receipt.company,
            "receipt_date": receipt.receipt_date.isoformat(),
            "trace_number": receipt.trace_number,
            "payer_id": receipt.payer_id,
            "amount": format_cents(receipt.amount_cents),
            "facility": receipt.facility,
        }
        return self._post("/cash-receipts", payload)

    def repost(self, kind: str, payload: dict[str, Any]) -> PostResult:
        """Send a stored document again exactly as first built (``journal``, ``inventory``, ``cash``).

        Used to confirm documents an interrupted run stored as pending: the ERP answers a known
        external id with its first result, or posts it now if the first send never arrived.
        """
        paths = {"journal": "/journal-batches", "inventory": "/inventory-movements", "cash": "/cash-receipts"}
        if kind not in paths:
            raise ValueError(f"unknown document kind: {kind}")
        return self._post(paths[kind], payload)

    def journals(self, journal_date: str, source: str | None = None) -> list[dict[str, Any]]:
        params = {"journal_date": journal_date} | ({"source": source} if source else {})
        return list(self.rest.paginate("/journal-batches", params))

    def _post(self, path: str, payload: dict[str, Any]) -> PostResult:
        status, body = self.rest.json("POST", path, json=payload)
        return PostResult(payload["external_id"], str(body.get("document_id")), replayed=status == 200)
