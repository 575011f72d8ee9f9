"""Unapplied cash: what reached the bank but could not post is in suspense, and clears when fixed.

The day's 835s include one from a payer nobody mapped and one that does not balance; the bank
statement shows both deposits. After posting, the ERP's own ledger holds that cash in 2400
(unapplied) at the bank's amounts, as the ground truth implies. Finance adds the payer to the
ERP, the analyst maps it and replays the file's exception: the 835 is read again from its
archive, its REMIT journal and cash receipt post, and a reversal clears its suspense, so cash
clearing is never counted twice. The unbalanced one stays in suspense.
"""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
import scenario
from sqlalchemy.engine import Engine

from carefabric.interfaces import bank_statement, erp_posting, exception_replay
from carefabric.interfaces.claims_reconciliation import money_held
from carefabric.store.crosswalks import set_payer
from carefabric.store.db import session_scope
from carefabric.store.models import ExceptionRecord
from sandbox import ERP_TOKEN
from sandbox.judge import judge
from sandbox.opening_balances import EXTRA_ACCOUNTS
from sandbox.runner import SandboxServers

DAY = scenario.BUSINESS_DATE


@pytest.fixture
def engine(engine: Engine, day_dir: Path, sandbox: SandboxServers) -> Engine:
    """The seeded store (conftest) after the day was ingested and its bank statement read; the
    ERP's chart holds the suspense accounts too."""
    scenario.reset_peers(sandbox, day_dir, extra_accounts=list(EXTRA_ACCOUNTS))
    scenario.ingest_day(engine, day_dir, sandbox.billing_url)
    (statement,) = sorted((day_dir / "bank").glob("*.bai"))
    bank_statement.process_statement(statement, engine, business_date=DAY)
    return engine


def unapplied(peers: SandboxServers) -> dict[str, int]:
    """Net credit to 2400 per facility in the ERP's own ledger."""
    net: dict[str, int] = {}
    for journal in scenario.erp_journals(peers.erp_url):
        for line in journal["lines"]:
            if line["account"] == "2400":
                cents = int((Decimal(line["credit"]) - Decimal(line["debit"])) * 100)
                net[line["facility"]] = net.get(line["facility"], 0) + cents
    return {k: v for k, v in net.items() if v}


def faults(day_dir: Path) -> dict[str, dict[str, Any]]:
    truth = json.loads((day_dir / "ground_truth.json").read_text())
    deposits = {d["trace_number"]: d for d in truth["bank_deposits"]}
    return {f["fault"]: {**f["details"], "deposit": deposits[f["details"]["trace_number"]]}
            for f in truth["faults"] if f["fault"] in ("unknown_payer", "remit_unbalanced")}


def test_cash_that_cannot_post_is_in_suspense_then_clears_when_fixed(engine: Engine, day_dir: Path,
                                                                   sandbox: SandboxServers) -> None:
    erp = scenario.erp_client(sandbox.erp_url)
    erp_posting.post_day(engine, erp, DAY)
    assert judge(day_dir / "ground_truth.json", sandbox.erp_url, ERP_TOKEN, bank=True)["differences"] == []
    held = faults(day_dir)
    expected = {}
    for fault in held.values():
        facility = fault["deposit"]["facility"]
        expected[facility] = expected.get(facility, 0) + int(Decimal(fault["deposit"]["amount"]) * 100)
    assert unapplied(sandbox) == expected
    in_suspense = money_held(engine, DAY)["suspense"]
    assert set(in_suspense) == {"rejected", "unbalanced"}

    # finance adds the payer to the ERP; the analyst maps it and replays the file's exception
    unknown = held["unknown_payer"]
    master = scenario.erp_master(day_dir)
    payers = [*master["payers"], {"payer_id": "PAYER-ZENITH", "name": "ZENITH", "x12_id": unknown["x12_payer_id"],
                                  "active": True}]
    scenario.admin(sandbox.erp_url, "load", {"payers": payers})
    scenario.load_master_rows(engine, {"payers": payers})
    with session_scope(engine) as s:
        set_payer(s, unknown["x12_payer_id"], "PAYER-ZENITH", actor="analyst")
    (exc,) = scenario.exceptions(engine, ExceptionRecord.reason_code == "UNKNOWN_PAYER")
    result = exception_replay.replay(engine, scenario.billing_client(sandbox.billing_url), erp,
                                     exception_ids=[exc.id], actor="analyst")
    assert DAY.isoformat() in result["posted"]
    assert scenario.exceptions(engine, ExceptionRecord.id == exc.id)[0].status == "replayed"

    # its cash posted (REMIT and the receipt), its suspense cleared; the unbalanced one stays
    unbalanced = held["remit_unbalanced"]["deposit"]
    assert unapplied(sandbox) == {unbalanced["facility"]: int(Decimal(unbalanced["amount"]) * 100)}
    receipts = scenario.peer_list(sandbox.erp_url, ERP_TOKEN, "/cash-receipts", {"receipt_date": DAY.isoformat()})
    assert [r["payer_id"] for r in receipts if r["trace_number"] == unknown["trace_number"]] == ["PAYER-ZENITH"]
    assert set(money_held(engine, DAY)["suspense"]) == {"unbalanced"}
    # and a second replay or posting run changes nothing
    before = scenario.peer_state(sandbox.erp_url)["counts"]
    erp_posting.post_day(engine, erp, DAY)
    assert scenario.peer_state(sandbox.erp_url)["counts"] == before
