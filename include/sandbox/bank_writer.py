"""The sandbox bank: one BAI2 statement per business date with the payers' deposits.

Every payment an 835 of the day announces reaches the bank (a rejected 835, from an unknown payer
or that does not balance, still carried real money: its cash is in the bank even though nothing
posts from the file). An ACH payment arrives as a CCD+ credit (type 165) whose addenda text
carries the 835's own TRN segment, ``TRN*1*<TRN02>*<TRN03>\\``, into the account the 835's BPR15
names; a check payment is a lockbox deposit (type 115) whose customer reference is the check
number (TRN02). This is the reassociation key of the CAQH CORE EFT/ERA rules, so the nightly
cash check can tie each deposit to its 835 per trace.

The file is written with the ``bai2`` package's writer (not carefabric's reader's code), so the
pipeline reads a layout another implementation produced. Two faults, on the first business date,
from their own random stream (``random.Random(seed ^ BANK_SALT)``: the scenario's other outputs
do not move when the bank changes):

* a short deposit: one ACH payment of a known payer arrives a seed-chosen amount lower than BPR02
  (reconciliation item ``amount_mismatch``);
* a deposit with no 835: an ACH credit from a known payer under a trace no 835 carries
  (reconciliation item ``missing_in_835``).
"""

from __future__ import annotations

import datetime as dt
import random
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from bai2 import bai2 as bai2_package
from bai2.constants import AsOfDateModifier, FundsType, GroupStatus, TypeCodes
from bai2.models import (
    Account,
    AccountIdentifier,
    Bai2File,
    Bai2FileHeader,
    Group,
    GroupHeader,
    Summary,
    TransactionDetail,
)

from carefabric.money import format_cents
from sandbox.reference import PAYERS, Facility, Payer
from sandbox.x12_writer import RemitTransaction, _ach_fields

BANK_SALT = 0xBA12_CA5E
BANK_ID = "091000019"  # the sandbox bank's routing number (fictional)
ACH_CREDIT = "165"  # preauthorized ACH credit
LOCKBOX_DEPOSIT = "115"


@dataclass(frozen=True)
class Deposit:
    """One credit on a statement, with the 835 it answers (if any) and what it should reconcile to."""

    statement_date: dt.date
    facility: Facility
    payer: Payer
    type_code: str
    amount_cents: int
    trace_number: str
    bank_reference: str
    customer_reference: str
    text: str
    bpr02_cents: int | None  # None: no 835 announced this deposit
    kind: str  # payment | short | no_835

    @property
    def status(self) -> str:
        if self.bpr02_cents is None:
            return "missing_in_835"
        return "matched" if self.bpr02_cents == self.amount_cents else "amount_mismatch"


def bank_account(facility: Facility) -> str:
    """The facility's deposit account: the one its 835s name in BPR15."""
    return _ach_fields(facility.npi)[1]


def plan_deposits(paid: dict[dt.date, list[RemitTransaction]], *, seed: int, facilities: list[Facility]) -> list[Deposit]:
    """Every deposit of every date (835 payments, then the faults on the first date)."""
    rng = random.Random(seed ^ BANK_SALT)
    deposits: list[Deposit] = []
    known_traces = {tx.trace_number for txs in paid.values() for tx in txs}
    for index, date in enumerate(sorted(paid)):
        txs = sorted(paid[date], key=lambda t: (t.facility.code, t.trace_number))
        short_trace, short_cents = None, 0
        if index == 0:
            candidates = [t for t in txs if t.payment_method == "ACH" and t.payer in PAYERS and t.payment_cents > 100]
            if candidates:
                chosen = rng.choice(candidates)
                short_trace, short_cents = chosen.trace_number, min(rng.randint(100, 5000), chosen.payment_cents - 1)
        for seq, tx in enumerate(txs, start=1):
            short = short_cents if tx.trace_number == short_trace else 0
            deposits.append(_payment(date, seq, tx, short))
        if index == 0:
            deposits.append(_no_835(rng, date, len(txs) + 1, facilities, known_traces))
    return deposits


def _payment(date: dt.date, seq: int, tx: RemitTransaction, short_cents: int) -> Deposit:
    reference = f"{date:%y%m%d}{seq:06d}"
    if tx.payment_method == "ACH":
        text = f"ACH CREDIT CCD+ {tx.payer.name.upper()} HCCLAIMPMT TRN*1*{tx.trace_number}*{tx.payer.x12_id}\\"
        type_code, customer = ACH_CREDIT, ""
    else:
        text = f"LOCKBOX DEPOSIT CHECK {tx.trace_number} {tx.payer.name.upper()}"
        type_code, customer = LOCKBOX_DEPOSIT, tx.trace_number
    return Deposit(
        statement_date=date, facility=tx.facility, payer=tx.payer, type_code=type_code,
        amount_cents=tx.payment_cents - short_cents, trace_number=tx.trace_number, bank_reference=reference,
        customer_reference=customer, text=text, bpr02_cents=tx.payment_cents, kind="short" if short_cents else "payment",
    )


