"""The AR roll-forward: opening AR + charges - payments - adjustments - write-offs +/- PLB = closing AR.

Opening and closing come from the ERP's own trial balance (accounts 1200 insurance AR and 1210
self-pay AR, per facility, through the day before and through the day); the day's activity comes
from what carefabric posted, split by the posting policy's own components (``remit_events_frame``
decides the accounts, so the roll-forward cannot disagree with the journals about what a CAS or a
PLB does to AR). Where opening + activity differs from the ledger's closing, something moved AR
that carefabric did not post, or something carefabric posted is not in the ledger: an item.

Patient responsibility moves AR from 1200 to 1210, so it shows in the split but nets to zero
in total AR. A facility whose AR closes negative is an item too. The ledger holds AR per
facility, not per payer (a charge has no payer yet), so the tie is per facility and each facility
row lists its payers' activity (payments, contractual, denial write-offs, PLB) beneath it.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any

import pandas as pd

from carefabric.money import format_cents, to_cents
from carefabric.posting import policy

AR_ACCOUNTS = (policy.AR_INSURANCE, policy.AR_SELF_PAY)
COMPONENTS = ("charges", policy.COMPONENT_PAYMENT, policy.COMPONENT_CONTRACTUAL, policy.COMPONENT_DENIAL,
              policy.COMPONENT_PATIENT_RESP, policy.COMPONENT_PLB)
ITEM_COLUMNS = ["check", "key", "status", "carefabric_cents", "gl_cents", "variance_cents", "reason"]


def balances_by_facility(rows: Iterable[Mapping[str, Any]]) -> dict[str, int]:
    """ERP ``GET /account-balances`` rows of the AR accounts, summed per facility (cents)."""
    out: dict[str, int] = {}
    for row in rows:
        if str(row.get("account")) in AR_ACCOUNTS:
            facility = str(row.get("facility") or "")
            out[facility] = out.get(facility, 0) + to_cents(Decimal(str(row.get("balance") or "0")))
    return out


def ar_activity(charge_lines: pd.DataFrame, remit_events: pd.DataFrame) -> pd.DataFrame:
    """The day's AR movements per (facility, payer, component), in cents, debit (AR up) positive.

    ``charge_lines``: ``facility``, ``amount_cents`` (the CHARGES debits to 1200 carefabric
    posted). ``remit_events``: ``remit_events_frame`` of the posted remittances.
    """
    charges = pd.DataFrame({"facility": charge_lines["facility"].astype(str), "payer_id": "",
                            "component": "charges", "amount_cents": charge_lines["amount_cents"].astype("int64")})
    events = remit_events
    effect = (events["debit_account"].isin(AR_ACCOUNTS).astype("int64")
              - events["credit_account"].isin(AR_ACCOUNTS).astype("int64")) * events["amount_cents"].astype("int64")
    on_1200 = (events["debit_account"].eq(policy.AR_INSURANCE).astype("int64")
               - events["credit_account"].eq(policy.AR_INSURANCE).astype("int64")) * events["amount_cents"].astype("int64")
    remits = pd.DataFrame({"facility": events["facility"].astype(str), "payer_id": events["payer_id"].astype(str),
                           "component": events["component"].astype(str),
                           # patient responsibility nets to zero in total AR: show what it moved off 1200
                           "amount_cents": effect.where(events["component"] != policy.COMPONENT_PATIENT_RESP, on_1200)})
    both = pd.concat([charges, remits], ignore_index=True)
    if both.empty:
        return pd.DataFrame(columns=["facility", "payer_id", "component", "amount_cents"])
    summed: pd.DataFrame = both.groupby(["facility", "payer_id", "component"], sort=True)["amount_cents"].sum().reset_index()
    return summed


def _parts(rows: pd.DataFrame) -> dict[str, int]:
    return {c: int(rows.loc[rows["component"] == c, "amount_cents"].sum()) for c in COMPONENTS}


def _moved(parts: Mapping[str, int]) -> int:
    """Total AR movement; patient responsibility moves AR between 1200 and 1210, so it is left out."""
    return sum(v for c, v in parts.items() if c != policy.COMPONENT_PATIENT_RESP)


def payer_rows(activity: pd.DataFrame, facility: str) -> list[dict[str, Any]]:
    """The facility's activity per payer (charges carry no payer: they show as "(charges)")."""
    mine = activity[activity["facility"] == facility]
    return [{"payer_id": payer or "(charges)", **{f"{c}_cents": v for c, v in _parts(group).items()},
             "activity_cents": _moved(_parts(group))}
            for payer, group in mine.groupby("payer_id", sort=True)]


def ar_rollforward(opening: Mapping[str, int], activity: pd.DataFrame,
                   closing: Mapping[str, int]) -> tuple[list[dict[str, Any]], pd.DataFrame]:
    """The roll-forward table per facility (with its payers' activity) and its items.

    One item per facility: ``matched`` when opening + activity = closing and AR is not
    negative; ``amount_mismatch`` otherwise, the reason saying which.
    """
    facilities = sorted(set(opening) | set(closing) | set(activity["facility"]))
    table: list[dict[str, Any]] = []
    items: list[dict[str, Any]] = []
    for facility in facilities:
        parts = _parts(activity[activity["facility"] == facility])
        moved = _moved(parts)
        start, end = int(opening.get(facility, 0)), int(closing.get(facility, 0))
        expected = start + moved
        table.append({"facility": facility or "(none)", "opening_cents": start, **{f"{c}_cents": v for c, v in parts.items()},
                      "expected_closing_cents": expected, "closing_cents": end, "difference_cents": end - expected,
                      "payers": payer_rows(activity, facility)})
        items.append(_item(facility, start, moved, end))
    return table, pd.DataFrame(items, columns=ITEM_COLUMNS)


def _item(facility: str, start: int, moved: int, end: int) -> dict[str, Any]:
    expected = start + moved
    status, reason = "matched", f"opening {format_cents(start)} + activity {format_cents(moved)} = closing"
    if end != expected:
        status = "amount_mismatch"
        reason = (f"opening {format_cents(start)} + carefabric's activity {format_cents(moved)} = "
                  f"{format_cents(expected)}, but the ledger closes at {format_cents(end)}")
    elif end < 0:
        status, reason = "amount_mismatch", f"AR closes negative ({format_cents(end)}): credits exceed charges"
    return {"check": "rollforward", "key": f"AR|{facility}", "status": status, "carefabric_cents": expected,
            "gl_cents": end, "variance_cents": abs(end - expected) or (abs(end) if end < 0 else 0), "reason": reason}
