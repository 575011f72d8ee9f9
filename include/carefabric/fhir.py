"""FHIR R4 NDJSON (bulk export) reader: Encounter, ChargeItem and Coverage into canonical records.

Streams one resource per line, numbers parsed as ``Decimal`` (``json.loads(parse_float=Decimal)``)
so money is exact. The element mapping is the one the sandbox's EHR writes (documented in
``sandbox/fhir_writer.py``); a line that is not JSON, or a resource that misses a required
element, is reported with its line number and the rest of the file goes on. Resource types
carefabric does not route (Patient, Observation, ...) are counted as skipped.

Hand-written rather than with a FHIR model library: the three resources need a dozen paths,
and a full R4 model (fhir.resources) validates every element at a cost per line that a bulk
export of a day does not need.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from carefabric import phi
from carefabric.canonical import Charge, Encounter

SYSTEM_VISIT = "urn:carefabric:visit-number"
SYSTEM_FACILITY = "urn:carefabric:facility"
SYSTEM_DEPARTMENT = "urn:carefabric:department"
SYSTEM_CDM = "urn:carefabric:cdm"
SYSTEM_TRANSACTION = "urn:carefabric:transaction-id"
SYSTEM_CPT = "http://www.ama-assn.org/go/cpt"
EXT_FACILITY = "urn:carefabric:fhir:facility"
EXT_UNIT_PRICE = "urn:carefabric:fhir:unit-price"
SOURCE = "FHIR"
ROUTED = frozenset({"Encounter", "ChargeItem", "Coverage"})


class FhirError(ValueError):
    """A resource that cannot become a canonical record (reason names the element, no PHI)."""


@dataclass(slots=True)
class FhirItem:
    """One NDJSON line's outcome."""

    line_number: int
    resource_type: str | None
    resource_id: str | None
    raw: str
    encounter: Encounter | None = None
    charges: list[Charge] = field(default_factory=list)
    coverage: dict[str, str | None] | None = None
    skipped_reason: str | None = None
    error: str | None = None


def _ident(identifiers: list[dict[str, Any]] | None, system: str) -> str | None:
    for ident in identifiers or []:
        if ident.get("system") == system:
            return ident.get("value")
    return None


def _ext(resource: dict[str, Any], url: str) -> dict[str, Any] | None:
    for ext in resource.get("extension") or []:
        if ext.get("url") == url:
            return ext
    return None


def _mrn(subject: dict[str, Any] | None) -> str | None:
    ident = (subject or {}).get("identifier") or {}
    codes = [c.get("code") for c in (ident.get("type") or {}).get("coding") or []]
    return ident.get("value") if "MR" in codes or not codes else None


def _date(text: str | None, element: str) -> dt.date:
    if not text:
        raise FhirError(f"{element} is missing")
    try:
        return dt.date.fromisoformat(text[:10])
    except ValueError as exc:
        raise FhirError(f"{element} is not a date: {text[:10]!r}") from exc


def _encounter(res: dict[str, Any]) -> Encounter:
    visit = _ident(res.get("identifier"), SYSTEM_VISIT)
    if not visit:
        raise FhirError("Encounter.identifier (visit number) is missing")
    facility = _ident([((res.get("serviceProvider") or {}).get("identifier") or {})], SYSTEM_FACILITY)
    if not facility:
        raise FhirError("Encounter.serviceProvider facility identifier is missing")
    mrn = _mrn(res.get("subject"))
    period = res.get("period") or {}
    return Encounter(
        source=SOURCE,
        facility=facility,
        encounter_id=visit,
        event_type=str(res.get("status") or "unknown"),
        message_control_id=str(res.get("id")),
        patient_token=phi.token(mrn, kind="mrn"),
        patient_class=((res.get("class") or {}).get("code") if isinstance(res.get("class"), dict) else None),
        admit_time=_datetime(period.get("start")),
        discharge_time=_datetime(period.get("end")),
        mrn_phi=mrn,
    )


