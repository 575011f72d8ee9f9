"""ERP posting: the day's balanced journals, inventory movements and cash receipts, posted once.

The story, for one business date (the ``erp_posting`` DAG runs it nightly; ``exception_replay``
runs it for the dates of replayed records):

1. **Build.** Under the date's build lock, every record not yet carried by a live document of a
   source becomes part of that source's document: routed charge lines go into CHARGES, their
   supply lines into SUPPLY and INVENTORY, balanced remittances into REMIT and one CASH receipt
   per EFT/check trace; cash the bank confirmed for an 835 that cannot post goes to SUSPENSE
   (``erp_suspense``). Each document is stored with its exact payload, its external id (a hash
   of its content), its lines, its money contributions and the records it carries, in one
   transaction, before anything is sent (``carefabric.store.outbox``).
2. **Send.** Each outstanding document is claimed (compare-and-set), then sent as stored. A
   document that may have reached the ERP before (an answer lost to a 503, a crash, a killed
   worker) is looked up by external id first, so nothing posts twice even to an ERP that does
   not de-duplicate. ``posted`` only on the ERP's confirmation; a 4xx is ``rejected`` with the
   ERP's reason and one business exception; a 429/5xx leaves it ``unknown`` for the next try.
3. **Settle.** Rejected documents whose records were rebuilt are superseded; exceptions of
   documents that posted close. The run fails, after everything else was posted, when any
   document of the date is rejected or unsent: a rejection is never green.

A rejected document's records are free again: once the cause is fixed (period reopened, account
activated, crosswalk changed) the next run rebuilds the document from them and posts it. A
closed period holds the document until finance reopens it (docs/CONTRACTS.md "ERP outbox").
Payloads carry codes, accounts and line keys only: no names, MRNs, birth dates or member ids.
"""

from __future__ import annotations

import datetime as dt
import logging
import time
from collections import defaultdict
from collections.abc import Callable
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session, selectinload

from carefabric.canonical import (
    Adjustment,
    JournalBatch,
    MappedCharge,
    MappedRemittance,
    ProviderAdjustment,
    RemitClaim,
    RemitServiceLine,
    Remittance,
)
from carefabric.clients.erp import ErpClient
from carefabric.clients.rest import RejectedError, TransientError
from carefabric.interfaces.erp_master_data import charge_from_row
from carefabric.interfaces.erp_suspense import suspense_documents
from carefabric.posting import (
    build_cash_receipts,
    build_inventory_movements,
    charge_posting,
    charges_frame,
    inventory_external_id,
    inventory_rows,
    remit_posting,
    supply_posting,
)
from carefabric.posting.journals import JournalPosting
from carefabric.posting.payloads import (
    cash_payload,
    inventory_lines,
    inventory_payload,
    journal_lines,
    journal_payload,
)
from carefabric.posting.policy import Mode, check_mode
from carefabric.store import outbox
from carefabric.store.db import session_scope
from carefabric.store.models import Charge as ChargeRow
from carefabric.store.models import RemitClaim as RemitClaimRow
from carefabric.store.models import Remittance as RemittanceRow
from carefabric.store.models import SupplyUsage
from carefabric.store.outbox import OutboxDocument

log = logging.getLogger(__name__)

INTERFACE = "erp_posting"
#: How long a claimed document is the claimer's alone. Longer than one send can take (the ERP
#: client's 30 s timeout, one attempt), so a live sender is never overtaken mid-request.
DEFAULT_LEASE_SECONDS = 120.0
REMIT_STATUSES = ("balanced", "posted")


# --------------------------------------------------------------------------- records of the day


def routed_charges(session: Session, business_date: dt.date) -> list[MappedCharge]:
    """Charges routed to billing for the date, mapped, with their supply item when they have one."""
    rows = session.execute(
        select(ChargeRow, SupplyUsage)
        .outerjoin(SupplyUsage, SupplyUsage.line_key == ChargeRow.line_key)
        .where(ChargeRow.status == "routed", ChargeRow.business_date == business_date)
        .order_by(ChargeRow.id)
    ).all()
    return [
        MappedCharge(
            charge=charge_from_row(row),
            company=row.company or "",
            cost_center=row.cost_center or "",
            revenue_account=row.revenue_account or "",
            erp_item=supply.item if supply else None,
            item_unit_cost=Decimal(supply.unit_cost_cents) / 100 if supply and supply.unit_cost_cents is not None else None,
            location=supply.location if supply else None,
        )
        for row, supply in rows
    ]


