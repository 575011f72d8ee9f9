"""The nightly close reads the ERP's own ledger: edits made in the ERP after posting are items.

The day is ingested and posted against the real sandbox ERP; then someone with ERP access edits
its records (an amount, an account, a receipt's payer, a deleted line, a manual journal that
doubles a contractual adjustment). The reconciliation must name each edited document, and the
ledger check must show the money at the account x cost center x facility grain.
"""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import scenario
from sqlalchemy.engine import Engine

from carefabric.interfaces import erp_posting
from carefabric.interfaces.claims_reconciliation import build_report, reconcile_day, refresh_billing_charges
from sandbox.runner import SandboxServers

DAY = scenario.BUSINESS_DATE


@pytest.fixture
def posted(engine: Engine, day_dir: Path, peers: SandboxServers) -> tuple[Engine, SandboxServers]:
    """A store and an ERP after the day was ingested and posted."""
    scenario.ingest_day(engine, day_dir, peers.billing_url)
    erp_posting.post_day(engine, scenario.erp_client(peers.erp_url), DAY)
    refresh_billing_charges(engine, scenario.billing_client(peers.billing_url), DAY)
    return engine, peers


def close(engine: Engine, peers: SandboxServers) -> pd.DataFrame:
    _, items, _ = reconcile_day(engine, scenario.erp_client(peers.erp_url), DAY)
    return items


def unmatched(items: pd.DataFrame, check: str) -> pd.DataFrame:
    return items[(items["check"] == check) & (items["status"] != "matched")]


def edit(peers: SandboxServers, **body: Any) -> dict[str, Any]:
    return scenario.admin(peers.erp_url, "ledger-edit", body)


def test_an_untouched_ledger_matches_at_every_grain(posted: tuple[Engine, SandboxServers]) -> None:
    engine, peers = posted
    items = close(engine, peers)
    assert set(items["check"]) == {"charges", "revenue", "claims", "remittance", "cash", "ledger", "integrity",
                                   "rollforward"}
    for check in ("charges", "revenue", "remittance", "ledger", "integrity"):
        assert unmatched(items, check).empty, unmatched(items, check)[["key", "status", "reason"]].head().to_dict("records")
    # charges are matched per line key: one item per routed line of the day
    assert items.loc[items["check"] == "charges", "key"].str.count(r"\|").ge(2).all()
    documents = items[items["check"] == "integrity"]
    journals = scenario.erp_journals(peers.erp_url)
    assert {k.split("|")[2] for k in documents["key"] if k.startswith("journal|")} == {j["document_id"] for j in journals}
    # the cash check reads the ERP's receipts back: every balanced 835 trace has its receipt
    assert unmatched(items, "cash").empty


