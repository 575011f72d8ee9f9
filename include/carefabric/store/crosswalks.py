"""Governed crosswalks: CSV import, operator edits with history and audit, and an in-memory snapshot.

Every change to a crosswalk row bumps its ``version``, stamps ``valid_from``/``changed_by``, and
writes a ``crosswalk_history`` row with the before and after values; operator edits also go to
the audit log. Mapping code loads one ``Crosswalks`` snapshot per run and looks records up in
dictionaries: never a query per record.
"""

from __future__ import annotations

import csv
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carefabric.store import audit
from carefabric.store.models import (
    CrosswalkHistory,
    CwCdm,
    CwDepartment,
    CwFacility,
    CwPayer,
    ErpCompany,
    ErpCostCenter,
    ErpGlAccount,
    ErpItem,
    ErpLocation,
    ErpPayer,
)
from carefabric.store.types import utcnow


@dataclass(frozen=True, slots=True)
class Spec:
    """How one crosswalk is keyed and which CSV file seeds it."""

    name: str
    model: type[Any]
    key: tuple[str, ...]
    values: tuple[str, ...]
    required: tuple[str, ...]
    filename: str


SPECS: dict[str, Spec] = {
    "departments": Spec(
        "departments",
        CwDepartment,
        ("facility", "department"),
        ("cost_center",),
        ("cost_center",),
        "departments.csv",
    ),
    "cdm": Spec(
        "cdm",
        CwCdm,
        ("cdm_code",),
        ("revenue_account", "erp_item", "procedure_code", "description", "price_cents"),
        ("revenue_account",),
        "cdm.csv",
    ),
    "payers": Spec("payers", CwPayer, ("x12_payer_id",), ("erp_payer_id",), ("erp_payer_id",), "payers.csv"),
    "facilities": Spec(
        "facilities",
        CwFacility,
        ("facility",),
        ("npi", "tax_id", "location", "company"),
        ("company",),
        "facilities.csv",
    ),
}


class CrosswalkError(ValueError):
    """A crosswalk row that cannot be stored (missing key or required value)."""


def _clean(value: Any) -> str | None:
    if value is None:
        return None
    text = str(value).strip()
    return text or None


def _price_cents(raw: Mapping[str, Any]) -> Mapping[str, Any]:
    """A CDM row's price as integer cents: CSV column ``price`` (dollars, ``12.50``) or ``price_cents``.

    Chargemaster exports carry dollars; the store keeps cents like every amount.
    """
    price = _clean(raw.get("price"))
    cents = _clean(raw.get("price_cents"))
    try:
        if cents is not None:
            value = int(cents)
        elif price is not None:
            value = int((Decimal(price) * 100).to_integral_value(ROUND_HALF_UP))
        else:
            return raw
    except (InvalidOperation, ValueError):
        raise CrosswalkError("cdm price is not a number of dollars (price) or cents (price_cents)") from None
    if value < 0:
        raise CrosswalkError("cdm price must not be negative")
    return {**raw, "price_cents": value}


def _key_text(spec: Spec, values: Mapping[str, Any]) -> str:
    return "|".join(str(values[c]) for c in spec.key)


def apply_rows(
    session: Session, name: str, rows: Iterable[Mapping[str, Any]], actor: str, *, keep_missing: bool = False
) -> dict[str, int]:
    """Create or update crosswalk ``name`` rows; return counts created/updated/unchanged.

    One query loads the current rows. With ``keep_missing`` a value the row does not name (or
    names as None) keeps its current value; otherwise it is cleared.
    """
    spec = SPECS[name]
    current = {tuple(getattr(r, c) for c in spec.key): r for r in session.scalars(select(spec.model))}
    counts = {"created": 0, "updated": 0, "unchanged": 0}
    now = utcnow()
    for number, raw in enumerate(rows, start=1):
        if name == "cdm":
            raw = _price_cents(raw)
        values: dict[str, str | int | None] = {c: _clean(raw.get(c)) for c in (*spec.key, *spec.values)}
        price_cents = values.get("price_cents")
        if price_cents is not None:
            values["price_cents"] = int(price_cents)
        missing = [c for c in (*spec.key, *spec.required) if not values[c]]
        key = tuple(values[c] for c in spec.key)
        row = current.get(key)
        if keep_missing and row is not None:
            for c in spec.values:
                if raw.get(c) is None:
                    values[c] = getattr(row, c)
            missing = [c for c in (*spec.key, *spec.required) if not values[c]]
        if missing:
            raise CrosswalkError(f"{name} row {number}: missing {', '.join(missing)}")
        if row is None:
            row = spec.model(**values, version=1, valid_from=now, changed_by=actor)
            session.add(row)
            current[key] = row
            before = None
            counts["created"] += 1
        else:
            before = {c: getattr(row, c) for c in (*spec.key, *spec.values)}
            if all(before[c] == values[c] for c in spec.values):
                counts["unchanged"] += 1
                continue
            for c in spec.values:
                setattr(row, c, values[c])
            row.version += 1
            row.valid_from = now
            row.changed_by = actor
            counts["updated"] += 1
        session.add(
            CrosswalkHistory(
                crosswalk=name,
                key=_key_text(spec, values),
                version=row.version,
                action="create" if before is None else "update",
                before=before,
                after=values,
                changed_at=now,
                changed_by=actor,
            )
        )
    session.flush()
    return counts


