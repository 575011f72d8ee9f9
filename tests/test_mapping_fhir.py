"""Crosswalk mapping (``carefabric.mapping``) over a snapshot loaded from a real store, and the
FHIR NDJSON reader (``carefabric.fhir``) against what the sandbox's EHR writes.

The reason-order test starts from an empty store and fixes one thing at a time: at every step
every later check is still broken, so the reason reported is proof of the order.
"""

from __future__ import annotations

import datetime as dt
import json
import re
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pytest
import scenario
from sqlalchemy.engine import Engine

from carefabric import phi
from carefabric.canonical import Charge, MappedCharge, MappedRemittance
from carefabric.fhir import iter_resources
from carefabric.interfaces import ehr_ingest
from carefabric.mapping import Held, map_charge, map_remittance
from carefabric.store.bulk import upsert
from carefabric.store.crosswalks import Crosswalks, set_cdm, set_department, set_facility, set_payer
from carefabric.store.db import session_scope
from carefabric.store.models import Charge as ChargeRow
from carefabric.store.models import ErpCostCenter, ErpGlAccount, ErpItem, ErpPayer, RawMessage
from carefabric.x12 import read_file
from sandbox import fhir_writer, reference

DAY = scenario.BUSINESS_DATE
PRICE = re.compile(r'"priceOverride":\{"currency":"USD","value":(-?[0-9]+\.[0-9]+)\}')


@pytest.fixture
def engine(store_url: str) -> Iterator[Engine]:
    with scenario.migrated_store(store_url) as eng:
        yield eng


def snapshot(engine: Engine) -> Crosswalks:
    with session_scope(engine) as session:
        return Crosswalks.load(session)


def supply_charge(**changes: object) -> Charge:
    values: dict[str, object] = dict(
        source="EPICCARE|F1", facility="F1", encounter_id="V0000001", message_control_id="MSG0001", line_number=2,
        transaction_id="T1", transaction_date=DAY, transaction_type="CG", cdm_code="CDM7001",
        quantity=Decimal("2"), extended_amount=Decimal("37.00"), unit_amount=Decimal("18.50"), department="ED",
        procedure_code="A4550", patient_token="tok_0123456789abcdef",
    )
    values.update(changes)
    return Charge(**values)  # type: ignore[arg-type]


# --------------------------------------------------------------------------- map_charge


def test_map_charge_reports_the_first_problem_in_fix_order(engine: Engine) -> None:
    charge = supply_charge()

    def reason() -> str:
        outcome = map_charge(charge, snapshot(engine))
        assert isinstance(outcome, Held), outcome
        assert outcome.record_type == "charge" and outcome.record_key == "EPICCARE|F1|MSG0001|2"
        assert outcome.detail["cdm_code"] == "CDM7001" and outcome.detail["facility"] == "F1"
        return outcome.reason_code

    steps: list[str] = [reason()]  # empty store: everything is missing
    with session_scope(engine) as s:
        set_facility(s, "F1", "CF01", npi="1001079197", location="INV-F1", actor="test")
    steps.append(reason())
    with session_scope(engine) as s:
        set_cdm(s, "CDM7001", "4060", erp_item="ITM-1001", procedure_code="A4550", actor="test")
    steps.append(reason())
    with session_scope(engine) as s:
        set_department(s, "F1", "ED", "CC-F1-ED", actor="test")
    steps.append(reason())
    with session_scope(engine) as s:
        upsert(s, ErpCostCenter, [{"cost_center": "CC-F1-ED", "company_id": "CF01", "active": False}], ["cost_center"])
    steps.append(reason())
    with session_scope(engine) as s:
        upsert(s, ErpCostCenter, [{"cost_center": "CC-F1-ED", "company_id": "CF01", "active": True}], ["cost_center"])
    steps.append(reason())
    with session_scope(engine) as s:
        upsert(s, ErpGlAccount, [{"account": "4060", "name": "Supplies", "active": False}], ["account"])
    steps.append(reason())
    with session_scope(engine) as s:
        upsert(s, ErpGlAccount, [{"account": "4060", "name": "Supplies", "active": True}], ["account"])
        upsert(s, ErpItem, [{"item": "ITM-1001", "unit_cost_cents": None, "active": True}], ["item"])
    steps.append(reason())

    assert steps == [
        "UNKNOWN_FACILITY", "UNKNOWN_CDM", "UNKNOWN_DEPARTMENT", "UNKNOWN_COST_CENTER",
        "INACTIVE_COST_CENTER", "UNKNOWN_ACCOUNT", "INACTIVE_ACCOUNT", "ITEM_WITHOUT_COST",
    ]

    with session_scope(engine) as s:
        upsert(s, ErpItem, [{"item": "ITM-1001", "unit_cost_cents": 640, "active": True}], ["item"])
    mapped = map_charge(charge, snapshot(engine))
    assert isinstance(mapped, MappedCharge)
    assert (mapped.company, mapped.cost_center, mapped.revenue_account) == ("CF01", "CC-F1-ED", "4060")
    assert (mapped.erp_item, mapped.item_unit_cost, mapped.location) == ("ITM-1001", Decimal("6.40"), "INV-F1")
    assert mapped.is_supply and mapped.charge is charge

    # A supply line at a facility with no inventory location cannot decrement stock.
    with session_scope(engine) as s:
        set_facility(s, "F1", "CF01", location="", actor="test")
    held = map_charge(charge, snapshot(engine))
    assert isinstance(held, Held) and held.reason_code == "UNKNOWN_LOCATION"
    # ...while a non-supply line at the same facility still maps (no location needed).
    with session_scope(engine) as s:
        set_cdm(s, "CDM1001", "4060", actor="test")
    plain = map_charge(supply_charge(cdm_code="CDM1001"), snapshot(engine))
    assert isinstance(plain, MappedCharge) and plain.erp_item is None and plain.location is None


