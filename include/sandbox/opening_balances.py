"""Opening AR for the sandbox ERP: the go-live conversion journal a hospital posts once.

A generated scenario starts on an empty ledger, yet its 835s pay claims billed before the first
business date, so AR would close negative on day one. Real ERPs carry AR from before carefabric:
``install`` posts one conversion journal per scenario, dated the day before the first business
date: Dr 1200 per facility (the AR the scenario's remittances will relieve, plus a cushion) /
Cr 3900 "opening balance conversion". The nightly AR roll-forward then opens from a realistic
balance. The journal is not part of any business date the judge or the reconciliation checks.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import Decimal
from typing import Any

from carefabric.money import format_cents, to_cents

CONVERSION_ACCOUNT = {"account": "3900", "name": "Opening balance conversion", "type": "equity", "active": True}
#: Accounts a hospital's chart has that the generated master data leaves out: the go-live
#: conversion, and unapplied cash (``carefabric.interfaces.erp_suspense``).
EXTRA_ACCOUNTS = (
    CONVERSION_ACCOUNT,
    {"account": "2400", "name": "Unapplied cash (suspense)", "type": "liability", "active": True},
)
CUSHION_CENTS = 1_000_000


def opening_ar(truth: dict[str, Any]) -> dict[str, int]:
    """AR per facility the scenario's REMIT journals relieve (credits to 1200), plus a cushion."""
    relieved: dict[str, int] = defaultdict(int)
    for journal in truth.get("journals", []):
        if journal.get("source") != "REMIT":
            continue
        for line in journal["lines"]:
            if line["account"] == "1200":
                relieved[line["facility"]] += to_cents(Decimal(line["credit"])) - to_cents(Decimal(line["debit"]))
    return {facility: max(cents, 0) + CUSHION_CENTS for facility, cents in sorted(relieved.items())}


def conversion_journal(truth: dict[str, Any], company: str) -> dict[str, Any] | None:
    """The ERP journal body (``POST /journal-batches``), or None when nothing is relieved."""
    opening = opening_ar(truth)
    if not opening:
        return None
    dates = truth.get("business_dates") or [truth["business_date"]]
    day = dt.date.fromisoformat(dates[0]) - dt.timedelta(days=1)
    total = sum(opening.values())
    lines: list[dict[str, object]] = [
        {"account": "1200", "facility": f, "debit": format_cents(c), "credit": "0.00"} for f, c in opening.items()
    ]
    lines.append({"account": CONVERSION_ACCOUNT["account"], "debit": "0.00", "credit": format_cents(total)})
    return {"external_id": f"OPENING-AR-{company}-{day:%Y%m%d}", "company": company, "journal_date": day.isoformat(),
            "source": "OPENING", "description": "AR conversion at go-live (sandbox)", "lines": lines}
