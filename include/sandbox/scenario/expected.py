"""What the nightly close must find, computed from the scenario alone (never from carefabric).

From the truth's own journals, deposits, faults and features this module derives, per business
date:

- ``suspense``: the SUSPENSE journals cash that reached the bank but cannot post implies (Dr 1010
  / Cr 2400 at the bank's amount per facility and reason), and the reversal that clears the
  unknown payer's once the demo maps the payer and replays the file (Dr 2400 / Cr 1010);
- ``erp_edits``: the "someone edited the ERP" fault: a contractual-allowance line of one REMIT
  journal doubled by hand after posting (applied by ``tools/dayrun.py`` through
  ``/_sandbox/ledger-edit``);
- ``ar_rollforward``: per date and facility, opening AR (1200 + 1210 from the go-live conversion
  and every earlier date), the date's charges and remittance activity, closing AR;
- ``expected_items``: every reconciliation item that is not ``matched``, as
  ``{"business_date", "check", "status", "key", "match", "why"}``; ``match`` is ``exact`` (the
  store's ``item_key`` equals ``key``) or ``prefix`` (it starts with ``key``: an ERP document id
  the scenario cannot know follows).
"""

from __future__ import annotations

from collections import defaultdict
from decimal import Decimal
from typing import Any

from carefabric.money import format_cents, to_cents
from sandbox.opening_balances import opening_ar
from sandbox.scenario.common import rng_for

AR_ACCOUNTS = ("1200", "1210")
CONTRACTUAL = "4900"


def _cents(text: Any) -> int:
    return to_cents(Decimal(str(text or "0")))


def suspense(truth: dict[str, Any]) -> dict[str, list[dict[str, Any]]]:
    """SUSPENSE postings (at the bank's amount, on the statement date) and the clearing the fix brings."""
    deposits = {d["trace_number"]: d for d in truth.get("bank_deposits", []) if d.get("kind") != "no_835"}
    postings: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    clearing: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for fault in truth.get("faults", []):
        trace = (fault.get("details") or {}).get("trace_number")
        if fault.get("fault") not in ("unknown_payer", "remit_unbalanced") or trace not in deposits:
            continue
        deposit = deposits[trace]
        postings[(deposit["statement_date"], fault["exception"])][deposit["facility"]] += _cents(deposit["amount"])
        if fault["fault"] == "unknown_payer":
            clearing[deposit["statement_date"]][deposit["facility"]] += _cents(deposit["amount"])

    def journal(date: str, by_facility: dict[str, int], debit: str, credit: str, reason: str) -> dict[str, Any]:
        lines = []
        for facility, cents in sorted(by_facility.items()):
            lines += [{"account": debit, "cost_center": None, "location": None, "facility": facility,
                       "debit": format_cents(cents), "credit": "0.00"},
                      {"account": credit, "cost_center": None, "location": None, "facility": facility,
                       "debit": "0.00", "credit": format_cents(cents)}]
        return {"source": "SUSPENSE", "journal_date": date, "reason": reason, "lines": lines}

    return {
        "postings": [journal(date, facs, "1010", "2400", reason) for (date, reason), facs in sorted(postings.items())],
        "clearing": [journal(date, facs, "2400", "1010", "UNKNOWN_PAYER") for date, facs in sorted(clearing.items())],
    }


def erp_edit(truth: dict[str, Any], seed: int) -> list[dict[str, Any]]:
    """Someone doubles a contractual allowance in the ERP after carefabric posted it: one 4900 line
    of the REMIT journal of a seed-chosen date (a later date when there is one) and facility."""
    dates = truth["business_dates"]
    rng = rng_for(seed, "erp-edit")
    date = rng.choice(dates[1:] or dates)
    remit = next((j for j in truth["journals"] if j["source"] == "REMIT" and j["journal_date"] == date), None)
    lines = [ln for ln in (remit or {}).get("lines", []) if ln["account"] == CONTRACTUAL and _cents(ln["debit"]) > 0]
    if not lines:
        return []
    line = rng.choice(lines)
    was = _cents(line["debit"])
    return [{
        "business_date": date, "action": "update_line", "source": "REMIT", "account": CONTRACTUAL,
        "facility": line["facility"], "cost_center": line.get("cost_center"), "field": "debit",
        "was": format_cents(was), "set": format_cents(2 * was),
        "why": "a contractual allowance doubled by hand in the ERP after carefabric posted the journal",
    }]