def remittance_from_row(row: RemittanceRow) -> Remittance:
    """The canonical remittance of a stored one (money back to Decimal from cents)."""

    def money(cents: int | None) -> Decimal:
        return Decimal(cents or 0) / 100

    claims = []
    for c in sorted(row.claims, key=lambda c: c.seq):
        lines_by_id = {}
        lines = []
        for line in sorted(c.lines, key=lambda x: x.seq):
            svc = RemitServiceLine(procedure=line.procedure, charge=money(line.charge_cents), paid=money(line.paid_cents),
                                   units=line.units, service_date=line.service_date, line_ref=line.line_ref)
            lines_by_id[line.id] = svc
            lines.append(svc)
        claim_adj = []
        for adj in sorted(c.adjustments, key=lambda a: a.seq):
            value = Adjustment(group=adj.group_code, reason=adj.reason_code, amount=money(adj.amount_cents), quantity=adj.quantity)
            if adj.line_id is not None and adj.line_id in lines_by_id:
                lines_by_id[adj.line_id].adjustments.append(value)
            else:
                claim_adj.append(value)
        claims.append(
            RemitClaim(patient_control_number=c.patient_control_number, status=c.status, charge=money(c.charge_cents),
                       paid=money(c.paid_cents), patient_responsibility=money(c.patient_resp_cents),
                       payer_claim_control=c.payer_claim_control, adjustments=claim_adj, lines=lines)
        )
    plbs = [
        ProviderAdjustment(provider_id=p.provider_id or "", fiscal_date=p.fiscal_date, reason=p.reason,
                           reference=p.reference, amount=money(p.amount_cents))
        for p in sorted(row.provider_adjustments, key=lambda p: p.seq)
    ]
    return Remittance(
        interchange_control=row.interchange_control, group_control=row.group_control,
        transaction_control=row.transaction_control, version=row.version or "", sender_id=row.sender_id,
        payment_amount=money(row.payment_cents), credit_debit=row.credit_debit or "C",
        payment_method=row.payment_method, payment_date=row.payment_date, trace_number=row.trace_number,
        trace_originator=row.trace_originator, payer_name=row.payer_name, payer_id=row.payer_id,
        payee_name=row.payee_name, payee_npi=row.payee_npi, claims=claims, provider_adjustments=plbs,
    )


def balanced_remittances(session: Session, business_date: dt.date) -> list[tuple[str, MappedRemittance]]:
    """Balanced, mapped remittances of the date as (record key, mapped remittance)."""
    # Claims, lines, CAS and PLB loaded up front (one IN query per 500 parents and level): read
    # lazily, a day of 56k claims was ~112k single-row queries, 258 of build_day's 442 s.
    claims = selectinload(RemittanceRow.claims)
    rows = session.scalars(
        select(RemittanceRow)
        .where(RemittanceRow.status.in_(REMIT_STATUSES), RemittanceRow.business_date == business_date)
        .options(claims.selectinload(RemitClaimRow.lines), claims.selectinload(RemitClaimRow.adjustments),
                 selectinload(RemittanceRow.provider_adjustments))
        .order_by(RemittanceRow.id)
    ).all()
    return [
        (
            str(row.id),
            MappedRemittance(remittance=remittance_from_row(row), company=row.company or "", facility=row.facility or "",
                             erp_payer_id=row.erp_payer_id or "", business_date=business_date),
        )
        for row in rows
    ]


# --------------------------------------------------------------------------- build


def _journal_document(posting: JournalPosting, business_date: dt.date, records: list[tuple[str, str]]) -> OutboxDocument | None:
    batch: JournalBatch | None = posting.journal
    if batch is None:
        return None
    return OutboxDocument(
        kind="journal", source=batch.source, company=batch.company, business_date=business_date,
        external_id=batch.external_id, payload=journal_payload(batch), lines=journal_lines(batch), records=records,
        contributions=_contribution_keys(posting.contributions, batch.source),
        debit_cents=batch.total_debit_cents, credit_cents=batch.total_credit_cents,
    )


def _charge_records(posting: JournalPosting) -> list[tuple[str, str]]:
    keys = posting.contributions.loc[posting.contributions["record_type"] == "charge", "record_key"]
    return [("charge", str(k)) for k in dict.fromkeys(keys)]


def _free(session: Session, source: str, record_type: str, keyed: list[tuple[str, Any]]) -> list[tuple[str, Any]]:
    taken = outbox.taken_keys(session, source, record_type, [k for k, _ in keyed])
    return [(k, v) for k, v in keyed if k not in taken]


def _by_company(items: list[tuple[str, Any]], company: Callable[[Any], str]) -> dict[str, list[tuple[str, Any]]]:
    grouped: dict[str, list[tuple[str, Any]]] = defaultdict(list)
    for key, value in items:
        grouped[company(value)].append((key, value))
    return dict(sorted(grouped.items()))


