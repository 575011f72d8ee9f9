"""FHIR R4 reader (NDJSON bulk export, or a Bundle): Encounter, ChargeItem and Coverage into
canonical records.

Streams one resource per line, numbers parsed as ``Decimal`` (``json.loads(parse_float=Decimal)``)
so money is exact. Conformant R4 is read, not only the sandbox's own output
(``sandbox/fhir_writer.py``, whose ``urn:carefabric:*`` systems are the defaults of
``FhirConfig``):

* Encounter: the visit number is the identifier typed ``VN`` (v2-0203), else one in a system
  the source documents (``FhirConfig.visit_systems``), else the resource id with a warning;
  facility from ``serviceProvider`` (identifier, or a contained Organization), else the source's
  default facility; class (R4 Coding, or R5's CodeableConcept list), period, first location.
* ChargeItem: see ``fhir_charge`` (status, price, currency, reversal).
* Coverage: ``payor`` (identifier, contained Organization, or the Patient for self-pay) to the
  payer crosswalk; a Coverage without a payor is an exception.

References resolve by contained resource (``#id``), by ``Type/id`` read earlier in the file (or
the caller's lookup) and by identifier. A line that is not JSON, a shape error
(``"identifier": "x"``) or a resource that misses a required element is one error naming the
element path, never a value; the rest of the file goes on. Other resource types are skipped.

Hand-written rather than with a FHIR model library: the three resources need a few dozen
paths, and a full R4 model (fhir.resources) validates every element at a cost per line that a
bulk export of a day does not need.
"""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

from carefabric import phi
from carefabric.canonical import Charge, Encounter
from carefabric.fhir_charge import PriceLookup, read_charge
from carefabric.fhir_claim import read_claim, read_eob
from carefabric.fhir_elements import (
    FhirError,
    FileIndex,
    by_system,
    by_type,
    codes,
    ident_value,
    items,
    obj,
    resolve,
    text,
)

SYSTEM_VISIT = "urn:carefabric:visit-number"
SYSTEM_FACILITY = "urn:carefabric:facility"
SYSTEM_DEPARTMENT = "urn:carefabric:department"
SYSTEM_CDM = "urn:carefabric:cdm"
SYSTEM_TRANSACTION = "urn:carefabric:transaction-id"
SYSTEM_PAYER = "urn:carefabric:payer"
SYSTEM_CPT = "http://www.ama-assn.org/go/cpt"
EXT_FACILITY = "urn:carefabric:fhir:facility"
EXT_UNIT_PRICE = "urn:carefabric:fhir:unit-price"
SOURCE = "FHIR"
SELF_PAY = "SELF"
ROUTED = frozenset({"Encounter", "ChargeItem", "Coverage"})

__all__ = ["FhirConfig", "FhirError", "FhirItem", "ReadContext", "iter_resources", "read_resource"]


@dataclass(frozen=True, slots=True)
class FhirConfig:
    """What one FHIR source documents: its identifier and code systems, facility, currency."""

    source: str = SOURCE
    visit_systems: tuple[str, ...] = (SYSTEM_VISIT,)
    facility_systems: tuple[str, ...] = (SYSTEM_FACILITY,)
    cdm_systems: tuple[str, ...] = (SYSTEM_CDM,)
    department_systems: tuple[str, ...] = (SYSTEM_DEPARTMENT,)
    transaction_systems: tuple[str, ...] = (SYSTEM_TRANSACTION,)
    payer_systems: tuple[str, ...] = (SYSTEM_PAYER,)
    facility: str | None = None  # default facility when the resource names none
    currency: str = "USD"
    facility_extension: str = EXT_FACILITY
    unit_price_extension: str = EXT_UNIT_PRICE

    @classmethod
    def from_json(cls, text: str | None) -> FhirConfig:
        """A source's settings as JSON (``CAREFABRIC_FHIR_CONFIG``): systems are added to the
        defaults, ``facility`` and ``currency`` replace them; unknown keys are an error."""
        if not text:
            return cls()
        raw = json.loads(text)
        base = cls()
        values: dict[str, Any] = {}
        for key, value in raw.items():
            if key not in cls.__dataclass_fields__:
                raise ValueError(f"CAREFABRIC_FHIR_CONFIG: unknown setting {key!r}")
            current = getattr(base, key)
            values[key] = (*current, *value) if isinstance(current, tuple) else value
        return cls(**values)


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
    claim: dict[str, Any] | None = None  # Claim or ExplanationOfBenefit: ids, encounters, cents
    skipped_reason: str | None = None
    error: str | None = None
    reason_code: str | None = None  # set with ``error``: FHIR_PARSE_ERROR, FHIR_INVALID_PRICE, ...
    warnings: list[str] = field(default_factory=list)