def test_each_edit_in_the_erp_is_an_item_naming_the_document(posted: tuple[Engine, SandboxServers]) -> None:
    engine, peers = posted
    journals = {j["source"]: j for j in scenario.erp_journals(peers.erp_url)}
    receipts = scenario.peer_list(peers.erp_url, scenario.ERP_TOKEN, "/cash-receipts", {"receipt_date": DAY.isoformat()})
    charges, supply, remit = journals["CHARGES"], journals["SUPPLY"], journals["REMIT"]

    revenue = next(ln for ln in charges["lines"] if ln["account"].startswith("40"))
    edit(peers, action="update_line", document_id=charges["document_id"], line_no=revenue["line_no"],
         set={"credit": str(float(revenue["credit"]) + 100)})                                  # an amount
    contractual = next(ln for ln in remit["lines"] if ln["account"] == "4900")
    edit(peers, action="update_line", document_id=remit["document_id"], line_no=contractual["line_no"],
         set={"account": "4910"})                                                                # an account
    edit(peers, action="update_receipt", document_id=receipts[0]["document_id"], set={"payer_id": "PAYER-OTHER"})
    edit(peers, action="delete_line", document_id=supply["document_id"], line_no=supply["lines"][0]["line_no"])
    manual = edit(peers, action="add_journal", journal={                                         # doubled adjustment
        "external_id": "MANUAL-0001", "company": "CF01", "journal_date": DAY.isoformat(), "source": "MANUAL",
        "lines": [{"account": "4900", "cost_center": contractual["cost_center"], "facility": contractual["facility"],
                   "debit": contractual["debit"], "credit": "0.00"},
                  {"account": "1200", "facility": contractual["facility"], "debit": "0.00", "credit": contractual["debit"]}]})

    items = close(engine, peers)
    integrity = unmatched(items, "integrity")
    by_doc = {key.split("|")[2]: status for key, status in zip(integrity["key"], integrity["status"], strict=True)}
    assert by_doc == {
        charges["document_id"]: "changed_in_erp",
        remit["document_id"]: "changed_in_erp",
        receipts[0]["document_id"]: "changed_in_erp",
        supply["document_id"]: "changed_in_erp",
        manual["document"]["document_id"]: "added_in_erp",
    }
    assert all(doc_id in reason for doc_id, reason in
               zip(by_doc, integrity.set_index(integrity["key"].str.split("|").str[2]).loc[list(by_doc), "reason"],
                   strict=True))

    ledger = unmatched(items, "ledger")
    keys = set(ledger["key"])
    f, cc = contractual["facility"], contractual["cost_center"] or ""
    # the 4900 line moved to 4910, and the manual journal doubled the 4900 adjustment: net 4900 back
    # to the posted amount in the GL would hide it in a per-account total; the grain shows both
    assert f"{DAY.isoformat()}|4910|{cc}|{f}|" in keys
    assert f"{DAY.isoformat()}|{revenue['account']}|{revenue['cost_center']}|{revenue['facility']}|" in keys
    assert any(k.split("|")[1] == "1200" for k in keys)  # the manual journal's AR credit
    assert int(ledger["variance_cents"].sum()) > 0
    # the revenue edit is an item at account x cost center x facility of the captured charges
    revenue_keys = set(unmatched(items, "revenue")["key"])
    assert revenue_keys == {f"{DAY.isoformat()}|{revenue['account']}|{revenue['cost_center']}|{revenue['facility']}"}
    # the remittance: 4900 moved to 4910 and doubled by hand are items of the 835's accounts
    remitted = unmatched(items, "remittance").set_index("key")
    assert {f"{DAY.isoformat()}|{f}|4900", f"{DAY.isoformat()}|{f}|4910"} <= set(remitted.index)
    assert "CO " in remitted.loc[f"{DAY.isoformat()}|{f}|4900", "reason"]


def test_a_doubled_contractual_adjustment_is_caught(posted: tuple[Engine, SandboxServers]) -> None:
    engine, peers = posted
    remit = next(j for j in scenario.erp_journals(peers.erp_url) if j["source"] == "REMIT")
    adjustment = next(ln for ln in remit["lines"] if ln["account"] == "4900")
    edit(peers, action="update_line", document_id=remit["document_id"], line_no=adjustment["line_no"],
         set={"debit": str(2 * float(adjustment["debit"]))})
    items = close(engine, peers)
    key = f"{DAY.isoformat()}|4900|{adjustment['cost_center'] or ''}|{adjustment['facility']}|"
    row = items[(items["check"] == "ledger") & (items["key"] == key)].iloc[0]
    assert row["status"] == "amount_mismatch"
    assert int(row["gl_cents"]) == 2 * int(row["carefabric_cents"])
    changed = unmatched(items, "integrity")
    assert list(changed["status"]) == ["changed_in_erp"] and remit["document_id"] in changed["key"].iloc[0]
    # the 835 side of the same account: the remittance check names the codes behind 4900
    by_835 = items[(items["check"] == "remittance") & (items["key"] == f"{DAY.isoformat()}|{adjustment['facility']}|4900")]
    assert list(by_835["status"]) == ["amount_mismatch"]
    assert int(by_835["gl_cents"].iloc[0]) == 2 * int(by_835["remit_cents"].iloc[0]) and "CO " in by_835["reason"].iloc[0]