def charge_documents(session: Session, business_date: dt.date, *, mode: Mode) -> list[OutboxDocument]:
    """CHARGES, SUPPLY and INVENTORY documents for the charge lines each source does not carry yet."""
    keyed = [(m.charge.line_key, m) for m in routed_charges(session, business_date)]
    docs: list[OutboxDocument] = []
    for source, build in (("CHARGES", charge_posting), ("SUPPLY", supply_posting)):
        for company, items in _by_company(_free(session, source, "charge", keyed), lambda m: m.company).items():
            posting = build(charges_frame([m for _, m in items]), business_date=business_date, company=company, mode=mode)
            doc = _journal_document(posting, business_date, _charge_records(posting))
            if doc is not None:
                docs.append(doc)
    for company, items in _by_company(_free(session, "INVENTORY", "charge", keyed), lambda m: m.company).items():
        frame = charges_frame([m for _, m in items])
        movements = build_inventory_movements(frame, company=company)
        if not movements:
            continue
        ext = inventory_external_id(company, business_date, movements)
        docs.append(OutboxDocument(
            kind="inventory", source="INVENTORY", company=company, business_date=business_date, external_id=ext,
            payload=inventory_payload(ext, company, business_date, movements), lines=inventory_lines(movements),
            records=[("charge", str(k)) for k in inventory_rows(frame)["line_key"]],
        ))
    return docs


def remittance_documents(session: Session, business_date: dt.date, *, mode: Mode) -> list[OutboxDocument]:
    """The REMIT journal and the cash receipts for remittances each source does not carry yet."""
    keyed = balanced_remittances(session, business_date)
    docs: list[OutboxDocument] = []
    for company, items in _by_company(_free(session, "REMIT", "remittance", keyed), lambda m: m.company).items():
        posting = remit_posting([m for _, m in items], business_date=business_date, company=company, mode=mode)
        doc = _journal_document(posting, business_date, [("remittance", k) for k, _ in items])
        if doc is not None:
            docs.append(doc)
    for company, items in _by_company(_free(session, "CASH", "remittance", keyed), lambda m: m.company).items():
        for receipt in build_cash_receipts([m for _, m in items]):
            carried = [("remittance", k) for k, m in items if m.remittance.trace_number == receipt.trace_number]
            contributions = pd.DataFrame([{"record_type": "receipt", "record_key": receipt.trace_number,
                                           "account": "1010", "amount_cents": receipt.amount_cents}])
            docs.append(OutboxDocument(
                kind="cash", source="CASH", company=company, business_date=business_date,
                external_id=receipt.external_id, payload=cash_payload(receipt), lines=[], records=carried,
                contributions=contributions, debit_cents=receipt.amount_cents,
            ))
    return docs


def build_day(engine: Engine, business_date: dt.date, *, mode: str = "summary") -> list[str]:
    """Store every document the date still needs (one transaction, under the date's build lock)."""
    posting_mode = check_mode(mode)
    with session_scope(engine) as session:
        outbox.lock(session, f"build:{business_date.isoformat()}")
        docs = [
            *charge_documents(session, business_date, mode=posting_mode),
            *remittance_documents(session, business_date, mode=posting_mode),
        ]
        for doc in docs:
            outbox.store(session, doc)
        # after the REMIT journals: a suspense reversal goes out with the journal applying the cash
        suspense = suspense_documents(session, business_date)
        for doc in suspense:
            outbox.store(session, doc)
    return [d.external_id for d in [*docs, *suspense]]


def _contribution_keys(frame: pd.DataFrame, source: str) -> pd.DataFrame:
    """Keys the store keeps per contribution. Remittance rows keep their rule (``claim:payment``,
    ``trace:plb``...) and claims their payer (``CLP01|payer``), so reconciliation can read GL AR
    relief from CLP04 per claim and payer, and cash per trace, even from a summary journal."""
    if source != "REMIT" or "component" not in frame.columns:
        return frame
    out = frame.copy()
    out["record_type"] = out["record_type"].astype(str) + ":" + out["component"].astype(str)
    is_claim = out["record_type"].str.startswith("claim:")
    out.loc[is_claim, "record_key"] = out.loc[is_claim, "record_key"].astype(str) + "|" + out.loc[is_claim, "payer_id"].astype(str)
    return out


# --------------------------------------------------------------------------- send