def test_map_charge_department_missing_on_the_line_is_unknown_department(engine: Engine) -> None:
    with session_scope(engine) as s:
        set_facility(s, "F1", "CF01", location="INV-F1", actor="test")
        set_cdm(s, "CDM1001", "4000", actor="test")
    held = map_charge(supply_charge(cdm_code="CDM1001", department=None), snapshot(engine))
    assert isinstance(held, Held) and held.reason_code == "UNKNOWN_DEPARTMENT"
    assert "department None at F1" in held.summary


# --------------------------------------------------------------------------- map_remittance


def test_map_remittance_payer_then_payee(engine: Engine, samples_dir: Path) -> None:
    remit = read_file(samples_dir / "x12_835" / "lfh_managed_care.835").remittances[0]
    assert (remit.payer_id, remit.payee_npi) == ("1935665544", "5544667733")

    def outcome() -> MappedRemittance | Held:
        return map_remittance(remit, snapshot(engine), business_date=DAY, record_key="K")

    held = outcome()
    assert isinstance(held, Held) and held.reason_code == "UNKNOWN_PAYER"
    assert held.record_type == "remittance" and held.record_key == "K"
    assert held.detail == {"trace_number": "7170066655", "payer_id": "1935665544"}

    with session_scope(engine) as s:
        set_payer(s, "1935665544", "PAYER-RUSHMORE", actor="test")
    held = outcome()
    assert isinstance(held, Held) and held.reason_code == "UNKNOWN_FACILITY"
    assert held.detail["payee_npi"] == "5544667733"

    with session_scope(engine) as s:
        set_facility(s, "F7", "CF01", npi="5544667733", location="INV-F7", actor="test")
    mapped = outcome()
    assert isinstance(mapped, MappedRemittance)
    assert (mapped.erp_payer_id, mapped.facility, mapped.company, mapped.business_date) == (
        "PAYER-RUSHMORE", "F7", "CF01", DAY)

    # Once the ERP's payer list is replicated, the ERP payer must be in it and active.
    with session_scope(engine) as s:
        upsert(s, ErpPayer, [{"payer_id": "PAYER-RUSHMORE", "name": "Rushmore", "active": False}], ["payer_id"])
    held = outcome()
    assert isinstance(held, Held) and held.reason_code == "UNKNOWN_PAYER"
    assert "PAYER-RUSHMORE is unknown or inactive" in held.summary
    with session_scope(engine) as s:
        upsert(s, ErpPayer, [{"payer_id": "PAYER-RUSHMORE", "name": "Rushmore", "active": True}], ["payer_id"])
    assert isinstance(outcome(), MappedRemittance)


def test_map_remittance_falls_back_to_the_trace_originator(engine: Engine, samples_dir: Path) -> None:
    """Medicare part A names its payer only as REF*2U 999; TRN03 carries the payer's id."""
    remit = read_file(samples_dir / "x12_835" / "lfh_medicare_part_a.835").remittances[0]
    assert (remit.payer_id, remit.trace_originator) == ("999", "1512345678")
    with session_scope(engine) as s:
        set_payer(s, "1512345678", "PAYER-TIMBUKTU", actor="test")
        set_facility(s, "F1", "CF01", npi="6543210903", location="INV-F1", actor="test")
    mapped = map_remittance(remit, snapshot(engine), business_date=DAY, record_key="K")
    assert isinstance(mapped, MappedRemittance) and mapped.erp_payer_id == "PAYER-TIMBUKTU"


