"""``carefabric fhir FILE``: canonical JSON of a FHIR R4 NDJSON file or Bundle, MRNs masked,
exit codes as for the other readers (0 read, 1 read with problems, 2 unreadable)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from carefabric.cli import EXIT_CODES, main

SAMPLES = Path(__file__).parent / "samples_extra" / "fhir"
VN = {"coding": [{"system": "http://terminology.hl7.org/CodeSystem/v2-0203", "code": "VN"}]}
ENCOUNTER = {
    "resourceType": "Encounter", "id": "e1", "status": "finished", "identifier": [{"type": VN, "value": "V1"}],
    "subject": {"identifier": {"type": {"coding": [{"code": "MR"}]}, "value": "M99887766"}},
    "serviceProvider": {"identifier": {"system": "urn:carefabric:facility", "value": "F1"}},
}
CHARGE = {
    "resourceType": "ChargeItem", "id": "c1", "status": "billable", "context": {"reference": "Encounter/e1"},
    "code": {"coding": [{"system": "urn:carefabric:cdm", "code": "CDM2001"}]},
    "occurrenceDateTime": "2024-03-05", "quantity": {"value": 2},
}


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def ndjson(tmp_path: Path, *resources: object) -> Path:
    path = tmp_path / "in.ndjson"
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in resources), encoding="utf-8")
    return path


def test_read_file_exits_0_with_mrns_masked(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "fhir", str(ndjson(tmp_path, ENCOUNTER, CHARGE)))
    doc = json.loads(out)
    assert (code, err, doc["summary"]) == (0, "", {"resources": 2, "ok": 2, "skipped": 0, "error": 0})
    encounter, charge = doc["resources"]
    assert encounter["encounter"]["encounter_id"] == "V1" and "M99887766" not in out
    assert charge["charges"][0]["needs_price"] is True and charge["charges"][0]["encounter_id"] == "V1"
    code, out, _ = run(capsys, "fhir", "--show-phi", str(ndjson(tmp_path, ENCOUNTER)))
    assert code == 0 and json.loads(out)["resources"][0]["encounter"]["mrn_phi"] == "M99887766"


def test_file_with_bad_lines_exits_1_and_names_them(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = ndjson(tmp_path, ENCOUNTER, {**CHARGE, "status": "unknown"}, '{"resourceType": "Encounter", "identifier": "x"}')
    code, out, err = run(capsys, "fhir", str(path))
    doc = json.loads(out)
    assert (code, err, doc["summary"]["error"]) == (1, "", 2)
    assert [r.get("reason_code") for r in doc["resources"]] == [None, "FHIR_CHARGE_STATUS", "FHIR_PARSE_ERROR"]


def test_specification_examples_and_a_bundle(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    bundle = {"resourceType": "Bundle", "type": "collection",
              "entry": [{"resource": json.loads(p.read_text(encoding="utf-8"))} for p in sorted(SAMPLES.glob("*.json"), key=lambda p: (not p.name.startswith("enc"), p.name))]}
    path = tmp_path / "bundle.json"
    path.write_text(json.dumps(bundle), encoding="utf-8")
    code, out, err = run(capsys, "fhir", "--facility", "F1", str(path))
    doc = json.loads(out)
    assert code == 1 and err == "" and doc["summary"]["resources"] == 6  # the EUR ChargeItem is the one error
    assert [r["reason_code"] for r in doc["resources"] if r["status"] == "error"] == ["FHIR_INVALID_PRICE"]
    code, out, _ = run(capsys, "fhir", str(SAMPLES / "coverage-example.json"))
    assert code == 0 and json.loads(out)["resources"][0]["coverage"]["payer_id"] == "2"


@pytest.mark.parametrize(("content", "reason"), [
    (None, "No such file or directory"), ("", "no FHIR resource in file"), ("not json\n", "not JSON"),
    ("[1, 2]\n", "not a FHIR resource"),
])
def test_unreadable_file_is_one_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                 content: str | None, reason: str) -> None:
    path = tmp_path / "in.ndjson"
    if content is not None:
        path.write_text(content, encoding="utf-8")
    code, out, err = run(capsys, "fhir", str(path))
    assert code == 2 and out == "" and err.count("\n") == 1 and err.startswith(f"carefabric: {path}: ") and reason in err


def test_help_documents_the_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["fhir", "--help"])
    assert "fhir" in EXIT_CODES and "not FHIR JSON" in capsys.readouterr().out
