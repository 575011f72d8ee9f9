"""Reassociation: each bank deposit tied to the 835 that announced it, per EFT/check trace.

The payer's 835 says what it paid (BPR02) under a trace (TRN02); the bank's statement says what
arrived, and its CCD+ addenda carries the same TRN segment (a check deposit carries the check
number). Matching the two per trace is the cash side of the nightly close, and the two sides
come from two independent sources: the payer's file and the bank's file. Our store only carries
them; it is neither side.

``match_deposits`` is pure (two frames in, one frame out): the caller chooses which 835s and
which deposits belong to the date (``carefabric.interfaces.bank_statement.cash_sides`` reads them
from the store) and stores or reports the result.
"""

from __future__ import annotations

from typing import Any

import pandas as pd

from carefabric.money import format_cents

COLUMNS = ["trace_number", "bpr02_cents", "deposit_cents", "status", "variance_cents", "reason"]
STATUSES = ("matched", "amount_mismatch", "missing_in_bank", "missing_in_835")


def _trace(value: Any) -> str | None:
    """Traces compare without surrounding blanks and case (banks upper-case addenda text)."""
    if value is None or (isinstance(value, float) and pd.isna(value)):
        return None
    text = str(value).strip().upper()
    return text or None


def _remittance_side(remittances: pd.DataFrame) -> dict[str, tuple[int, int]]:
    """trace -> (BPR02 in cents, number of distinct 835 payments) for payments that move money.

    An 835 that moves no money into the bank (BPR02 = 0, BPR04 = NON, or a BPR03 = D debit the
    payer takes back) expects no deposit. The same payment stored twice (one trace, one amount,
    e.g. a re-sent file) counts once; two different payments under one trace add up.
    """
    frame = remittances.copy()
    if "payment_method" in frame:
        frame = frame[frame["payment_method"].fillna("").str.upper() != "NON"]
    if "credit_debit" in frame:
        frame = frame[frame["credit_debit"].fillna("C").str.upper() != "D"]
    frame = frame[frame["bpr02_cents"].astype("int64") != 0]
    side: dict[str, tuple[int, int]] = {}
    for trace, cents in {(_trace(t), int(c)) for t, c in zip(frame["trace_number"], frame["bpr02_cents"], strict=True)}:
        if trace is None:
            continue
        total, count = side.get(trace, (0, 0))
        side[trace] = (total + cents, count + 1)
    return side


def _bank_side(deposits: pd.DataFrame) -> tuple[dict[str, tuple[int, int]], list[tuple[str, int]]]:
    """trace -> (deposited cents, number of deposits); and the deposits that carry no trace."""
    side: dict[str, tuple[int, int]] = {}
    untraced: list[tuple[str, int]] = []
    references = deposits["bank_reference"] if "bank_reference" in deposits else [""] * len(deposits)
    for trace, cents, reference in zip(deposits["trace_number"], deposits["deposit_cents"], references, strict=True):
        key = _trace(trace)
        if key is None:
            untraced.append((str(reference or ""), int(cents)))
            continue
        total, count = side.get(key, (0, 0))
        side[key] = (total + int(cents), count + 1)
    return side, untraced


def _row(trace: str | None, bpr02: tuple[int, int] | None, deposit: tuple[int, int] | None) -> dict[str, Any]:
    """One item with its status, variance (bank minus 835) and a reason finance can read."""
    paid = bpr02[0] if bpr02 else None
    got = deposit[0] if deposit else None
    several = []
    if bpr02 and bpr02[1] > 1:
        several.append(f"{bpr02[1]} 835 payments")
    if deposit and deposit[1] > 1:
        several.append(f"{deposit[1]} deposits")
    note = f" ({' and '.join(several)} under this trace)" if several else ""
    if paid is None:
        assert got is not None
        status, variance = "missing_in_835", got
        reason = f"deposit of {format_cents(got)} under trace {trace} has no 835{note}"
    elif got is None:
        status, variance = "missing_in_bank", -paid
        reason = f"835 paid {format_cents(paid)} under trace {trace} but no deposit arrived{note}"
    elif got == paid:
        status, variance, reason = "matched", 0, f"deposit equals BPR02 {format_cents(paid)}{note}"
    else:
        status, variance = "amount_mismatch", got - paid
        side = "short of" if variance < 0 else "more than"
        reason = (f"deposit {format_cents(got)} is {format_cents(abs(variance))} {side} "
                  f"the 835's BPR02 {format_cents(paid)}{note}")
    return {"trace_number": trace, "bpr02_cents": paid, "deposit_cents": got, "status": status,
            "variance_cents": variance, "reason": reason}


def match_deposits(remittances: pd.DataFrame, deposits: pd.DataFrame) -> pd.DataFrame:
    """Match a date's bank deposits to its 835 payments per trace.

    ``remittances``: one row per 835 payment, columns ``trace_number`` (TRN02) and
    ``bpr02_cents`` (optional ``payment_method``, ``credit_debit``). ``deposits``: one row per
    bank credit, columns ``trace_number`` (from the addenda, or the check number; may be empty)
    and ``deposit_cents`` (optional ``bank_reference``, named in the reason of an untraced one).

    Returns one row per trace (and one per untraced deposit), sorted by trace: ``trace_number``,
    ``bpr02_cents`` and ``deposit_cents`` (nullable integers), ``status`` (``matched``,
    ``amount_mismatch``, ``missing_in_bank``, ``missing_in_835``), ``variance_cents`` (deposit
    minus BPR02, a missing side counted as zero) and ``reason``.
    """
    ours = _remittance_side(remittances)
    bank, untraced = _bank_side(deposits)
    rows = [_row(trace, ours.get(trace), bank.get(trace)) for trace in sorted(set(ours) | set(bank))]
    for reference, cents in untraced:
        row = _row(None, None, (cents, 1))
        row["reason"] = f"deposit of {format_cents(cents)} (bank reference {reference or 'none'}) carries no trace: no 835 can claim it"
        rows.append(row)
    frame = pd.DataFrame(rows, columns=COLUMNS)
    for column in ("bpr02_cents", "deposit_cents"):
        frame[column] = frame[column].astype("Int64")
    frame["variance_cents"] = frame["variance_cents"].astype("int64")
    return frame