def _send_one(engine: Engine, erp: ErpClient, claimed: outbox.Claimed) -> str:
    """Send one claimed document; the outcome is recorded before this returns."""
    try:
        if claimed.resend:
            found = erp.find(claimed.kind, claimed.external_id)
            if found is not None:
                outbox.record_posted(engine, claimed, found.document_id, replayed=True, found=True)
                return "found"
        result = erp.send(claimed.kind, claimed.payload)
    except RejectedError as exc:
        outbox.record_rejected(engine, claimed, exc.code, str(exc), exc.body)
        log.warning("ERP rejected %s %s: %s", claimed.source, claimed.external_id, exc.code)
        return "rejected"
    except TransientError as exc:
        outbox.record_unknown(engine, claimed, str(exc))
        log.warning("ERP unavailable for %s %s: %s", claimed.source, claimed.external_id, exc)
        return "unknown"
    outbox.record_posted(engine, claimed, result.document_id, replayed=result.replayed)
    return "replayed" if result.replayed else "posted"


def send_outstanding(
    engine: Engine, erp: ErpClient, business_date: dt.date, *, lease_seconds: float = DEFAULT_LEASE_SECONDS,
    passes: int = 3, backoff: float = 1.0, sleep: Callable[[float], None] = time.sleep,
) -> dict[str, str]:
    """Send the date's outstanding documents; returns the outcome per external id.

    Documents another sender holds are waited for (until their lease ends) and taken over if it
    died. Unknown outcomes get ``passes`` tries in this run, with backoff, before the caller's
    retry policy takes over.
    """
    outcomes: dict[str, str] = {}
    for attempt in range(passes):
        for posting_id in outbox.outstanding(engine, business_date):
            claimed = outbox.claim(engine, posting_id, lease_seconds)
            if claimed is not None:
                outcomes[claimed.external_id] = _send_one(engine, erp, claimed)
        elsewhere = outbox.in_flight_elsewhere(engine, business_date)
        while elsewhere:
            sleep(min(1.0, lease_seconds))
            elsewhere = outbox.in_flight_elsewhere(engine, business_date)
        if not outbox.outstanding(engine, business_date):
            break
        if attempt < passes - 1:
            sleep(backoff * 2**attempt)
    outbox.flag_unconfirmed(engine, business_date)
    return outcomes


# --------------------------------------------------------------------------- settle


def mark_remittances_posted(engine: Engine, business_date: dt.date) -> int:
    """A remittance is ``posted`` once a posted REMIT journal and a posted cash receipt carry it."""
    with session_scope(engine) as session:
        rows = session.scalars(
            select(RemittanceRow).where(RemittanceRow.status == "balanced", RemittanceRow.business_date == business_date)
        ).all()
        keys = [str(r.id) for r in rows]
        done = outbox.posted_keys(session, "REMIT", "remittance", keys) & outbox.posted_keys(session, "CASH", "remittance", keys)
        for row in rows:
            if str(row.id) in done:
                row.status = "posted"
        return len(done)


def settle_day(engine: Engine, business_date: dt.date) -> dict[str, Any]:
    """Settle the date and judge it: raise when a document is rejected or still unsent.

    ``RejectedError`` (fails at once: a person must fix the cause; the exception names each
    document) takes precedence over ``TransientError`` (retried: the ERP was unavailable).
    """
    report = outbox.settle(engine, business_date)
    remittances = mark_remittances_posted(engine, business_date)
    left = outbox.unsettled(engine, business_date)
    summary = {"superseded": report.superseded, "exceptions_resolved": report.resolved_exceptions,
               "remittances_posted": remittances, "unsettled": {k: len(v) for k, v in left.items()}}
    if left.get("rejected"):
        raise RejectedError(422, "ERP_REJECTED", f"{len(left['rejected'])} document(s) of {business_date} rejected by the "
                            f"ERP, each an ERP_REJECTED exception: {sorted(left['rejected'])[:5]}")
    unsent = [ext for status in ("pending", "sending", "unknown") for ext in left.get(status, [])]
    if unsent:
        raise TransientError(f"{len(unsent)} document(s) of {business_date} not confirmed by the ERP: {sorted(unsent)[:5]}")
    return summary


def post_day(
    engine: Engine, erp: ErpClient, business_date: dt.date, *, mode: str = "summary",
    lease_seconds: float = DEFAULT_LEASE_SECONDS, sleep: Callable[[float], None] = time.sleep,
) -> dict[str, Any]:
    """Everything the ERP should receive for one business date, posted exactly once."""
    built = build_day(engine, business_date, mode=mode)
    sent = send_outstanding(engine, erp, business_date, lease_seconds=lease_seconds, sleep=sleep)
    return {"built": len(built), "sent": sent, **settle_day(engine, business_date)}
