"""A conformant FHIR file through ``ehr_ingest``: bulk export files one per resource type, a
ChargeItem in a later file reversing one stored before, named exception codes, warnings."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import scenario
from sqlalchemy.engine import Engine

from carefabric.interfaces import ehr_ingest
from carefabric.store.models import Charge as ChargeRow
from carefabric.store.models import Encounter as EncounterRow
from carefabric.store.models import RawMessage

DAY = scenario.BUSINESS_DATE
VN = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "VN"}]}


@pytest.fixture
def engine(store_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Engine]:
    monkeypatch.setenv("CAREFABRIC_DATA_DIR", str(tmp_path / "data"))
    with scenario.migrated_store(store_url) as eng:
        yield eng


def write(path: Path, resources: list[dict[str, Any]]) -> Path:
    path.write_text("".join(json.dumps(r, default=float) + "\n" for r in resources), encoding="utf-8")
    return path


def charge(rid: str, status: str = "billable", value: Decimal | None = Decimal("48.00"), currency: str = "USD") -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "ChargeItem", "id": rid, "status": status,
        "code": {"coding": [{"system": "urn:carefabric:cdm", "code": "CDM2001"}]},
        "context": {"reference": "Encounter/enc-1"}, "occurrenceDateTime": DAY.isoformat(),
        "quantity": {"value": 1},
        "extension": [{"url": "urn:carefabric:fhir:facility", "valueString": "F2"}],
    }
    if value is not None:
        res["priceOverride"] = {"value": value, "currency": currency}
    return res


def test_bulk_export_files_per_type_resolve_and_reverse_through_the_store(engine: Engine, tmp_path: Path) -> None:
    encounters = write(tmp_path / "Encounter.ndjson", [{
        "resourceType": "Encounter", "id": "enc-1", "status": "finished",
        "identifier": [{"type": VN, "value": "V4242"}],
        "serviceProvider": {"identifier": {"system": "urn:carefabric:facility", "value": "F2"}},
        "period": {"start": f"{DAY.isoformat()}T08:00:00"},
    }, {"resourceType": "Encounter", "id": "no-visit",
        "serviceProvider": {"identifier": {"system": "urn:carefabric:facility", "value": "F2"}}}])
    result = ehr_ingest.ingest_file(encounters, engine, business_date=DAY, validate=False)
    assert result["encounters"] == 2 and result["warnings"] == 1
    stored = scenario.rows(engine, EncounterRow, order_by=EncounterRow.encounter_id)
    assert [e.encounter_id for e in stored] == ["V4242", "no-visit"]

    first = write(tmp_path / "ChargeItem_1.ndjson", [charge("ci-1"), charge("ci-2", "planned")])
    ehr_ingest.ingest_file(first, engine, business_date=DAY, validate=False)
    second = write(tmp_path / "ChargeItem_2.ndjson", [
        charge("ci-1", "entered-in-error"), charge("ci-9", "entered-in-error"), charge("ci-3", "unknown"),
        charge("ci-4", currency="EUR"), charge("ci-5", value=None),
        {**charge("ci-6"), "identifier": "x"},
    ])
    result = ehr_ingest.ingest_file(second, engine, business_date=DAY, validate=False)
    assert result["status"] == "processed" and result["message_errors"] == 5

    # ci-1 is held (this store has no crosswalks): a credit for it would post revenue down while the
    # charge itself never posted, so its entered-in-error is a person's decision, like ci-9's
    rows = scenario.rows(engine, ChargeRow, order_by=ChargeRow.line_key)
    assert [(r.line_key, r.encounter_id, r.transaction_type, r.amount_cents, r.quantity) for r in rows] == [
        ("FHIR|ci-1|1", "V4242", "CG", 4800, Decimal("1")),
        ("FHIR|ci-5|1", "V4242", "CG", 0, Decimal("1")),
    ]
    assert rows[0].status == "held" and rows[1].priced_from == "pending"
    codes = sorted(e.reason_code for e in scenario.exceptions(engine) if e.reason_code.startswith("FHIR_"))
    assert codes == ["FHIR_CHARGE_STATUS", "FHIR_INVALID_PRICE", "FHIR_PARSE_ERROR", "FHIR_REVERSAL_UNMATCHED",
                     "FHIR_REVERSAL_UNMATCHED"]
    skipped = scenario.rows(engine, RawMessage, RawMessage.status == "skipped")
    assert [m.error for m in skipped] == ["ChargeItem.status planned: not yet billable"]
