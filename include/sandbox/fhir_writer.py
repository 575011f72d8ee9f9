"""FHIR R4 NDJSON writer for the encounters the EHR's ambulatory module exports as FHIR.

A few encounters of each day do not appear in the HL7 batches at all: they arrive only as FHIR
resources in ``ehr/fhir_<YYYYMMDD>.ndjson`` (one JSON resource per line, keys sorted), written
in the order Encounter, Coverage, then its ChargeItems. Their charges count in the ground truth
exactly like FT1 lines.

Mapping (FHIR element -> canonical ``Charge``/``Encounter`` field):

| canonical | FHIR R4 |
|---|---|
| encounter_id | ``Encounter.identifier[system=urn:carefabric:visit-number].value``; on a ChargeItem ``ChargeItem.context.identifier.value`` (``context.reference`` is ``Encounter/<id>``) |
| facility | ``Encounter.serviceProvider.identifier[system=urn:carefabric:facility].value``; on a ChargeItem the extension ``urn:carefabric:fhir:facility`` (``valueString``) |
| patient MRN (PHI) | ``subject.identifier`` with ``type.coding.code = MR`` |
| transaction_id | ``ChargeItem.identifier[system=urn:carefabric:transaction-id].value`` |
| transaction_date | ``ChargeItem.occurrenceDateTime`` (a date) |
| transaction_type | ``CG`` (ChargeItem ``status = billable``; credits are not sent as FHIR) |
| cdm_code | ``ChargeItem.code.coding[system=urn:carefabric:cdm].code`` |
| procedure_code | ``ChargeItem.code.coding[system=http://www.ama-assn.org/go/cpt].code`` (absent for room and board) |
| quantity | ``ChargeItem.quantity.value`` |
| extended_amount | ``ChargeItem.priceOverride.value``: the **line total** (quantity x unit price), USD |
| unit_amount | extension ``urn:carefabric:fhir:unit-price`` (``valueMoney``) |
| department | ``ChargeItem.performingOrganization.identifier[system=urn:carefabric:department].value`` |
| payer | ``Coverage.payor[0].identifier[system=urn:carefabric:payer].value`` (ERP payer id) |

Amounts are written as JSON numbers with exactly two decimals straight from integer cents (no
float ever touches them), so a reader that parses numbers as ``Decimal`` gets them exactly.
"""

from __future__ import annotations

import json
import re
from typing import Any, TextIO

from sandbox.reference import DEPARTMENT_NAMES, ChargeLine, Encounter

SYSTEM_VISIT = "urn:carefabric:visit-number"
SYSTEM_FACILITY = "urn:carefabric:facility"
SYSTEM_DEPARTMENT = "urn:carefabric:department"
SYSTEM_CDM = "urn:carefabric:cdm"
SYSTEM_TRANSACTION = "urn:carefabric:transaction-id"
SYSTEM_PAYER = "urn:carefabric:payer"
SYSTEM_CPT = "http://www.ama-assn.org/go/cpt"
EXT_FACILITY = "urn:carefabric:fhir:facility"
EXT_UNIT_PRICE = "urn:carefabric:fhir:unit-price"

_NUMBER = re.compile(r'"\\u0000NUM:(-?[0-9]+(?:\.[0-9]+)?)"')


def _num(cents: int) -> str:
    """A placeholder that ``dumps`` turns into a bare JSON number with two decimals."""
    sign = "-" if cents < 0 else ""
    cents = abs(cents)
    return f"\x00NUM:{sign}{cents // 100}.{cents % 100:02d}"


def dumps(resource: dict[str, Any]) -> str:
    """One NDJSON line: sorted keys, compact, money as exact JSON numbers."""
    text = json.dumps(resource, sort_keys=True, separators=(",", ":"))
    return _NUMBER.sub(r"\1", text)


