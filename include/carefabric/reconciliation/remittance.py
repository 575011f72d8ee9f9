"""Remittance against what the ERP's ledger holds for it, by account and by CAS group / PLB code.

The ``claims`` check ties 835 CLP04 to billing's payment per claim; this one ties the 835 to the
ledger. Every money event of the day's balanced 835s (CLP04, each CAS by group code CO/OA/PI/PR,
each PLB by reason code) is expanded by the posting policy into the accounts it must move
(``remit_events_frame`` decides them, so this check cannot disagree with the journals about
what a CAS or a PLB does) and summed per (date, facility, account); the ERP's REMIT lines of the
date, read back through its API, are the other side. A contractual adjustment doubled in the GL,
a denial posted as contractual, a PLB recoupment that never reached AR: each moves an account of
one facility, so each is an item. The reason of an item lists the 835's amounts by code behind
the account (``CO 45.00, OA 5.00``), which is what finance looks up in the 835.

A summary REMIT journal does not carry claims: per claim, 835 CLP04 is tied to billing's
payment (``claims``), and the claim's money reaches the ledger through this per-account tie.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from carefabric.posting import policy
from carefabric.reconciliation.engine import Side, _cents, compare, net_per_key

REMIT_835 = Side("remit", "835", "missing_in_remit")
GL_REMIT = Side("gl", "the ERP ledger (REMIT)", "missing_in_gl")
KEYS = ["business_date", "facility", "account"]


def event_codes(events: pd.DataFrame) -> pd.Series:
    """The code finance reads for each event: CLP04, the CAS group (CO/OA/PI/PR) or PLB <reason>."""
    component = events["component"].astype(str)
    group = events["group"].fillna("").astype(str)
    reason = events["reason"].fillna("").astype(str)
    return pd.Series(
        np.select([component == policy.COMPONENT_PAYMENT, component == policy.COMPONENT_PLB],
                  ["CLP04", "PLB " + reason], default=group),
        index=events.index,
    )


def remit_lines_frame(events: pd.DataFrame, *, with_codes: bool = True) -> pd.DataFrame:
    """The signed account movements (debit positive) the 835 events imply, one row per event side."""
    columns = [*KEYS, "code", "amount_cents"] if with_codes else [*KEYS, "amount_cents"]
    if events.empty:
        return pd.DataFrame(columns=columns).astype({"amount_cents": "int64"})
    amount = events["amount_cents"].to_numpy(dtype="int64")
    base = {"business_date": events["business_date"].to_numpy(), "facility": events["facility"].fillna("").astype(str)}
    if with_codes:
        base["code"] = event_codes(events).to_numpy()
    sides = [
        pd.DataFrame({**base, "account": events[column].astype(str), "amount_cents": amount * sign})
        for column, sign in (("debit_account", 1), ("credit_account", -1))
    ]
    return pd.concat(sides, ignore_index=True)[columns]


def reconcile_remittance(events: pd.DataFrame, gl_lines: pd.DataFrame) -> pd.DataFrame:
    """835 (by the posting policy) vs the ERP's REMIT lines, per (date, facility, account).

    ``events``: ``remit_events_frame`` of the date's balanced, mapped 835s (posted or not: an 835
    whose journal never reached the ERP is money missing in the GL). ``gl_lines``: the ERP lines
    of the date (``ledger.erp_lines_frame``); only ``source == REMIT`` lines count. The codes
    behind an account are worked out only for the facilities with an unmatched account, so a
    clean night of a million claims costs one comparison.
    """
    expected = net_per_key(remit_lines_frame(events, with_codes=False), KEYS)
    gl = net_per_key(gl_lines[gl_lines["source"] == policy.SOURCE_REMIT], KEYS)
    items = compare("remittance", [(REMIT_835, expected), (GL_REMIT, gl)], KEYS)
    open_items = items["status"].to_numpy() != "matched"
    if open_items.any():
        facilities = set(items.loc[open_items, "facility"].astype(str))
        behind = events[events["facility"].fillna("").astype(str).isin(facilities)]
        items["reason"] = _with_codes(items, remit_lines_frame(behind))
    return items


def _with_codes(items: pd.DataFrame, expected: pd.DataFrame) -> pd.Series:
    """Append the 835's amounts by code behind each unmatched account to its reason."""
    by_code = expected.groupby(KEYS + ["code"], sort=True)["amount_cents"].sum().reset_index()
    by_code = by_code[by_code["amount_cents"] != 0]
    text: dict[tuple[str, str, str], str] = {}
    for (date, facility, account), group in by_code.groupby(KEYS, sort=False):
        text[(str(date), str(facility), str(account))] = ", ".join(
            f"{code} {_cents(abs(int(c)))}" for code, c in zip(group["code"], group["amount_cents"], strict=True))
    reasons = items["reason"].copy()
    for pos in np.flatnonzero(items["status"].to_numpy() != "matched").tolist():
        row = items.iloc[pos]
        codes = text.get((str(row["business_date"]), str(row["facility"]), str(row["account"])))
        if codes:
            reasons.iloc[pos] = f"{reasons.iloc[pos]}; 835 by code: {codes}"
    return reasons


__all__ = ["event_codes", "reconcile_remittance", "remit_lines_frame"]
