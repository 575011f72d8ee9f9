"""The FHIR reader on conformant R4 (``carefabric.fhir``): the specification's own examples
(``tests/samples_extra/fhir``) and hand-made cases for every ChargeItem status, price and
currency rule, contained / literal / identifier references, and shape errors.

Every resource becomes a canonical record, a skip with its reason, or a named exception
(``reason_code``) whose text names element paths only; nothing raises.
"""

from __future__ import annotations

import copy
import datetime as dt
import json
import random
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from carefabric.fhir import SELF_PAY, FhirConfig, FhirItem, ReadContext, iter_resources, read_resource

SAMPLES = Path(__file__).parent / "samples_extra" / "fhir"
AMC_VISITS = "http://www.amc.nl/zorgportal/identifiers/visits"


def sample(name: str) -> dict[str, Any]:
    return json.loads((SAMPLES / name).read_text(encoding="utf-8"))


def read(resources: list[Any], ctx: ReadContext | None = None) -> list[FhirItem]:
    ctx = ctx or ReadContext()
    lines = [r if isinstance(r, str) else json.dumps(r) for r in resources]
    return [read_resource(line, number, ctx) for number, line in enumerate(lines, start=1)]


def charge_item(**changes: Any) -> dict[str, Any]:
    res: dict[str, Any] = {
        "resourceType": "ChargeItem", "id": "ci-1", "status": "billable",
        "code": {"coding": [{"system": "http://hospital.example/cdm", "code": "CDM2001"}]},
        "subject": {"reference": "Patient/p1"},
        "context": {"identifier": {"system": "http://hospital.example/visits", "value": "V100"}},
        "occurrenceDateTime": "2024-03-05T10:00:00Z",
        "quantity": {"value": 2},
        "priceOverride": {"value": Decimal("96.00"), "currency": "USD"},
    }
    res.update(changes)
    return res


def dumps(res: dict[str, Any]) -> str:
    return json.dumps(res, default=str).replace('"96.00"', "96.00")


def f1() -> ReadContext:
    """A fresh read of a file from a source whose default facility is F1."""
    return ReadContext(config=FhirConfig(facility="F1"))


# --------------------------------------------------------------------------- the specification's examples


@pytest.mark.parametrize("name", sorted(p.name for p in SAMPLES.glob("*.json")))
def test_every_specification_example_is_a_record_or_a_named_exception(name: str) -> None:
    for ctx in (ReadContext(), ReadContext(config=FhirConfig(facility="F1"))):
        (item,) = read([sample(name)], ctx)
        assert item.error is None or (item.reason_code and item.reason_code.startswith("FHIR_")), item
        assert item.error is not None or item.encounter or item.charges or item.coverage or item.skipped_reason


def test_encounter_example_without_identifier_uses_the_id_with_a_warning() -> None:
    (item,) = read([sample("encounter-example.json")])
    assert item.reason_code == "FHIR_PARSE_ERROR"
    assert item.error == "line 1: Encounter example: Encounter.serviceProvider facility identifier is missing"
    (item,) = read([sample("encounter-example.json")], ReadContext(config=FhirConfig(facility="F1")))
    enc = item.encounter
    assert enc is not None and (enc.encounter_id, enc.facility, enc.patient_class, enc.event_type) == (
        "example", "F1", "IMP", "in-progress")
    assert item.warnings == ["Encounter.identifier has no VN or configured visit number system: resource id used"]


def test_encounter_home_reads_class_period_and_the_contained_location() -> None:
    (item,) = read([sample("encounter-example-home.json")], ReadContext(config=FhirConfig(facility="F1")))
    enc = item.encounter
    assert enc is not None and (enc.patient_class, enc.location, enc.event_type) == ("HH", "home", "finished")
    tz = dt.timezone(dt.timedelta(hours=10))
    assert enc.admit_time == dt.datetime(2015, 1, 17, 16, 0, tzinfo=tz)
    assert enc.discharge_time == dt.datetime(2015, 1, 17, 16, 30, tzinfo=tz)


