"""Judge what the pipeline posted against the generator's ground truth.

Reads the ERP sandbox's own records (what a finance user would see in the ERP), never the
pipeline's store, and lists every difference item by item. An empty list means the day posted
exactly as the scenario says it should, to the cent.
"""

from __future__ import annotations

import json
from collections import Counter
from decimal import Decimal
from pathlib import Path
from typing import Any

import requests

LineKey = tuple[str, str, str, str, str, str]


def _line_key(line: dict[str, Any]) -> LineKey:
    return (
        str(line.get("account") or ""),
        str(line.get("cost_center") or ""),
        str(line.get("location") or ""),
        str(line.get("facility") or ""),
        f"{Decimal(str(line.get('debit') or '0')):.2f}",
        f"{Decimal(str(line.get('credit') or '0')):.2f}",
    )


def _get_all(base_url: str, token: str, path: str, params: dict[str, str]) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    query: dict[str, Any] = dict(params, limit=500)
    while True:
        response = requests.get(
            f"{base_url}/api/v1{path}", params=query, headers={"Authorization": f"Bearer {token}"}, timeout=30
        )
        response.raise_for_status()
        body = response.json()
        items.extend(body.get("data", []))
        if not body.get("next_cursor"):
            return items
        query["cursor"] = body["next_cursor"]


def _journal_detail(base_url: str, token: str, external_id: str) -> dict[str, Any]:
    response = requests.get(
        f"{base_url}/api/v1/journal-batches/{external_id}", headers={"Authorization": f"Bearer {token}"}, timeout=30
    )
    response.raise_for_status()
    return response.json()


def erp_records(erp_url: str, token: str, business_date: str) -> dict[str, list[dict[str, Any]]]:
    """Everything the ERP holds for one date: journals (with lines), movements, cash receipts."""
    journals = []
    for summary in _get_all(erp_url, token, "/journal-batches", {"journal_date": business_date}):
        journals.append(summary if "lines" in summary else _journal_detail(erp_url, token, summary["external_id"]))
    return {
        "journals": journals,
        "inventory_movements": _get_all(erp_url, token, "/inventory-movements", {"movement_date": business_date}),
        "cash_receipts": _get_all(erp_url, token, "/cash-receipts", {"receipt_date": business_date}),
    }