@dataclass
class ReadContext:
    """State of one file's read: resources seen, and the caller's store lookups."""

    config: FhirConfig = field(default_factory=FhirConfig)
    price_lookup: PriceLookup | None = None  # CDM code -> chargemaster price in cents
    encounter_lookup: Callable[[str], tuple[str, str | None] | None] | None = None  # id -> (visit, facility)
    charge_lookup: Callable[[str], Charge | None] | None = None  # line key -> the charge stored
    payer_lookup: Callable[[str], str | None] | None = None  # payer id -> ERP payer
    index: FileIndex = field(default_factory=FileIndex)
    charges: dict[str, Charge] = field(default_factory=dict)
    warnings: list[str] = field(default_factory=list)

    def mrn(self, subject: Any, container: dict[str, Any]) -> str | None:
        """The MRN of a subject reference (identifier typed MR, or untyped) or contained Patient."""
        target = resolve(subject, "subject", container)
        if target is None:
            return None
        if target.identifier is not None:
            _, value, type_codes = ident_value(target.identifier, "subject.identifier")
            return value if "MR" in type_codes or not type_codes else None
        if target.resource is not None:
            return by_type(target.resource.get("identifier"), "contained.identifier", "MR")
        return None

    def facility_of(self, provider: Any, container: dict[str, Any]) -> str | None:
        target = resolve(provider, "Encounter.serviceProvider", container)
        if target is None:
            return self.config.facility
        idents = [target.identifier] if target.identifier else []
        if target.resource is not None:
            idents += items(target.resource.get("identifier"), "contained.identifier")
        found = by_system(idents, "Encounter.serviceProvider.identifier", self.config.facility_systems)
        return found or self.config.facility

    def encounter_keys(self, res: dict[str, Any]) -> tuple[str, str | None, str | None]:
        """(visit number, facility, warning) of an Encounter."""
        identifiers = res.get("identifier")
        visit = by_type(identifiers, "Encounter.identifier", "VN") or by_system(
            identifiers, "Encounter.identifier", self.config.visit_systems)
        warning = None
        if not visit:
            visit = text(res.get("id"), "Encounter.id")
            if not visit:
                raise FhirError("Encounter.identifier (visit number) is missing")
            warning = "Encounter.identifier has no VN or configured visit number system: resource id used"
        return visit, self.facility_of(res.get("serviceProvider"), res), warning


def _datetime(value: Any, path: str) -> dt.datetime | None:
    raw = text(value, path)
    if not raw:
        return None
    try:
        return dt.datetime.fromisoformat(raw)
    except ValueError:
        return None


def _class_code(value: Any) -> str | None:
    if isinstance(value, list):  # R5: CodeableConcept[]
        found = [c for concept in value for _, c in codes(concept, "Encounter.class") if c]
        return found[0] if found else None
    return text(obj(value, "Encounter.class").get("code"), "Encounter.class.code")


def _location(res: dict[str, Any]) -> str | None:
    for entry in items(res.get("location"), "Encounter.location"):
        target = resolve(entry.get("location"), "Encounter.location.location", res)
        if target is None:
            continue
        if target.identifier:
            return text(target.identifier.get("value"), "Encounter.location.location.identifier.value")
        return target.resource_id
    return None


def read_encounter(res: dict[str, Any], ctx: ReadContext) -> tuple[Encounter, str | None]:
    visit, facility, warning = ctx.encounter_keys(res)
    if not facility:
        raise FhirError("Encounter.serviceProvider facility identifier is missing")
    period = obj(res.get("period"), "Encounter.period")
    mrn = ctx.mrn(res.get("subject"), res)
    encounter = Encounter(
        source=ctx.config.source,
        facility=facility,
        encounter_id=visit,
        event_type=text(res.get("status"), "Encounter.status") or "unknown",
        message_control_id=str(res.get("id")),
        patient_token=phi.token(mrn, kind="mrn"),
        patient_class=_class_code(res.get("class")),
        location=_location(res),
        admit_time=_datetime(period.get("start"), "Encounter.period.start"),
        discharge_time=_datetime(period.get("end"), "Encounter.period.end"),
        mrn_phi=mrn,
    )
    ctx.index.remember("Encounter", text(res.get("id"), "Encounter.id"), (visit, facility))
    return encounter, warning


