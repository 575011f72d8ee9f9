"""External document ids that make a re-post a no-op in the ERP.

The ERP answers a re-used ``external_id`` with the first result, so the id must be a function of
the content only: the same lines in any order give the same id (a rerun, a retry after a 503,
a replay after a crosswalk fix that did not change the lines), and any change in content gives
a new id (so a corrected batch is not swallowed as a replay).
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import hashlib
import json
import re
from collections.abc import Iterable, Mapping
from decimal import Decimal
from typing import Any, Literal

from carefabric.canonical import CashReceipt, InventoryMovementLine, JournalLine

Kind = Literal["journal", "inventory", "cash"]
KINDS = frozenset({"journal", "inventory", "cash"})
_SOURCE_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_COMPANY_RE = re.compile(r"^[A-Za-z0-9_.]+$")
HASH_LENGTH = 12


def _scalar(value: Any) -> str | int:
    """One field in a canonical form: None and "" are the same, Decimals without trailing zeros."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return int(value)
    if isinstance(value, int):
        return value
    if isinstance(value, Decimal):
        # 2, 2.0 and 2.00 are the same quantity; "f" keeps 1E+2 as "100"
        normalized = value.normalize()
        return format(normalized, "f") if normalized != 0 else "0"
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _journal_row(line: JournalLine) -> tuple[str | int, ...]:
    # attribute access, not dataclasses.astuple: a detail batch can hold millions of lines
    return (
        line.account,
        line.cost_center or "",
        line.location or "",
        line.facility or "",
        line.debit_cents,
        line.credit_cents,
        line.memo or "",
    )


def _row(line: Any) -> tuple[str | int, ...]:
    if isinstance(line, JournalLine):
        return _journal_row(line)
    if isinstance(line, InventoryMovementLine):
        return (line.location, line.item, _scalar(line.quantity), _scalar(line.unit_cost), line.cost_center)
    if isinstance(line, CashReceipt):
        # the receipt's own external_id is what is being computed, so it is left out
        return (
            line.company,
            _scalar(line.receipt_date),
            line.trace_number,
            line.payer_id,
            line.amount_cents,
            line.facility,
        )
    if dataclasses.is_dataclass(line) and not isinstance(line, type):
        return tuple(
            _scalar(getattr(line, f.name)) for f in dataclasses.fields(line) if f.name != "external_id"
        )
    if isinstance(line, Mapping):
        return tuple(
            x for key in sorted(line) if key != "external_id" for x in (str(key), _scalar(line[key]))
        )
    if isinstance(line, tuple | list):
        return tuple(_scalar(v) for v in line)
    raise TypeError(f"cannot serialize a {type(line).__name__} into an external id")


def content_digest(lines: Iterable[Any]) -> str:
    """sha256 (hex) of the canonical serialization of the sorted lines.

    Each line becomes a tuple of strings and integers (None -> "", Decimal normalized), the
    tuples are sorted so input order does not matter, and the list is written as compact JSON.
    """
    rows = sorted(_row(line) for line in lines)
    payload = json.dumps(rows, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(payload.encode("utf-8")).hexdigest()


def external_id(
    kind: Kind | str, source: str, company: str, business_date: dt.date, lines: Iterable[Any]
) -> str:
    """``CF-<source>-<company>-<YYYYMMDD>-<sha256 of the sorted canonical lines>[:12]``.

    ``kind`` ("journal", "inventory", "cash") names the document family the lines belong to; it
    is validated rather than hashed, because source already separates the families in the id.
    """
    if kind not in KINDS:
        raise ValueError(f"external id kind must be one of {sorted(KINDS)}, not {kind!r}")
    if not _SOURCE_RE.match(source):
        raise ValueError(f"external id source must be upper-case letters/digits, not {source!r}")
    if not _COMPANY_RE.match(company):
        raise ValueError(f"external id company must not contain '-' or spaces: {company!r}")
    if not isinstance(business_date, dt.date):
        raise TypeError(f"business_date must be a date, not {type(business_date).__name__}")
    digest = content_digest(lines)
    return f"CF-{source}-{company}-{business_date:%Y%m%d}-{digest[:HASH_LENGTH]}"