def apply_edits(journals: list[dict[str, Any]], edits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The journals as the ERP holds them once the edits are made (what the judge expects to read)."""
    result = []
    for journal in journals:
        lines = [dict(line) for line in journal["lines"]]
        for edit in edits:
            if (journal["source"], journal["journal_date"]) != (edit["source"], edit["business_date"]):
                continue
            for line in lines:
                if line["account"] == edit["account"] and line["facility"] == edit["facility"] \
                        and line.get(edit["field"]) == edit["was"]:
                    line[edit["field"]] = edit["set"]
                    break
        result.append({**journal, "lines": lines})
    return result


def _ar_by_facility(journals: list[dict[str, Any]]) -> dict[tuple[str, str], dict[str, int]]:
    """Net debit to AR (1200 + 1210) per (date, facility) and source."""
    out: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    for journal in journals:
        for line in journal["lines"]:
            if line["account"] in AR_ACCOUNTS:
                out[(journal["journal_date"], line["facility"])][journal["source"]] += (
                    _cents(line["debit"]) - _cents(line["credit"]))
    return out


def ar_rollforward(truth: dict[str, Any], journals_after_fix: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per date and facility: opening, charges, remittance, closing AR (closing = next opening).

    The ERP's ledger at each date's last close: the go-live conversion, every journal of the
    scenario (the first date's fixes included: the demo closes that date again after them)."""
    opening = {facility: cents for facility, cents in opening_ar(truth).items()}
    activity = _ar_by_facility(journals_after_fix)
    facilities = sorted({*opening, *(f for _, f in activity)})
    rows = []
    for date in truth["business_dates"]:
        for facility in facilities:
            moved = activity.get((date, facility), {})
            start = opening.get(facility, 0)
            closing = start + sum(moved.values())
            rows.append({"business_date": date, "facility": facility, "opening": format_cents(start),
                         "charges": format_cents(moved.get("CHARGES", 0)), "remit": format_cents(moved.get("REMIT", 0)),
                         "closing": format_cents(closing)})
            opening[facility] = closing
    return rows


def expected_items(truth: dict[str, Any], edits: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Every item the nightly close must report as not matched, per business date."""
    items = []
    for fault in truth.get("faults", []):
        if fault.get("reconciliation"):
            payer = (fault.get("details") or {}).get("payer_id", "")
            items.append(_item(fault["business_date"], "claims", fault["reconciliation"],
                               f"{fault['reference']}|{payer}", "exact", "835 claim billing never had"))
    for bank in truth.get("expected_bank_items", []):
        status = {"missing_in_835": "missing_in_remit"}.get(bank["status"], bank["status"])
        items.append(_item(bank["business_date"], "bank", status, bank["trace_number"], "exact", bank["reason"]))
    for charge in truth.get("scenario", {}).get("late_charges", []):
        if charge["posted"]:  # captured today, billed under its service date: timing per line key
            items.append(_item(charge["business_date"], "charges", "timing", charge["line_key"], "exact",
                               f"late charge {format_cents(int(charge['amount_cents']))} of {charge['service_date']} "
                               f"billed under its service date"))
    for edit in edits:
        date = edit["business_date"]
        external_id = f"CF-{edit['source']}-{truth['company']}-{date.replace('-', '')}-"  # + content hash
        items.append(_item(date, "integrity", "changed_in_erp", f"journal|{external_id}", "prefix", edit["why"]))
        items.append(_item(date, "remittance", "amount_mismatch", f"{date}|{edit['facility']}|{edit['account']}",
                           "exact", edit["why"]))
        items.append(_item(date, "ledger", "amount_mismatch",
                           f"{date}|{edit['account']}|{edit.get('cost_center') or ''}|{edit['facility']}|", "exact",
                           edit["why"]))
    return sorted(items, key=lambda i: (i["business_date"], i["check"], i["key"]))


def _item(date: str, check: str, status: str, key: str, match: str, why: str) -> dict[str, Any]:
    return {"business_date": date, "check": check, "status": status, "key": key, "match": match, "why": why}


def close_truth(truth: dict[str, Any], seed: int) -> dict[str, Any]:
    """The nightly close's part of ``ground_truth.json`` (added under these keys)."""
    edits = erp_edit(truth, seed)
    held = suspense(truth)
    after_fix = truth["journals"] + truth["after_fix"]["journals"] + truth["after_payer_fix"]["journals"]
    return {
        "suspense": held,
        "erp_edits": edits,
        "ar_rollforward": ar_rollforward(truth, after_fix),
        "expected_items": expected_items(truth, edits),
    }