def test_money_that_did_not_post_is_held_by_reason_in_dollars(posted: tuple[Engine, SandboxServers],
                                                              day_dir: Path) -> None:
    engine, peers = posted
    _, _, totals = reconcile_day(engine, scenario.erp_client(peers.erp_url), DAY)
    held = totals["money_held"]
    truth_held = {f["exception"] for f in json.loads((day_dir / "ground_truth.json").read_text())["faults"]
                  if f.get("fault") in ("unknown_cdm", "inactive_cost_center")}
    assert truth_held <= set(held["charges"]) and held["charges_cents"] > 0
    assert held["remittances_cents"] > 0  # the unbalanced 835's cash is money that did not post


def test_finance_email_leads_with_money_held_and_missing_feeds(posted: tuple[Engine, SandboxServers]) -> None:
    from carefabric.interfaces.claims_reconciliation import missing_feeds

    engine, peers = posted
    _, items, totals = reconcile_day(engine, scenario.erp_client(peers.erp_url), DAY)
    report = build_report(engine, DAY, items, totals)
    held = totals["money_held"]
    html = report.html
    assert html.index('id="money-held"') < html.index('id="control-totals"')  # what to act on comes first
    for reason, value in held["charges"].items():
        assert f"<code>{reason}</code>" in html and f"${value['cents'] / 100:,.2f}" in html
    assert "Total not posted" in html and "action needed" in report.subject

    # the next day: nothing arrived. The email says so instead of "all matched".
    next_day = DAY + dt.timedelta(days=1)
    _, empty_items, empty_totals = reconcile_day(engine, scenario.erp_client(peers.erp_url), next_day)
    empty = build_report(engine, next_day, empty_items, empty_totals)
    assert 'id="empty-day"' in empty.html and "All matched" not in empty.html
    assert "no EHR charges arrived" in empty.html and "no activity recorded" in empty.subject
    payers = missing_feeds(engine, next_day, lookback_days=1)
    assert any(w.startswith("no 835 from payer") for w in payers)


def test_csv_cells_that_look_like_formulas_are_neutralised() -> None:
    from carefabric.report import build_finance_report

    items = pd.DataFrame([{"check": "cash", "key": "=HYPERLINK(\"http://x\")", "status": "missing_in_gl",
                           "remit_cents": -1205, "gl_cents": None, "variance_cents": 1205, "reason": "@SUM(A1)"}])
    report = build_finance_report({}, items, [], {}, business_date=DAY, chart=False)
    csv_text = next(body for name, body, _ in report.attachments if name.endswith(".csv")).decode()
    row = csv_text.splitlines()[1]
    assert "'=HYPERLINK" in row and "'@SUM(A1)" in row and ",-12.05," in row


def test_ar_rollforward_ties_to_the_erp_trial_balance(posted: tuple[Engine, SandboxServers]) -> None:
    engine, peers = posted
    _, items, totals = reconcile_day(engine, scenario.erp_client(peers.erp_url), DAY)
    table = totals["ar_rollforward"]
    assert table and all(r["difference_cents"] == 0 for r in table)
    # a one-day world: the 835s pay claims billed before the ledger began, so some facility's AR
    # closes negative; that is an item of its own, and the only kind here
    negative = {f"AR|{r['facility']}" for r in table if r["closing_cents"] < 0}
    flagged = unmatched(items, "rollforward")
    assert set(flagged["key"]) == negative and all("closes negative" in r for r in flagged["reason"])
    assert sum(r["charges_cents"] for r in table) > 0 and sum(r["payment_cents"] for r in table) < 0
    # the next day opens where this one closed
    _, _, next_totals = reconcile_day(engine, scenario.erp_client(peers.erp_url), DAY + dt.timedelta(days=1))
    closing = {r["facility"]: r["closing_cents"] for r in table}
    assert {r["facility"]: r["opening_cents"] for r in next_totals["ar_rollforward"]} == closing

    # someone writes AR off by hand in the ERP: the roll-forward of that facility no longer ties
    facility = table[0]["facility"]
    edit(peers, action="add_journal", journal={
        "external_id": "MANUAL-WO-1", "company": "CF01", "journal_date": DAY.isoformat(), "source": "MANUAL",
        "lines": [{"account": "4910", "cost_center": None, "facility": facility, "debit": "50.00", "credit": "0.00"},
                  {"account": "1200", "facility": facility, "debit": "0.00", "credit": "50.00"}]})
    _, items, totals = reconcile_day(engine, scenario.erp_client(peers.erp_url), DAY)
    broken = unmatched(items, "rollforward").set_index("key").loc[f"AR|{facility}"]
    assert int(broken["variance_cents"]) == 5000 and "the ledger closes at" in broken["reason"]
    report_html = build_report(engine, DAY, items, totals).html
    assert 'id="ar-rollforward-table"' in report_html and "-$50.00" in report_html


