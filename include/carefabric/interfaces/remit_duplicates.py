"""The same payment twice: an 835 transaction recognised by what it pays, not by its envelope.

A payer may re-send a remittance under new envelope numbers (ISA13/GS06/ST02), from a new
clearinghouse run or after a failed transmission: the bytes and the control numbers differ,
the payment does not. A payment is identified by its payer (the X12 payer id), its trace
(TRN02 with the originating company TRN03, the key the bank deposit carries) and its amount and
date (BPR02 with BPR03, BPR16). Against every payment already accepted (remittances ``balanced``
or ``posted``) and the earlier transactions of the same file:

* same payer and trace, same amount, sign and date: ``DUPLICATE_PAYMENT``. The transaction is
  stored (status ``rejected``, so it is shown and traced) and never posts.
* same payer and trace, another amount or date: ``TRACE_REUSED``. A trace number ties one deposit
  to one 835; two different payments under one trace cannot both be reassociated with the bank,
  so the later one is held the same way until a person decides (discard it, or have the payer
  re-send it under its own trace).

The original is the first one processed (lowest remittance id). Each exception names both files
and both control numbers as structured fields of its detail (``file``, ``original_file``, ...),
not only in the summary. The check is a query: two files carrying the same payment processed at
the same instant by parallel tasks can both pass it (the envelope duplicate check has the same
window); a unique payment key in the store would close it.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

from sqlalchemy import ColumnElement, and_, or_, select
from sqlalchemy.orm import QueryableAttribute, Session

from carefabric.canonical import Remittance
from carefabric.interfaces.common import open_business_exception
from carefabric.money import format_cents, to_cents
from carefabric.store.models import InboundFile
from carefabric.store.models import Remittance as RemittanceRow

ACCEPTED = ("balanced", "posted")


@dataclass(frozen=True, slots=True)
class PaymentConflict:
    """A transaction whose payer and trace were already received (all fields JSON-able)."""

    reason_code: str  # DUPLICATE_PAYMENT or TRACE_REUSED
    file: str
    control_numbers: str  # ISA13/GS06/ST02 of this transaction
    payer_id: str | None
    trace_number: str
    trace_originator: str | None
    payment_cents: int
    payment_date: str | None
    original_file: str | None
    original_control_numbers: str
    original_remittance_id: int
    original_payment_cents: int
    original_payment_date: str | None


def _null_safe(column: QueryableAttribute[Any], value: object) -> ColumnElement[bool]:
    """``column = value``, or ``IS NULL`` for None (SQL's ``= NULL`` matches nothing)."""
    return column.is_(None) if value is None else column == value


def find_conflict(session: Session, remit: Remittance, *, file_id: int, file_name: str) -> PaymentConflict | None:
    """The first accepted (or same-file) remittance with ``remit``'s payer and trace, as a conflict."""
    found = session.execute(
        select(RemittanceRow, InboundFile.name)
        .outerjoin(InboundFile, RemittanceRow.file_id == InboundFile.id)
        .where(
            _null_safe(RemittanceRow.payer_id, remit.payer_id),
            RemittanceRow.trace_number == remit.trace_number,
            _null_safe(RemittanceRow.trace_originator, remit.trace_originator),
            or_(RemittanceRow.status.in_(ACCEPTED),
                and_(RemittanceRow.file_id == file_id, RemittanceRow.status == "received")),
        )
        .order_by(RemittanceRow.id)
        .limit(1)
    ).first()
    if found is None:
        return None
    row, original_file = found
    cents = to_cents(remit.payment_amount)
    same = (row.payment_cents, row.credit_debit, row.payment_date) == (cents, remit.credit_debit, remit.payment_date)
    return PaymentConflict(
        reason_code="DUPLICATE_PAYMENT" if same else "TRACE_REUSED",
        file=file_name,
        control_numbers=f"{remit.interchange_control}/{remit.group_control}/{remit.transaction_control}",
        payer_id=remit.payer_id,
        trace_number=remit.trace_number,
        trace_originator=remit.trace_originator,
        payment_cents=cents,
        payment_date=remit.payment_date.isoformat() if remit.payment_date else None,
        original_file=original_file,
        original_control_numbers=f"{row.interchange_control}/{row.group_control}/{row.transaction_control}",
        original_remittance_id=row.id,
        original_payment_cents=row.payment_cents,
        original_payment_date=row.payment_date.isoformat() if row.payment_date else None,
    )


def _summary(c: PaymentConflict) -> str:
    paid = format_cents(c.payment_cents)
    if c.reason_code == "DUPLICATE_PAYMENT":
        what = (f"payment TRN02 {c.trace_number} of payer {c.payer_id} ({paid}) was already received in "
                f"{c.original_file} ({c.original_control_numbers}); stored, not posted")
    else:
        what = (f"trace TRN02 {c.trace_number} of payer {c.payer_id} was already used in {c.original_file} "
                f"({c.original_control_numbers}) for another payment ({format_cents(c.original_payment_cents)} on "
                f"{c.original_payment_date}, now {paid} on {c.payment_date}); held, not posted")
    return f"{c.file} ({c.control_numbers}): {what}"


def open_conflict_exceptions(session: Session, conflicts: list[PaymentConflict], *, interface: str) -> None:
    """One business exception per conflicting transaction, both files in its detail."""
    for c in conflicts:
        open_business_exception(
            session, reason_code=c.reason_code, interface=interface, record_type="remittance",
            record_key=f"{c.file}|{c.control_numbers}"[:255], summary=_summary(c)[:480], detail=asdict(c),
        )
