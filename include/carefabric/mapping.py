"""Crosswalk mapping: canonical records in, routable records or business exceptions out.

Pure functions over a ``Crosswalks`` snapshot loaded once per run, so mapping a day's feed is a
dictionary lookup per line, never a query. A line that cannot be mapped is *held* with a reason
code from ``docs/CONTRACTS.md``; fixing the crosswalk and replaying maps it again through the very
same function.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from decimal import Decimal
from typing import Any

from carefabric import phi
from carefabric.canonical import Charge, MappedCharge, MappedRemittance, Remittance
from carefabric.store.crosswalks import Crosswalks

CHARGEABLE_TYPES = frozenset({"CG", "CD"})


@dataclass(frozen=True, slots=True)
class Held:
    """Why a record cannot be routed: a business exception to open (no PHI in summary/detail)."""

    reason_code: str
    record_type: str
    record_key: str
    summary: str
    detail: dict[str, Any] = field(default_factory=dict)


def map_charge(charge: Charge, cw: Crosswalks) -> MappedCharge | Held:
    """Resolve facility, CDM, department cost center, revenue account and ERP item for one line.

    Checks run in the order an analyst would fix them: an unknown facility hides every other
    problem, an unknown CDM code hides the department, and so on. One reason per line. A line
    that arrived without an amount (``needs_price``) is priced here from the CDM price times
    the quantity (the returned ``MappedCharge.charge`` carries the amount), or held
    ``UNPRICED_CHARGE`` until the chargemaster has a price.

    Codes from the message are echoed through ``phi.code``: one that is not shaped like a code
    (a shifted name, an SSN) is named by its field instead.
    """
    key = charge.line_key
    cdm, fac = phi.code(charge.cdm_code, "CDM code"), phi.code(charge.facility, "facility")

    def held(reason: str, summary: str, **detail: Any) -> Held:
        return Held(reason, "charge", key, summary, {"cdm_code": cdm, "facility": fac, **detail})

    facility = cw.facility(charge.facility)
    if facility is None:
        return held("UNKNOWN_FACILITY", f"facility {fac} has no crosswalk entry")
    entry = cw.cdm_entry(charge.cdm_code)
    if entry is None or not entry.revenue_account:
        return held("UNKNOWN_CDM", f"CDM code {cdm} has no crosswalk entry")
    if charge.needs_price:
        if entry.price_cents is None:
            return held("UNPRICED_CHARGE", f"line has no amount (FT1-11/FT1-12) and CDM code {cdm} has no price")
        unit = Decimal(entry.price_cents) / 100
        charge = replace(charge, extended_amount=charge.quantity * unit, unit_amount=unit, needs_price=False)
    cost_center = cw.cost_center(charge.facility, charge.department)
    if cost_center is None:
        dept = phi.code(charge.department, "department")
        return held("UNKNOWN_DEPARTMENT", f"department {dept} at {fac} has no cost center", department=dept)
    active = cw.cost_center_active(cost_center)
    if active is None:
        return held("UNKNOWN_COST_CENTER", f"cost center {cost_center} is not in the ERP", cost_center=cost_center)
    if not active:
        return held("INACTIVE_COST_CENTER", f"cost center {cost_center} is inactive in the ERP", cost_center=cost_center)
    account_active = cw.account_active(entry.revenue_account)
    if not account_active:
        reason = "UNKNOWN_ACCOUNT" if account_active is None else "INACTIVE_ACCOUNT"
        return held(reason, f"revenue account {entry.revenue_account} is not active in the ERP", account=entry.revenue_account)
    unit_cost: Decimal | None = None
    if entry.erp_item:
        cents = cw.item_unit_cost_cents(entry.erp_item)
        if cents is None:
            return held("ITEM_WITHOUT_COST", f"ERP item {entry.erp_item} has no unit cost", item=entry.erp_item)
        unit_cost = Decimal(cents) / 100
        if not facility.location:
            return held("UNKNOWN_LOCATION", f"facility {fac} has no inventory location")
    return MappedCharge(
        charge=charge,
        company=facility.company,
        cost_center=cost_center,
        revenue_account=entry.revenue_account,
        erp_item=entry.erp_item or None,
        item_unit_cost=unit_cost,
        location=facility.location if entry.erp_item else None,
    )


def map_remittance(remit: Remittance, cw: Crosswalks, *, business_date: Any, record_key: str) -> MappedRemittance | Held:
    """Resolve the payer (x12 id -> ERP payer) and the payee facility (NPI) of a balanced 835."""

    def held(reason: str, summary: str, **detail: Any) -> Held:
        return Held(reason, "remittance", record_key, summary, {"trace_number": remit.trace_number, **detail})

    candidates = [remit.payer_id, remit.trace_originator]
    erp_payer = next((p for p in (cw.erp_payer(c) for c in candidates) if p), None)
    if erp_payer is None:
        return held("UNKNOWN_PAYER", f"payer {remit.payer_id or remit.trace_originator} has no crosswalk entry", payer_id=remit.payer_id)
    if cw.erp_payers_active and not cw.erp_payers_active.get(erp_payer, False):
        return held("UNKNOWN_PAYER", f"ERP payer {erp_payer} is unknown or inactive", payer_id=remit.payer_id)
    # The NPI names the payee exactly; some payers only send the tax id (N1*PE*..*FI).
    facility = cw.facility_by_npi(remit.payee_npi) or cw.facility_by_tax_id(remit.payee_tax_id)
    if facility is None:
        named = f"NPI {remit.payee_npi}" if remit.payee_npi else f"tax id {remit.payee_tax_id}"
        return held("UNKNOWN_FACILITY", f"payee {named} has no facility", payee_npi=remit.payee_npi,
                    payee_tax_id=remit.payee_tax_id)
    return MappedRemittance(
        remittance=remit,
        company=facility.company,
        facility=facility.facility,
        erp_payer_id=erp_payer,
        business_date=business_date,
    )