def compare_journals(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    """Differences between expected and posted journals, matched per source as multisets of lines."""
    diffs: list[str] = []
    want: dict[str, Counter[LineKey]] = {}
    have: dict[str, Counter[LineKey]] = {}
    for journal in expected:
        want.setdefault(journal["source"], Counter()).update(_line_key(line) for line in journal["lines"])
    for journal in actual:
        have.setdefault(journal["source"], Counter()).update(_line_key(line) for line in journal["lines"])
    for source in sorted(set(want) | set(have)):
        missing = want.get(source, Counter()) - have.get(source, Counter())
        extra = have.get(source, Counter()) - want.get(source, Counter())
        diffs += [f"journal {source}: expected line not posted {key}" for key in sorted(missing.elements())]
        diffs += [f"journal {source}: posted line not expected {key}" for key in sorted(extra.elements())]
    return diffs


def compare_movements(expected: list[dict[str, Any]], actual_docs: list[dict[str, Any]]) -> list[str]:
    def key(line: dict[str, Any]) -> tuple[str, str, str, str, str]:
        return (
            line["location"],
            line["item"],
            str(line.get("cost_center") or ""),
            f"{Decimal(str(line['quantity'])).normalize():f}",
            f"{Decimal(str(line['unit_cost'])):.2f}",
        )

    want = Counter(key(line) for line in expected)
    have = Counter(key(line) for doc in actual_docs for line in doc.get("lines", [doc]))
    return [f"inventory: expected movement not posted {k}" for k in sorted((want - have).elements())] + [
        f"inventory: posted movement not expected {k}" for k in sorted((have - want).elements())
    ]


def compare_cash(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    def key(receipt: dict[str, Any]) -> tuple[str, str, str, str]:
        return (receipt["trace_number"], receipt["payer_id"], str(receipt.get("facility") or ""),
                f"{Decimal(str(receipt['amount'])):.2f}")

    want = Counter(key(r) for r in expected)
    have = Counter(key(r) for r in actual)
    return [f"cash: expected receipt not posted {k}" for k in sorted((want - have).elements())] + [
        f"cash: posted receipt not expected {k}" for k in sorted((have - want).elements())
    ]


def posted_twice(records: dict[str, list[dict[str, Any]]]) -> list[str]:
    """External ids the ERP holds more than one document for (an ERP that does not de-duplicate)."""
    diffs = []
    for kind, docs in records.items():
        counts = Counter(str(d.get("external_id")) for d in docs)
        diffs += [f"{kind}: external id {ext} posted {n} times" for ext, n in sorted(counts.items()) if n > 1]
    return diffs


def suspense_expected(truth: dict[str, Any], *, cleared: bool = False) -> list[dict[str, Any]]:
    """The SUSPENSE journals the truth implies (``sandbox.scenario.expected.suspense``): unapplied
    cash the bank confirmed for an 835 that cannot post, and, once the unknown payer is mapped and
    its file replayed (``cleared``), the reversal that clears it."""
    held = truth.get("suspense") or {}
    return list(held.get("postings", [])) + (list(held.get("clearing", [])) if cleared else [])


def expected_journals(truth: dict[str, Any], *, after_fix: bool = False, bank: bool = False,
                      payer_fixed: bool = False, edited: bool = False) -> list[dict[str, Any]]:
    """Every journal the ERP must hold, in the state the caller brought the scenario to: the
    bank read before posting (suspense), the chargemaster fix replayed, the unknown payer mapped
    and replayed, the ERP edited by hand (``erp_edits``)."""
    from sandbox.scenario.expected import apply_edits

    journals = list(truth["journals"])
    if bank:
        journals += suspense_expected(truth, cleared=payer_fixed)
    if after_fix:
        journals += truth.get("after_fix", {}).get("journals", [])
    if payer_fixed:
        journals += truth.get("after_payer_fix", {}).get("journals", [])
    return apply_edits(journals, truth.get("erp_edits", [])) if edited else journals


def judge(ground_truth_path: Path, erp_url: str, token: str, *, after_fix: bool = False,
          bank: bool = False, payer_fixed: bool = False, edited: bool = False,
          dates: list[str] | None = None) -> dict[str, Any]:
    """Compare the ERP's records for every business date of the scenario (or ``dates``) with the
    ground truth.

    Each date is judged on its own (a journal posted under the wrong date is a difference on
    both dates), and any external id the ERP holds twice is a difference. ``bank``: the day's
    bank statement was read before posting, so the SUSPENSE journals the truth implies are due;
    ``payer_fixed``: the unknown payer was mapped and replayed (its REMIT, receipt and the
    suspense clearing are due); ``edited``: the truth's ``erp_edits`` were made in the ERP.
    """
    truth = json.loads(ground_truth_path.read_text())
    all_dates = truth.get("business_dates") or [truth["business_date"]]
    dates = dates or all_dates
    expected = expected_journals(truth, after_fix=after_fix, bank=bank, payer_fixed=payer_fixed, edited=edited)
    receipts = list(truth.get("cash_receipts", []))
    if payer_fixed:
        receipts += truth.get("after_payer_fix", {}).get("cash_receipts", [])
    differences: list[str] = []
    totals = Counter[str]()
    for business_date in dates:
        records = erp_records(erp_url, token, business_date)
        found = (
            compare_journals([j for j in expected if j.get("journal_date", business_date) == business_date],
                             records["journals"])
            + compare_movements([m for m in truth.get("inventory_movements", [])
                                 if m.get("movement_date", business_date) == business_date], records["inventory_movements"])
            + compare_cash([r for r in receipts if r.get("receipt_date", business_date) == business_date],
                           records["cash_receipts"])
            + posted_twice(records)
        )
        differences += [f"{business_date}: {d}" for d in found] if len(all_dates) > 1 else found
        totals.update({k: len(v) for k, v in records.items()})
    return {
        "business_date": dates[0],
        "business_dates": dates,
        "journals_posted": totals["journals"],
        "inventory_documents": totals["inventory_movements"],
        "cash_receipts": totals["cash_receipts"],
        "differences": differences,
    }


# --------------------------------------------------------------------------- the nightly close


def compare_items(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    """The close's items that are not ``matched`` against the truth's ``expected_items`` of the
    same date: one to one on (check, status, key), no more, no fewer.

    ``actual``: ``{"check", "status", "key"}`` as stored (``reconciliation_items``); an expected
    item with ``match`` ``prefix`` matches a key that starts with its ``key``."""
    left = [i for i in actual if i["status"] != "matched"]
    diffs = []
    for want in expected:
        hit = next((i for i in left if i["check"] == want["check"] and i["status"] == want["status"]
                    and (i["key"] == want["key"] or (want.get("match") == "prefix" and i["key"].startswith(want["key"])))),
                   None)
        if hit is None:
            diffs.append(f"reconciliation: expected item not reported {want['check']} {want['status']} {want['key']}"
                         f" ({want.get('why', '')})")
        else:
            left.remove(hit)
    diffs += [f"reconciliation: unexpected item {i['check']} {i['status']} {i['key']}" for i in left]
    return diffs


def compare_rollforward(expected: list[dict[str, Any]], actual: list[dict[str, Any]]) -> list[str]:
    """Opening and closing AR per facility (``ar_rollforward`` rows of the truth for one date)
    against the close's table (rows with ``facility`` and opening/closing in cents or dollars)."""
    def cents(row: dict[str, Any], *names: str) -> int | None:
        for name in names:
            if row.get(name) is not None:
                value = row[name]
                return int(value) if name.endswith("_cents") else int(Decimal(str(value)) * 100)
        return None

    have = {str(r.get("facility")): r for r in actual}
    diffs = []
    for want in expected:
        row = have.get(want["facility"])
        if row is None:
            diffs.append(f"roll-forward: no row for facility {want['facility']}")
            continue
        for side in ("opening", "closing"):
            got = cents(row, f"{side}_cents", f"ledger_{side}_cents", side)
            if got != int(Decimal(want[side]) * 100):
                diffs.append(f"roll-forward {want['facility']}: {side} {got} cents, expected {want[side]}")
    return diffs
