"""Billing platform REST client: charge capture (idempotent per line) and incremental reads."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any

from carefabric.clients.rest import RestClient

CHARGE_BATCH_SIZE = 500


class BillingClient:
    """Typed calls over the billing platform's ``/api/v1``."""

    def __init__(self, rest: RestClient) -> None:
        self.rest = rest
        rest.peer = rest.peer or "billing"

    def post_charges(self, charges: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """Send charges in batches; each dict carries its own ``idempotency_key`` (the line key).

        Returns one result per charge (``accepted``, ``replayed`` or ``conflict``).
        """
        results: list[dict[str, Any]] = []
        batch: list[dict[str, Any]] = []
        for charge in charges:
            batch.append(charge)
            if len(batch) >= CHARGE_BATCH_SIZE:
                results.extend(self._post_batch(batch))
                batch = []
        if batch:
            results.extend(self._post_batch(batch))
        return results

    def _post_batch(self, batch: list[dict[str, Any]]) -> list[dict[str, Any]]:
        _, body = self.rest.json("POST", "/charges:batch", json={"charges": batch})
        return list(body.get("results", []))

    def changed(self, kind: str, updated_since: str | None, updated_before: str | None) -> Iterator[dict[str, Any]]:
        """Items of ``claims``, ``payments`` or ``patient-balances`` changed in [since, before)."""
        if kind not in ("claims", "payments", "patient-balances"):
            raise ValueError(f"unknown billing list: {kind}")
        params = {k: v for k, v in (("updated_since", updated_since), ("updated_before", updated_before)) if v}
        return self.rest.paginate(f"/{kind}", params)

    def charges_for(self, service_date: str) -> list[dict[str, Any]]:
        """Billing's accepted charges for one service date (for the nightly reconciliation)."""
        return list(self.rest.paginate("/charges", {"service_date": service_date}))
