"""Canonical bank statement records: what a BAI2 file says about the money that moved.

Amounts are integer cents (BAI2 writes them without a decimal point). A transaction keeps the
bank's own references and its free text; ``trace_number`` is the EFT trace the payer's 835
carries in TRN02 (found in the CCD+ addenda text, ``TRN*1*<trace>*<originator>\\``), or the check
number of a check deposit, because that is the key that ties a deposit to its remittance
(CAQH CORE EFT/ERA reassociation).
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field


class BankFileError(ValueError):
    """A bank statement that cannot be read at all (not BAI2, cut short, unparseable fields)."""


@dataclass(frozen=True)
class BankTransaction:
    """One 16 record (with its 88 continuations) of one account on one statement date."""

    statement_date: dt.date
    bank_account: str
    currency: str
    type_code: str
    direction: str  # credit | debit | other (from the BAI type code range)
    amount_cents: int
    funds_type: str
    bank_reference: str
    customer_reference: str
    text: str
    trace_number: str | None
    trace_originator: str | None
    trace_source: str | None  # addenda | customer_reference | None
    line: int  # physical line of the 16 record, for error messages and audit

    @property
    def is_deposit(self) -> bool:
        return self.direction == "credit"


@dataclass(frozen=True)
class AccountSummary:
    """The 03 record's summary amounts of one account (opening/closing ledger, totals)."""

    statement_date: dt.date
    bank_account: str
    currency: str
    summaries: dict[str, int]  # type code -> amount in cents (010 opening ledger, 015 closing ...)
    control_total_cents: int
    records: int


@dataclass
class BankStatement:
    """A whole BAI2 file: header facts, accounts, transactions and control-total findings.

    ``findings`` lists every 49/98/99 check that failed (control totals, record and account
    counts), each naming the record and both figures; a statement with findings does not add
    up and must not be trusted as the bank side of a reconciliation.
    """

    sender_id: str
    receiver_id: str
    file_id: str
    created: dt.datetime | None
    accounts: list[AccountSummary] = field(default_factory=list)
    transactions: list[BankTransaction] = field(default_factory=list)
    findings: list[str] = field(default_factory=list)
    groups: int = 0

    @property
    def deposits(self) -> list[BankTransaction]:
        """The credits: what the bank received into the accounts."""
        return [t for t in self.transactions if t.is_deposit]

    @property
    def statement_dates(self) -> list[dt.date]:
        return sorted({a.statement_date for a in self.accounts})


def direction_of(type_code: str) -> str:
    """Credit, debit or other from the BAI2 type code ranges (Appendix A): 100-399 credits,
    400-699 debits; status (0xx), loan (7xx) and custom (9xx) codes are neither."""
    if not type_code.isdigit():
        return "other"
    code = int(type_code)
    if 100 <= code <= 399:
        return "credit"
    if 400 <= code <= 699:
        return "debit"
    return "other"
