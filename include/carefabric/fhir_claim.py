"""FHIR Claim and ExplanationOfBenefit: read and linked to their encounter and claim id.

What they feed: nothing posts from them. Billing stays the system of record for claims
(``billing_sync``) and the payer's 835 for adjudication and cash (``payer_remittance``); an EOB's
payment posted again from FHIR would count the cash twice. The EHR's Claim says which encounter
a claim id bills, and its EOB what the payer decided: both are kept in the raw message store
under their resource id with the link in the canonical read (``carefabric fhir FILE`` prints
it), for the console's trace and a later claims check (EHR claim total = billing = 835).
"""

from __future__ import annotations

from decimal import Decimal
from typing import Any

from carefabric.fhir_charge import encounter_of_reference, money
from carefabric.fhir_elements import FhirError, codes, items, resolve, text

CENT = Decimal("0.01")


def _cents(value: Any, path: str, currency: str) -> int | None:
    if value is None:
        return None
    return int((money(value, path, currency) / CENT).to_integral_value())


def _encounters(res: dict[str, Any], kind: str, ctx: Any) -> list[str]:
    """Visit numbers of every ``item[].encounter[]`` (in order, once each)."""
    visits: list[str] = []
    for i, item in enumerate(items(res.get("item"), f"{kind}.item")):
        for j, ref in enumerate(items(item.get("encounter"), f"{kind}.item[{i}].encounter")):
            found = encounter_of_reference(ref, f"{kind}.item[{i}].encounter[{j}]", res, ctx)
            if found is not None and found[0] not in visits:
                visits.append(found[0])
    return visits


def _identifier(res: dict[str, Any], kind: str) -> str:
    for ident in items(res.get("identifier"), f"{kind}.identifier"):
        value = text(ident.get("value"), f"{kind}.identifier.value")
        if value:
            return value
    rid = text(res.get("id"), f"{kind}.id")
    if not rid:
        raise FhirError(f"{kind}.identifier and id are both missing")
    return rid


def _reference_key(reference: Any, path: str, res: dict[str, Any]) -> str | None:
    """The identifier value, else the resource id, a Reference names."""
    target = resolve(reference, path, res)
    if target is None:
        return None
    if target.identifier and text(target.identifier.get("value"), f"{path}.identifier.value"):
        return text(target.identifier.get("value"), f"{path}.identifier.value")
    if target.resource is not None:
        return _identifier(target.resource, path)
    return target.resource_id


def read_claim(res: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """A Claim's id, status, use, total (cents), insurer and the encounters it bills."""
    claim_id = _identifier(res, "Claim")
    ctx.index.remember("Claim", text(res.get("id"), "Claim.id"), claim_id)  # an EOB may name it by id
    return {
        "kind": "Claim",
        "claim_id": claim_id,
        "status": text(res.get("status"), "Claim.status"),
        "use": text(res.get("use"), "Claim.use"),
        "encounter_ids": _encounters(res, "Claim", ctx),
        "total_cents": _cents(res.get("total"), "Claim.total", ctx.config.currency),
        "insurer": _reference_key(res.get("insurer"), "Claim.insurer", res),
    }


def read_eob(res: dict[str, Any], ctx: Any) -> dict[str, Any]:
    """An EOB's claim id (``claim`` reference: identifier, else id), outcome, totals per category
    (cents), payment (cents) and encounters; an EOB naming no claim is an error."""
    target = resolve(res.get("claim"), "ExplanationOfBenefit.claim", res)
    seen = ctx.index.get("Claim", target.resource_id) if target is not None and target.identifier is None else None
    claim_id = seen or _reference_key(res.get("claim"), "ExplanationOfBenefit.claim", res)
    if not claim_id:
        raise FhirError("ExplanationOfBenefit.claim is missing: the EOB cannot be linked to its claim")
    totals: dict[str, int] = {}
    for i, total in enumerate(items(res.get("total"), "ExplanationOfBenefit.total")):
        category = next((c for _, c in codes(total.get("category"), f"ExplanationOfBenefit.total[{i}].category") if c),
                        f"#{i}")
        totals[category] = _cents(total.get("amount"), f"ExplanationOfBenefit.total[{i}].amount",
                                  ctx.config.currency) or 0
    payment_value = res.get("payment")
    payment: dict[str, Any] = payment_value if isinstance(payment_value, dict) else {}
    return {
        "kind": "ExplanationOfBenefit",
        "eob_id": text(res.get("id"), "ExplanationOfBenefit.id"),
        "claim_id": claim_id,
        "status": text(res.get("status"), "ExplanationOfBenefit.status"),
        "outcome": text(res.get("outcome"), "ExplanationOfBenefit.outcome"),
        "encounter_ids": _encounters(res, "ExplanationOfBenefit", ctx),
        "totals_cents": totals,
        "payment_cents": _cents(payment.get("amount"), "ExplanationOfBenefit.payment.amount", ctx.config.currency),
        "insurer": _reference_key(res.get("insurer"), "ExplanationOfBenefit.insurer", res),
    }