def _patient_ref(encounter: Encounter) -> dict[str, Any]:
    patient = encounter.patient
    return {
        "identifier": {
            "system": f"urn:carefabric:mrn:{encounter.facility.code}",
            "type": {"coding": [{"code": "MR", "system": "http://terminology.hl7.org/CodeSystem/v2-0203"}]},
            "value": patient.mrn,
        },
        "display": f"{patient.family}, {patient.given}",
    }


_CLASS = {"E": "EMER", "O": "AMB", "I": "IMP"}


def encounter_resource(encounter: Encounter) -> dict[str, Any]:
    period = {"start": encounter.admit_time.isoformat()}
    if encounter.discharge_time is not None:
        period["end"] = encounter.discharge_time.isoformat()
    return {
        "resourceType": "Encounter",
        "id": f"enc-{encounter.encounter_id}",
        "identifier": [{"system": SYSTEM_VISIT, "value": encounter.encounter_id}],
        "status": "finished" if encounter.discharge_time is not None else "in-progress",
        "class": {
            "system": "http://terminology.hl7.org/CodeSystem/v3-ActCode",
            "code": _CLASS[encounter.patient_class],
        },
        "subject": _patient_ref(encounter),
        "period": period,
        "serviceProvider": {
            "identifier": {"system": SYSTEM_FACILITY, "value": encounter.facility.code},
            "display": encounter.facility.name,
        },
    }


def coverage_resource(encounter: Encounter) -> dict[str, Any]:
    payer = encounter.payer
    return {
        "resourceType": "Coverage",
        "id": f"cov-{encounter.encounter_id}",
        "status": "active",
        "beneficiary": _patient_ref(encounter),
        "subscriberId": encounter.patient.member_id,
        "payor": [{"identifier": {"system": SYSTEM_PAYER, "value": payer.payer_id}, "display": payer.name}],
        "class": [
            {
                "type": {
                    "coding": [
                        {"code": "plan", "system": "http://terminology.hl7.org/CodeSystem/coverage-class"}
                    ]
                },
                "value": payer.plan_code,
            }
        ],
    }


def charge_item_resource(encounter: Encounter, line: ChargeLine) -> dict[str, Any]:
    codings = [{"system": SYSTEM_CDM, "code": line.cdm.code, "display": line.cdm.description}]
    if line.cdm.procedure_code:
        codings.append({"system": SYSTEM_CPT, "code": line.cdm.procedure_code})
    return {
        "resourceType": "ChargeItem",
        "id": f"chg-{line.transaction_id}",
        "identifier": [{"system": SYSTEM_TRANSACTION, "value": line.transaction_id}],
        "status": "billable",
        "code": {"coding": codings},
        "subject": _patient_ref(encounter),
        "context": {
            "reference": f"Encounter/enc-{encounter.encounter_id}",
            "identifier": {"system": SYSTEM_VISIT, "value": encounter.encounter_id},
        },
        "occurrenceDateTime": line.service_date.isoformat(),
        "performingOrganization": {
            "identifier": {"system": SYSTEM_DEPARTMENT, "value": line.department},
            "display": DEPARTMENT_NAMES.get(line.department, line.department),
        },
        "quantity": {"value": line.quantity},
        "priceOverride": {"value": _num(line.extended_cents), "currency": "USD"},
        "extension": [
            {"url": EXT_FACILITY, "valueString": encounter.facility.code},
            {"url": EXT_UNIT_PRICE, "valueMoney": {"value": _num(line.unit_cents), "currency": "USD"}},
        ],
    }


def write_encounter(handle: TextIO, encounter: Encounter) -> dict[str, int]:
    """Write one FHIR encounter's resources; returns counts per resource type."""
    handle.write(dumps(encounter_resource(encounter)) + "\n")
    handle.write(dumps(coverage_resource(encounter)) + "\n")
    for line in encounter.charges:
        handle.write(dumps(charge_item_resource(encounter, line)) + "\n")
    return {"Encounter": 1, "Coverage": 1, "ChargeItem": len(encounter.charges)}