def test_r5_encounter_reads_with_a_configured_visit_system() -> None:
    config = FhirConfig(facility="F1", visit_systems=("urn:carefabric:visit-number", AMC_VISITS))
    (item,) = read([sample("encounter-example-f001-heart.r5.json")], ReadContext(config=config))
    enc = item.encounter
    assert enc is not None and (enc.encounter_id, enc.patient_class, enc.event_type) == ("v1451", "AMB", "completed")
    assert item.warnings == []
    (item,) = read([sample("encounter-example-f001-heart.r5.json")], ReadContext(config=FhirConfig(facility="F1")))
    assert item.encounter is not None and item.encounter.encounter_id == "f001" and len(item.warnings) == 1


def test_chargeitem_example_in_euro_is_an_invalid_price_and_in_dollars_a_charge() -> None:
    ctx = ReadContext(config=FhirConfig(facility="F1"))
    enc, ci = read([sample("encounter-example.json"), sample("chargeitem-example.json")], ctx)
    assert enc.encounter is not None
    assert ci.reason_code == "FHIR_INVALID_PRICE"
    assert ci.error == "line 2: ChargeItem example: ChargeItem.priceOverride.currency EUR is not USD"
    usd = sample("chargeitem-example.json")
    usd["priceOverride"]["currency"] = "USD"
    (item,) = read([usd], ctx)
    (charge,) = item.charges
    # Context Encounter/example resolves to the encounter read earlier in the same file.
    assert (charge.encounter_id, charge.facility, charge.cdm_code, charge.transaction_type) == ("example", "F1", "01510", "CG")
    assert (charge.quantity, charge.extended_amount, charge.transaction_date) == (1, 40, dt.date(2017, 1, 25))
    assert charge.line_key == "FHIR|example|1"


def test_chargeitem_example_without_override_is_priced_from_the_chargemaster_times_the_factor() -> None:
    res = sample("chargeitem-example.json")
    del res["priceOverride"]
    res["quantity"] = {"value": 3}
    ctx = ReadContext(config=FhirConfig(facility="F1"), price_lookup={"01510": 1250}.get)
    (item,) = read([{"resourceType": "Encounter", "id": "example"}, res], ctx)[1:]
    (charge,) = item.charges
    assert charge.extended_amount == Decimal("30.00") and charge.unit_amount == Decimal("10.00")  # 12.50 x 0.8 x 3
    assert not charge.needs_price
    (item,) = read([{"resourceType": "Encounter", "id": "example"}, res], ReadContext(config=FhirConfig(facility="F1")))[1:]
    assert item.reason_code == "FHIR_UNPRICED_CHARGE" and "factorOverride" in (item.error or "")


def test_coverage_examples_name_their_payer() -> None:
    ctx = ReadContext(payer_lookup={"2": "ERP-PAYER-2"}.get)
    org, selfpay = read([sample("coverage-example.json"), sample("coverage-example-selfpay.json")], ctx)
    assert org.coverage == {"payer_id": "2", "encounter_id": None, "erp_payer": "ERP-PAYER-2"}
    assert selfpay.coverage == {"payer_id": SELF_PAY, "encounter_id": None, "erp_payer": SELF_PAY}


# --------------------------------------------------------------------------- ChargeItem status


@pytest.mark.parametrize("status", ["planned", "not-billable", "aborted", "billed"])
def test_statuses_that_are_not_a_charge_are_skipped_with_the_reason(status: str) -> None:
    (item,) = read([dumps(charge_item(status=status))], f1())
    assert item.charges == [] and item.error is None
    assert item.skipped_reason is not None and item.skipped_reason.startswith(f"ChargeItem.status {status}")


@pytest.mark.parametrize("status", ["unknown", "cancelled", 7])
def test_unknown_status_is_an_exception(status: Any) -> None:
    (item,) = read([dumps(charge_item(status=status))], f1())
    assert item.reason_code == ("FHIR_CHARGE_STATUS" if isinstance(status, str) else "FHIR_PARSE_ERROR")
    assert item.charges == []