def test_map_remittance_finds_a_payee_named_by_tax_id(engine: Engine, samples_dir: Path) -> None:
    """The COB sample names its payee N1*PE*..*FI*3UR334563: no NPI, a tax id."""
    remit = read_file(samples_dir / "x12_835" / "lfh_cob_contractual_adjustment.835").remittances[0]
    assert (remit.payee_npi, remit.payee_tax_id) == (None, "3UR334563")
    with session_scope(engine) as s:
        set_payer(s, "1566339911", "PAYER-COB", actor="test")
    held = map_remittance(remit, snapshot(engine), business_date=DAY, record_key="K")
    assert isinstance(held, Held) and (held.reason_code, held.summary) == (
        "UNKNOWN_FACILITY", "payee tax id 3UR334563 has no facility")
    with session_scope(engine) as s:
        set_facility(s, "F3", "CF01", tax_id="3UR334563", location="INV-F3", actor="test")
    mapped = map_remittance(remit, snapshot(engine), business_date=DAY, record_key="K")
    assert isinstance(mapped, MappedRemittance) and (mapped.facility, mapped.erp_payer_id) == ("F3", "PAYER-COB")


# --------------------------------------------------------------------------- FHIR


def _encounter(lines: list[tuple[str, int, int]]) -> reference.Encounter:
    """A FHIR-channel encounter whose ChargeItems carry (cdm, quantity, unit cents)."""
    patient = reference.Patient(
        mrn="M00000042", enterprise_id="E000000042", family="TESTER", given="ANA", middle="Q",
        birth_date=dt.date(1970, 1, 2), sex="F", street="1 MAIN ST", city="SPRINGFIELD", zip_code="49837",
        member_id="ACM000000042", token="tok_unused",
    )
    fac = reference.facility(2)
    enc = reference.Encounter(
        encounter_id="V0000999", facility=fac, patient=patient, patient_class="O", hospital_service="MED",
        point_of_care="LAB", attending=reference.ATTENDINGS[0], payer=reference.PAYERS[0],
        admit_time=dt.datetime(2024, 3, 5, 9, 30), discharge_time=None, service_date=DAY, channel="fhir",
    )
    for n, (code, qty, unit) in enumerate(lines, start=1):
        cdm = reference.CDM_BY_CODE[code]
        enc.charges.append(reference.ChargeLine(
            transaction_id=f"T0000999{n:02d}", service_date=DAY, transaction_type="CG", cdm=cdm, quantity=qty,
            unit_cents=unit, extended_cents=qty * unit, department=cdm.department,
        ))
    return enc


def test_fhir_reader_returns_exactly_the_charges_the_writer_wrote(tmp_path: Path) -> None:
    # unit prices a binary float cannot hold; a 7-digit total; a room-and-board line without CPT
    enc = _encounter([("CDM2001", 3, 10), ("CDM7001", 7, 1999), ("CDM5002", 1, 123456789), ("CDM6001", 2, 145033)])
    path = tmp_path / "fhir.ndjson"
    with path.open("w", encoding="utf-8") as handle:
        fhir_writer.write_encounter(handle, enc)

    items = list(iter_resources(path))
    assert [i.resource_type for i in items] == ["Encounter", "Coverage", *["ChargeItem"] * 4]
    assert all(i.error is None for i in items)
    assert items[0].encounter is not None and items[0].encounter.encounter_id == "V0000999"
    assert items[0].encounter.facility == "F2" and items[0].encounter.patient_token == phi.token("M00000042", kind="mrn")
    assert items[1].coverage == {"payer_id": reference.PAYERS[0].payer_id, "encounter_id": None}

    charges = [c for i in items for c in i.charges]
    expected = [
        ("T000099901", "CDM2001", Decimal("3"), "0.30", "0.10", "LAB", "85025"),
        ("T000099902", "CDM7001", Decimal("7"), "139.93", "19.99", "ED", "A4550"),
        ("T000099903", "CDM5002", Decimal("1"), "1234567.89", "1234567.89", "SURG", "47562"),
        ("T000099904", "CDM6001", Decimal("2"), "2900.66", "1450.33", "MEDSURG", None),
    ]
    got = [
        (c.transaction_id, c.cdm_code, c.quantity, c.extended_amount, c.unit_amount, c.department, c.procedure_code)
        for c in charges
    ]
    # exact Decimals, two places, equal to the writer's integer cents
    assert got == [(t, code, q, Decimal(a), Decimal(u), d, p) for t, code, q, a, u, d, p in expected]
    assert [str(c.extended_amount) for c in charges] == [e[3] for e in expected]
    assert [c.extended_amount * 100 for c in charges] == [ln.extended_cents for ln in enc.charges]
    for c in charges:
        assert (c.source, c.facility, c.encounter_id, c.transaction_date, c.transaction_type) == (
            "FHIR", "F2", "V0000999", DAY, "CG")
        assert c.patient_token == phi.token("M00000042", kind="mrn") and c.line_key == f"FHIR|chg-{c.transaction_id}|1"