def import_csv_dir(session: Session, path: str | Path, actor: str) -> dict[str, dict[str, int]]:
    """Load ``departments.csv``, ``cdm.csv``, ``payers.csv``, ``facilities.csv`` from ``path``.

    Files that are absent are skipped. Rows already identical are left alone (re-importing the
    same files changes nothing); changed rows get a new version. One audit entry per file.
    """
    folder = Path(path)
    result: dict[str, dict[str, int]] = {}
    for name, spec in SPECS.items():
        file = folder / spec.filename
        if not file.exists():
            continue
        with file.open(newline="", encoding="utf-8-sig") as handle:
            reader = csv.DictReader(handle)
            header = set(reader.fieldnames or ())
            lacking = [c for c in (*spec.key, *spec.required) if c not in header]
            if lacking:
                raise CrosswalkError(f"{file.name}: missing column(s) {', '.join(lacking)}")
            counts = apply_rows(session, name, list(reader), actor)
        result[name] = counts
        audit.record(session, actor, "crosswalk.import", f"crosswalk:{name}", {"file": file.name, **counts})
    return result


def _set(session: Session, name: str, values: dict[str, Any], actor: str) -> Any:
    spec = SPECS[name]
    counts = apply_rows(session, name, [values], actor, keep_missing=True)
    key = tuple(_clean(values[c]) for c in spec.key)
    row = session.scalars(
        select(spec.model).where(*(getattr(spec.model, c) == v for c, v in zip(spec.key, key, strict=True)))
    ).one()
    if counts["unchanged"] == 0:
        after = {c: getattr(row, c) for c in (*spec.key, *spec.values)}
        audit.record(
            session,
            actor,
            "crosswalk.set",
            f"crosswalk:{name}:{_key_text(spec, after)}",
            {"version": row.version, **after},
        )
    return row


def set_cdm(
    session: Session,
    code: str,
    revenue_account: str,
    erp_item: str | None = None,
    procedure_code: str | None = None,
    description: str | None = None,
    *,
    actor: str,
    price_cents: int | None = None,
) -> CwCdm:
    """Add or change one CDM mapping (history + audit). ``None`` keeps an existing optional
    value; ``""`` clears it. ``price_cents`` is the chargemaster unit price."""
    return _set(
        session,
        "cdm",
        {
            "cdm_code": code,
            "revenue_account": revenue_account,
            "erp_item": erp_item,
            "procedure_code": procedure_code,
            "description": description,
            "price_cents": price_cents,
        },
        actor,
    )


def set_department(
    session: Session, facility: str, department: str, cost_center: str, *, actor: str
) -> CwDepartment:
    """Add or change one department -> cost center mapping (history + audit)."""
    return _set(
        session,
        "departments",
        {"facility": facility, "department": department, "cost_center": cost_center},
        actor,
    )


def set_payer(session: Session, x12_payer_id: str, erp_payer_id: str, *, actor: str) -> CwPayer:
    """Add or change one X12 payer -> ERP payer mapping (history + audit)."""
    return _set(session, "payers", {"x12_payer_id": x12_payer_id, "erp_payer_id": erp_payer_id}, actor)


def set_facility(
    session: Session,
    facility: str,
    company: str,
    npi: str | None = None,
    location: str | None = None,
    tax_id: str | None = None,
    *,
    actor: str,
) -> CwFacility:
    """Add or change one facility mapping (history + audit)."""
    return _set(
        session,
        "facilities",
        {"facility": facility, "company": company, "npi": npi, "tax_id": tax_id, "location": location},
        actor,
    )


# --------------------------------------------------------------------------- snapshot


@dataclass(frozen=True, slots=True)
class CdmEntry:
    cdm_code: str
    revenue_account: str
    erp_item: str | None
    procedure_code: str | None
    description: str | None
    price_cents: int | None = None  # chargemaster unit price


