"""FHIR R4 ChargeItem to a canonical charge: status, encounter, chargemaster code and price.

Status per the specification (ChargeItemStatus): ``billable`` is a charge; ``entered-in-error``
reverses the charge the same ChargeItem id carried before (in this file, or found by the
caller's lookup), and is an exception when no such charge was seen; ``planned``,
``not-billable``, ``aborted`` and ``billed`` (billed elsewhere) are skipped with that reason;
``unknown`` (and anything else) is an exception. Price: ``priceOverride`` when present, else
the chargemaster price (CDM crosswalk ``price_cents``) x ``factorOverride`` x quantity; without
a factor and a known price the line is left to mapping (``needs_price``), which prices or holds
it. Money must be in the facility currency, finite and below ``MAX_AMOUNT``.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import replace
from decimal import ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any

from carefabric import phi
from carefabric.canonical import Charge
from carefabric.fhir_elements import FhirError, by_system, codes, items, number, obj, resolve, text

if TYPE_CHECKING:
    from carefabric.fhir import FhirConfig, ReadContext

SKIPPED = {
    "planned": "ChargeItem.status planned: not yet billable",
    "not-billable": "ChargeItem.status not-billable",
    "aborted": "ChargeItem.status aborted",
    "billed": "ChargeItem.status billed: already billed elsewhere",
}
# Code systems that are terminologies, not a chargemaster: never taken as the CDM code.
STANDARD_PREFIXES = (
    "http://www.ama-assn.org", "http://snomed.info", "http://loinc.org", "http://hl7.org",
    "http://terminology.hl7.org", "https://www.cms.gov", "http://www.cms.gov", "urn:oid:2.16.840.1.113883.6.",
)
MAX_AMOUNT = Decimal("10000000")  # a line of ten million dollars or more is not a charge
CENT = Decimal("0.01")

PriceLookup = Callable[[str], int | None]


def money(value: Any, path: str, currency: str) -> Decimal:
    """A Money element in ``currency``: present, finite, sensible (no PHI in the reason)."""
    element = obj(value, path)
    amount = number(element.get("value"), f"{path}.value")
    if amount is None:
        raise FhirError(f"{path}.value is missing")
    code = text(element.get("currency"), f"{path}.currency")
    if code is not None and code != currency:
        raise FhirError(f"{path}.currency {phi.code(code, 'currency')} is not {currency}", "FHIR_INVALID_PRICE")
    if abs(amount) >= MAX_AMOUNT:
        raise FhirError(f"{path}.value is out of range", "FHIR_INVALID_PRICE")
    return amount


def _cdm(res: dict[str, Any], config: FhirConfig) -> tuple[str, str | None]:
    pairs = codes(res.get("code"), "ChargeItem.code")
    cdm = next((c for s, c in pairs if c and s in config.cdm_systems), None)
    if cdm is None:
        cdm = next((c for s, c in pairs if c and not (s or "").startswith(STANDARD_PREFIXES)), None)
    if not cdm:
        raise FhirError("ChargeItem.code has no CDM coding")
    cpt = next((c for s, c in pairs if s == "http://www.ama-assn.org/go/cpt"), None)
    return cdm, cpt


def encounter_of_reference(reference: Any, path: str, container: dict[str, Any],
                           ctx: ReadContext) -> tuple[str, str | None] | None:
    """(visit number, facility or None) an Encounter reference names: contained, read earlier in
    the file, stored (by resource id), or by identifier; None when absent, an error when it
    names nothing we can resolve. One rule for ChargeItem.context and Claim/EOB item encounters."""
    target = resolve(reference, path, container)
    if target is None:
        return None
    if target.resource is not None:  # contained Encounter
        visit, facility, _ = ctx.encounter_keys(target.resource)
        return visit, facility
    known = ctx.index.get(target.resource_type or "Encounter", target.resource_id)
    if known is None and target.resource_id and ctx.encounter_lookup is not None:
        known = ctx.encounter_lookup(target.resource_id)
    if known is not None:
        return known
    if target.identifier:
        value = text(target.identifier.get("value"), f"{path}.identifier.value")
        if value:
            return value, None
    raise FhirError(f"{path} does not resolve to an Encounter (visit number)")


def _encounter_of(res: dict[str, Any], ctx: ReadContext) -> tuple[str, str | None]:
    """(visit number, facility or None) of ChargeItem.context."""
    found = encounter_of_reference(res.get("context"), "ChargeItem.context", res, ctx)
    if found is None:
        raise FhirError("ChargeItem.context is missing")
    return found


def _occurrence(res: dict[str, Any]) -> dt.date:
    when = text(res.get("occurrenceDateTime"), "ChargeItem.occurrenceDateTime")
    path = "ChargeItem.occurrenceDateTime"
    if when is None:
        when = text(obj(res.get("occurrencePeriod"), "ChargeItem.occurrencePeriod").get("start"),
                    "ChargeItem.occurrencePeriod.start")
        path = "ChargeItem.occurrencePeriod.start"
    if not when:
        raise FhirError("ChargeItem.occurrenceDateTime is missing")
    try:
        return dt.date.fromisoformat(when[:10])
    except ValueError as exc:
        raise FhirError(f"{path} is not a date") from exc


def _price(res: dict[str, Any], cdm: str, quantity: Decimal, ctx: ReadContext) -> tuple[Decimal, Decimal | None, bool]:
    """(extended amount, unit amount, needs_price)."""
    factor = number(res.get("factorOverride"), "ChargeItem.factorOverride")
    if res.get("priceOverride") is not None:
        amount = money(res.get("priceOverride"), "ChargeItem.priceOverride", ctx.config.currency)
        return amount, None, False
    cents = ctx.price_lookup(cdm) if ctx.price_lookup is not None else None
    if cents is None:
        if factor is not None and factor != 1:
            raise FhirError("ChargeItem.factorOverride given but the CDM code has no chargemaster price",
                            "FHIR_UNPRICED_CHARGE")
        return Decimal(0), None, True
    unit = Decimal(cents) / 100 * (factor if factor is not None else 1)
    amount = (unit * quantity).quantize(CENT, ROUND_HALF_UP)
    if abs(amount) >= MAX_AMOUNT:
        raise FhirError("ChargeItem price x factorOverride x quantity is out of range", "FHIR_INVALID_PRICE")
    return amount, unit.quantize(CENT, ROUND_HALF_UP), False


def _status(res: dict[str, Any]) -> str:
    status = text(res.get("status"), "ChargeItem.status") or "billable"
    if status in ("billable", "entered-in-error") or status in SKIPPED:
        return status
    raise FhirError(f"ChargeItem.status {phi.code(status, 'status')} is not a state to post", "FHIR_CHARGE_STATUS")


def read_charge(res: dict[str, Any], ctx: ReadContext) -> tuple[list[Charge], str | None]:
    """The canonical charges of one ChargeItem (a reversal for entered-in-error) and a skip reason."""
    rid = text(res.get("id"), "ChargeItem.id")
    if not rid:
        raise FhirError("ChargeItem.id is missing")
    status = _status(res)
    if status in SKIPPED:
        return [], SKIPPED[status]
    if status == "entered-in-error":
        return [reversal_of(rid, ctx)], None
    charge = build_charge(res, rid, ctx)
    ctx.charges[rid] = charge
    return [charge], None


def reversal_of(rid: str, ctx: ReadContext) -> Charge:
    """The credit undoing the charge ChargeItem ``rid`` carried (negated, key ``~rev1``)."""
    original = ctx.charges.get(rid)
    if original is None and ctx.charge_lookup is not None:
        original = ctx.charge_lookup(f"FHIR|{rid}|1")
    if original is None:
        raise FhirError("ChargeItem.status entered-in-error but no charge of this ChargeItem was seen",
                        "FHIR_REVERSAL_UNMATCHED")
    return replace(original, transaction_type="CD", quantity=-original.quantity,
                   extended_amount=-original.extended_amount, key_suffix="~rev1")


def build_charge(res: dict[str, Any], rid: str, ctx: ReadContext) -> Charge:
    config = ctx.config
    encounter_id, enc_facility = _encounter_of(res, ctx)
    facility = None
    for ext in items(res.get("extension"), "ChargeItem.extension"):
        if ext.get("url") == config.facility_extension:
            facility = text(ext.get("valueString"), "ChargeItem.extension.valueString")
    facility = facility or enc_facility or config.facility
    if not facility:
        raise FhirError("ChargeItem facility extension is missing")
    cdm, cpt = _cdm(res, config)
    quantity = number(obj(res.get("quantity"), "ChargeItem.quantity").get("value"), "ChargeItem.quantity.value")
    quantity = Decimal(1) if quantity is None else quantity
    if abs(quantity) >= MAX_AMOUNT:
        raise FhirError("ChargeItem.quantity.value is out of range", "FHIR_INVALID_PRICE")
    amount, unit, needs_price = _price(res, cdm, quantity, ctx)
    for ext in items(res.get("extension"), "ChargeItem.extension"):
        if ext.get("url") == config.unit_price_extension and unit is None and not needs_price:
            unit = money(ext.get("valueMoney"), "ChargeItem.extension.valueMoney", config.currency)
    performing = obj(res.get("performingOrganization"), "ChargeItem.performingOrganization")
    department = by_system([obj(performing.get("identifier"), "ChargeItem.performingOrganization.identifier")],
                           "ChargeItem.performingOrganization.identifier", config.department_systems)
    return Charge(
        source=config.source, facility=facility, encounter_id=encounter_id, message_control_id=rid, line_number=1,
        transaction_id=by_system(res.get("identifier"), "ChargeItem.identifier", config.transaction_systems),
        transaction_date=_occurrence(res), transaction_type="CG", cdm_code=cdm, quantity=quantity,
        extended_amount=amount, unit_amount=unit, department=department, procedure_code=cpt,
        patient_token=phi.token(ctx.mrn(res.get("subject"), res), kind="mrn"), needs_price=needs_price,
    )