def test_fhir_reader_on_a_generated_day_matches_the_generator(tmp_path: Path) -> None:
    truth = scenario.generate_day(tmp_path / "day", encounters=40)
    path = tmp_path / "day" / "ehr" / f"fhir_{DAY:%Y%m%d}.ndjson"
    items = list(iter_resources(path))
    assert all(i.error is None for i in items)
    by_type: dict[str, int] = {}
    for i in items:
        by_type[str(i.resource_type)] = by_type.get(str(i.resource_type), 0) + 1
    assert by_type == truth["counts"]["fhir_resources"] and truth["counts"]["encounters_fhir"] == by_type["Encounter"]
    # every ChargeItem as written: priceOverride read as the exact Decimal, = quantity x unit price
    raw = [line for line in path.read_text().splitlines() if '"resourceType":"ChargeItem"' in line]
    charges = [c for i in items for c in i.charges]
    assert len(charges) == len(raw) == by_type["ChargeItem"]
    for c, r in zip(charges, raw, strict=True):
        text = PRICE.search(r).group(1)  # the number exactly as the writer wrote it
        resource = json.loads(r)
        assert str(c.extended_amount) == text and c.extended_amount.as_tuple().exponent == -2
        assert c.extended_amount == c.quantity * c.unit_amount
        assert c.cdm_code == resource["code"]["coding"][0]["code"]
        assert c.transaction_id == resource["identifier"][0]["value"]


def test_fhir_bad_lines_are_reported_per_line_and_the_rest_is_read(tmp_path: Path) -> None:
    enc = _encounter([("CDM2001", 1, 4800), ("CDM2003", 1, 6400)])
    good = tmp_path / "good.ndjson"
    with good.open("w", encoding="utf-8") as handle:
        fhir_writer.write_encounter(handle, enc)
    lines = good.read_text().splitlines()
    no_cdm = json.loads(lines[3])
    no_cdm["code"]["coding"] = [c for c in no_cdm["code"]["coding"] if c["system"] != fhir_writer.SYSTEM_CDM]
    bad = tmp_path / "bad.ndjson"
    bad.write_bytes(
        "\n".join([lines[0], lines[1], '{"resourceType": "ChargeItem", "id": ', lines[2], "", json.dumps(no_cdm),
                   '{"resourceType":"Patient","id":"p1"}', "[1, 2]"]).encode() + b"\n\xff\xfe{broken\n"
    )
    items = list(iter_resources(bad))
    assert [(i.line_number, i.resource_type, i.error is not None) for i in items] == [
        (1, "Encounter", False), (2, "Coverage", False), (3, None, True), (4, "ChargeItem", False),
        (6, "ChargeItem", True), (7, "Patient", False), (8, None, True), (9, None, True),
    ]
    errors = {i.line_number: i.error for i in items if i.error}
    assert errors[3].startswith("line 3: not JSON (")
    assert errors[6] == f"line 6: ChargeItem {no_cdm['id']}: ChargeItem.code has no CDM coding"
    assert errors[8] == "line 8: not a FHIR resource"
    assert items[5].skipped_reason == "resource type Patient is not routed"
    assert [c.cdm_code for i in items for c in i.charges] == ["CDM2001"]


def test_fhir_file_through_ehr_ingest_stores_the_good_lines(engine: Engine, tmp_path: Path,
                                                            monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CAREFABRIC_DATA_DIR", str(tmp_path / "data"))
    enc = _encounter([("CDM2001", 1, 4800), ("CDM2003", 2, 6400)])
    path = tmp_path / "fhir_20240305.ndjson"
    with path.open("w", encoding="utf-8") as handle:
        fhir_writer.write_encounter(handle, enc)
    text = path.read_text().splitlines()
    path.write_text("\n".join([*text[:3], "{not json", *text[3:]]) + "\n")

    result = ehr_ingest.ingest_file(path, engine, business_date=DAY, validate=False)
    assert result["status"] == "processed" and result["messages"] == 5 and result["message_errors"] == 1
    assert result["charges"] == 2 and result["encounters"] == 1

    stored = scenario.rows(engine, ChargeRow, order_by=ChargeRow.transaction_id)
    assert [(c.cdm_code, c.amount_cents, c.quantity, c.status) for c in stored] == [
        ("CDM2001", 4800, Decimal("1"), "held"), ("CDM2003", 12800, Decimal("2"), "held"),
    ]
    errors = scenario.exceptions(engine, scenario.ExceptionRecord.reason_code == "FHIR_PARSE_ERROR")
    assert len(errors) == 1 and errors[0].record_type == "message"
    assert errors[0].summary.startswith("fhir_20240305.ndjson: line 4: not JSON (")
    unparsed = scenario.rows(engine, RawMessage, RawMessage.status == "error")
    assert [(m.control_id, m.payload) for m in unparsed] == [("#4", "{not json")]