@dataclass(frozen=True, slots=True)
class FacilityEntry:
    facility: str
    npi: str | None
    tax_id: str | None
    location: str | None
    company: str


@dataclass(frozen=True, slots=True)
class Crosswalks:
    """Every crosswalk and the replicated ERP master, loaded once per run for in-memory mapping."""

    departments: dict[tuple[str, str], str] = field(default_factory=dict)  # (facility, dept) -> cost center
    cdm: dict[str, CdmEntry] = field(default_factory=dict)
    payers: dict[str, str] = field(default_factory=dict)  # x12 payer id -> ERP payer id
    facilities: dict[str, FacilityEntry] = field(default_factory=dict)
    facilities_by_npi: dict[str, FacilityEntry] = field(default_factory=dict)
    facilities_by_tax_id: dict[str, FacilityEntry] = field(default_factory=dict)
    cost_centers_active: dict[str, bool] = field(default_factory=dict)  # ERP cost centers
    accounts_active: dict[str, bool] = field(default_factory=dict)  # ERP GL accounts
    item_unit_costs_cents: dict[str, int | None] = field(default_factory=dict)  # ERP items
    items_active: dict[str, bool] = field(default_factory=dict)
    locations: frozenset[str] = frozenset()  # ERP locations
    erp_payers_active: dict[str, bool] = field(default_factory=dict)
    companies: frozenset[str] = frozenset()
    versions: dict[str, int] = field(default_factory=dict)  # crosswalk -> highest row version

    @classmethod
    def load(cls, session: Session) -> Crosswalks:
        """Read every crosswalk and master table once (a dozen queries, whatever the volume)."""
        rows = {name: list(session.scalars(select(spec.model))) for name, spec in SPECS.items()}
        cdm = {
            r.cdm_code: CdmEntry(r.cdm_code, r.revenue_account, r.erp_item, r.procedure_code, r.description, r.price_cents)
            for r in rows["cdm"]
        }
        facilities = {
            r.facility: FacilityEntry(r.facility, r.npi, r.tax_id, r.location, r.company) for r in rows["facilities"]
        }

        def pairs(*columns: Any) -> dict[Any, Any]:
            return {row[0]: row[1] for row in session.execute(select(*columns))}

        return cls(
            departments={(r.facility, r.department): r.cost_center for r in rows["departments"]},
            cdm=cdm,
            payers={r.x12_payer_id: r.erp_payer_id for r in rows["payers"]},
            facilities=facilities,
            facilities_by_npi={f.npi: f for f in facilities.values() if f.npi},
            facilities_by_tax_id={f.tax_id: f for f in facilities.values() if f.tax_id},
            cost_centers_active=pairs(ErpCostCenter.cost_center, ErpCostCenter.active),
            accounts_active=pairs(ErpGlAccount.account, ErpGlAccount.active),
            item_unit_costs_cents=pairs(ErpItem.item, ErpItem.unit_cost_cents),
            items_active=pairs(ErpItem.item, ErpItem.active),
            locations=frozenset(session.scalars(select(ErpLocation.location))),
            erp_payers_active=pairs(ErpPayer.payer_id, ErpPayer.active),
            companies=frozenset(session.scalars(select(ErpCompany.company_id))),
            versions={name: max((r.version for r in found), default=0) for name, found in rows.items()},
        )

    def cost_center(self, facility: str, department: str | None) -> str | None:
        """The cost center of a facility's department, None when not mapped."""
        if department is None:
            return None
        return self.departments.get((facility, department))

    def cdm_entry(self, code: str) -> CdmEntry | None:
        return self.cdm.get(code)

    def erp_payer(self, x12_payer_id: str | None) -> str | None:
        return self.payers.get(x12_payer_id) if x12_payer_id else None

    def facility(self, facility: str) -> FacilityEntry | None:
        return self.facilities.get(facility)

    def facility_by_npi(self, npi: str | None) -> FacilityEntry | None:
        return self.facilities_by_npi.get(npi) if npi else None

    def facility_by_tax_id(self, tax_id: str | None) -> FacilityEntry | None:
        return self.facilities_by_tax_id.get(tax_id) if tax_id else None

    def cost_center_active(self, cost_center: str) -> bool | None:
        """True/False from the ERP master; None when the ERP does not know the cost center."""
        return self.cost_centers_active.get(cost_center)

    def account_active(self, account: str) -> bool | None:
        return self.accounts_active.get(account)

    def item_unit_cost_cents(self, item: str) -> int | None:
        """The item's unit cost in cents; None when unknown or when the ERP has no cost (drift)."""
        return self.item_unit_costs_cents.get(item)