def _no_835(rng: random.Random, date: dt.date, seq: int, facilities: list[Facility], known: set[str]) -> Deposit:
    """An ACH credit from a known payer whose 835 never came (or went elsewhere)."""
    payer = rng.choice(PAYERS)
    facility = rng.choice(facilities)
    trace = f"EFT{payer.x12_id[-4:]}{date:%Y%m%d}{700000 + rng.randint(0, 99999):06d}"
    assert trace not in known, trace
    return Deposit(
        statement_date=date, facility=facility, payer=payer, type_code=ACH_CREDIT,
        amount_cents=rng.randint(5_000, 250_000), trace_number=trace, bank_reference=f"{date:%y%m%d}{seq:06d}",
        customer_reference="",
        text=f"ACH CREDIT CCD+ {payer.name.upper()} HCCLAIMPMT TRN*1*{trace}*{payer.x12_id}\\",
        bpr02_cents=None, kind="no_835",
    )


def render(date: dt.date, deposits: list[Deposit], facilities: list[Facility], *, opening: dict[str, int]) -> str:
    """The BAI2 text of one date's statement: one group, one account per facility."""
    accounts = []
    for facility in facilities:
        number = bank_account(facility)
        mine = [d for d in deposits if d.facility.code == facility.code]
        credits = sum(d.amount_cents for d in mine)
        summaries = [
            Summary(type_code=TypeCodes["010"], amount=opening[number]),
            Summary(type_code=TypeCodes["015"], amount=opening[number] + credits),
            Summary(type_code=TypeCodes["100"], amount=credits, item_count=len(mine)),
            Summary(type_code=TypeCodes["400"], amount=0, item_count=0),
        ]
        details = [
            TransactionDetail(
                type_code=TypeCodes[d.type_code], amount=d.amount_cents, funds_type=FundsType.immediate_availability,
                bank_reference=d.bank_reference, customer_reference=d.customer_reference, text=d.text,
            )
            for d in mine
        ]
        account = Account(header=AccountIdentifier(customer_account_number=number, currency="USD", summary_items=summaries),
                          children=details)
        accounts.append(account)
    group = Group(
        header=GroupHeader(
            ultimate_receiver_id="CF01", originator_id=BANK_ID, group_status=GroupStatus.update, as_of_date=date,
            as_of_time=dt.time.max, currency="USD", as_of_date_modifier=AsOfDateModifier.final_previous_day,
        ),
        children=accounts,
    )
    next_day = date + dt.timedelta(days=1)
    header = Bai2FileHeader(
        sender_id=BANK_ID, receiver_id="CF01", creation_date=next_day, creation_time=dt.time(5, 30),
        file_id=f"{date:%Y%m%d}01", physical_record_length=80, version_number=2,
    )
    return bai2_package.write(Bai2File(header=header, children=[group])) + "\n"


def write_statements(
    out: Path, paid: dict[dt.date, list[RemitTransaction]], *, seed: int, facilities: list[Facility]
) -> dict[str, Any]:
    """Write ``bank/<YYYYMMDD>.bai`` per business date; return the ground truth's bank keys."""
    deposits = plan_deposits(paid, seed=seed, facilities=facilities)
    rng = random.Random((seed ^ BANK_SALT) + 1)  # opening balances: a stream of their own
    balances = {bank_account(f): rng.randint(50_000_00, 500_000_00) for f in facilities}
    folder = out / "bank"
    folder.mkdir(parents=True, exist_ok=True)
    for date in sorted(paid):
        mine = [d for d in deposits if d.statement_date == date]
        (folder / f"{date:%Y%m%d}.bai").write_text(render(date, mine, facilities, opening=balances), encoding="ascii")
        for d in mine:
            balances[bank_account(d.facility)] += d.amount_cents
    return {
        "bank_deposits": [_truth(d) for d in deposits],
        "expected_bank_items": [_item(d) for d in deposits if d.status != "matched"],
    }


def _truth(d: Deposit) -> dict[str, Any]:
    return {
        "statement_date": d.statement_date.isoformat(),
        "file": f"bank/{d.statement_date:%Y%m%d}.bai",
        "bank_account": bank_account(d.facility),
        "facility": d.facility.code,
        "payer_id": d.payer.payer_id,
        "type_code": d.type_code,
        "amount": format_cents(d.amount_cents),
        "bpr02": format_cents(d.bpr02_cents) if d.bpr02_cents is not None else None,
        "trace_number": d.trace_number,
        "bank_reference": d.bank_reference,
        "customer_reference": d.customer_reference,
        "kind": d.kind,
        "expected_status": d.status,
    }


def _item(d: Deposit) -> dict[str, Any]:
    if d.bpr02_cents is None:
        reason = f"deposit {format_cents(d.amount_cents)} under trace {d.trace_number} has no 835"
        variance = d.amount_cents
    else:
        variance = d.amount_cents - d.bpr02_cents
        reason = (f"deposit {format_cents(d.amount_cents)} is {format_cents(-variance)} short of "
                  f"BPR02 {format_cents(d.bpr02_cents)}")
    return {
        "business_date": d.statement_date.isoformat(),
        "trace_number": d.trace_number,
        "status": d.status,
        "bpr02": format_cents(d.bpr02_cents) if d.bpr02_cents is not None else None,
        "deposit": format_cents(d.amount_cents),
        "variance": format_cents(variance),
        "reason": reason,
    }
