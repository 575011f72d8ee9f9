"""Shaping the finance report's inputs: money and text formatting, the items frame, control
totals rows, money that did not post, and the CSV (formula-looking cells neutralised, PHI-looking
columns masked). Pure functions, so ``finance_email`` only renders."""

from __future__ import annotations

import csv
import datetime as dt
import io
from collections import Counter
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import TYPE_CHECKING, Any

from carefabric.money import format_cents, from_cents
from carefabric.phi import mask
from carefabric.quality.validate import is_phi_column
from carefabric.report.vocabulary import (
    CHECK_LABELS,
    CHECK_ORDER,
    CHECK_RULES,
    REASON_HELP,
    SIDE_ORDER,
    STORE_COLUMN_ALIASES,
)

if TYPE_CHECKING:  # pragma: no cover - typing only; pandas is imported lazily
    import pandas


# --------------------------------------------------------------------------- formatting


def format_money(cents: int | None) -> str:
    """``123456`` -> ``$1,234.56``; negative ``-$12.05``; None (side has no record) -> ``—``."""
    if cents is None:
        return "—"
    value = from_cents(int(cents))
    sign = "-" if value < 0 else ""
    return f"{sign}${abs(value):,.2f}"


def _cents(value: Any) -> int | None:
    """A cents cell from a DataFrame as int, or None for a missing side (NaN, NA, None)."""
    if value is None:
        return None
    try:
        if value != value:  # NaN
            return None
    except (TypeError, ValueError):  # pandas.NA refuses to be truth-tested
        return None
    if isinstance(value, str):
        value = value.strip()
        if not value:
            return None
        return int(Decimal(value))
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError(f"cents must be whole numbers, got {value!r}")
        return int(value)
    return int(value)


def _text(value: Any) -> str:
    """A cell as text; missing values as the empty string."""
    if value is None:
        return ""
    try:
        if value != value:
            return ""
    except (TypeError, ValueError):
        return ""
    return str(value)


def _business_date(value: dt.date | dt.datetime | str) -> str:
    if isinstance(value, dt.datetime):
        return value.date().isoformat()
    if isinstance(value, dt.date):
        return value.isoformat()
    return dt.date.fromisoformat(str(value)[:10]).isoformat()


# --------------------------------------------------------------------------- shaping the inputs


def _sides(columns: Iterable[str]) -> list[str]:
    found = {c[: -len("_cents")] for c in columns if c.endswith("_cents") and c != "variance_cents"}
    return [s for s in SIDE_ORDER if s in found] + sorted(found - set(SIDE_ORDER))


def _check_names(summary: Mapping[str, Any], item_checks: Iterable[str]) -> list[str]:
    names = [k for k, v in summary.items() if isinstance(v, Mapping)]
    names += [c for c in item_checks if c not in names]
    return [c for c in CHECK_ORDER if c in names] + [c for c in names if c not in CHECK_ORDER]


def _items_frame(items: pandas.DataFrame | None) -> pandas.DataFrame:
    import pandas as pd

    frame = pd.DataFrame() if items is None else items
    # Rows read straight from the store's reconciliation_items use its column names.
    renames = {a: b for a, b in STORE_COLUMN_ALIASES.items() if a in frame.columns and b not in frame.columns}
    if renames:
        frame = frame.rename(columns=renames)
    if "detail" in frame.columns:
        # The store's JSON detail may hold anything; only its "reason" goes out.
        if "reason" not in frame.columns:
            frame = frame.assign(
                reason=[d.get("reason", "") if isinstance(d, Mapping) else "" for d in frame["detail"]]
            )
        frame = frame.drop(columns=["detail"])
    frame = frame.drop(columns=[c for c in ("id", "run_id") if c in frame.columns])
    if len(frame.columns) == 0:
        return pd.DataFrame(columns=["check", "key", "status", "variance_cents", "reason"])
    missing = {"check", "key", "status"} - set(frame.columns)
    if missing:
        raise ValueError(f"reconciliation items lack columns {sorted(missing)}")
    return frame


