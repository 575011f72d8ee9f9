"""The sandbox bank and the reassociation of its deposits with the 835s, on generated days.

The statements are written by the ``bai2`` package's writer (``sandbox.bank_writer``) and read
back by carefabric's reader and by the ``bai2`` package; the ground truth's deposits and expected
items are compared with what the reader finds and with what ``match_deposits`` concludes when
the 835 side is read from the generated 835 files.
"""

from __future__ import annotations

import datetime as dt
import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from bai2 import bai2 as bai2_package

from carefabric.bank import read_statement
from carefabric.bank.reassociation import match_deposits
from carefabric.money import to_cents
from carefabric.x12 import read_file
from sandbox.generator import generate

DATE = dt.date(2025, 3, 14)


@pytest.fixture(scope="module")
def scenario(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("bank_scenario")
    generate(out, seed=11, encounters=72, days=2, facilities=3, start_date=DATE)
    return out


@pytest.fixture(scope="module")
def truth(scenario: Path) -> dict[str, Any]:
    return json.loads((scenario / "ground_truth.json").read_text())


def _cents(text: str | None) -> int | None:
    return None if text is None else to_cents(Decimal(text))


def test_one_statement_per_business_date_listed_in_the_manifest(scenario: Path, truth: dict[str, Any]) -> None:
    manifest = json.loads((scenario / "manifest.json").read_text())
    listed = sorted(e["path"] for e in manifest["files"] if e["path"].startswith("bank/"))
    assert listed == ["bank/20250314.bai", "bank/20250315.bai"]
    assert {d["file"] for d in truth["bank_deposits"]} == set(listed)


def test_writer_round_trip(scenario: Path, truth: dict[str, Any]) -> None:
    """Every deposit of the ground truth is read back, to the cent, with its trace and account."""
    read: list[tuple[Any, ...]] = []
    for path in sorted((scenario / "bank").glob("*.bai")):
        statement = read_statement(path)
        assert statement.findings == []
        assert all(t.is_deposit for t in statement.transactions)
        read += [(t.statement_date.isoformat(), t.bank_account, t.type_code, t.amount_cents, t.trace_number,
                  t.bank_reference) for t in statement.transactions]
        theirs = bai2_package.parse_from_string(path.read_text(), check_integrity=True)  # totals add up for them too
        assert [d.amount for g in theirs.children for a in g.children for d in a.children] == [
            t.amount_cents for t in statement.transactions
        ]
    expected = [(d["statement_date"], d["bank_account"], d["type_code"], _cents(d["amount"]), d["trace_number"],
                 d["bank_reference"]) for d in truth["bank_deposits"]]
    assert sorted(read) == sorted(expected)


def test_ach_deposits_carry_the_835_trn_segment(scenario: Path) -> None:
    statement = read_statement(scenario / "bank" / "20250314.bai")
    ach = [t for t in statement.deposits if t.type_code == "165"]
    checks = [t for t in statement.deposits if t.type_code == "115"]
    assert ach and checks
    assert all(t.trace_source == "addenda" and t.trace_originator for t in ach)
    assert all(t.trace_source == "customer_reference" and t.trace_number.startswith("CHK") for t in checks)


def _remittance_side(scenario: Path, day: str) -> pd.DataFrame:
    """Every 835 of the day read with carefabric's reader (rejected files too: their cash is real)."""
    rows = []
    for path in sorted((scenario / "sftp").rglob(f"*_{day}_*.835")):
        for remit in read_file(path).remittances:
            rows.append({"trace_number": remit.trace_number, "bpr02_cents": to_cents(remit.payment_amount),
                         "payment_method": remit.payment_method, "credit_debit": remit.credit_debit})
    return pd.DataFrame(rows)


def _bank_side(scenario: Path, day: str) -> pd.DataFrame:
    statement = read_statement(scenario / "bank" / f"{day}.bai")
    return pd.DataFrame([{"trace_number": t.trace_number, "deposit_cents": t.amount_cents,
                          "bank_reference": t.bank_reference} for t in statement.deposits])


def test_matcher_finds_exactly_the_short_and_the_unknown_deposit(scenario: Path, truth: dict[str, Any]) -> None:
    for day, date in (("20250314", "2025-03-14"), ("20250315", "2025-03-15")):
        result = match_deposits(_remittance_side(scenario, day), _bank_side(scenario, day))
        items = result[result["status"] != "matched"]
        expected = [i for i in truth["expected_bank_items"] if i["business_date"] == date]
        assert sorted(
            (r.trace_number, r.status, r.bpr02_cents if pd.notna(r.bpr02_cents) else None, r.deposit_cents, r.variance_cents)
            for r in items.itertuples()
        ) == sorted(
            (i["trace_number"], i["status"], _cents(i["bpr02"]), _cents(i["deposit"]), _cents(i["variance"])) for i in expected
        )
        matched = result[result["status"] == "matched"]
        assert len(matched) == sum(1 for d in truth["bank_deposits"] if d["statement_date"] == date
                                   and d["expected_status"] == "matched")
    first = [i for i in truth["expected_bank_items"] if i["business_date"] == "2025-03-14"]
    assert sorted(i["status"] for i in first) == ["amount_mismatch", "missing_in_835"]


def test_matcher_statuses_and_reasons() -> None:
    remits = pd.DataFrame([
        {"trace_number": "T1", "bpr02_cents": 10000}, {"trace_number": "T2", "bpr02_cents": 5000},
        {"trace_number": "T3", "bpr02_cents": 7000}, {"trace_number": "T3", "bpr02_cents": 7000},  # stored twice
        {"trace_number": "T5", "bpr02_cents": 0}, {"trace_number": "T6", "bpr02_cents": 100, "credit_debit": "D"},
    ])
    deposits = pd.DataFrame([
        {"trace_number": "t1 ", "deposit_cents": 10000, "bank_reference": "B1"},
        {"trace_number": "T2", "deposit_cents": 4990, "bank_reference": "B2"},
        {"trace_number": "T4", "deposit_cents": 123, "bank_reference": "B4"},
        {"trace_number": None, "deposit_cents": 77, "bank_reference": "B9"},
    ])
    result = match_deposits(remits, deposits)
    assert list(result.columns) == ["trace_number", "bpr02_cents", "deposit_cents", "status", "variance_cents", "reason"]
    rows = {r.trace_number: r for r in result.itertuples()}
    assert rows["T1"].status == "matched" and rows["T1"].variance_cents == 0
    assert (rows["T2"].status, rows["T2"].variance_cents) == ("amount_mismatch", -10)
    assert rows["T2"].reason == "deposit 49.90 is 0.10 short of the 835's BPR02 50.00"
    assert (rows["T3"].status, rows["T3"].bpr02_cents, rows["T3"].variance_cents) == ("missing_in_bank", 7000, -7000)
    assert (rows["T4"].status, rows["T4"].variance_cents) == ("missing_in_835", 123)
    assert "T5" not in rows and "T6" not in rows  # no money moves into the bank for them
    untraced = result[result["trace_number"].isna()].iloc[0]
    assert untraced["status"] == "missing_in_835" and "B9" in untraced["reason"]
