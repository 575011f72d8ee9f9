"""FHIR Claim and ExplanationOfBenefit: read and linked to the encounter and the claim id.

Hand-made R4 resources in the specification's shapes (item.encounter references, a Claim
identifier, EOB.claim by identifier or by id, totals per category, payment); one bad line is
one error and the rest of the file goes on.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

from carefabric.fhir import iter_resources

VN = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "VN"}]}
ENCOUNTER = {"resourceType": "Encounter", "id": "enc-1", "status": "finished",
             "identifier": [{"type": VN, "value": "V4242"}],
             "serviceProvider": {"identifier": {"system": "urn:carefabric:facility", "value": "F2"}}}
CLAIM = {"resourceType": "Claim", "id": "clm-100150", "status": "active", "use": "claim",
         "identifier": [{"system": "http://happyvalley.com/claim", "value": "12345"}],
         "insurer": {"identifier": {"system": "urn:carefabric:payer", "value": "PAYER-A"}},
         "item": [{"sequence": 1, "encounter": [{"reference": "Encounter/enc-1"}]},
                  {"sequence": 2, "encounter": [{"identifier": {"value": "V9999"}}]}],
         "total": {"value": Decimal("135.57"), "currency": "USD"}}
EOB = {"resourceType": "ExplanationOfBenefit", "id": "eob-1", "status": "active", "outcome": "complete",
       "claim": {"identifier": {"system": "http://happyvalley.com/claim", "value": "12345"}},
       "item": [{"sequence": 1, "encounter": [{"reference": "Encounter/enc-1"}]}],
       "total": [{"category": {"coding": [{"code": "submitted"}]}, "amount": {"value": Decimal("135.57"), "currency": "USD"}},
                 {"category": {"coding": [{"code": "benefit"}]}, "amount": {"value": Decimal("120.00"), "currency": "USD"}}],
       "payment": {"amount": {"value": Decimal("120.00"), "currency": "USD"}}}


def read(tmp_path: Path, resources: list[dict[str, Any]]) -> list[Any]:
    path = tmp_path / "claims.ndjson"
    path.write_text("".join(json.dumps(r, default=str).replace('"135.57"', "135.57").replace('"120.00"', "120.00") + "\n"
                            for r in resources))
    return list(iter_resources(path))


def test_claim_and_eob_link_encounter_and_claim_id_with_exact_cents(tmp_path: Path) -> None:
    by_id = {i.resource_id: i for i in read(tmp_path, [ENCOUNTER, CLAIM, EOB])}
    claim = by_id["clm-100150"]
    assert claim.error is None and claim.skipped_reason is None
    assert claim.claim == {"kind": "Claim", "claim_id": "12345", "status": "active", "use": "claim",
                           "encounter_ids": ["V4242", "V9999"], "total_cents": 13557, "insurer": "PAYER-A"}
    eob = by_id["eob-1"].claim
    assert eob is not None and eob["claim_id"] == "12345" and eob["encounter_ids"] == ["V4242"]
    assert eob["totals_cents"] == {"submitted": 13557, "benefit": 12000} and eob["payment_cents"] == 12000
    assert by_id["eob-1"].charges == [] and claim.charges == []  # nothing posts from them


def test_an_eob_by_claim_id_resolves_and_bad_lines_are_one_error_each(tmp_path: Path) -> None:
    by_reference = {**EOB, "id": "eob-2", "claim": {"reference": "Claim/clm-100150"}}
    no_claim = {k: v for k, v in EOB.items() if k != "claim"} | {"id": "eob-3"}
    euro = {**CLAIM, "id": "clm-eur", "total": {"value": 10, "currency": "EUR"}}
    dangling = {**CLAIM, "id": "clm-x", "item": [{"sequence": 1, "encounter": [{"reference": "#missing"}]}]}
    items = {i.resource_id: i for i in read(tmp_path, [ENCOUNTER, by_reference, no_claim, euro, dangling, CLAIM])}
    assert items["eob-2"].claim is not None and items["eob-2"].claim["claim_id"] == "clm-100150"  # not seen yet
    later = read(tmp_path, [ENCOUNTER, CLAIM, by_reference])[2]
    assert later.claim is not None and later.claim["claim_id"] == "12345"  # the Claim read before: its identifier
    assert "ExplanationOfBenefit.claim is missing" in (items["eob-3"].error or "")
    assert items["clm-eur"].reason_code == "FHIR_INVALID_PRICE"
    assert items["clm-x"].error and "contained" in items["clm-x"].error
    assert items["clm-100150"].claim is not None  # the file went on after the bad lines
