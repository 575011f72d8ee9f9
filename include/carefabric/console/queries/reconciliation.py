"""The reconciliation of a business date as finance reads it, and the drill-down of one item.

The day page shows what the finance email shows (control totals per check, money that did not
post, the AR roll-forward, what did not match); an item leads to the trace view through the
records behind it. Which records those are depends on the check's key:

- ``charges`` (line key), ``claims`` (claim|payer), ``cash``/``bank`` (trace): the key names
  one record, traced directly;
- ``integrity`` (kind|external id|ERP document): the external id of the document;
- ``revenue``/``ledger`` (date|account|...), ``remittance`` (date|facility|account) and
  ``rollforward`` (AR|facility): the ERP documents carefabric posted for that date that carry a
  line on that account, cost center and facility (their external ids), since an aggregate has
  no single record.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from carefabric.console.queries.common import money, recon_item_json, run_json
from carefabric.store.models import ErpPosting, ErpPostingLine, ReconciliationItem, ReconciliationRun

AR_ACCOUNTS = ("1200", "1210")
# the position of each column in an aggregate check's item key ("|"-joined)
AGGREGATE_KEYS: dict[str, dict[str, int]] = {
    "revenue": {"account": 1, "cost_center": 2, "facility": 3},
    "ledger": {"account": 1, "cost_center": 2, "facility": 3, "location": 4},
    "remittance": {"facility": 1, "account": 2},
}


def day_view(session: Session, day: dt.date | None, limit: int) -> dict[str, Any]:
    """The latest run (of ``day`` if given): control totals per check, money held, the
    roll-forward, its unmatched items, and the recent runs."""
    runs = select(ReconciliationRun).order_by(ReconciliationRun.business_date.desc(), ReconciliationRun.run_number.desc())
    if day:
        runs = runs.where(ReconciliationRun.business_date == day)
    recent = list(session.scalars(runs.limit(20)))
    if not recent:
        return {"run": None, "unmatched": [], "runs": [], "checks": [], "held": [], "rollforward": []}
    run = recent[0]
    items = session.scalars(
        select(ReconciliationItem).where(ReconciliationItem.run_id == run.id, ReconciliationItem.status != "matched")
        .order_by(ReconciliationItem.check_name, ReconciliationItem.id).limit(limit)
    )
    totals = run.control_totals or {}
    return {
        "run": run_json(run),
        "checks": _checks(totals),
        "held": _held(totals.get("money_held") or {}),
        "rollforward": [_money_row(r) for r in totals.get("ar_rollforward") or []],
        "unmatched": [{**recon_item_json(i, run), "id": i.id} for i in items],
        "runs": [run_json(r) for r in recent],
    }


def _checks(totals: dict[str, Any]) -> list[dict[str, Any]]:
    """One row per check of the run's control totals: items, unmatched, statuses, variance."""
    rows = []
    for name, entry in totals.items():
        if not isinstance(entry, dict) or "items_by_status" not in entry:
            continue
        rows.append({"check": name, "items": entry.get("items"), "unmatched": entry.get("unmatched"),
                     "variance": money(entry.get("variance_cents")),
                     "statuses": ", ".join(f"{s}: {n}" for s, n in entry["items_by_status"].items())})
    return rows


def _held(held: dict[str, Any]) -> list[dict[str, Any]]:
    rows = [{"what": "EHR charges held", "reason": r, "count": v.get("lines"), "amount": money(v.get("cents"))}
            for r, v in (held.get("charges") or {}).items()]
    rows += [{"what": "835 cash not posted", "reason": r, "count": v.get("transactions"), "amount": money(v.get("cents"))}
             for r, v in (held.get("remittances") or {}).items()]
    rows += [{"what": "835 cash in suspense (2400)", "reason": r, "count": v.get("transactions"),
              "amount": money(v.get("cents"))} for r, v in (held.get("suspense") or {}).items()]
    return rows


def _money_row(row: dict[str, Any]) -> dict[str, Any]:
    return {k.removesuffix("_cents"): money(v) if k.endswith("_cents") else v for k, v in row.items() if k != "payers"}


def item_view(session: Session, item_id: int) -> dict[str, Any] | None:
    """One item with its run and the keys that lead to the trace view."""
    item = session.get(ReconciliationItem, item_id)
    if item is None:
        return None
    run = item.run
    return {"item": {**recon_item_json(item, run), "id": item.id, "carefabric": money(item.carefabric_cents),
                     "bank": money(item.bank_cents), "detail": item.detail or {}},
            "run": run_json(run), "trace_keys": trace_keys(session, item, run.business_date)}


def trace_keys(session: Session, item: ReconciliationItem, day: dt.date) -> list[str]:
    """The keys the trace view follows for this item (see the module docstring)."""
    parts = item.item_key.split("|")
    check = item.check_name
    if check == "charges":
        return [item.item_key]
    if check in ("claims", "cash", "bank"):
        return [parts[0]] if parts[0] and not parts[0].startswith("untraced") else []
    if check == "integrity":
        return [parts[1]] if len(parts) > 1 and parts[1] not in ("", "-") else []
    if check == "rollforward":
        return _documents(session, day, {"facility": parts[1] if len(parts) > 1 else ""}, AR_ACCOUNTS)
    where = {column: parts[pos] for column, pos in AGGREGATE_KEYS.get(check, {}).items() if pos < len(parts)}
    account = where.pop("account", None)
    return _documents(session, day, where, (account,) if account else ())


def _documents(session: Session, day: dt.date, where: dict[str, str], accounts: tuple[str, ...]) -> list[str]:
    """External ids of carefabric's documents of ``day`` with a line on these accounts and columns."""
    query = (select(ErpPosting.external_id).join(ErpPostingLine)
             .where(ErpPosting.business_date == day, ErpPosting.status != "superseded"))
    if accounts:
        query = query.where(ErpPostingLine.account.in_(accounts))
    for column, value in where.items():
        attribute = getattr(ErpPostingLine, column)
        query = query.where(attribute == value if value else (attribute.is_(None) | (attribute == "")))
    return sorted(set(session.scalars(query.distinct())))
