"""Routing of mapped charge lines to billing: one idempotency key per line, safe to retry.

Split from ``ehr_ingest`` (which re-exports both names) so that ingest, exception replay and
corrections accepted under the same MSH-10 route through the very same code: a reversal credit
and a replacement line are ordinary mapped rows with their own line keys.
"""

from __future__ import annotations

from collections import Counter
from typing import Any

from sqlalchemy import bindparam, select, update
from sqlalchemy.engine import Engine

from carefabric.clients.billing import BillingClient
from carefabric.money import format_cents
from carefabric.store import exceptions_repo
from carefabric.store.bulk import table_of
from carefabric.store.db import session_scope
from carefabric.store.models import Charge as ChargeRow
from carefabric.store.types import utcnow

INTERFACE = "ehr_ingest"


def billing_payload(row: ChargeRow) -> dict[str, Any]:
    """What billing receives for one line: tokens and codes, never names or MRNs."""
    return {
        "idempotency_key": row.line_key,
        "line_key": row.line_key,
        "encounter_id": row.encounter_id,
        "facility": row.facility,
        "transaction_id": row.transaction_id,
        "service_date": row.transaction_date.isoformat(),
        "cdm_code": row.cdm_code,
        "quantity": str(row.quantity.normalize()) if hasattr(row.quantity, "normalize") else str(row.quantity),
        "amount": format_cents(row.amount_cents),
        "department": row.department,
        "cost_center": row.cost_center,
        "revenue_account": row.revenue_account,
        "procedure_code": row.procedure_code,
        "patient_token": row.patient_token,
    }


def route_charges(engine: Engine, billing: BillingClient, *, line_keys: list[str] | None = None) -> dict[str, int]:
    """Send every mapped, unrouted charge to billing; idempotent per line, safe to retry."""
    with session_scope(engine) as session:
        query = select(ChargeRow).where(ChargeRow.status == "mapped").order_by(ChargeRow.id)
        if line_keys is not None:
            query = query.where(ChargeRow.line_key.in_(line_keys))
        rows = list(session.scalars(query))
        payloads = [billing_payload(r) for r in rows]
    if not payloads:
        return {"routed": 0, "replayed": 0, "conflicts": 0}
    results = billing.post_charges(payloads)
    by_key = {r["idempotency_key"]: r for r in results}
    updates, conflicts = [], []
    counts: Counter[str] = Counter()
    for payload in payloads:
        result = by_key.get(payload["idempotency_key"], {})
        counts[result.get("status", "missing")] += 1
        if result.get("status") in ("accepted", "replayed"):
            updates.append({"b_key": payload["line_key"], "b_id": str(result.get("charge_id"))})
        else:
            conflicts.append(payload["line_key"])
    with session_scope(engine) as session:
        if updates:
            charges = table_of(ChargeRow)
            session.connection().execute(
                update(charges)
                .where(charges.c.line_key == bindparam("b_key"))
                .values(status="routed", billing_charge_id=bindparam("b_id"), updated_at=utcnow()),
                updates,
            )
        if conflicts:
            exceptions_repo.open_exceptions(
                session,
                [
                    {"kind": "business", "reason_code": "BILLING_REJECTED", "interface": INTERFACE, "record_type": "charge",
                     "record_key": key, "summary": "billing refused the charge (idempotency key reused with other content)"}
                    for key in conflicts
                ],
            )
    return {"routed": counts["accepted"], "replayed": counts["replayed"], "conflicts": len(conflicts)}
