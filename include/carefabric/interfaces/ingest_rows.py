"""Canonical records to store rows for EHR ingest, and the batch one write transaction carries.

Split from ``ehr_ingest`` (which re-exports the row helpers): exception replay and accepted
corrections build their rows with the same functions, so a replayed or corrected line is stored
exactly as an ingested one.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import fields
from decimal import Decimal
from operator import attrgetter
from typing import Any

from carefabric import hl7
from carefabric.canonical import Charge, Encounter, MappedCharge
from carefabric.mapping import CHARGEABLE_TYPES, Held, map_charge
from carefabric.money import to_cents
from carefabric.store.crosswalks import Crosswalks

_CENTS: dict[Decimal, int] = {}


def _cents(value: Decimal) -> int:
    """``to_cents`` remembered per amount: a feed repeats its prices all day (bounded cache)."""
    hit = _CENTS.get(value)
    if hit is None:
        hit = to_cents(value)
        if len(_CENTS) >= 8192:
            _CENTS.clear()
        _CENTS[value] = hit
    return hit


def charge_row(charge: Charge, business_date: dt.date | None = None) -> dict[str, Any]:
    """The store row of a canonical charge (status received; mapping fills the rest)."""
    unit = charge.unit_amount
    return {
        "line_key": charge.line_key,
        "source": charge.source,
        "facility": charge.facility,
        "encounter_id": charge.encounter_id,
        "message_control_id": charge.message_control_id,
        "line_number": charge.line_number,
        "transaction_id": charge.transaction_id,
        "transaction_date": charge.transaction_date,
        "transaction_type": charge.transaction_type,
        "cdm_code": charge.cdm_code,
        "quantity": charge.quantity,
        "amount_cents": _cents(charge.extended_amount),
        "unit_amount_cents": _cents(unit) if unit is not None else None,
        "department": charge.department,
        "procedure_code": charge.procedure_code,
        "modifiers": "^".join(charge.modifiers) or None,
        "patient_token": charge.patient_token,
        "business_date": business_date or charge.transaction_date,
        "status": "received",
        "priced_from": "pending" if charge.needs_price else None,
    }


def apply_mapping(row: dict[str, Any], outcome: MappedCharge | Held | None) -> None:
    """Write a mapping outcome onto a charge row (status mapped/held); a line priced from the
    chargemaster gets its amount here."""
    if isinstance(outcome, MappedCharge):
        if row.get("priced_from") == "pending":
            priced = outcome.charge
            row.update(amount_cents=to_cents(priced.extended_amount), priced_from="cdm",
                       unit_amount_cents=to_cents(priced.unit_amount) if priced.unit_amount is not None else None)
        row.update(
            status="mapped",
            company=outcome.company,
            cost_center=outcome.cost_center,
            revenue_account=outcome.revenue_account,
            erp_item=outcome.erp_item,
        )
    elif isinstance(outcome, Held):
        row.update(status="held", company=None, cost_center=None, revenue_account=None, erp_item=None)


def supply_row(mapped: MappedCharge, business_date: dt.date) -> dict[str, Any]:
    charge = mapped.charge
    return {
        "line_key": charge.line_key,
        "facility": charge.facility,
        "transaction_date": charge.transaction_date,
        "business_date": business_date,
        "item": mapped.erp_item,
        "location": mapped.location,
        "quantity": charge.quantity,
        "unit_cost_cents": to_cents(mapped.item_unit_cost) if mapped.item_unit_cost is not None else None,
        "cost_center": mapped.cost_center,
        "company": mapped.company,
        "status": "mapped",
    }


_ENCOUNTER_COLUMNS = tuple(f.name for f in fields(Encounter) if not f.name.endswith("_phi"))
_ENCOUNTER_VALUES = attrgetter(*_ENCOUNTER_COLUMNS)


def encounter_row(enc: Encounter) -> dict[str, Any]:
    """Encounter columns without the ``*_phi`` fields (they stay in the raw message only).

    A shallow read of the fields: every value is a str, datetime or None, so ``asdict``'s
    recursive deep copy (a third of the ingest profile) bought nothing.
    """
    row = dict(zip(_ENCOUNTER_COLUMNS, _ENCOUNTER_VALUES(enc), strict=True))
    row["encounter_id"] = row["encounter_id"] or ""
    return row


def map_rows(charges: list[Charge], rows: list[dict[str, Any]], cw: Crosswalks) -> tuple[list[dict[str, Any]], list[Held]]:
    """Map charges in memory; return supply rows and held records. Rows are updated in place."""
    supply: list[dict[str, Any]] = []
    held: list[Held] = []
    for charge, row in zip(charges, rows, strict=True):
        if charge.transaction_type not in CHARGEABLE_TYPES:
            continue  # payments/adjustments in FT1 are billing's business, not charge capture
        outcome = map_charge(charge, cw)
        apply_mapping(row, outcome)
        if isinstance(outcome, Held):
            held.append(outcome)
        elif outcome.is_supply:
            supply.append(supply_row(outcome, row["business_date"]))
    return supply, held


class IngestBatch:
    """Rows gathered from up to ``CHUNK`` messages, written in one transaction.

    Each encounter and charge row remembers the message it came from, so a message found to be
    a re-send (``resends.triage``) can be taken out before anything of it is written. An HL7 key
    repeated inside the batch is kept apart in ``repeats`` (never written as a message row).
    """

    def __init__(self, business_date: dt.date | None = None) -> None:
        self.business_date = business_date
        self.raw: list[dict[str, Any]] = []
        self.encounters: list[dict[str, Any]] = []
        self.charges: list[Charge] = []
        self.charge_rows: list[dict[str, Any]] = []
        self.errors: list[dict[str, Any]] = []
        self.enc_owner: list[int] = []
        self.charge_owner: list[int] = []
        self.hl7: dict[tuple[str, str, str], int] = {}  # raw key -> index in raw
        self.repeats: list[tuple[dict[str, Any], list[dict[str, Any]]]] = []

    def __len__(self) -> int:
        return len(self.raw) + len(self.repeats)

    def add_hl7(self, raw: dict[str, Any], result: hl7.CanonicalResult) -> None:
        key = (raw["sender"], raw["control_id"], raw["message_type"])
        rows = [charge_row(c, self.business_date) for c in result.charges]
        if key in self.hl7:
            self.repeats.append((raw, rows))
            return
        index = self.hl7[key] = len(self.raw)
        self.raw.append(raw)
        if result.encounter is not None:
            self.encounters.append(encounter_row(result.encounter))
            self.enc_owner.append(index)
        self.charges.extend(result.charges)
        self.charge_rows.extend(rows)
        self.charge_owner.extend([index] * len(rows))

    def candidates(self) -> list[tuple[int, dict[str, Any], list[dict[str, Any]]]]:
        """Every HL7 message with its charge rows, repeats last (indexes after ``raw``)."""
        lines: dict[int, list[dict[str, Any]]] = {}
        for owner, row in zip(self.charge_owner, self.charge_rows, strict=True):
            lines.setdefault(owner, []).append(row)
        out = [(i, self.raw[i], lines.get(i, [])) for i in self.hl7.values()]
        out += [(len(self.raw) + j, raw, rows) for j, (raw, rows) in enumerate(self.repeats)]
        return out

    def drop(self, indexes: set[int]) -> None:
        """Forget the records of these messages (their raw rows stay: they are the originals)."""
        if not indexes:
            return
        keep = [o not in indexes for o in self.enc_owner]
        self.encounters = [r for r, k in zip(self.encounters, keep, strict=True) if k]
        self.enc_owner = [o for o, k in zip(self.enc_owner, keep, strict=True) if k]
        keep = [o not in indexes for o in self.charge_owner]
        self.charges = [c for c, k in zip(self.charges, keep, strict=True) if k]
        self.charge_rows = [r for r, k in zip(self.charge_rows, keep, strict=True) if k]
        self.charge_owner = [o for o, k in zip(self.charge_owner, keep, strict=True) if k]
