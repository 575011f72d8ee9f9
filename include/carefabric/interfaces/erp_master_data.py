"""ERP master data: companies, cost centers, GL accounts, items, locations, payers and periods
replicated into the store, drift reported, and held records that a new mapping resolves re-queued.

Master data flows out of the ERP; carefabric keeps a copy so mapping a day's feed is an
in-memory lookup. Drift that breaks postings (a mapped cost center that became inactive, an item
with no cost) is reported, and exceptions whose cause is gone are listed for replay.
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from sqlalchemy import select
from sqlalchemy.engine import Engine

from carefabric.canonical import Charge
from carefabric.clients.erp import ErpClient
from carefabric.mapping import map_charge
from carefabric.money import to_cents
from carefabric.store.bulk import upsert
from carefabric.store.crosswalks import Crosswalks
from carefabric.store.db import session_scope
from carefabric.store.models import (
    Charge as ChargeRow,
)
from carefabric.store.models import (
    CwCdm,
    CwDepartment,
    ErpCompany,
    ErpCostCenter,
    ErpGlAccount,
    ErpItem,
    ErpLocation,
    ErpPayer,
    ErpPeriod,
    ExceptionRecord,
)

INTERFACE = "erp_master_data"


def _rows(kind: str, items: list[dict[str, Any]]) -> list[dict[str, Any]]:
    if kind == "companies":
        return [{"company_id": i["company_id"], "name": i.get("name"), "currency": i.get("currency")} for i in items]
    if kind == "cost-centers":
        return [
            {"cost_center": i["cost_center"], "company_id": i.get("company_id"), "facility": i.get("facility"),
             "department": i.get("department"), "name": i.get("name"), "active": bool(i.get("active", True))}
            for i in items
        ]
    if kind == "gl-accounts":
        return [{"account": i["account"], "name": i.get("name"), "type": i.get("type"), "active": bool(i.get("active", True))} for i in items]
    if kind == "items":
        return [
            {"item": i["item"], "description": i.get("description"), "uom": i.get("uom"), "active": bool(i.get("active", True)),
             "unit_cost_cents": to_cents(Decimal(str(i["unit_cost"]))) if i.get("unit_cost") not in (None, "") else None}
            for i in items
        ]
    if kind == "locations":
        return [{"location": i["location"], "facility": i.get("facility"), "name": i.get("name")} for i in items]
    if kind == "payers":
        return [{"payer_id": i["payer_id"], "name": i.get("name"), "x12_id": i.get("x12_id"), "active": bool(i.get("active", True))} for i in items]
    if kind == "periods":
        return [{"period": i["period"], "status": i.get("status", "open")} for i in items]
    raise ValueError(kind)


TABLES = {
    "companies": (ErpCompany, ["company_id"]),
    "cost-centers": (ErpCostCenter, ["cost_center"]),
    "gl-accounts": (ErpGlAccount, ["account"]),
    "items": (ErpItem, ["item"]),
    "locations": (ErpLocation, ["location"]),
    "payers": (ErpPayer, ["payer_id"]),
    "periods": (ErpPeriod, ["period"]),
}


def replicate(engine: Engine, erp: ErpClient) -> dict[str, int]:
    """Upsert every master-data list; returns rows per list."""
    counts: dict[str, int] = {}
    fetched = {kind: _rows(kind, list(erp.master_data(kind))) for kind in TABLES}
    with session_scope(engine) as session:
        for kind, rows in fetched.items():
            model, keys = TABLES[kind]
            columns = {c.name for c in model.__table__.columns}
            upsert(session, model, [{k: v for k, v in r.items() if k in columns} for r in rows], keys)
            counts[kind] = len(rows)
    return counts


def drift(engine: Engine) -> list[dict[str, str]]:
    """Mappings the ERP no longer supports: inactive or unknown cost centers, items without cost."""
    findings: list[dict[str, str]] = []
    with session_scope(engine) as session:
        active = dict(session.execute(select(ErpCostCenter.cost_center, ErpCostCenter.active)).all())
        for dept in session.scalars(select(CwDepartment)):
            state = active.get(dept.cost_center)
            if state is None:
                findings.append({"kind": "unknown_cost_center", "key": f"{dept.facility}/{dept.department}", "value": dept.cost_center})
            elif not state:
                findings.append({"kind": "inactive_cost_center", "key": f"{dept.facility}/{dept.department}", "value": dept.cost_center})
        costs = dict(session.execute(select(ErpItem.item, ErpItem.unit_cost_cents)).all())
        for cdm in session.scalars(select(CwCdm).where(CwCdm.erp_item.is_not(None))):
            item = cdm.erp_item
            if item is None:  # the query leaves these out; the check narrows the column's type
                continue
            if item not in costs:
                findings.append({"kind": "unknown_item", "key": cdm.cdm_code, "value": item})
            elif costs[item] is None:
                findings.append({"kind": "item_without_cost", "key": cdm.cdm_code, "value": item})
    return findings


def charge_from_row(row: ChargeRow) -> Charge:
    """Rebuild the canonical charge of a stored line (for re-mapping after a fix).

    The stored ``line_key`` is kept exactly: a correction's line (``...|1~v2``) or a reversal
    (``...|1~rev2``) carries a suffix after ``source|MSH-10|line``.
    """
    base = f"{row.source}|{row.message_control_id}|{row.line_number}"
    return Charge(
        source=row.source, facility=row.facility, encounter_id=row.encounter_id,
        message_control_id=row.message_control_id, line_number=row.line_number,
        transaction_id=row.transaction_id, transaction_date=row.transaction_date,
        transaction_type=row.transaction_type, cdm_code=row.cdm_code, quantity=Decimal(row.quantity),
        extended_amount=Decimal(row.amount_cents) / 100,
        unit_amount=Decimal(row.unit_amount_cents) / 100 if row.unit_amount_cents is not None else None,
        department=row.department, procedure_code=row.procedure_code,
        modifiers=tuple((row.modifiers or "").split("^")) if row.modifiers else (), patient_token=row.patient_token,
        needs_price=row.priced_from == "pending",
        key_suffix=row.line_key[len(base):] if row.line_key.startswith(base) else "",
    )


def resolvable_exceptions(engine: Engine) -> list[int]:
    """Open charge exceptions whose line now maps with today's crosswalks and master data."""
    with session_scope(engine) as session:
        cw = Crosswalks.load(session)
        pairs = session.execute(
            select(ExceptionRecord.id, ChargeRow)
            .join(ChargeRow, ChargeRow.line_key == ExceptionRecord.record_key)
            .where(ExceptionRecord.status == "open", ExceptionRecord.record_type == "charge", ChargeRow.status == "held")
        ).all()
        return sorted(exc_id for exc_id, row in pairs if not hasattr(map_charge(charge_from_row(row), cw), "reason_code"))