def _unmatched_records(frame: pandas.DataFrame, checks: list[str], sides: list[str]) -> list[dict[str, Any]]:
    """Unmatched items as dicts (cents as int or None), ordered by check, status, key."""
    base = {"check", "key", "status", "variance_cents", "reason"} | {f"{s}_cents" for s in sides}
    extras = [c for c in frame.columns if c not in base]
    rank = {c: i for i, c in enumerate(checks)}
    records = []
    for row in frame[frame["status"].astype(str) != "matched"].to_dict("records"):
        sides_cents = {s: _cents(row.get(f"{s}_cents")) for s in sides}
        variance = _cents(row.get("variance_cents"))
        if variance is None:
            present = [v for v in sides_cents.values() if v is not None]
            variance = (max(present) - min(present)) if len(present) > 1 else (present[0] if present else 0)
        records.append(
            {
                "check": _text(row["check"]),
                "key": _text(row["key"]),
                "status": _text(row["status"]),
                "sides": sides_cents,
                "variance_cents": variance,
                "reason": _text(row.get("reason")),
                # Defence in depth: items should carry no PHI, but if a column that looks like
                # PHI slipped in, its values go out masked.
                "extras": {
                    c: (mask(_text(row.get(c))) if is_phi_column(c) else _text(row.get(c))) for c in extras
                },
            }
        )
    records.sort(key=lambda r: (rank.get(str(r["check"]), len(rank)), r["status"], r["key"]))
    return records


def _controls(
    summary: Mapping[str, Any], frame: pandas.DataFrame, checks: list[str], sides: list[str]
) -> list[dict[str, Any]]:
    from carefabric.report.charts import status_order

    counted: dict[str, Counter[str]] = {c: Counter() for c in checks}
    for check, status in zip(frame["check"].astype(str), frame["status"].astype(str), strict=True):
        counted.setdefault(check, Counter())[status] += 1
    rows = []
    for check in checks:
        found = summary.get(check)
        entry: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        totals = {s: _cents(entry.get(f"{s}_cents")) for s in sides}
        present = [v for v in totals.values() if v is not None]
        variance = _cents(entry.get("variance_cents"))
        if variance is None:
            variance = max(present) - min(present) if present else 0
        by_status: dict[str, Any] = dict(entry.get("items_by_status") or counted.get(check) or {})
        ordered = [(s, int(by_status[s])) for s in status_order(set(by_status))]
        unmatched = sum(n for s, n in ordered if s != "matched")
        rows.append(
            {
                "check": check,
                "label": CHECK_LABELS.get(check, check.replace("_", " ").capitalize()),
                "rule": CHECK_RULES.get(check, ""),
                "totals": totals,
                "variance_cents": variance,
                "items_by_status": ordered,
                "items_total": sum(n for _, n in ordered),
                "unmatched": unmatched,
                "ok": variance == 0 and unmatched == 0,
            }
        )
    return rows


def _held_rows(held: Mapping[str, Any]) -> list[dict[str, Any]]:
    """Held charges and unposted 835 cash as rows (what, reason, count, cents), largest first."""
    rows = [
        {"what": "EHR charges held", "reason": reason, "count": int(v.get("lines", 0)), "cents": int(v.get("cents", 0)),
         "help": REASON_HELP.get(reason, "")}
        for reason, v in (held.get("charges") or {}).items()
    ]
    rows += [
        {"what": "835 cash not posted", "reason": status, "count": int(v.get("transactions", 0)),
         "cents": int(v.get("cents", 0)), "help": ""}
        for status, v in (held.get("remittances") or {}).items()
    ]
    rows += [
        {"what": "835 cash in suspense (2400 unapplied cash)", "reason": status,
         "count": int(v.get("transactions", 0)), "cents": int(v.get("cents", 0)),
         "help": "the bank received it; it clears when the 835 is fixed and applied"}
        for status, v in (held.get("suspense") or {}).items()
    ]
    return sorted(rows, key=lambda r: (-abs(r["cents"]), r["what"], r["reason"]))


_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def _cell(value: Any) -> Any:
    """A CSV cell a spreadsheet cannot run: text starting like a formula gets a leading quote.

    Amounts (``-12.05``) stay numbers; only text that is not a plain number is neutralised.
    """
    text = _text(value)
    if text.startswith(_FORMULA_START):
        try:
            float(text)
        except ValueError:
            return "'" + text
    return text


def _csv_bytes(records: list[dict[str, Any]], sides: list[str]) -> bytes:
    """All unmatched items (not capped) with amounts as ERP-style decimal strings (``-12.05``)."""
    extras = list(records[0]["extras"]) if records else []
    header = ["check", "key", "status", *(f"{s}_amount" for s in sides), "variance", "reason", *extras]
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\r\n")
    writer.writerow(header)
    for r in records:
        writer.writerow(
            [
                _cell(v)
                for v in (
                    r["check"],
                    r["key"],
                    r["status"],
                    *("" if r["sides"][s] is None else format_cents(r["sides"][s]) for s in sides),
                    format_cents(r["variance_cents"]),
                    r["reason"],
                    *(r["extras"][c] for c in extras),
                )
            ]
        )
    return buffer.getvalue().encode("utf-8")
