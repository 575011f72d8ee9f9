"""Unapplied cash: money that reached the bank but could not post goes to suspense, never nowhere.

An 835 that cannot post (its payer is unknown, its totals do not balance) still announced a
payment, and when the bank statement shows that deposit under its trace, the cash is real: it
is in the hospital's bank account. So it is posted to the ledger at once, Dr cash clearing
(``1010``) / Cr unapplied cash (``2400``), per facility, in a ``SUSPENSE`` journal of the
business date, with the 835's reason in the memo. When the cause is fixed and the remittance
posts (its REMIT journal debits cash clearing itself), a ``SUSPENSE`` reversal of the same
amount (Dr 2400 / Cr 1010) clears it, so cash is never counted twice.

Only deposits the bank confirmed count, at the bank's amount; an 835 re-sent as a duplicate of
one that posted is not unapplied cash (its money arrived once, with the original). The
documents go through the outbox like every other (``erp_posting.build_day``); their records are
the EFT/check traces (``suspense`` and ``suspense_clear`` memberships): one deposit is unapplied
cash once, however many times its 835 is read.
"""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from carefabric.canonical import JournalBatch, JournalLine
from carefabric.posting import policy
from carefabric.posting.external_ids import external_id
from carefabric.posting.payloads import journal_lines, journal_payload
from carefabric.store import outbox
from carefabric.store.crosswalks import Crosswalks
from carefabric.store.models import BankDeposit, ErpCompany, ErpPosting, PostingContribution
from carefabric.store.models import Remittance as RemittanceRow
from carefabric.store.outbox import OutboxDocument

SOURCE = "SUSPENSE"
UNAPPLIED_CASH = "2400"
NOT_POSTABLE = ("unbalanced", "rejected")
ACCEPTED = ("balanced", "posted")
MEMO = {"unbalanced": "unapplied cash: 835 does not balance", "rejected": "unapplied cash: 835 could not be applied"}


def _deposits(session: Session, traces: list[str], business_date: dt.date) -> dict[str, int]:
    """Bank-confirmed cents per trace, on statements within three days of the date."""
    if not traces:
        return {}
    rows = session.execute(
        select(BankDeposit.trace_number, func.sum(BankDeposit.amount_cents))
        .where(BankDeposit.trace_number.in_(traces),
               BankDeposit.statement_date.between(business_date - dt.timedelta(days=3),
                                                  business_date + dt.timedelta(days=3)))
        .group_by(BankDeposit.trace_number)
    ).all()
    return {str(t): int(c) for t, c in rows}


def _where(session: Session, row: RemittanceRow, cw: Crosswalks) -> tuple[str, str] | None:
    """(company, facility) of a remittance that did not map: its payee NPI or tax id, else the
    only company the ERP has with no facility."""
    if row.company and row.facility:
        return row.company, row.facility
    entry = cw.facility_by_npi(row.payee_npi)
    if entry is not None:
        return entry.company, entry.facility
    companies = list(session.scalars(select(ErpCompany.company_id)))
    return (str(companies[0]), "") if len(companies) == 1 else None


def _journal(company: str, business_date: dt.date, amounts: dict[str, int], memo: str, *,
             clear: bool) -> JournalBatch:
    lines = []
    for facility, cents in sorted(amounts.items()):
        cash = JournalLine(policy.CASH_CLEARING, None, None, facility or None, 0 if clear else cents,
                           cents if clear else 0, memo)
        unapplied = JournalLine(UNAPPLIED_CASH, None, None, facility or None, cents if clear else 0,
                                0 if clear else cents, memo)
        lines += [cash, unapplied]
    ext = external_id("journal", SOURCE, company, business_date, lines)
    return JournalBatch(external_id=ext, company=company, journal_date=business_date, source=SOURCE, lines=lines)


def _document(batch: JournalBatch, business_date: dt.date, records: list[tuple[str, str]],
              contributions: list[dict[str, Any]]) -> OutboxDocument:
    return OutboxDocument(
        kind="journal", source=SOURCE, company=batch.company, business_date=business_date,
        external_id=batch.external_id, payload=journal_payload(batch), lines=journal_lines(batch), records=records,
        contributions=pd.DataFrame(contributions), debit_cents=batch.total_debit_cents,
        credit_cents=batch.total_credit_cents,
    )