def _datetime(text: str | None) -> dt.datetime | None:
    if not text:
        return None
    try:
        return dt.datetime.fromisoformat(text)
    except ValueError:
        return None


def _charge(res: dict[str, Any]) -> Charge:
    rid = str(res.get("id") or "")
    if not rid:
        raise FhirError("ChargeItem.id is missing")
    context = res.get("context") or {}
    encounter_id = (context.get("identifier") or {}).get("value")
    if not encounter_id:
        raise FhirError("ChargeItem.context visit number is missing")
    ext = _ext(res, EXT_FACILITY)
    facility = ext.get("valueString") if ext else None
    if not facility:
        raise FhirError("ChargeItem facility extension is missing")
    codings = (res.get("code") or {}).get("coding") or []
    cdm = next((c.get("code") for c in codings if c.get("system") == SYSTEM_CDM), None)
    if not cdm:
        raise FhirError("ChargeItem.code has no CDM coding")
    cpt = next((c.get("code") for c in codings if c.get("system") == SYSTEM_CPT), None)
    quantity = (res.get("quantity") or {}).get("value")
    amount = (res.get("priceOverride") or {}).get("value")
    if not isinstance(quantity, (Decimal, int)) or not isinstance(amount, (Decimal, int)):
        raise FhirError("ChargeItem.quantity.value or priceOverride.value is not a number")
    unit_ext = _ext(res, EXT_UNIT_PRICE)
    unit = (unit_ext or {}).get("valueMoney", {}).get("value") if unit_ext else None
    department = _ident([((res.get("performingOrganization") or {}).get("identifier") or {})], SYSTEM_DEPARTMENT)
    mrn = _mrn(res.get("subject"))
    return Charge(
        source=SOURCE,
        facility=facility,
        encounter_id=encounter_id,
        message_control_id=rid,
        line_number=1,
        transaction_id=_ident(res.get("identifier"), SYSTEM_TRANSACTION),
        transaction_date=_date(res.get("occurrenceDateTime"), "ChargeItem.occurrenceDateTime"),
        transaction_type="CG" if res.get("status", "billable") == "billable" else "CD",
        cdm_code=cdm,
        quantity=Decimal(quantity),
        extended_amount=Decimal(amount),
        unit_amount=Decimal(unit) if isinstance(unit, (Decimal, int)) else None,
        department=department,
        procedure_code=cpt,
        patient_token=phi.token(mrn, kind="mrn"),
    )


def read_resource(line: str, line_number: int) -> FhirItem:
    """Turn one NDJSON line into canonical records, or an error naming the element."""
    try:
        res = json.loads(line, parse_float=Decimal)
    except json.JSONDecodeError as exc:
        return FhirItem(line_number, None, None, line, error=f"line {line_number}: not JSON ({exc.msg})")
    if not isinstance(res, dict):
        return FhirItem(line_number, None, None, line, error=f"line {line_number}: not a FHIR resource")
    rtype, rid = res.get("resourceType"), res.get("id")
    item = FhirItem(line_number, rtype, rid, line)
    try:
        if rtype == "Encounter":
            item.encounter = _encounter(res)
        elif rtype == "ChargeItem":
            item.charges = [_charge(res)]
        elif rtype == "Coverage":
            payor = (res.get("payor") or [{}])[0]
            item.coverage = {
                "payer_id": _ident([payor.get("identifier") or {}], "urn:carefabric:payer"),
                "encounter_id": None,
            }
        else:
            item.skipped_reason = f"resource type {rtype} is not routed"
    except FhirError as exc:
        item.error = f"line {line_number}: {rtype} {rid}: {exc}"
    return item


def iter_resources(path: Path) -> Iterator[FhirItem]:
    """Stream an NDJSON file; undecodable bytes are replaced, never fatal."""
    with path.open("r", encoding="utf-8", errors="replace", newline="\n") as handle:
        for number, line in enumerate(handle, start=1):
            text = line.strip()
            if text:
                yield read_resource(text, number)