def test_exceptions_are_counted_for_the_business_date_of_their_record(posted: tuple[Engine, SandboxServers],
                                                                       day_dir: Path) -> None:
    from carefabric.interfaces.claims_reconciliation import exceptions_opened
    from carefabric.store.models import ExceptionRecord

    engine, _ = posted
    today = exceptions_opened(engine, DAY)
    held = [f["exception"] for f in json.loads((day_dir / "ground_truth.json").read_text())["faults"]
            if f.get("fault") in ("unknown_cdm", "inactive_cost_center")]
    assert all(today.get(reason) for reason in held)
    # a held line of this date is not an exception of another date, whenever it was opened
    later = exceptions_opened(engine, DAY + dt.timedelta(days=30))
    assert not any(later.get(reason) for reason in held)
    open_lines = scenario.exceptions(engine, ExceptionRecord.status == "open", ExceptionRecord.record_type == "charge")
    assert sum(today.get(reason, 0) for reason in {e.reason_code for e in open_lines}) == len(open_lines)


def test_the_console_shows_the_close_and_drills_from_an_item_to_its_trace(posted: tuple[Engine, SandboxServers]) -> None:
    from fastapi.testclient import TestClient
    from test_console import bearer_auth

    from carefabric.console import create_app

    engine, peers = posted
    charges = next(j for j in scenario.erp_journals(peers.erp_url) if j["source"] == "CHARGES")
    revenue = next(ln for ln in charges["lines"] if ln["account"].startswith("40"))
    edit(peers, action="update_line", document_id=charges["document_id"], line_no=revenue["line_no"],
         set={"account": "4070"})                                         # revenue on the wrong account
    items = close(engine, peers)
    client = TestClient(create_app(lambda: engine, authenticate=bearer_auth, csrf_secret=b"s" * 32),
                        headers={"Authorization": "Bearer alice"})
    day = client.get("/api/reconciliation", params={"day": DAY.isoformat()}).json()
    assert day["run"]["business_date"] == DAY.isoformat()
    assert {c["check"] for c in day["checks"]} >= {"charges", "revenue", "remittance", "ledger", "integrity"}
    assert [h["reason"] for h in day["held"]] and day["rollforward"]
    shown = {(i["check"], i["item_key"]): i for i in day["unmatched"]}
    assert len(shown) == int((items["status"] != "matched").sum())

    # the revenue item leads to the CHARGES document whose line moved; its trace names the document
    key = f"{DAY.isoformat()}|{revenue['account']}|{revenue['cost_center']}|{revenue['facility']}"
    item = client.get(f"/api/reconciliation/items/{shown[('revenue', key)]['id']}").json()
    assert item["item"]["status"] == "missing_in_gl" and item["trace_keys"] == [charges["external_id"]]
    traced = client.get("/api/trace", params={"key": item["trace_keys"][0]}).json()
    assert charges["external_id"] in str(traced)
    # the changed document: integrity -> its external id; a charge line -> the line itself
    integrity = next(i for (check, _), i in shown.items() if check == "integrity")
    assert client.get(f"/api/reconciliation/items/{integrity['id']}").json()["trace_keys"] == [charges["external_id"]]
    page = client.get("/reconciliation", params={"day": DAY.isoformat()})
    assert page.status_code == 200 and f"/reconciliation/items/{integrity['id']}" in page.text
    assert 'id="money-held"' in page.text and 'id="ar-rollforward"' in page.text
    detail = client.get(f"/reconciliation/items/{shown[('revenue', key)]['id']}")
    assert detail.status_code == 200 and f"/trace?key={charges['external_id']}" in detail.text
    assert client.get("/api/reconciliation/items/999999").status_code == 404