def test_billable_is_a_charge_and_entered_in_error_reverses_it() -> None:
    billable, reversal = read([dumps(charge_item()), dumps(charge_item(status="entered-in-error"))], f1())
    (charge,) = billable.charges
    assert (charge.transaction_type, charge.quantity, charge.extended_amount) == ("CG", 2, Decimal("96.00"))
    (credit,) = reversal.charges
    assert (credit.transaction_type, credit.quantity, credit.extended_amount) == ("CD", -2, Decimal("-96.00"))
    assert credit.line_key == "FHIR|ci-1|1~rev1" and credit.encounter_id == "V100"


def test_entered_in_error_finds_the_charge_through_the_lookup_or_is_unmatched() -> None:
    (item,) = read([dumps(charge_item(status="entered-in-error"))], f1())
    assert item.reason_code == "FHIR_REVERSAL_UNMATCHED" and item.charges == []
    stored = read([dumps(charge_item())], ReadContext(config=FhirConfig(facility="F1")))[0].charges[0]
    ctx = ReadContext(config=FhirConfig(facility="F1"), charge_lookup={"FHIR|ci-1|1": stored}.get)
    (item,) = read([dumps(charge_item(status="entered-in-error"))], ctx)
    assert [c.extended_amount for c in item.charges] == [Decimal("-96.00")]


# --------------------------------------------------------------------------- price and currency


def _with_price(price: str) -> str:
    return dumps(charge_item(priceOverride="@@")).replace('"@@"', price)


@pytest.mark.parametrize(("price", "code"), [
    ('{"value": 40, "currency": "EUR"}', "FHIR_INVALID_PRICE"),
    ('{"value": 1E+400, "currency": "USD"}', "FHIR_INVALID_PRICE"),
    ('{"value": -1E+400, "currency": "USD"}', "FHIR_INVALID_PRICE"),
    ('{"value": 12000000, "currency": "USD"}', "FHIR_INVALID_PRICE"),
    ('{"value": NaN, "currency": "USD"}', "FHIR_PARSE_ERROR"),
    ('{"value": Infinity, "currency": "USD"}', "FHIR_PARSE_ERROR"),
    ('{"value": "40.00", "currency": "USD"}', "FHIR_PARSE_ERROR"),
    ('{"currency": "USD"}', "FHIR_PARSE_ERROR"),
    ('"40.00"', "FHIR_PARSE_ERROR"),
])
def test_price_rules(price: str, code: str) -> None:
    (item,) = read([_with_price(price)], f1())
    assert item.reason_code == code and item.charges == [], item.error
    assert item.error is not None and "ChargeItem.priceOverride" in item.error


def test_price_without_currency_is_taken_in_the_facility_currency() -> None:
    (item,) = read([_with_price('{"value": 12.34}')], f1())
    assert [c.extended_amount for c in item.charges] == [Decimal("12.34")]


def test_no_price_and_no_chargemaster_price_is_left_to_mapping() -> None:
    res = charge_item()
    del res["priceOverride"]
    (item,) = read([dumps(res)], f1())
    (charge,) = item.charges
    assert charge.needs_price and charge.extended_amount == 0
    (item,) = read([dumps(res)], ReadContext(config=FhirConfig(facility="F1"), price_lookup={"CDM2001": 4800}.get))
    assert [(c.extended_amount, c.needs_price) for c in item.charges] == [(Decimal("96.00"), False)]


# --------------------------------------------------------------------------- references


