"""The ERP's master data and the governed crosswalks a scenario ships with."""

from __future__ import annotations

import datetime as dt
from pathlib import Path
from typing import Any

from carefabric.money import format_cents
from sandbox.reference import (
    CHARGEMASTER,
    COMPANY,
    COMPANY_NAME,
    CURRENCY,
    DEPARTMENT_NAMES,
    DEPARTMENTS,
    GL_ACCOUNTS,
    PAYERS,
    Facility,
    cost_center,
)
from sandbox.scenario.common import write_csv


def write_crosswalks(out: Path, facs: list[Facility], department_map: dict[tuple[str, str], str]) -> None:
    """departments.csv (with the retired cost center fault), cdm.csv (without the unknown code),
    payers.csv (without the unknown payer), facilities.csv."""
    codes = [fac.code for fac in facs]
    write_csv(out / "crosswalks" / "departments.csv", ["facility", "department", "cost_center"],
              [[code, dept, department_map[(code, dept)]] for code in codes for dept in DEPARTMENTS])
    write_csv(out / "crosswalks" / "cdm.csv", ["cdm_code", "description", "revenue_account", "erp_item", "procedure_code"],
              [[e.code, e.description, e.revenue_account, e.erp_item or "", e.procedure_code] for e in CHARGEMASTER])
    write_csv(out / "crosswalks" / "payers.csv", ["x12_payer_id", "erp_payer_id"], [[p.x12_id, p.payer_id] for p in PAYERS])
    write_csv(out / "crosswalks" / "facilities.csv", ["facility", "npi", "location", "company"],
              [[fac.code, fac.npi, fac.location, COMPANY] for fac in facs])


def erp_master(facs: list[Facility], inactive: tuple[str, str, str], dates: list[dt.date]) -> dict[str, Any]:
    """The ERP's master data: the inactive cost center is listed (inactive), the unknown payer is not."""
    inactive_fac, inactive_dept, inactive_cc = inactive
    cost_centers = [
        {"cost_center": cost_center(fac.code, dept), "company_id": COMPANY, "facility": fac.code, "department": dept,
         "name": f"{fac.code} {DEPARTMENT_NAMES[dept]}", "active": True}
        for fac in facs
        for dept in DEPARTMENTS
    ]
    cost_centers.append({"cost_center": inactive_cc, "company_id": COMPANY, "facility": inactive_fac,
                         "department": inactive_dept, "name": f"{inactive_fac} {DEPARTMENT_NAMES[inactive_dept]} (retired)",
                         "active": False})
    months = sorted({date.strftime("%Y-%m") for date in dates})
    previous = (dates[0].replace(day=1) - dt.timedelta(days=1)).strftime("%Y-%m")
    return {
        "companies": [{"company_id": COMPANY, "name": COMPANY_NAME, "currency": CURRENCY}],
        "cost_centers": sorted(cost_centers, key=lambda c: c["cost_center"]),
        "gl_accounts": [{"account": account, "name": name, "type": kind, "active": True}
                        for account, name, kind in GL_ACCOUNTS],
        "items": [{"item": e.erp_item, "description": e.description, "unit_cost": format_cents(e.unit_cost_cents or 0),
                   "uom": "EA", "active": True} for e in CHARGEMASTER if e.erp_item],
        "locations": [{"location": fac.location, "facility": fac.code, "name": f"{fac.name} STOREROOM"} for fac in facs],
        "payers": [{"payer_id": p.payer_id, "name": p.name, "x12_id": p.x12_id, "active": True} for p in PAYERS],
        "periods": [{"period": previous, "status": "closed"}] + [{"period": m, "status": "open"} for m in months],
    }
