"""The scenario generator: determinism, well-formed files, balanced remittances, faithful ground truth.

The checks here read the generated *files* with tiny independent parsers (split on the
delimiters) and compare them with ``ground_truth.json``, which the generator computed from its
scenario objects; hl7apy and pyx12 add third-party syntax checks. Nothing here uses carefabric's
own parsers, so a shared bug cannot hide.
"""

from __future__ import annotations

import csv
import datetime as dt
import hashlib
import json
import re
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from sandbox.generator import generate, main

DATE = dt.date(2025, 3, 14)
FAULT_KINDS = {
    "unknown_cdm",
    "inactive_cost_center",
    "unknown_payer",
    "hl7_parse_error",
    "duplicate_interchange",
    "remit_unbalanced",
    "missing_in_billing",
    "erp_unavailable",
}


def _cents(text: str) -> int:
    return int((Decimal(text) * 100).to_integral_value())


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("scenario")
    generate(out, seed=42, encounters=60, days=1, facilities=3, start_date=DATE)
    return out


@pytest.fixture(scope="module")
def truth(scenario: Path) -> dict[str, Any]:
    return json.loads((scenario / "ground_truth.json").read_text())


def _faults(truth: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {fault["fault"]: fault for fault in truth["faults"]}


# --------------------------------------------------------------------------- tiny parsers


def _x12_segments(path: Path) -> list[list[str]]:
    text = path.read_text()
    assert text.startswith("ISA") and len(text) > 106
    element, segment_end = text[3], text[105]
    assert (element, text[104], segment_end) == ("*", ":", "~")
    return [seg.strip().split(element) for seg in text.split(segment_end) if seg.strip()]


def _remit_summary(path: Path) -> dict[str, Any]:
    """BPR02, TRN02, payer/payee ids, claims (id, status, paid, adjustments), PLB amounts, balance errors."""
    errors: list[str] = []
    claims: list[dict[str, Any]] = []
    plb_total = 0
    plbs: list[tuple[str, int]] = []
    bpr = trn = payer = payee = None
    claim: dict[str, Any] | None = None
    line: dict[str, Any] | None = None
    control: dict[str, str] = {}

    def close_line() -> None:
        nonlocal line
        if line is not None:
            if line["charge"] - sum(line["cas"]) != line["paid"]:
                errors.append(f"line {line['charge']} - {line['cas']} != {line['paid']}")
            line = None

    def close_claim() -> None:
        nonlocal claim
        close_line()
        if claim is not None:
            if claim["charge"] - sum(a for _, _, a in claim["adjustments"]) != claim["paid"]:
                errors.append(f"claim {claim['id']} does not balance")
            claims.append(claim)
            claim = None

    for seg in _x12_segments(path):
        tag = seg[0]
        if tag == "ISA":
            control["isa13"] = seg[13]
        elif tag == "GS":
            control["gs06"] = seg[6]
        elif tag == "ST":
            control["st02"] = seg[2]
        elif tag == "BPR":
            bpr = _cents(seg[2])
            control["bpr16"] = seg[16]
        elif tag == "TRN":
            trn = seg[2]
        elif tag == "N1" and seg[1] == "PR":
            payer = seg[4]
        elif tag == "N1" and seg[1] == "PE":
            assert seg[3] == "XX"
            payee = seg[4]
        elif tag == "CLP":
            close_claim()
            claim = {
                "id": seg[1],
                "status": seg[2],
                "charge": _cents(seg[3]),
                "paid": _cents(seg[4]),
                "adjustments": [],
                "levels": set(),
            }
        elif tag == "SVC":
            close_line()
            line = {"charge": _cents(seg[2]), "paid": _cents(seg[3]), "cas": []}
        elif tag == "CAS":
            assert claim is not None
            for index in range(2, len(seg), 3):
                if index + 1 < len(seg) and seg[index]:
                    amount = _cents(seg[index + 1])
                    claim["adjustments"].append((seg[1], seg[index], amount))
                    claim["levels"].add((seg[1], seg[index], "line" if line is not None else "claim"))
                    if line is not None:
                        line["cas"].append(amount)
        elif tag == "PLB":
            close_claim()
            for index in range(3, len(seg), 2):
                amount = _cents(seg[index + 1])
                plbs.append((seg[index].split(":")[0], amount))
                plb_total += amount
        elif tag == "SE":
            close_claim()
    assert bpr is not None and trn is not None
    transaction_ok = bpr == sum(c["paid"] for c in claims) - plb_total
    return {
        "bpr02": bpr,
        "trace": trn,
        "payer": payer,
        "payee": payee,
        "claims": claims,
        "plbs": plbs,
        "line_claim_errors": errors,
        "transaction_ok": transaction_ok,
        "control": control,
    }


def _hl7_messages(path: Path) -> list[list[str]]:
    text = path.read_bytes().decode("ascii")
    assert "\n" not in text
    messages: list[list[str]] = []
    current: list[str] | None = None
    for seg in text.split("\r"):
        if not seg:
            continue
        if seg.startswith("MSH"):
            current = [seg]
            messages.append(current)
        elif seg[:3] in ("FHS", "BHS", "BTS", "FTS"):
            current = None
        else:
            assert current is not None
            current.append(seg)
    return messages


def _read_csv(path: Path) -> list[dict[str, str]]:
    with path.open(newline="") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- determinism


def test_same_seed_same_bytes(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", seed=7, encounters=60, days=1, facilities=3, start_date=DATE)
    b = generate(tmp_path / "b", seed=7, encounters=60, days=1, facilities=3, start_date=DATE)
    assert a == b
    assert (tmp_path / "a" / "manifest.json").read_bytes() == (tmp_path / "b" / "manifest.json").read_bytes()
    for entry in a["files"]:
        assert (tmp_path / "a" / entry["path"]).read_bytes() == (tmp_path / "b" / entry["path"]).read_bytes()


def test_different_seed_different_bytes(tmp_path: Path) -> None:
    a = generate(tmp_path / "a", seed=1, encounters=60, days=1, facilities=3, start_date=DATE)
    b = generate(tmp_path / "b", seed=2, encounters=60, days=1, facilities=3, start_date=DATE)
    hashes_a = {e["path"]: e["sha256"] for e in a["files"]}
    hashes_b = {e["path"]: e["sha256"] for e in b["files"]}
    assert hashes_a.keys() == hashes_b.keys()
    for name in ("ground_truth.json", "billing_seed.json", "ehr/F1_20250314.hl7"):
        assert hashes_a[name] != hashes_b[name]


def test_rerun_into_same_dir_replaces_old_outputs(tmp_path: Path) -> None:
    generate(tmp_path, seed=3, encounters=40, days=2, facilities=2, start_date=DATE)
    manifest = generate(tmp_path, seed=3, encounters=24, days=1, facilities=2, start_date=DATE)
    listed = {e["path"] for e in manifest["files"]}
    on_disk = {p.relative_to(tmp_path).as_posix() for p in tmp_path.rglob("*") if p.is_file()}
    assert on_disk == listed | {"manifest.json"}
    assert not any("20250315" in path for path in on_disk)


def test_manifest_hashes_every_file(scenario: Path) -> None:
    manifest = json.loads((scenario / "manifest.json").read_text())
    assert manifest["args"] == {
        "seed": 42,
        "encounters": 60,
        "days": 1,
        "facilities": 3,
        "date": "2025-03-14",
    }
    paths = {e["path"] for e in manifest["files"]}
    for expected in (
        "erp_master.json",
        "billing_seed.json",
        "ground_truth.json",
        "ehr/F1_20250314.hl7",
        "ehr/F3_20250314.hl7",
        "ehr/fhir_20250314.ndjson",
        "crosswalks/departments.csv",
        "crosswalks/cdm.csv",
        "crosswalks/payers.csv",
        "crosswalks/facilities.csv",
    ):
        assert expected in paths
    assert any(p.startswith("sftp/PAYER-ACME/") and p.endswith(".835") for p in paths)
    for entry in manifest["files"]:
        data = (scenario / entry["path"]).read_bytes()
        assert hashlib.sha256(data).hexdigest() == entry["sha256"]
        assert len(data) == entry["bytes"]


def test_cli(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    args = ["--seed", "5", "--encounters", "24", "--days", "1", "--facilities", "2", "--date", "2025-03-14"]
    assert main([*args, "--out", str(tmp_path / "x")]) == 0
    assert (tmp_path / "x" / "manifest.json").exists()
    assert main(["--encounters", "3", "--out", str(tmp_path / "y")]) == 2
    assert "encounters" in capsys.readouterr().err


# --------------------------------------------------------------------------- 835


def _good_and_bad(scenario: Path, truth: dict[str, Any]) -> tuple[list[Path], dict[str, Path]]:
    faults = _faults(truth)
    bad = {
        kind: scenario / faults[kind]["details"]["path"]
        for kind in ("unknown_payer", "remit_unbalanced", "duplicate_interchange")
    }
    files = sorted((scenario / "sftp").rglob("*.835"))
    good = [p for p in files if p not in bad.values()]
    return good, bad


def test_835s_balance_except_the_unbalanced_one(scenario: Path, truth: dict[str, Any]) -> None:
    good, bad = _good_and_bad(scenario, truth)
    assert len(good) == 9
    for path in [*good, bad["unknown_payer"], bad["duplicate_interchange"]]:
        summary = _remit_summary(path)
        assert summary["line_claim_errors"] == [], path.name
        assert summary["transaction_ok"], path.name
        assert summary["control"]["bpr16"] == "20250314"
    unbalanced = _remit_summary(bad["remit_unbalanced"])
    assert unbalanced["line_claim_errors"] == []
    assert not unbalanced["transaction_ok"]
    fault = _faults(truth)["remit_unbalanced"]
    assert _cents(fault["details"]["bpr02"]) == unbalanced["bpr02"]


def test_835_control_numbers_and_traces(scenario: Path, truth: dict[str, Any]) -> None:
    good, bad = _good_and_bad(scenario, truth)
    summaries = {p: _remit_summary(p) for p in [*good, *bad.values()]}
    dup = bad["duplicate_interchange"]
    original = dup.with_name(_faults(truth)["duplicate_interchange"]["details"]["original"])
    assert dup.read_bytes() == original.read_bytes()
    keys = [
        tuple(s["control"][k] for k in ("isa13", "gs06", "st02")) for p, s in summaries.items() if p != dup
    ]
    assert len(keys) == len(set(keys))
    traces = [s["trace"] for p, s in summaries.items() if p != dup]
    assert len(traces) == len(set(traces))
    for path, summary in summaries.items():
        assert len(path.read_text().split("~")[0]) == 105  # ISA fixed width (106 with the terminator)
        assert summary["control"]["isa13"] == f"{int(summary['control']['gs06']):09d}"


def test_835s_pass_pyx12(scenario: Path) -> None:
    import pyx12.params
    import pyx12.x12n_document

    params = pyx12.params.params()
    for path in sorted((scenario / "sftp").rglob("*.835")):
        assert pyx12.x12n_document.x12n_document(params, str(path), None, None), path.name


def test_835_features(scenario: Path, truth: dict[str, Any]) -> None:
    """Denial, reversal + corrected claim, L6 interest, CO-45 and PR-1/2/3 at both levels."""
    good, _ = _good_and_bad(scenario, truth)
    levels: set[tuple[str, str, str]] = set()
    statuses: list[tuple[str, str]] = []
    plbs: list[tuple[str, int]] = []
    for path in good:
        summary = _remit_summary(path)
        for claim in summary["claims"]:
            levels |= claim["levels"]
            statuses.append((claim["id"], claim["status"]))
        plbs += summary["plbs"]
    assert any(status == "4" for _, status in statuses)
    reversal = truth["scenario"]["reversal"]
    index = statuses.index((reversal["claim_id"], "22"))
    assert statuses[index + 1] == (reversal["claim_id"], "1")
    assert any(reason == "L6" and amount < 0 for reason, amount in plbs)
    for level in ("claim", "line"):
        assert ("CO", "45", level) in levels
        assert any((group, level) == ("PR", lv) for group, _, lv in levels if lv == level)
    assert {reason for group, reason, _ in levels if group == "PR"} >= {"1", "2", "3"}
    payers = {row["x12_payer_id"] for row in _read_csv(scenario / "crosswalks" / "payers.csv")}
    npis = {row["npi"] for row in _read_csv(scenario / "crosswalks" / "facilities.csv")}
    for path in good:
        summary = _remit_summary(path)
        assert summary["payer"] in payers and summary["payee"] in npis


# --------------------------------------------------------------------------- HL7 and FHIR


def test_hl7_messages_parse_with_hl7apy(scenario: Path, truth: dict[str, Any]) -> None:
    from hl7apy.parser import parse_message

    malformed = _faults(truth)["hl7_parse_error"]["details"]
    counts: dict[str, int] = defaultdict(int)
    control_ids: set[tuple[str, str]] = set()
    for path in sorted((scenario / "ehr").glob("*.hl7")):
        text = path.read_bytes().decode("ascii")
        assert (
            text.startswith("FHS|^~\\&|")
            and "\rBHS|" in text
            and "\rBTS|" in text
            and text.endswith("FTS|1\r")
        )
        messages = _hl7_messages(path)
        assert f"\rBTS|{len(messages)}\r" in text
        for position, segments in enumerate(messages, start=1):
            message = parse_message("\r".join(segments), find_groups=False)
            msh = segments[0].split("|")
            if path.name == malformed["path"].split("/")[-1] and position == malformed["message_index"]:
                assert len(msh) == 7  # ends after MSH-7: no type, no control id
                assert not message.msh.msh_9.value
                counts["malformed"] += 1
                continue
            assert msh[2] == "EPICCARE" and msh[3] == path.name.split("_")[0]
            message_type = "^".join(msh[8].split("^")[:2])
            assert message.msh.msh_9.msh_9_1.value + "^" + message.msh.msh_9.msh_9_2.value == message_type
            counts[message_type] += 1
            assert (msh[3], msh[9]) not in control_ids
            control_ids.add((msh[3], msh[9]))
            pid = next(s for s in segments if s.startswith("PID|")).split("|")
            assert any(rep.split("^")[4] == "MR" for rep in pid[3].split("~"))
            pv1 = next(s for s in segments if s.startswith("PV1|")).split("|")
            assert pv1[19].startswith("V") and pv1[39] == msh[3]
    assert dict(counts) == truth["counts"]["messages"]
    assert counts["ADT^A01"] and counts["ADT^A03"] and counts["ADT^A04"] and counts["ADT^A08"]
    assert "\\T\\" in (scenario / "ehr" / "F1_20250314.hl7").read_bytes().decode("ascii")


def _charge_lines_from_files(scenario: Path, truth: dict[str, Any]) -> list[dict[str, Any]]:
    """Every charge line in the EHR files (HL7 FT1 and FHIR ChargeItem), read with split()."""
    malformed = _faults(truth)["hl7_parse_error"]["details"]
    lines: list[dict[str, Any]] = []
    for path in sorted((scenario / "ehr").glob("*.hl7")):
        for position, segments in enumerate(_hl7_messages(path), start=1):
            facility = segments[0].split("|")[3]
            in_malformed = (
                path.name == malformed["path"].split("/")[-1] and position == malformed["message_index"]
            )
            for seg in segments:
                if seg.startswith("FT1|"):
                    f = seg.split("|")
                    assert f[6] in ("CG", "CD")
                    assert f[6] == "CD" or _cents(f[11]) > 0
                    # a credit comes signed or unsigned (positive numbers under CD): both are negative
                    sign = -1 if f[6] == "CD" and _cents(f[11]) > 0 else 1
                    lines.append(
                        {
                            "facility": facility,
                            "cdm": f[7].split("^")[0],
                            "qty": sign * Decimal(f[10]),
                            "amount": sign * _cents(f[11]),
                            "dept": f[13].split("^")[0],
                            "date": f[4],
                            "malformed": in_malformed,
                            "type": f[6],
                            "cpt": f[25].split("^")[0],
                        }
                    )
    for raw in (scenario / "ehr" / "fhir_20250314.ndjson").read_text().splitlines():
        resource = json.loads(raw, parse_float=Decimal)
        if resource["resourceType"] != "ChargeItem":
            continue
        codes = {c["system"]: c["code"] for c in resource["code"]["coding"]}
        ext = {e["url"]: e for e in resource["extension"]}
        total = resource["priceOverride"]["value"]
        unit = ext["urn:carefabric:fhir:unit-price"]["valueMoney"]["value"]
        assert total == unit * resource["quantity"]["value"]
        lines.append(
            {
                "facility": ext["urn:carefabric:fhir:facility"]["valueString"],
                "cdm": codes["urn:carefabric:cdm"],
                "qty": resource["quantity"]["value"],
                "amount": _cents(str(total)),
                "dept": resource["performingOrganization"]["identifier"]["value"],
                "malformed": False,
                "type": "CG",
                "date": resource["occurrenceDateTime"].replace("-", ""),
                "cpt": codes.get("http://www.ama-assn.org/go/cpt", ""),
            }
        )
    return lines


def test_fhir_resources(scenario: Path, truth: dict[str, Any]) -> None:
    kinds: dict[str, int] = defaultdict(int)
    for raw in (scenario / "ehr" / "fhir_20250314.ndjson").read_text().splitlines():
        resource = json.loads(raw)
        kinds[resource["resourceType"]] += 1
        assert list(resource) == sorted(resource)
        if resource["resourceType"] == "ChargeItem":
            assert re.search(r'"priceOverride":\{"currency":"USD","value":-?[0-9]+\.[0-9]{2}\}', raw), raw
    assert dict(kinds) == truth["counts"]["fhir_resources"]
    assert kinds["Encounter"] >= 2 and kinds["ChargeItem"] >= 2 and kinds["Coverage"] >= 2


# --------------------------------------------------------------------------- ground truth


def test_journals_balance_and_follow_the_policy(truth: dict[str, Any]) -> None:
    sources = {(j["journal_date"], j["source"]) for j in truth["journals"]}
    assert sources == {("2025-03-14", "CHARGES"), ("2025-03-14", "SUPPLY"), ("2025-03-14", "REMIT")}
    for journal in [*truth["journals"], *truth["after_fix"]["journals"]]:
        assert journal["company"] == "CF01"
        debit = sum(_cents(line["debit"]) for line in journal["lines"])
        credit = sum(_cents(line["credit"]) for line in journal["lines"])
        assert debit == credit == _cents(journal["total_debit"])
        keys = set()
        for line in journal["lines"]:
            assert (_cents(line["debit"]) == 0) != (_cents(line["credit"]) == 0)
            assert line["facility"]
            key = (line["account"], line["cost_center"], line["location"], line["facility"])
            assert key not in keys  # summarized
            keys.add(key)
            assert (line["cost_center"] is not None) == (
                line["account"][0] == "4"
                and line["account"] not in ("4900", "4910")
                or line["account"] == "6500"
            )
            assert (line["location"] is not None) == (line["account"] == "1400")


def test_charges_and_supply_reconcile_with_the_files(scenario: Path, truth: dict[str, Any]) -> None:
    cdm = {row["cdm_code"]: row for row in _read_csv(scenario / "crosswalks" / "cdm.csv")}
    departments = {
        (r["facility"], r["department"]): r["cost_center"]
        for r in _read_csv(scenario / "crosswalks" / "departments.csv")
    }
    master = json.loads((scenario / "erp_master.json").read_text())
    active = {c["cost_center"] for c in master["cost_centers"] if c["active"]}
    costs = {i["item"]: _cents(i["unit_cost"]) for i in master["items"]}
    locations = {loc["facility"]: loc["location"] for loc in master["locations"]}
    revenue: dict[tuple[str, str, str], int] = defaultdict(int)
    ar: dict[str, int] = defaultdict(int)
    expense: dict[tuple[str, str], int] = defaultdict(int)
    movement: dict[tuple[str, str, str], Decimal] = defaultdict(Decimal)
    lines = _charge_lines_from_files(scenario, truth)
    held = defaultdict(int)
    for line in lines:
        if line["malformed"]:
            held["HL7_PARSE_ERROR"] += 1
            continue
        if line["cdm"] not in cdm:
            held["UNKNOWN_CDM"] += 1
            continue
        cc = departments[(line["facility"], line["dept"])]
        if cc not in active:
            held["INACTIVE_COST_CENTER"] += 1
            continue
        entry = cdm[line["cdm"]]
        assert line["cpt"] == entry["procedure_code"]
        revenue[(entry["revenue_account"], cc, line["facility"])] += line["amount"]
        ar[line["facility"]] += line["amount"]
        if entry["erp_item"]:
            # the supply cost of a fractional quantity is rounded half up per line
            cost = Decimal(line["qty"]) * costs[entry["erp_item"]]
            expense[(cc, line["facility"])] += int(cost.quantize(Decimal(1), rounding=ROUND_HALF_UP))
            movement[(locations[line["facility"]], entry["erp_item"], cc)] -= line["qty"]
    assert dict(held) == truth["counts"]["charge_lines_held"]
    assert len(lines) - held["HL7_PARSE_ERROR"] == truth["counts"]["charge_lines"]
    assert any(line["type"] == "CD" for line in lines)
    journals = {j["source"]: j for j in truth["journals"]}
    got_revenue = {
        (ln["account"], ln["cost_center"], ln["facility"]): _cents(ln["credit"]) - _cents(ln["debit"])
        for ln in journals["CHARGES"]["lines"]
        if ln["account"] != "1200"
    }
    assert got_revenue == {k: v for k, v in revenue.items() if v}
    got_ar = {
        ln["facility"]: _cents(ln["debit"]) for ln in journals["CHARGES"]["lines"] if ln["account"] == "1200"
    }
    assert got_ar == dict(ar)
    got_expense = {
        (ln["cost_center"], ln["facility"]): _cents(ln["debit"])
        for ln in journals["SUPPLY"]["lines"]
        if ln["account"] == "6500"
    }
    assert got_expense == dict(expense)
    inventory = sum(_cents(ln["credit"]) for ln in journals["SUPPLY"]["lines"] if ln["account"] == "1400")
    assert inventory == sum(expense.values())
    moves = truth["inventory_movements"]
    got_movement = {(m["location"], m["item"], m["cost_center"]): Decimal(m["quantity"]) for m in moves}
    assert got_movement == dict(movement) and len(moves) == len(movement)
    assert all(Decimal(m["quantity"]) < 0 and m["movement_date"] == "2025-03-14" for m in moves)


def test_remit_journal_and_cash_receipts_reconcile_with_the_835s(
    scenario: Path, truth: dict[str, Any]
) -> None:
    good, _ = _good_and_bad(scenario, truth)
    summaries = [_remit_summary(p) for p in good]
    payer_map = {
        r["x12_payer_id"]: r["erp_payer_id"] for r in _read_csv(scenario / "crosswalks" / "payers.csv")
    }
    npi_map = {r["npi"]: r["facility"] for r in _read_csv(scenario / "crosswalks" / "facilities.csv")}
    (remit,) = [j for j in truth["journals"] if j["source"] == "REMIT"]
    cash = defaultdict(int)
    for line in remit["lines"]:
        if line["account"] == "1010":
            cash[line["facility"]] += _cents(line["debit"]) - _cents(line["credit"])
    expected_cash = defaultdict(int)
    for s in summaries:
        expected_cash[npi_map[s["payee"]]] += s["bpr02"]
    assert dict(cash) == dict(expected_cash)
    receipts = {r["trace_number"]: r for r in truth["cash_receipts"]}
    assert len(receipts) == len(summaries) == truth["counts"]["cash_receipts"]
    for s in summaries:
        receipt = receipts[s["trace"]]
        assert _cents(receipt["amount"]) == s["bpr02"]
        assert receipt["payer_id"] == payer_map[s["payer"]]
        assert receipt["facility"] == npi_map[s["payee"]]
        assert receipt["receipt_date"] == "2025-03-14"
    interest = -sum(a for s in summaries for reason, a in s["plbs"] if reason == "L6")
    assert (
        sum(_cents(ln["credit"]) - _cents(ln["debit"]) for ln in remit["lines"] if ln["account"] == "7100")
        == interest
    )
    denied = sum(
        a
        for s in summaries
        for c in s["claims"]
        if c["status"] == "4"
        for g, _, a in c["adjustments"]
        if g != "PR"
    )
    assert sum(_cents(ln["debit"]) for ln in remit["lines"] if ln["account"] == "4910") == denied
    assert truth["counts"]["claims_remitted"] == sum(len(s["claims"]) for s in summaries)


def test_billing_seed_matches_the_good_835s(scenario: Path, truth: dict[str, Any]) -> None:
    seed = json.loads((scenario / "billing_seed.json").read_text())
    good, bad = _good_and_bad(scenario, truth)
    missing = _faults(truth)["missing_in_billing"]["reference"]
    claims = {c["claim_id"]: c for c in seed["claims"]}
    assert len(claims) == len(seed["claims"])
    payments = defaultdict(list)
    for payment in seed["payments"]:
        payments[(payment["claim_id"], payment["trace_number"])].append(_cents(payment["amount"]))
    seen_missing = False
    for path in good:
        summary = _remit_summary(path)
        for claim in summary["claims"]:
            if claim["id"] == missing:
                seen_missing = True
                assert claim["id"] not in claims
                assert not any(p["claim_id"] == missing for p in seed["payments"])
                continue
            assert claim["id"] in claims
            assert claim["paid"] in payments[(claim["id"], summary["trace"])]
    assert seen_missing
    reversal = truth["scenario"]["reversal"]
    earlier = payments[(reversal["claim_id"], reversal["original_trace_number"])]
    assert earlier == [_cents(reversal["original_paid"])] and earlier[0] > 0
    # billing could not post the unbalanced 835 either; the unknown payer's it posted itself
    # (only carefabric's crosswalk lacks the payer), so once mapped and replayed its claims match
    summary = _remit_summary(bad["remit_unbalanced"])
    assert not any(p["trace_number"] == summary["trace"] for p in seed["payments"])
    summary = _remit_summary(bad["unknown_payer"])
    assert sorted(_cents(p["amount"]) for p in seed["payments"] if p["trace_number"] == summary["trace"]) == sorted(
        c["paid"] for c in summary["claims"])
    for balance in seed["patient_balances"]:
        assert balance["account_token"].startswith("tok_")


def test_faults_are_all_there_and_recognizable(scenario: Path, truth: dict[str, Any]) -> None:
    faults = _faults(truth)
    assert set(faults) == FAULT_KINDS and len(truth["faults"]) == len(FAULT_KINDS)
    exceptions = {f["fault"]: f.get("exception") or f.get("reconciliation") for f in truth["faults"]}
    assert exceptions == {
        "unknown_cdm": "UNKNOWN_CDM",
        "inactive_cost_center": "INACTIVE_COST_CENTER",
        "unknown_payer": "UNKNOWN_PAYER",
        "hl7_parse_error": "HL7_PARSE_ERROR",
        "duplicate_interchange": "DUPLICATE_INTERCHANGE",
        "remit_unbalanced": "REMIT_UNBALANCED",
        "missing_in_billing": "missing_in_billing",
        "erp_unavailable": "ERP_UNAVAILABLE",
    }
    cdm_codes = {row["cdm_code"] for row in _read_csv(scenario / "crosswalks" / "cdm.csv")}
    assert faults["unknown_cdm"]["reference"] not in cdm_codes
    assert truth["after_fix"]["crosswalk"]["cdm_code"] == faults["unknown_cdm"]["reference"]
    assert truth["after_fix"]["crosswalk"]["erp_item"] is None
    (fix,) = truth["after_fix"]["journals"]
    assert fix["source"] == "CHARGES" and fix["total_debit"] == faults["unknown_cdm"]["details"]["amount"]
    master = json.loads((scenario / "erp_master.json").read_text())
    cc = {c["cost_center"]: c for c in master["cost_centers"]}
    assert cc[faults["inactive_cost_center"]["reference"]]["active"] is False
    mapped = {r["cost_center"] for r in _read_csv(scenario / "crosswalks" / "departments.csv")}
    assert faults["inactive_cost_center"]["reference"] in mapped
    assert faults["inactive_cost_center"]["details"]["held_lines"] >= 1
    unknown = _remit_summary(scenario / faults["unknown_payer"]["details"]["path"])
    assert unknown["payer"] not in {
        r["x12_payer_id"] for r in _read_csv(scenario / "crosswalks" / "payers.csv")
    }
    assert unknown["payer"] not in {p["x12_id"] for p in master["payers"]}
    assert faults["erp_unavailable"]["erp_fault"] == {
        "path_prefix": "/api/v1/journal-batches",
        "method": "POST",
        "status": 503,
        "count": 1,
    }
    assert faults["erp_unavailable"]["expect_open"] is False
    periods = {p["period"]: p["status"] for p in master["periods"]}
    assert periods == {"2025-02": "closed", "2025-03": "open"}
    for kind in ("unknown_payer", "remit_unbalanced", "duplicate_interchange", "hl7_parse_error"):
        assert (scenario / faults[kind]["details"]["path"]).exists()
        assert faults[kind]["reference"] == Path(faults[kind]["details"]["path"]).name


def test_no_phi_in_the_ground_truth_or_erp_master(scenario: Path) -> None:
    mrns = set()
    for path in (scenario / "ehr").glob("*.hl7"):
        for seg in path.read_bytes().decode("ascii").split("\r"):
            if seg.startswith("PID|"):
                for rep in seg.split("|")[3].split("~"):
                    mrns.add(rep.split("^")[0])
    for name in ("ground_truth.json", "erp_master.json", "billing_seed.json"):
        text = (scenario / name).read_text()
        assert not any(mrn in text for mrn in mrns), name


def test_multi_day_single_facility(tmp_path: Path) -> None:
    generate(tmp_path, seed=11, encounters=24, days=3, facilities=1, start_date=dt.date(2025, 3, 30))
    truth = json.loads((tmp_path / "ground_truth.json").read_text())
    assert truth["business_dates"] == ["2025-03-30", "2025-03-31", "2025-04-01"]
    assert {f["fault"] for f in truth["faults"]} == FAULT_KINDS
    dates = {j["journal_date"] for j in truth["journals"]}
    assert dates == set(truth["business_dates"])
    for journal in truth["journals"]:
        assert sum(_cents(ln["debit"]) for ln in journal["lines"]) == sum(
            _cents(ln["credit"]) for ln in journal["lines"]
        )
    master = json.loads((tmp_path / "erp_master.json").read_text())
    assert {p["period"]: p["status"] for p in master["periods"]} == {
        "2025-02": "closed",
        "2025-03": "open",
        "2025-04": "open",
    }
    assert len(list((tmp_path / "ehr").glob("F1_*.hl7"))) == 3
    for path in (tmp_path / "sftp").rglob("*.835"):
        summary = _remit_summary(path)
        assert summary["line_claim_errors"] == []


# --------------------------------------------------------------------------- the close's scenario


def _three_days(out: Path, seed: int) -> dict[str, Any]:
    generate(out, seed=seed, encounters=36, days=3, facilities=3, start_date=DATE, day_encounters=[12, 12, 12])
    return json.loads((out / "ground_truth.json").read_text())


def _places(truth: dict[str, Any]) -> dict[str, Any]:
    """Where each seed-placed feature landed, position only (ids, files)."""
    s = truth["scenario"]
    return {
        "late": sorted((c["business_date"], c["facility"], c["encounter_id"]) for c in s["late_charges"]),
        "plb": sorted((p["reason"], p["file"]) for p in s["plb_recoupments"]),
        "secondary": sorted(c["file"] for c in s["secondary_claims"]),
        "fraction": sorted(c["transaction_id"] for c in s["fractional_quantities"]),
        "edit": [(e["business_date"], e["facility"]) for e in truth["erp_edits"]],
        "bank": sorted(i["trace_number"] for i in truth["expected_bank_items"]),
    }


def test_close_features_are_in_the_files_and_move_with_the_seed(tmp_path: Path) -> None:
    truths = {seed: _three_days(tmp_path / str(seed), seed) for seed in (7, 8)}
    for seed, truth in truths.items():
        out = tmp_path / str(seed)
        hl7 = "".join(p.read_bytes().decode() for p in sorted((out / "ehr").glob("*.hl7")))
        x12 = "".join(p.read_text() for p in sorted((out / "sftp").rglob("*.835")))
        ft1 = [seg.split("|") for seg in hl7.split("\r") if seg.startswith("FT1|")]
        assert any(f[6] == "CD" and not f[11].startswith("-") for f in ft1)  # unsigned credit
        assert any("." in f[10] for f in ft1)  # fractional quantity
        assert "ADT^A11" in hl7
        for late in truth["scenario"]["late_charges"]:  # FT1-4 earlier than the file's business date
            (line,) = [f for f in ft1 if f[2] == late["transaction_id"]]
            assert line[4] == late["service_date"].replace("-", "") < late["business_date"].replace("-", "")
        for needle in ("CAS*PI*104*", "CAS*OA*23*"):
            assert needle in x12
        assert re.search(r"CAS\*CO\*([^~]*\*)?253\*", x12)  # sequestration beside the CO-45 of its claim
        assert re.search(r"CLP\*CLM-F\d-\d{7}\*2\*", x12)  # a secondary claim
        for reason in ("WO", "72", "FB"):
            assert re.search(rf"\*{reason}:CLM-F\d-\d{{7}}\*", x12)
        paid_later = truth["scenario"]["paid_from_earlier_day"]
        assert paid_later
        for claim in paid_later:  # the encounter is in the EHR extract of an earlier business date
            day = claim["service_date"].replace("-", "")
            assert day < claim["file"].split("_")[3]
            extract = "".join(p.read_text() for p in (out / "ehr").glob(f"*_{day}.hl7"))
            assert f"|V{claim['claim_id'].rsplit('-', 1)[1]}|" in extract
        assert truth["erp_edits"] and truth["erp_edits"][0]["business_date"] != "2025-03-14"
    assert all(a != b for a, b in zip(_places(truths[7]).values(), _places(truths[8]).values(), strict=True))


def test_close_truth_follows_from_the_scenario(tmp_path: Path) -> None:
    truth = _three_days(tmp_path, 9)
    billed = {c["claim_id"] for c in json.loads((tmp_path / "billing_seed.json").read_text())["claims"]}
    deposits = {d["trace_number"]: d for d in truth["bank_deposits"]}
    items = truth["expected_items"]
    kinds = {(i["check"], i["status"]) for i in items}
    assert kinds == {("claims", "missing_in_billing"), ("bank", "amount_mismatch"), ("bank", "missing_in_remit"),
                     ("charges", "timing"), ("integrity", "changed_in_erp"), ("ledger", "amount_mismatch"),
                     ("remittance", "amount_mismatch")}
    for item in items:
        assert item["business_date"] in truth["business_dates"] and item["match"] in ("exact", "prefix")
        if item["check"] == "claims":
            assert item["key"].split("|")[0] not in billed
        if item["check"] == "bank":
            assert deposits[item["key"]]["kind"] == {"amount_mismatch": "short", "missing_in_remit": "no_835"}[item["status"]]
        if item["check"] == "charges":  # a late charge: its line key (MSH-3|MSH-4|MSH-10|FT1-1)
            (late,) = [c for c in truth["scenario"]["late_charges"] if c["line_key"] == item["key"]]
            assert late["business_date"] == item["business_date"] > late["service_date"]
            assert item["key"] == f"EPICCARE|{late['facility']}|{late['message_control_id']}|1"
    (edit,) = truth["erp_edits"]
    assert _cents(edit["set"]) == 2 * _cents(edit["was"])
    (remit,) = [j for j in truth["journals"] if j["source"] == "REMIT" and j["journal_date"] == edit["business_date"]]
    assert any(ln["account"] == "4900" and ln["facility"] == edit["facility"] and ln["debit"] == edit["was"]
               for ln in remit["lines"])
    # suspense: the unknown payer's and the unbalanced file's cash at the bank's amount; the fix clears one
    posted = [ln for j in truth["suspense"]["postings"] for ln in j["lines"] if ln["account"] == "2400"]
    cleared = [ln for j in truth["suspense"]["clearing"] for ln in j["lines"] if ln["account"] == "2400"]
    trapped = [f["details"]["trace_number"] for f in truth["faults"] if f["fault"] in ("unknown_payer", "remit_unbalanced")]
    assert sum(_cents(ln["credit"]) for ln in posted) == sum(_cents(deposits[t]["amount"]) for t in trapped)
    (unknown,) = [f for f in truth["faults"] if f["fault"] == "unknown_payer"]
    assert sum(_cents(ln["debit"]) for ln in cleared) == _cents(deposits[unknown["details"]["trace_number"]]["amount"])
    # AR roll-forward: each closing is opening + the day's AR journal lines, and the next opening
    rows = truth["ar_rollforward"]
    journals = truth["journals"] + truth["after_fix"]["journals"] + truth["after_payer_fix"]["journals"]
    for row in rows:
        ar = sum(_cents(ln["debit"]) - _cents(ln["credit"]) for j in journals if j["journal_date"] == row["business_date"]
                 for ln in j["lines"] if ln["account"] in ("1200", "1210") and ln["facility"] == row["facility"])
        assert _cents(row["closing"]) == _cents(row["opening"]) + ar
        following = [r for r in rows if r["facility"] == row["facility"] and r["business_date"] > row["business_date"]]
        if following:
            assert following[0]["opening"] == row["closing"]


def test_the_judge_wants_the_expected_items_no_more_no_fewer() -> None:
    from sandbox.judge import compare_items

    expected = [
        {"check": "bank", "status": "amount_mismatch", "key": "EFT1", "match": "exact"},
        {"check": "integrity", "status": "changed_in_erp", "key": "journal|CF-REMIT-CF01-20250315-", "match": "prefix"},
    ]
    stored = [
        {"check": "bank", "status": "amount_mismatch", "key": "EFT1"},
        {"check": "integrity", "status": "changed_in_erp", "key": "journal|CF-REMIT-CF01-20250315-0dce|JE-12"},
        {"check": "cash", "status": "matched", "key": "EFT1"},
    ]
    assert compare_items(expected, stored) == []
    extra = {"check": "ledger", "status": "amount_mismatch", "key": "2025-03-15|4900||F1|"}
    assert compare_items(expected, [*stored, extra]) == ["reconciliation: unexpected item ledger amount_mismatch "
                                                         "2025-03-15|4900||F1|"]
    assert compare_items(expected, stored[1:])[0].startswith("reconciliation: expected item not reported bank")
    # an exact key does not match by prefix, and one stored item answers one expected item only
    assert len(compare_items([*expected, expected[0]], [{**stored[0], "key": "EFT10"}, *stored[1:]])) == 3
