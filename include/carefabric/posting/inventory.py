"""Inventory movements (one INVENTORY document per company and date) from supply charges.

The same FT1 line that bills a supply also consumes it: the movement decrements the ERP's
stock at the facility's location, at the item master's unit cost, against the department's
cost center. Quantities are summed as integer micro-units so a day's consumption is one
vectorized groupby, and the sign is flipped once (consumption is negative to the ERP).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from decimal import Decimal

import pandas as pd

from carefabric.canonical import InventoryMovementLine, MappedCharge
from carefabric.posting import policy
from carefabric.posting.external_ids import external_id
from carefabric.posting.journals import _as_charges_frame, _check_company, _postable

_KEYS = ["location", "item", "cost_center", "unit_cost"]


def _quantity(micros: int) -> Decimal:
    """Micro-units back to a Decimal without an exponent ("-2", "-0.5"), as the ERP API takes it."""
    value = Decimal(micros).scaleb(-6)
    if value == value.to_integral_value():
        return Decimal(int(value))
    return value.normalize()


def build_inventory_movements(
    charges: Iterable[MappedCharge] | pd.DataFrame,
    *,
    company: str | None = None,
) -> list[InventoryMovementLine]:
    """Consumption per (location, item, cost_center): quantity negated, unit cost of the item.

    Only posting FT1 types (CG/CD) move stock, like the SUPPLY journal, so the two never
    disagree. A credit (CD) returns stock (positive quantity). Groups netting to zero are
    omitted. The unit cost is part of the grouping only so that two different costs of one
    item on one day (item master edited mid-day) stay visible instead of being averaged.
    ``company`` (optional) asserts every charge belongs to that company's document.
    """
    frame = _as_charges_frame(charges)
    if company is not None:
        _check_company(frame, company, "supply charges")
    supply = inventory_rows(frame)
    if supply.empty:
        return []
    grouped = (
        supply.assign(item=supply["erp_item"])
        .groupby(_KEYS, sort=True, dropna=False)["quantity_micros"]
        .sum()
    )
    grouped = grouped[grouped != 0]
    flat = grouped.reset_index()
    return [
        InventoryMovementLine(
            location=str(location),
            item=str(item),
            quantity=_quantity(-int(micros)),
            unit_cost=unit_cost,
            cost_center=str(cost_center),
        )
        for location, item, cost_center, unit_cost, micros in zip(
            *(flat[c].tolist() for c in (*_KEYS, "quantity_micros")), strict=True
        )
    ]


def inventory_rows(frame: pd.DataFrame) -> pd.DataFrame:
    """The charge rows an INVENTORY document carries: postable FT1 types with an ERP item."""
    postable = _postable(frame)
    return postable[postable["erp_item"].notna() & (postable["erp_item"] != "")]


def inventory_external_id(
    company: str, business_date: dt.date, lines: Iterable[InventoryMovementLine]
) -> str:
    """``CF-INVENTORY-<company>-<date>-<hash>`` for the day's movement document."""
    return external_id("inventory", policy.SOURCE_INVENTORY, company, business_date, lines)
