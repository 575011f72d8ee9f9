"""The expected outcome of a scenario, computed from the scenario itself.

The generator feeds this module the charge lines and remittances it *decided* (never the files
it wrote, and never carefabric's parsers or posting code), and this module applies the posting
policy of ``docs/CONTRACTS.md`` to them. Because the two computations share nothing but the
policy text, a difference between the pipeline's ERP postings and ``ground_truth.json`` is a
real finding on one side or the other.

Policy as implemented here:

- one journal per (company, date, source) for ``CHARGES``, ``SUPPLY`` and ``REMIT``;
- lines summarized per (account, cost_center, location, facility): the net (debit - credit)
  becomes one line, a debit if positive, a credit if negative, dropped if zero;
- ``cost_center`` only on revenue, contractual/denial (never: they carry none), and supply
  expense lines; ``location`` only on inventory lines; ``facility`` always;
- charge: Dr 1200 / Cr the CDM's revenue account (department cost center), amount signed;
- supply: also Dr 6500 (cost center) / Cr 1400 (location) at quantity x unit cost (a fractional
  quantity's cost rounded half up per line), and an
  inventory movement line (quantity negated) summarized per (date, location, item, cost center);
- journal date: the business date that carried the line or the 835 (a late charge's FT1-4 date
  does not move it);
- remittance: CLP04 Dr 1010 / Cr 1200; CAS PR Dr 1210 / Cr 1200; other CAS (CO, OA, PI, also
  CO-253 sequestration) Dr 4910 on a denied claim (CLP02 = 4) else Dr 4900 (secondary claims,
  CLP02 = 2, too), Cr 1200; PLB a: Cr 1010 a and Dr 7100 a for L6, else (WO, 72, FB) Dr 1200 a;
  one cash receipt per TRN02 with BPR02.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from carefabric.money import format_cents
from sandbox.reference import (
    ACCOUNT_AR_INSURANCE,
    ACCOUNT_AR_SELF_PAY,
    ACCOUNT_CASH,
    ACCOUNT_CONTRACTUAL,
    ACCOUNT_DENIAL,
    ACCOUNT_INTEREST,
    ACCOUNT_INVENTORY,
    ACCOUNT_SUPPLY_EXPENSE,
    COMPANY,
)
from sandbox.x12_writer import RemitTransaction

SOURCES = ("CHARGES", "SUPPLY", "REMIT")

LineKey = tuple[str, str | None, str | None, str | None]  # account, cost_center, location, facility


class Ledger:
    """Net amounts in cents per (date, source) and line key, plus inventory movements."""

    def __init__(self, company: str = COMPANY) -> None:
        self.company = company
        self.nets: dict[tuple[dt.date, str], dict[LineKey, int]] = defaultdict(lambda: defaultdict(int))
        self.movements: dict[dt.date, dict[tuple[str, str, str], Decimal]] = defaultdict(lambda: defaultdict(Decimal))
        self.item_costs: dict[str, int] = {}
        self.receipts: list[dict[str, str]] = []

    # ------------------------------------------------------------------ building
    def _post(self, date: dt.date, source: str, debit: LineKey, credit: LineKey, cents: int) -> None:
        """Dr ``debit`` / Cr ``credit`` by ``cents`` (negative amounts swap sides on netting)."""
        if cents == 0:
            return
        book = self.nets[(date, source)]
        book[debit] += cents
        book[credit] -= cents

    def add_charge(
        self,
        date: dt.date,
        *,
        facility: str,
        cost_center: str,
        revenue_account: str,
        amount_cents: int,
        source: str = "CHARGES",
    ) -> None:
        """A posted charge line (signed amount): Dr patient AR, Cr revenue at the cost center."""
        self._post(
            date,
            source,
            (ACCOUNT_AR_INSURANCE, None, None, facility),
            (revenue_account, cost_center, None, facility),
            amount_cents,
        )

    def add_supply(
        self,
        date: dt.date,
        *,
        facility: str,
        cost_center: str,
        location: str,
        item: str,
        quantity: int | Decimal,
        unit_cost_cents: int,
    ) -> None:
        """Supply consumption: Dr supply expense (cost center), Cr inventory (location); a
        fractional quantity's cost is rounded half up to the cent per line, before summarizing."""
        cost = Decimal(quantity) * unit_cost_cents
        self._post(
            date,
            "SUPPLY",
            (ACCOUNT_SUPPLY_EXPENSE, cost_center, None, facility),
            (ACCOUNT_INVENTORY, None, location, facility),
            int(cost.quantize(Decimal(1), rounding=ROUND_HALF_UP)),
        )
        self.movements[date][(location, item, cost_center)] -= Decimal(quantity)
        self.item_costs[item] = unit_cost_cents

    def add_remittance(self, tx: RemitTransaction, *, erp_payer_id: str, facility: str) -> None:
        """A balanced, mapped 835 transaction posted on its business date."""
        date = tx.business_date
        ar = (ACCOUNT_AR_INSURANCE, None, None, facility)
        for claim in tx.claims:
            self._post(date, "REMIT", (ACCOUNT_CASH, None, None, facility), ar, claim.paid_cents)
            for adjustment in claim.all_adjustments():
                if adjustment.group == "PR":
                    account = ACCOUNT_AR_SELF_PAY
                elif claim.status == "4":
                    account = ACCOUNT_DENIAL
                else:
                    account = ACCOUNT_CONTRACTUAL
                self._post(date, "REMIT", (account, None, None, facility), ar, adjustment.amount_cents)
        for plb in tx.plbs:
            other = (ACCOUNT_INTEREST, None, None, facility) if plb.reason == "L6" else ar
            # Cr cash a, Dr other a
            self._post(date, "REMIT", other, (ACCOUNT_CASH, None, None, facility), plb.amount_cents)
        self.receipts.append(
            {
                "trace_number": tx.trace_number,
                "payer_id": erp_payer_id,
                "amount": format_cents(tx.payment_cents),
                "receipt_date": date.isoformat(),
                "facility": facility,
                "company": self.company,
            }
        )

    # ------------------------------------------------------------------ output
    @staticmethod
    def _sort_key(key: LineKey) -> tuple[str, str, str, str]:
        account, cost_center, location, facility = key
        return (account, cost_center or "", location or "", facility or "")

    def journals(self) -> list[dict[str, Any]]:
        """Summarized journals sorted by date then source (CHARGES, SUPPLY, REMIT); empty ones dropped."""
        result = []
        order = {source: index for index, source in enumerate(SOURCES)}
        for date, source in sorted(self.nets, key=lambda ds: (ds[0], order.get(ds[1], 99), ds[1])):
            lines = []
            total = 0
            for key in sorted(self.nets[(date, source)], key=self._sort_key):
                net = self.nets[(date, source)][key]
                if net == 0:
                    continue
                account, cost_center, location, facility = key
                total += max(net, 0)
                lines.append(
                    {
                        "account": account,
                        "cost_center": cost_center,
                        "location": location,
                        "facility": facility,
                        "debit": format_cents(max(net, 0)),
                        "credit": format_cents(max(-net, 0)),
                    }
                )
            if not lines:
                continue
            assert sum(self.nets[(date, source)].values()) == 0, (date, source)
            result.append(
                {
                    "source": source,
                    "journal_date": date.isoformat(),
                    "company": self.company,
                    "lines": lines,
                    "total_debit": format_cents(total),
                    "total_credit": format_cents(total),
                }
            )
        return result

    def inventory_movements(self) -> list[dict[str, Any]]:
        """The expected movement lines, summarized per (date, location, item, cost center).

        A flat list (each line carries its ``movement_date`` and ``company``): the pipeline posts
        one ``INVENTORY`` document per date holding the lines of that date.
        """
        result = []
        for date in sorted(self.movements):
            for (location, item, cost_center), quantity in sorted(self.movements[date].items()):
                if quantity == 0:
                    continue
                result.append(
                    {
                        "movement_date": date.isoformat(),
                        "company": self.company,
                        "location": location,
                        "item": item,
                        "quantity": f"{quantity.normalize():f}",
                        "unit_cost": format_cents(self.item_costs[item]),
                        "cost_center": cost_center,
                        "movement_type": "consumption",
                    }
                )
        return result

    def cash_receipts(self) -> list[dict[str, str]]:
        return sorted(self.receipts, key=lambda r: (r["receipt_date"], r["trace_number"]))
