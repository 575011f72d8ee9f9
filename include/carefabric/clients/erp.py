"""ERP REST client: master data reads, document look-ups and single-shot document sends.

Writes are never retried here: many ERP import APIs do not de-duplicate on the external id, and
a 503 or a dropped connection can come after the ERP committed the document. The outbox
(``carefabric.interfaces.erp_posting``) decides about re-sends, and asks ``find`` first.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from carefabric.clients.rest import RejectedError, RestClient
from carefabric.posting.payloads import DOCUMENT_PATHS

MASTER_DATA = ("companies", "cost-centers", "gl-accounts", "items", "locations", "payers", "periods")


@dataclass(frozen=True)
class PostResult:
    """What the ERP said about one posting."""

    external_id: str
    document_id: str
    replayed: bool  # True when the ERP already had this external id (its answer, or our look-up)


class ErpClient:
    """Typed calls over the ERP's ``/api/v1``."""

    def __init__(self, rest: RestClient) -> None:
        self.rest = rest
        rest.peer = rest.peer or "erp"

    def master_data(self, kind: str) -> Iterator[dict[str, Any]]:
        """All rows of one master-data list (``companies``, ``cost-centers``, ...)."""
        if kind not in MASTER_DATA:
            raise ValueError(f"unknown master data list: {kind}")
        return self.rest.paginate(f"/{kind}")

    def send(self, kind: str, payload: dict[str, Any]) -> PostResult:
        """POST one stored document exactly as stored, once (``journal``, ``inventory``, ``cash``)."""
        status, body = self.rest.json("POST", _path(kind), json=payload, retry=False)
        return PostResult(payload["external_id"], str(body.get("document_id")), replayed=status == 200)

    def find(self, kind: str, external_id: str) -> PostResult | None:
        """The ERP's document for an external id, or None when the ERP has none (404)."""
        try:
            _, body = self.rest.json("GET", f"{_path(kind)}/{quote(external_id, safe='')}",
                                     route=f"{_path(kind)}/{{external_id}}")
        except RejectedError as exc:
            if exc.status == 404:
                return None
            raise
        return PostResult(external_id, str(body.get("document_id")), replayed=True)

    def journals(self, journal_date: str, source: str | None = None) -> list[dict[str, Any]]:
        """Journal batches the ERP holds for a date (with their lines), whoever posted them."""
        params = {"journal_date": journal_date} | ({"source": source} if source else {})
        return list(self.rest.paginate("/journal-batches", params))

    def account_balances(self, through: str, accounts: list[str]) -> list[dict[str, Any]]:
        """The ERP's trial balance through a date: net debit per (account, facility)."""
        _, body = self.rest.json("GET", "/account-balances", params={"through": through, "account": accounts})
        return list(body.get("data", []))

    def cash_receipts(self, receipt_date: str) -> list[dict[str, Any]]:
        """Cash receipts the ERP holds for a date."""
        return list(self.rest.paginate("/cash-receipts", {"receipt_date": receipt_date}))

    def inventory_movements(self, movement_date: str) -> list[dict[str, Any]]:
        """Inventory movement documents the ERP holds for a date (with their lines)."""
        return list(self.rest.paginate("/inventory-movements", {"movement_date": movement_date}))


def _path(kind: str) -> str:
    if kind not in DOCUMENT_PATHS:
        raise ValueError(f"unknown document kind: {kind}")
    return DOCUMENT_PATHS[kind]