def read_coverage(res: dict[str, Any], ctx: ReadContext) -> dict[str, str | None]:
    """Payer of a Coverage: identifier, contained Organization, Organization id, or self-pay."""
    payors = items(res.get("payor"), "Coverage.payor")
    if not payors:
        raise FhirError("Coverage.payor is missing", "FHIR_MISSING_PAYOR")
    target = resolve(payors[0], "Coverage.payor[0]", res)
    payer_id: str | None = None
    if target is not None and target.resource_type in ("Patient", "RelatedPerson"):
        payer_id = SELF_PAY
    elif target is not None:
        idents = [target.identifier] if target.identifier else []
        if target.resource is not None:
            idents += items(target.resource.get("identifier"), "Coverage.payor.contained.identifier")
        payer_id = by_system(idents, "Coverage.payor.identifier", ctx.config.payer_systems)
        if payer_id is None and idents:
            payer_id = text(idents[0].get("value"), "Coverage.payor.identifier.value")
        payer_id = payer_id or (target.resource_id if target.resource is None else None)
    if not payer_id:
        raise FhirError("Coverage.payor names no payer", "FHIR_MISSING_PAYOR")
    coverage: dict[str, str | None] = {"payer_id": payer_id, "encounter_id": None}
    if ctx.payer_lookup is not None:  # the payer crosswalk (None: not mapped; self-pay maps to itself)
        coverage["erp_payer"] = SELF_PAY if payer_id == SELF_PAY else ctx.payer_lookup(payer_id)
    return coverage


def read_resource(line: str, line_number: int, ctx: ReadContext | None = None) -> FhirItem:
    """Turn one NDJSON line into canonical records, or an error naming the element."""
    try:
        res = json.loads(line, parse_float=Decimal)
    except (json.JSONDecodeError, RecursionError) as exc:
        msg = exc.msg if isinstance(exc, json.JSONDecodeError) else "nested too deeply"
        return FhirItem(line_number, None, None, line, error=f"line {line_number}: not JSON ({msg})",
                        reason_code="FHIR_PARSE_ERROR")
    return read_parsed(res, line, line_number, ctx or ReadContext())


def read_parsed(res: Any, line: str, line_number: int, ctx: ReadContext) -> FhirItem:
    if not isinstance(res, dict):
        return FhirItem(line_number, None, None, line, error=f"line {line_number}: not a FHIR resource",
                        reason_code="FHIR_PARSE_ERROR")
    rtype = res.get("resourceType") if isinstance(res.get("resourceType"), str) else None
    rid = res.get("id") if isinstance(res.get("id"), str) else None
    item = FhirItem(line_number, rtype, rid, line)
    try:
        if rtype == "Encounter":
            item.encounter, warning = read_encounter(res, ctx)
            item.warnings += [warning] if warning else []
        elif rtype == "ChargeItem":
            item.charges, item.skipped_reason = read_charge(res, ctx)
        elif rtype == "Coverage":
            item.coverage = read_coverage(res, ctx)
            if "erp_payer" in item.coverage and item.coverage["erp_payer"] is None:
                item.warnings.append("Coverage.payor has no payer crosswalk entry")
        elif rtype == "Claim":
            item.claim = read_claim(res, ctx)
        elif rtype == "ExplanationOfBenefit":
            item.claim = read_eob(res, ctx)
        else:
            item.skipped_reason = f"resource type {rtype} is not routed"
    except FhirError as exc:
        item.error, item.reason_code = f"line {line_number}: {rtype} {rid}: {exc}", exc.code
    except (AttributeError, TypeError, KeyError, ValueError, ArithmeticError) as exc:
        # Defence in depth: a shape the element helpers did not foresee is still one line's error.
        item.error = f"line {line_number}: {rtype} {rid}: element shape not R4 ({type(exc).__name__})"
        item.reason_code = "FHIR_PARSE_ERROR"
    return item


def _bundle_entries(path: Path) -> Iterator[tuple[int, str, Any]]:
    bundle = json.loads(path.read_text(encoding="utf-8", errors="replace"), parse_float=Decimal)
    if isinstance(bundle, dict) and bundle.get("resourceType") not in ("Bundle", None):
        bundle = {"entry": [{"resource": bundle}]}  # a single resource
    for number, entry in enumerate(bundle.get("entry") or [], start=1):
        resource = entry.get("resource") if isinstance(entry, dict) else entry
        yield number, json.dumps(resource, default=str), resource


def iter_resources(path: Path, ctx: ReadContext | None = None) -> Iterator[FhirItem]:
    """Stream an NDJSON file (or read a ``.json`` Bundle or single resource: one item per entry);
    undecodable bytes are replaced, never fatal."""
    ctx = ctx or ReadContext()
    if path.suffix.lower() == ".json":
        try:
            entries = list(_bundle_entries(path))
        except (json.JSONDecodeError, AttributeError, RecursionError):
            yield FhirItem(1, None, None, "", error="line 1: not a FHIR Bundle", reason_code="FHIR_PARSE_ERROR")
            return
        for number, raw, resource in entries:
            yield read_parsed(resource, raw, number, ctx)
        return
    with path.open("r", encoding="utf-8", errors="replace", newline="\n") as handle:
        for number, line in enumerate(handle, start=1):
            stripped = line.strip()
            if stripped:
                yield read_resource(stripped, number, ctx)
