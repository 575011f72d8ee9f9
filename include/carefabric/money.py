"""Money as integer cents.

Floats cannot represent most decimal amounts exactly, and a ledger that is off by a cent does
not reconcile. Every amount in carefabric is parsed straight from text into ``Decimal`` and
stored or summed as integer cents.
"""

from __future__ import annotations

from decimal import ROUND_HALF_UP, Decimal, InvalidOperation

CENT = Decimal("0.01")


class AmountError(ValueError):
    """An amount field that is not a decimal number."""


def parse_decimal(text: str | None, *, default: Decimal | None = None) -> Decimal | None:
    """Parse an amount as written in HL7 or X12 (``"12"``, ``"-310"``, ``"1,234.50"`` is rejected)."""
    if text is None or text.strip() == "":
        return default
    try:
        value = Decimal(text.strip())
    except InvalidOperation as exc:
        raise AmountError(f"not a decimal amount: {text!r}") from exc
    if not value.is_finite():
        raise AmountError(f"not a finite amount: {text!r}")
    return value


def to_cents(value: Decimal | int | str) -> int:
    """Decimal dollars to integer cents, rounding half up (as payers and ERPs do)."""
    if isinstance(value, int):
        return value * 100
    amount = parse_decimal(value) if isinstance(value, str) else value
    if amount is None:
        raise AmountError(f"not an amount: {value!r}")
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def from_cents(cents: int) -> Decimal:
    """Integer cents to a two-place Decimal."""
    return (Decimal(cents) / 100).quantize(CENT)


def format_cents(cents: int) -> str:
    """Cents as the decimal string the ERP and billing APIs take (``"-12.05"``)."""
    return f"{from_cents(cents):.2f}"
