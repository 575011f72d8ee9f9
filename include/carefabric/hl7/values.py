"""Checked field values for the canonical mapping: codes, optional codes, FT1 amounts.

Split from ``canonical`` to keep each module readable; the mapping calls these for every
message, so they stay small and cache what a feed repeats (its codes).

Values that land in canonical rows, exceptions, billing and the ERP must be codes: a sender that
shifts fields can put a patient's name or SSN anywhere, and a value that is not code-shaped is
refused (or left empty) with a reason that names the field, never the value.
"""

from __future__ import annotations

import re
import string
from collections.abc import Callable
from decimal import Decimal

from carefabric import phi
from carefabric.hl7.datatypes import parse_number
from carefabric.hl7.errors import HL7ParseError

__all__ = ["CODES", "amounts", "is_code", "opt_code", "type_label"]

# Identifiers may hold any punctuation (escaped delimiters decode to it, whatever the delimiter
# set); it is neutralised to '-' before the code-shape and PHI-shape check, spaces are not.
_ESCAPED = str.maketrans(string.punctuation, "-" * len(string.punctuation))
CODES: set[str] = set()  # values already found code-shaped (see is_code)
_TYPE_CODE = re.compile(r"[A-Z0-9]{3}(?:\^[A-Z0-9]{1,4})?")
_CHARGE_TYPES = frozenset(("CG", "CD"))
_ONE = Decimal(1)
_ZERO = Decimal(0)


def type_label(message_type: str) -> str:
    """The message type to show outside the raw store: the code (``ADT^A01``), or a neutral label
    when MSH-9 holds something else (a shifted field may hold a name)."""
    return message_type if _TYPE_CODE.fullmatch(message_type) else "<MSH-9 not a type code>"


def is_code(value: str, maxlen: int) -> bool:
    """Shaped like a code (``phi.code``) and short enough for its store column.

    Values that land in canonical rows and exceptions must be codes: a shifted name or SSN there
    would leave the raw store. ``isalnum`` first: nearly every real code passes it in ~50 ns.
    """
    if len(value) > maxlen:
        return False
    if value in CODES:
        return True
    neutral = value.translate(_ESCAPED)
    if value.isalnum() or phi.code(neutral) == neutral:
        if len(CODES) < 16384:
            CODES.add(value)  # a feed repeats its codes all day: the next check is a set lookup
        return True
    return False


def opt_code(value: str, label: str, maxlen: int, warnings: list[str], line: int | None = None) -> str | None:
    """An optional coded value, or None (with a warning naming the field) when it is no code."""
    if not value or (value in CODES and len(value) <= maxlen):
        return value or None
    if is_code(value, maxlen):
        return value
    warnings.append(f"{'' if line is None else f'FT1 {line}: '}{label} is not a code: left empty")
    return None


def amounts(
    f: list[str], first: Callable[[str], str], line: int, txn_type: str, cid: str, warnings: list[str]
) -> tuple[Decimal, Decimal, Decimal | None, bool]:
    """FT1-10/11/12 as (quantity, signed extended amount, unit amount, needs a chargemaster price).

    A line with neither FT1-11 nor FT1-12 is not an error: Cerner and Epic send DFTs that leave
    pricing to the chargemaster. It gets amount 0 and ``needs_price``; mapping prices it from the
    CDM crosswalk or holds that line alone (``UNPRICED_CHARGE``). Credits come both signed
    (``CG`` with a negative amount or quantity) and unsigned (``CD`` with positive numbers); both
    end with negative quantity and amount, so sums net and inventory sees the return.
    """
    q_text, x_text, u_text = first(f[10]), first(f[11]), first(f[12])
    label = "FT1-10 quantity"
    try:
        quantity = parse_number(q_text.strip()) if q_text else _ONE
        label = "FT1-12 unit amount"
        unit = parse_number(u_text.strip()) if u_text else None
        label = "FT1-11 extended amount"
        amount = parse_number(x_text.strip()) if x_text else None
    except ValueError as exc:
        raise HL7ParseError(f"FT1 {line}: {label} {exc}", cid) from None
    needs_price = False
    if amount is not None:
        if unit is not None and abs(amount) != abs(quantity * unit):
            warnings.append(f"FT1 {line}: FT1-11 differs from FT1-10 x FT1-12; FT1-11 used")
    elif unit is not None:
        amount = quantity * unit
    else:
        amount, needs_price = _ZERO, True
        warnings.append(f"FT1 {line}: no FT1-11 or FT1-12 amount; to be priced from the chargemaster")
    if txn_type in _CHARGE_TYPES and (txn_type == "CD" or quantity < 0 or amount < 0):
        if txn_type == "CG" and quantity * amount < 0:
            warnings.append(
                f"FT1 {line}: CG line with FT1-10 quantity and amount of opposite signs; taken as a reversal (both negative)"
            )
        if quantity > 0:
            quantity = -quantity
        if amount > 0:
            amount = -amount
    return quantity, amount, unit, needs_price