def test_contained_encounter_and_literal_reference_resolve() -> None:
    contained = charge_item(
        contained=[{"resourceType": "Encounter", "id": "e1",
                    "identifier": [{"type": {"coding": [{"code": "VN"}]}, "value": "V777"}],
                    "serviceProvider": {"identifier": {"system": "urn:carefabric:facility", "value": "F3"}}}],
        context={"reference": "#e1"},
    )
    (item,) = read([dumps(contained)])
    assert [(c.encounter_id, c.facility) for c in item.charges] == [("V777", "F3")]
    enc = {"resourceType": "Encounter", "id": "e9", "identifier": [
        {"system": "urn:other", "value": "NOT-IT"},
        {"type": {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "VN"}]},
         "value": "V900"}],
        "serviceProvider": {"reference": "#org"},
        "contained": [{"resourceType": "Organization", "id": "org",
                       "identifier": [{"system": "urn:carefabric:facility", "value": "F2"}]}]}
    literal = charge_item(context={"reference": "https://ehr.example/fhir/Encounter/e9"})
    e, c = read([enc, dumps(literal)])
    assert e.encounter is not None and (e.encounter.encounter_id, e.encounter.facility) == ("V900", "F2")
    assert [(x.encounter_id, x.facility) for x in c.charges] == [("V900", "F2")]


def test_references_that_do_not_resolve_are_named() -> None:
    (item,) = read([dumps(charge_item(context={"reference": "Encounter/nowhere"}))], f1())
    assert item.error == "line 1: ChargeItem ci-1: ChargeItem.context does not resolve to an Encounter (visit number)"
    (item,) = read([dumps(charge_item(context={"reference": "#gone"}))], f1())
    assert item.error is not None and "contained resource that is not there" in item.error
    found = ReadContext(config=FhirConfig(facility="F1"), encounter_lookup={"e5": ("V555", "F2")}.get)
    (item,) = read([dumps(charge_item(context={"reference": "Encounter/e5"}))], found)
    assert [(c.encounter_id, c.facility) for c in item.charges] == [("V555", "F2")]  # the encounter's facility, not the default


def test_coverage_payor_identifier_contained_and_missing() -> None:
    by_ident = {"resourceType": "Coverage", "id": "c1",
                "payor": [{"identifier": {"system": "urn:carefabric:payer", "value": "PAYER1"}}]}
    contained = {"resourceType": "Coverage", "id": "c2", "payor": [{"reference": "#ins"}],
                 "contained": [{"resourceType": "Organization", "id": "ins",
                                "identifier": [{"system": "urn:x", "value": "PAYER2"}]}]}
    missing = {"resourceType": "Coverage", "id": "c3", "subscriberId": "MEMBER-SECRET-123"}
    a, b, c = read([by_ident, contained, missing])
    assert a.coverage == {"payer_id": "PAYER1", "encounter_id": None}
    assert b.coverage == {"payer_id": "PAYER2", "encounter_id": None}
    assert c.reason_code == "FHIR_MISSING_PAYOR" and c.error == "line 3: Coverage c3: Coverage.payor is missing"


# --------------------------------------------------------------------------- shape errors


SHAPES: list[tuple[dict[str, Any], str]] = [
    ({"resourceType": "Encounter", "id": "e1", "identifier": "x"}, "Encounter.identifier is not a list"),
    ({"resourceType": "Encounter", "id": "e1", "identifier": ["x"]}, "Encounter.identifier[0] is not an object"),
    ({"resourceType": "Encounter", "id": "e1", "class": 5}, "Encounter.class is not an object"),
    ({"resourceType": "Encounter", "id": "e1", "period": []}, "Encounter.period is not an object"),
    ({"resourceType": "Encounter", "id": "e1", "contained": "x", "serviceProvider": {"reference": "#o"}},
     "contained is not a list"),
    ({"resourceType": "Coverage", "id": "c1", "payor": {"reference": "Organization/1"}}, "Coverage.payor is not a list"),
    (charge_item(code="CDM2001"), "ChargeItem.code is not an object"),
    (charge_item(quantity=2), "ChargeItem.quantity is not an object"),
    (charge_item(context="Encounter/1"), "ChargeItem.context is not an object"),
    (charge_item(extension={"url": "x"}), "ChargeItem.extension is not a list"),
]