def suspense_documents(session: Session, business_date: dt.date) -> list[OutboxDocument]:
    """SUSPENSE journals for the date: bank-confirmed cash of remittances that cannot post, and
    the reversal of earlier suspense whose remittance now posts (call after the date's REMIT
    documents are stored: the reversal goes out with the journal that applies the cash)."""
    return [*_to_suspense(session, business_date), *_clearing(session, business_date)]


def _to_suspense(session: Session, business_date: dt.date) -> list[OutboxDocument]:
    rows = session.scalars(
        select(RemittanceRow).where(RemittanceRow.business_date == business_date,
                                    RemittanceRow.status.in_(NOT_POSTABLE))
    ).all()
    accepted = set(session.scalars(
        select(RemittanceRow.trace_number).where(RemittanceRow.trace_number.in_([r.trace_number for r in rows]),
                                                 RemittanceRow.status.in_(ACCEPTED))
    ))
    taken = outbox.taken_keys(session, SOURCE, "suspense", [r.trace_number for r in rows if r.trace_number])
    banked = _deposits(session, [r.trace_number for r in rows if r.trace_number], business_date)
    cw = Crosswalks.load(session)
    grouped: dict[tuple[str, str], dict[str, int]] = defaultdict(lambda: defaultdict(int))
    records: dict[tuple[str, str], list[tuple[str, str]]] = defaultdict(list)
    contributions: dict[tuple[str, str], list[dict[str, Any]]] = defaultdict(list)
    seen_traces: set[str] = set()
    for row in rows:
        trace = row.trace_number or ""
        where = _where(session, row, cw)
        if (trace in taken or trace in accepted or trace not in banked or trace in seen_traces
                or where is None):
            continue
        seen_traces.add(trace)  # one deposit, however many copies of its 835 arrived
        company, facility = where
        key = (company, MEMO.get(row.status, MEMO["rejected"]))
        grouped[key][facility] += banked[trace]
        records[key].append(("suspense", trace))
        contributions[key].append({"record_type": "suspense", "record_key": f"{trace}|{facility}",
                                   "account": UNAPPLIED_CASH, "amount_cents": -banked[trace]})
    return [
        _document(_journal(company, business_date, dict(amounts), memo, clear=False), business_date,
                  records[(company, memo)], contributions[(company, memo)])
        for (company, memo), amounts in sorted(grouped.items())
    ]


def _clearing(session: Session, business_date: dt.date) -> list[OutboxDocument]:
    """Reversals of the date's posted suspense whose trace is now carried by a REMIT journal.

    Suspense contributions are keyed ``<trace>|<facility>``; the remittance that finally applies
    the cash may be a new row (an 835 read again after its payer was mapped), so the match is by
    trace. A clearing is built in the same run as the REMIT journal that applies the cash.
    """
    rows = session.execute(
        select(PostingContribution.record_key, PostingContribution.amount_cents, ErpPosting.company)
        .join(ErpPosting)
        .where(ErpPosting.source == SOURCE, ErpPosting.business_date == business_date,
               ErpPosting.status == "posted", PostingContribution.record_type == "suspense")
    ).all()
    if not rows:
        return []
    traces = sorted({key.split("|")[0] for key, _, _ in rows})
    applying = {
        str(r.id): r.trace_number
        for r in session.scalars(select(RemittanceRow).where(RemittanceRow.trace_number.in_(traces),
                                                             RemittanceRow.status.in_(ACCEPTED)))
    }
    live = outbox.taken_keys(session, "REMIT", "remittance", list(applying))
    applied = {applying[i] for i in live}
    cleared = outbox.taken_keys(session, SOURCE, "suspense_clear", traces)
    grouped: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    records: dict[str, list[tuple[str, str]]] = defaultdict(list)
    contributions: dict[str, list[dict[str, Any]]] = defaultdict(list)
    for key, cents, company in rows:
        trace, _, facility = key.partition("|")
        if trace not in applied or trace in cleared:
            continue
        grouped[company][facility] += -int(cents)
        records[company].append(("suspense_clear", trace))
        contributions[company].append({"record_type": "suspense_clear", "record_key": key,
                                       "account": UNAPPLIED_CASH, "amount_cents": -int(cents)})
    return [
        _document(_journal(company, business_date, dict(amounts), "unapplied cash applied", clear=True),
                  business_date, records[company], contributions[company])
        for company, amounts in sorted(grouped.items())
    ]
