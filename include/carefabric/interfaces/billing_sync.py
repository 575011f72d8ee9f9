"""Billing sync: claims, claim status, payments and patient balances changed in a run's window.

Incremental by the DAG run's data interval (``updated_since`` = interval start, ``updated_before``
= interval end) with a stored watermark, so a rerun of the same interval fetches the same rows
and upserts them again (no duplicates), and a missed run is caught up by the next. Pagination
and Retry-After are handled by the REST client. After the pull, every stored 835 claim payment
is matched to a billing claim by patient control number (CLP01 = billing claim id).
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.engine import Engine

from carefabric.clients.billing import BillingClient
from carefabric.money import to_cents
from carefabric.store import watermarks
from carefabric.store.bulk import upsert
from carefabric.store.db import session_scope
from carefabric.store.models import (
    BillingCharge,
    BillingClaim,
    BillingPayment,
    PatientBalance,
    RemitClaim,
    Remittance,
)

INTERFACE = "billing_sync"


def _date(value: Any) -> dt.date | None:
    return dt.date.fromisoformat(str(value)[:10]) if value else None


def _ts(value: Any) -> dt.datetime | None:
    if not value:
        return None
    parsed = dt.datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)


def _cents(value: Any) -> int:
    return to_cents(Decimal(str(value)))


def claim_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "claim_id": c["claim_id"], "encounter_id": c.get("encounter_id"), "facility": c.get("facility"),
            "payer_id": c.get("payer_id"), "total_charge_cents": _cents(c.get("total_charge", "0")),
            "status": c.get("status"), "status_date": _date(c.get("status_date")),
            "submitted_date": _date(c.get("submitted_date")), "source_updated_at": _ts(c.get("updated_at")),
        }
        for c in items
    ]


def payment_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "payment_id": p["payment_id"], "claim_id": p["claim_id"], "payer_id": p.get("payer_id"),
            "amount_cents": _cents(p["amount"]), "paid_date": _date(p.get("paid_date")),
            "trace_number": p.get("trace_number"), "source_updated_at": _ts(p.get("updated_at")),
        }
        for p in items
    ]


def balance_rows(items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "account_token": b["account_token"], "encounter_id": b.get("encounter_id"),
            "balance_cents": _cents(b.get("balance", "0")), "source_updated_at": _ts(b.get("updated_at")),
        }
        for b in items
    ]


def sync_window(engine: Engine, billing: BillingClient, *, since: dt.datetime, before: dt.datetime) -> dict[str, int]:
    """Pull and upsert everything billing changed in [since, before); advance the watermark."""
    window = (since.isoformat(), before.isoformat())
    claims = claim_rows(list(billing.changed("claims", *window)))
    payments = payment_rows(list(billing.changed("payments", *window)))
    balances = balance_rows(list(billing.changed("patient-balances", *window)))
    with session_scope(engine) as session:
        upsert(session, BillingClaim, claims, ["claim_id"])
        upsert(session, BillingPayment, payments, ["payment_id"])
        upsert(session, PatientBalance, balances, ["account_token"])
        previous = watermarks.get(session, INTERFACE, "updated_before")
        if previous is None or previous < window[1]:
            watermarks.set(session, INTERFACE, "updated_before", window[1])
    return {"claims": len(claims), "payments": len(payments), "patient_balances": len(balances)}


def sync_accepted_charges(engine: Engine, billing: BillingClient, service_date: dt.date) -> int:
    """Billing's accepted charges for one service date (the billing side of the charges check)."""
    items = billing.charges_for(service_date.isoformat())
    rows = [
        {
            "charge_id": c["charge_id"], "line_key": c.get("line_key"), "encounter_id": c.get("encounter_id"),
            "facility": c.get("facility"), "service_date": _date(c.get("service_date")), "cdm_code": c.get("cdm_code"),
            "cost_center": c.get("cost_center"), "revenue_account": c.get("revenue_account"),
            "amount_cents": _cents(c.get("amount", "0")), "status": c.get("status"),
        }
        for c in items
    ]
    with session_scope(engine) as session:
        upsert(session, BillingCharge, rows, ["charge_id"])
    return len(rows)


def match_remittance_claims(engine: Engine) -> dict[str, int]:
    """Count 835 claim payments with and without a billing claim (by patient control number)."""
    with session_scope(engine) as session:
        known = select(BillingClaim.claim_id)
        base = select(func.count(RemitClaim.id)).join(Remittance).where(Remittance.status.in_(("balanced", "posted")))
        matched = session.scalar(base.where(RemitClaim.patient_control_number.in_(known))) or 0
        unmatched = session.scalar(base.where(RemitClaim.patient_control_number.not_in(known))) or 0
    return {"remit_claims_matched": int(matched), "remit_claims_without_billing_claim": int(unmatched)}