@pytest.mark.parametrize(("resource", "reason"), SHAPES)
def test_shape_errors_are_one_lines_exception_naming_the_path(resource: dict[str, Any], reason: str) -> None:
    (item,) = read([dumps(resource)], f1())
    assert item.reason_code == "FHIR_PARSE_ERROR" and item.error is not None and item.error.endswith(reason)


def test_a_file_of_shape_errors_goes_on_to_its_last_line(tmp_path: Path) -> None:
    good = charge_item(id="ci-good")
    lines = [dumps(r) for r, _ in SHAPES] + ['{"resourceType": "ChargeItem", "id": {"x": 1}}', "7", dumps(good)]
    path = tmp_path / "mixed.ndjson"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    items = list(iter_resources(path, ReadContext(config=FhirConfig(facility="F1"))))
    assert len(items) == len(lines)
    assert all(i.error for i in items[:-1]) and [c.message_control_id for c in items[-1].charges] == ["ci-good"]


def test_exception_text_carries_no_phi() -> None:
    secret = {"resourceType": "Encounter", "id": "e1", "identifier": [{"value": {"MRN": "M0042"}}],
              "subject": {"display": "Doe, Jane"}}
    (item,) = read([secret])
    assert item.error is not None and "M0042" not in item.error and "Jane" not in item.error
    bad_currency = copy.deepcopy(charge_item())
    bad_currency["priceOverride"] = {"value": 1, "currency": "Jane Doe 123-45-6789"}
    (item,) = read([dumps(bad_currency)], f1())
    assert item.reason_code == "FHIR_INVALID_PRICE" and "Jane" not in (item.error or "")


def test_a_bundle_is_read_entry_by_entry(tmp_path: Path) -> None:
    bundle = {"resourceType": "Bundle", "type": "collection", "entry": [
        {"resource": sample("encounter-example.json")}, {"resource": sample("coverage-example.json")},
        {"resource": {"resourceType": "Patient", "id": "p"}}]}
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    items = list(iter_resources(path, ReadContext(config=FhirConfig(facility="F1"))))
    assert [(i.resource_type, bool(i.error)) for i in items] == [("Encounter", False), ("Coverage", False), ("Patient", False)]


def test_a_payer_the_crosswalk_does_not_know_is_a_warning() -> None:
    (item,) = read([sample("coverage-example.json")], ReadContext(payer_lookup={}.get))
    assert item.coverage == {"payer_id": "2", "encounter_id": None, "erp_payer": None}
    assert item.warnings == ["Coverage.payor has no payer crosswalk entry"] and item.error is None


def _paths(value: Any, prefix: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    yield prefix
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield from _paths(child, (*prefix, key))


def test_mutated_specification_examples_never_raise() -> None:
    """Seeded mutants: any element replaced by a value of the wrong shape is an error naming
    the element (never the generic fallback, never an exception out of the reader)."""
    rng = random.Random(9)
    weird: list[Any] = ["x", 5, None, [], {}, ["x"], [1], {"a": 1}, True, [{"reference": 5}], [{"value": []}]]
    for path in sorted(SAMPLES.glob("*.json")):
        original = sample(path.name)
        paths = list(_paths(original))[1:]
        for _ in range(60):
            mutant = copy.deepcopy(original)
            for where in rng.sample(paths, min(len(paths), rng.randint(1, 3))):
                node = mutant
                try:
                    for key in where[:-1]:
                        node = node[key]
                    node[where[-1]] = rng.choice(weird)
                except (KeyError, IndexError, TypeError):
                    continue
            (item,) = read([mutant], f1())
            assert item.error is None or "element shape not R4" not in item.error, item.error


def test_source_settings_from_json_add_systems_and_set_the_facility() -> None:
    config = FhirConfig.from_json(json.dumps({"visit_systems": [AMC_VISITS], "facility": "F3"}))
    assert config.visit_systems == ("urn:carefabric:visit-number", AMC_VISITS) and config.facility == "F3"
    assert FhirConfig.from_json(None) == FhirConfig()
    with pytest.raises(ValueError, match="unknown setting"):
        FhirConfig.from_json('{"visit_system": []}')
