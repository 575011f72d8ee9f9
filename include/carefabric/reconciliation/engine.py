"""A vectorized N-way comparison of money per key: the engine under every nightly check.

Each side (EHR, billing, 835, GL, ERP receipts) is a DataFrame of rows with the key columns and
``amount_cents``. All sides are stacked into one long frame, the key is factorized once into an
integer code, and every per-(key, side) figure (sum, count, duplicates, in/near the period) is
one groupby over integers. There is no per-record Python loop, so a million keys against a few
million ledger rows takes seconds; only the human ``reason`` of an item that did *not* match is
formatted row by row, and those are few on a healthy night.

Status of an item (first rule that applies):

1. ``missing_in_<side>``: the key has no row on that side (in the period or its window); with
   several missing sides the first in side order names the status, the reason lists all.
2. ``duplicate``: a side holds the same record twice (rule per side, see ``Side``).
3. ``matched``: every side has rows in the period and their sums agree within the tolerance.
4. ``timing``: sides agree once rows dated in the tolerance window outside the period are
   counted (a payment dated the next day), or, for date-keyed checks, the difference is
   offset by the opposite difference on another date of the same key within the window.
5. ``amount_mismatch``: anything else.

Rows with ``amount_cents == 0`` are dropped first: they carry no money to reconcile (a denied
claim paid 0, a zero charge) and would only produce missing-side noise.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd

STATUSES = (
    "matched",
    "missing_in_ehr",
    "missing_in_billing",
    "missing_in_remit",
    "missing_in_gl",
    "amount_mismatch",
    "duplicate",
    "timing",
)
MATCHED_REASON = "all sides agree"

DuplicateRule = Literal["none", "key", "key_amount", "record_id"]


@dataclass(frozen=True, slots=True)
class Side:
    """One system in a comparison.

    ``name`` prefixes the result columns (``<name>_cents``, ``<name>_count``), ``label`` is how a
    reason names it, ``missing_status`` is the status when the key is absent there.
    ``duplicate_on`` says what counts as the same record twice on this side: ``key`` (one row
    per key is expected, e.g. one 835 per trace), ``key_amount`` (the same key with the same
    non-zero amount twice, e.g. a payment posted twice; a reversal and its repost differ in
    sign), ``record_id`` (the same value of ``record_id_column`` twice, e.g. a charge line_key),
    or ``none``.
    """

    name: str
    label: str
    missing_status: str
    duplicate_on: DuplicateRule = "none"
    record_id_column: str | None = None


def _as_datetime64(values: pd.Series) -> np.ndarray:
    """Dates of any input flavour (date, datetime, Timestamp, ISO string) as datetime64[ns] days.

    Converts the distinct values only: a few hundred dates, not millions of objects.
    """
    codes, uniques = pd.factorize(values, use_na_sentinel=True)
    converted = pd.to_datetime(pd.Index(uniques), errors="raise").normalize()
    out = np.asarray(converted.to_numpy(dtype="datetime64[ns]"))
    result = np.full(len(codes), np.datetime64("NaT"), dtype="datetime64[ns]")
    ok = codes >= 0
    result[ok] = out[codes[ok]]
    return result


def _factorize_keys(frame: pd.DataFrame, keys: Sequence[str]) -> np.ndarray:
    """One int64 code per distinct key tuple, in order of first appearance."""
    code = np.zeros(len(frame), dtype="int64")
    for key in keys:
        part, uniques = pd.factorize(frame[key], use_na_sentinel=False)
        code, _ = pd.factorize(code * max(len(uniques), 1) + part.astype("int64"))
        code = code.astype("int64")
    return code


def _first_positions(code: np.ndarray) -> np.ndarray:
    """Row position of the first occurrence of codes 0..k-1 (codes are in first-appearance order)."""
    if len(code) == 0:
        return np.zeros(0, dtype="int64")
    previous_max = np.maximum.accumulate(np.concatenate(([-1], code[:-1])))
    return np.flatnonzero(code > previous_max)


def _cents(value: int) -> str:
    sign = "-" if value < 0 else ""
    whole, part = divmod(abs(int(value)), 100)
    return f"{sign}{whole:,}.{part:02d}"


def compare(
    check: str,
    sides: Sequence[tuple[Side, pd.DataFrame]],
    keys: Sequence[str],
    *,
    tolerance_cents: int = 0,
    period: tuple[dt.date, dt.date] | None = None,
    window_days: int = 0,
    offset_date_key: str | None = None,
) -> pd.DataFrame:
    """Compare the per-key sums of ``amount_cents`` across sides and classify every key.

    ``period`` (inclusive dates) scopes the run: rows whose ``business_date`` is in it count,
    rows within ``window_days`` outside it only explain timing, rows further out are ignored,
    and keys with no row in the period on any side are not this period's items; a row without
    a date counts as in the period (it cannot be placed elsewhere). Without a
    period every row counts. ``offset_date_key`` names a date column that is part of ``keys``
    (charges per day): timing is then found by pairing opposite differences of the same
    remaining key within ``window_days``.

    Result: ``check``, ``key`` (the key columns joined with "|"), the key columns, ``<side>_cents`` (Int64, NA when the side has no row in
    the period), ``<side>_count``, ``variance_cents`` (largest minus smallest side, absent = 0),
    ``status``, ``reason``.
    """
    keys = list(keys)
    if tolerance_cents < 0 or window_days < 0:
        raise ValueError("tolerance_cents and window_days must not be negative")
    n_sides = len(sides)
    date_keys = [k for k in keys if k == offset_date_key or k == "business_date"]
    parts = []
    for i, (side, frame) in enumerate(sides):
        missing = [c for c in [*keys, "amount_cents"] if c not in frame.columns]
        if missing:
            raise KeyError(f"{check}: the {side.label} frame lacks column(s) {missing}")
        data: dict[str, object] = {k: frame[k].to_numpy() for k in keys}
        data["amount_cents"] = frame["amount_cents"].to_numpy(dtype="int64")
        data["_side"] = np.full(len(frame), i, dtype="int64")
        if period is not None and "business_date" not in keys:
            data["_date"] = (
                _as_datetime64(frame["business_date"])
                if "business_date" in frame.columns
                else np.full(len(frame), np.datetime64("NaT"), dtype="datetime64[ns]")
            )
        if side.duplicate_on == "record_id" and side.record_id_column in frame.columns:
            data["_rid"] = frame[side.record_id_column].to_numpy()
        parts.append(pd.DataFrame(data))
    long = pd.concat(parts, ignore_index=True)
    for k in date_keys:
        long[k] = _as_datetime64(long[k])
    long = long[long["amount_cents"].to_numpy() != 0].reset_index(drop=True)

    # in the period, in its window, or out of scope
    if period is not None and "business_date" not in keys:
        start = pd.Timestamp(period[0]).normalize().to_datetime64().astype("datetime64[ns]")
        end = pd.Timestamp(period[1]).normalize().to_datetime64().astype("datetime64[ns]")
        window = np.timedelta64(window_days, "D")
        dates = long["_date"].to_numpy()
        undated = np.isnat(dates)
        in_period = undated | ((dates >= start) & (dates <= end))
        near = ~in_period & (dates >= start - window) & (dates <= end + window)
        keep = in_period | near
        long = long[keep].reset_index(drop=True)
        in_period, near = in_period[keep], near[keep]
    else:
        in_period = np.ones(len(long), dtype=bool)
        near = np.zeros(len(long), dtype=bool)

    code = _factorize_keys(long, keys)
    n_keys = int(code.max()) + 1 if len(code) else 0
    side_no = long["_side"].to_numpy()
    amount = long["amount_cents"].to_numpy(dtype="int64")

    # duplicates, one rule per side, on integer codes
    dup = np.zeros(len(long), dtype=bool)
    for i, (side, _frame) in enumerate(sides):
        on_side = side_no == i
        if side.duplicate_on == "none" or not on_side.any():
            continue
        if side.duplicate_on == "record_id":
            if "_rid" not in long.columns:
                continue
            rid = long["_rid"].to_numpy()[on_side]
            rid_code, _ = pd.factorize(rid, use_na_sentinel=True)
            sub = pd.DataFrame({"k": code[on_side], "r": rid_code})
            flags = sub.duplicated(keep=False).to_numpy() & (rid_code >= 0)
        elif side.duplicate_on == "key":
            flags = pd.Series(code[on_side]).duplicated(keep=False).to_numpy()
        else:
            sub = pd.DataFrame({"k": code[on_side], "a": amount[on_side]})
            flags = sub.duplicated(keep=False).to_numpy()
        dup[on_side] = flags

    # per (key, side) figures in one integer groupby
    cell = code * n_sides + side_no
    agg = (
        pd.DataFrame(
            {
                "in_amt": np.where(in_period, amount, 0),
                "in_cnt": in_period.astype("int64"),
                "near_amt": np.where(near, amount, 0),
                "near_cnt": near.astype("int64"),
                "dup": dup.astype("int64"),
            }
        )
        .groupby(cell, sort=False)
        .sum()
    )
    shape = (n_keys, n_sides)
    cells = agg.index.to_numpy(dtype="int64")

    def grid(column: str) -> np.ndarray:
        out = np.zeros(n_keys * n_sides, dtype="int64")
        out[cells] = agg[column].to_numpy(dtype="int64")
        return out.reshape(shape)

    in_amt, in_cnt, near_amt, near_cnt, dup_cnt = (
        grid(c) for c in ("in_amt", "in_cnt", "near_amt", "near_cnt", "dup")
    )

    # items of this period only
    first = _first_positions(code)
    in_scope = in_cnt.sum(axis=1) > 0
    first = first[in_scope]
    in_amt, in_cnt, near_amt, near_cnt, dup_cnt = (
        a[in_scope] for a in (in_amt, in_cnt, near_amt, near_cnt, dup_cnt)
    )

    present = (in_cnt + near_cnt) > 0
    missing_any = ~present.all(axis=1)
    first_missing = np.argmax(~present, axis=1)
    has_dup = (dup_cnt > 0).any(axis=1)
    spread_in = in_amt.max(axis=1) - in_amt.min(axis=1) if n_sides else np.zeros(len(first), "int64")
    total = in_amt + near_amt
    spread_total = total.max(axis=1) - total.min(axis=1)
    all_in = (in_cnt > 0).all(axis=1)
    missing_names = np.array([s.missing_status for s, _ in sides], dtype=object)
    status = np.select(
        [missing_any, has_dup, all_in & (spread_in <= tolerance_cents), spread_total <= tolerance_cents],
        [missing_names[first_missing], "duplicate", "matched", "timing"],
        default="amount_mismatch",
    ).astype(object)

    items = long.loc[first, keys].reset_index(drop=True)
    items.insert(0, "check", check)
    for i, (side, _frame) in enumerate(sides):
        col = pd.array(in_amt[:, i], dtype="Int64")
        col[in_cnt[:, i] == 0] = pd.NA
        items[f"{side.name}_cents"] = col
        items[f"{side.name}_count"] = in_cnt[:, i]
    items["variance_cents"] = spread_in.astype("int64")
    items["status"] = status
    offset_partner = _offset_timing(items, keys, offset_date_key, in_amt, status, window_days)
    if offset_partner is not None:
        items.loc[offset_partner.index, "status"] = "timing"
    items["reason"] = _reasons(
        items,
        sides,
        in_amt,
        in_cnt,
        near_amt,
        near_cnt,
        dup_cnt,
        present,
        tolerance_cents,
        window_days,
        offset_partner,
    )
    for k in date_keys:
        items[k] = pd.to_datetime(items[k]).dt.date
    items.insert(1, "key", _item_key(items, keys))
    return items


def net_per_key(frame: pd.DataFrame, keys: Sequence[str]) -> pd.DataFrame:
    """One row per key with the net ``amount_cents``, keys that net to zero left out.

    For checks at a ledger's grain: a summary journal leaves out a line whose debits and credits
    cancel (a charge and its credit on the same account), so the other side must not show that
    key as missing either.
    """
    keys = list(keys)
    data = frame[[*keys, "amount_cents"]].assign(**{k: frame[k].fillna("") for k in keys if frame[k].dtype == object})
    net = data.groupby(keys, sort=False, dropna=False)["amount_cents"].sum().reset_index()
    return net[net["amount_cents"] != 0].reset_index(drop=True)


def _item_key(items: pd.DataFrame, keys: list[str]) -> pd.Series:
    """The key columns joined with "|" (dates ISO): the store's ``item_key`` and the report's key."""
    parts = [items[k].astype(str).fillna("") for k in keys]
    key = parts[0]
    for part in parts[1:]:
        key = key + "|" + part
    return key


def _offset_timing(
    items: pd.DataFrame,
    keys: list[str],
    date_key: str | None,
    in_amt: np.ndarray,
    status: np.ndarray,
    window_days: int,
) -> pd.Series | None:
    """Items whose differences are undone by the opposite differences on a nearby date.

    For each unmatched item the vector of (side - first side) differences is paired, by a
    self-merge, with an item of the same remaining key whose vector is its negation and whose
    date is within the window: a charge the EHR dated the 2nd and billing the 3rd leaves -x on
    the 2nd and +x on the 3rd, both timing. Returns the partner date per item found.
    """
    if date_key is None or window_days <= 0 or len(items) == 0:
        return None
    open_items = np.isin(status, ["duplicate", "matched"], invert=True)
    if not open_items.any():
        return None
    others = [k for k in keys if k != date_key]
    diff = in_amt[:, 1:] - in_amt[:, :1]
    candidate = items.loc[open_items, others + [date_key]].copy()
    candidate["_pos"] = np.flatnonzero(open_items)
    diff_cols = [f"_d{j}" for j in range(diff.shape[1])]
    for j, name in enumerate(diff_cols):
        candidate[name] = diff[open_items, j]
    mirror = candidate.copy()
    for name in diff_cols:
        mirror[name] = -mirror[name]
    pairs = candidate.merge(mirror, on=others + diff_cols, suffixes=("", "_other"))
    gap = (pd.to_datetime(pairs[f"{date_key}_other"]) - pd.to_datetime(pairs[date_key])).dt.days.abs()
    pairs = pairs[(gap > 0) & (gap <= window_days)]
    if pairs.empty:
        return None
    partner = pairs.drop_duplicates("_pos").set_index("_pos")[f"{date_key}_other"]
    return pd.to_datetime(partner).dt.date


def _reasons(
    items: pd.DataFrame,
    sides: Sequence[tuple[Side, pd.DataFrame]],
    in_amt: np.ndarray,
    in_cnt: np.ndarray,
    near_amt: np.ndarray,
    near_cnt: np.ndarray,
    dup_cnt: np.ndarray,
    present: np.ndarray,
    tolerance_cents: int,
    window_days: int,
    offset_partner: pd.Series | None,
) -> np.ndarray:
    """Human reasons; no PHI (keys are cost centers, claim ids, traces; amounts in dollars)."""
    reasons = np.full(len(items), MATCHED_REASON, dtype=object)
    status = items["status"].to_numpy()
    labels = [s.label for s, _ in sides]
    for pos in np.flatnonzero(status != "matched"):
        amounts = ", ".join(
            f"{label} {_cents(in_amt[pos, i])}" if in_cnt[pos, i] else f"{label} none"
            for i, label in enumerate(labels)
        )
        st = status[pos]
        if st.startswith("missing_in_"):
            absent = [labels[i] for i in range(len(labels)) if not present[pos, i]]
            text = f"not in {', '.join(absent)}; {amounts}"
        elif st == "duplicate":
            dups = [f"{labels[i]} ({dup_cnt[pos, i]} rows)" for i in range(len(labels)) if dup_cnt[pos, i]]
            text = f"same record more than once in {', '.join(dups)}; {amounts}"
        elif st == "timing":
            if offset_partner is not None and pos in offset_partner.index:
                text = f"offset by the opposite difference on {offset_partner[pos]} (within {window_days} days); {amounts}"
            else:
                outside = [
                    f"{labels[i]} {_cents(near_amt[pos, i])}" for i in range(len(labels)) if near_cnt[pos, i]
                ]
                text = f"dated outside the period within {window_days} days: {', '.join(outside)}; in the period: {amounts}"
        else:
            spread = int(in_amt[pos].max() - in_amt[pos].min())
            text = f"amounts differ by {_cents(spread)} (tolerance {_cents(tolerance_cents)}); {amounts}"
        reasons[pos] = text
    return reasons
