"""ERP posting: the day's balanced journals, inventory movements and cash receipts, posted once.

The story, for one business date (the ``erp_posting`` DAG runs it nightly; ``exception_replay``
runs the charge part for replayed lines):

1. Postings left ``pending`` by an interrupted run are re-sent first with their stored payload;
   the ERP answers a known external id with its first result, so nothing posts twice.
2. Charges routed to billing and not yet in a posted journal become a CHARGES journal, their
   supply lines a SUPPLY journal and an INVENTORY movement document. Balanced, unposted
   remittances become a REMIT journal and one cash receipt per EFT/check trace.
3. Each document is stored (``pending``, with lines and per-record contributions) before it is
   sent, then marked ``posted`` with the ERP's document id. External ids hash the content, so a
   rerun, a retry or a crash between send and record never posts twice. A 4xx from the ERP is a
   business exception (``ERP_REJECTED``); a 429/5xx is retried (client, then Airflow).

Payloads carry codes, accounts and line keys only: no names, MRNs, birth dates or member ids.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections import defaultdict
from decimal import Decimal
from typing import Any

import pandas as pd
from sqlalchemy import select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from carefabric.canonical import (
    Adjustment,
    CashReceipt,
    JournalBatch,
    MappedCharge,
    MappedRemittance,
    ProviderAdjustment,
    RemitClaim,
    RemitServiceLine,
    Remittance,
)
from carefabric.clients.erp import ErpClient, PostResult
from carefabric.clients.rest import RejectedError
from carefabric.interfaces.common import open_business_exception
from carefabric.interfaces.erp_master_data import charge_from_row
from carefabric.money import format_cents
from carefabric.posting import (
    build_cash_receipts,
    build_inventory_movements,
    charge_posting,
    charges_frame,
    inventory_external_id,
    remit_posting,
    supply_posting,
)
from carefabric.store import exceptions_repo
from carefabric.store.bulk import insert_ignore
from carefabric.store.db import session_scope
from carefabric.store.models import Charge as ChargeRow
from carefabric.store.models import ErpPosting, ErpPostingLine, PostingContribution, SupplyUsage
from carefabric.store.models import Remittance as RemittanceRow
from carefabric.store.types import utcnow

log = logging.getLogger(__name__)

INTERFACE = "erp_posting"


# --------------------------------------------------------------------------- what is unposted


def _posted_keys(session: Session, source: str, record_type: str, keys: list[str]) -> set[str]:
    found: set[str] = set()
    for start in range(0, len(keys), 900):
        chunk = keys[start : start + 900]
        found.update(
            session.scalars(
                select(PostingContribution.record_key)
                .join(ErpPosting)
                .where(
                    ErpPosting.source == source,
                    ErpPosting.status == "posted",
                    PostingContribution.record_type == record_type,
                    PostingContribution.record_key.in_(chunk),
                )
            )
        )
    return found


def unposted_charges(session: Session, business_date: dt.date, line_keys: list[str] | None = None) -> list[MappedCharge]:
    """Charges routed to billing for the date whose line is in no posted CHARGES journal yet."""
    query = (
        select(ChargeRow, SupplyUsage)
        .outerjoin(SupplyUsage, SupplyUsage.line_key == ChargeRow.line_key)
        .where(ChargeRow.status == "routed", ChargeRow.business_date == business_date)
        .order_by(ChargeRow.id)
    )
    if line_keys is not None:
        query = query.where(ChargeRow.line_key.in_(line_keys))
    rows = session.execute(query).all()
    posted = _posted_keys(session, "CHARGES", "charge", [r.line_key for r, _ in rows])
    mapped: list[MappedCharge] = []
    for row, supply in rows:
        if row.line_key in posted:
            continue
        mapped.append(
            MappedCharge(
                charge=charge_from_row(row),
                company=row.company or "",
                cost_center=row.cost_center or "",
                revenue_account=row.revenue_account or "",
                erp_item=supply.item if supply else None,
                item_unit_cost=Decimal(supply.unit_cost_cents) / 100 if supply and supply.unit_cost_cents is not None else None,
                location=supply.location if supply else None,
            )
        )
    return mapped


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


def unposted_remittances(session: Session, business_date: dt.date) -> list[tuple[int, MappedRemittance]]:
    rows = session.scalars(
        select(RemittanceRow)
        .where(RemittanceRow.status == "balanced", RemittanceRow.business_date == business_date)
        .order_by(RemittanceRow.id)
    ).all()
    return [
        (
            row.id,
            MappedRemittance(remittance=remittance_from_row(row), company=row.company or "", facility=row.facility or "",
                             erp_payer_id=row.erp_payer_id or "", business_date=business_date),
        )
        for row in rows
    ]


# --------------------------------------------------------------------------- store, then send


def _journal_payload(batch: JournalBatch) -> dict[str, Any]:
    return {
        "external_id": batch.external_id, "company": batch.company, "journal_date": batch.journal_date.isoformat(),
        "source": batch.source,
        "lines": [
            {"account": ln.account, "cost_center": ln.cost_center, "location": ln.location, "facility": ln.facility,
             "debit": format_cents(ln.debit_cents), "credit": format_cents(ln.credit_cents), "memo": ln.memo}
            for ln in batch.lines
        ],
    }


def _record(
    engine: Engine, *, kind: str, source: str, company: str, business_date: dt.date, external_id: str,
    payload: dict[str, Any], lines: list[dict[str, Any]], contributions: pd.DataFrame | None,
    debit: int = 0, credit: int = 0,
) -> tuple[int, str]:
    """Store a document as ``pending`` (once per external id); returns (id, status)."""
    with session_scope(engine) as session:
        insert_ignore(
            session, ErpPosting,
            [{"kind": kind, "external_id": external_id, "source": source, "company": company,
              "business_date": business_date, "status": "pending", "payload": payload,
              "debit_cents": debit, "credit_cents": credit, "attempts": 0}],
            ["external_id"],
        )
        posting = session.scalars(select(ErpPosting).where(ErpPosting.external_id == external_id)).one()
        insert_ignore(session, ErpPostingLine, [{"posting_id": posting.id, **line} for line in lines], ["posting_id", "line_no"])
        if contributions is not None and len(contributions):
            contributions = _contribution_keys(contributions, source)
            grouped = contributions.groupby(["record_type", "record_key", "account"], sort=False)["amount_cents"].sum()
            rows = [
                {"posting_id": posting.id, "record_type": rt, "record_key": rk, "account": acc, "amount_cents": int(amt)}
                for (rt, rk, acc), amt in grouped.items()
            ]
            insert_ignore(session, PostingContribution, rows, ["posting_id", "record_type", "record_key", "account"])
        return posting.id, posting.status


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


def _send(engine: Engine, posting_id: int, send: Any) -> str:
    """Send one stored document; record the outcome. Transient errors propagate (retry)."""
    with session_scope(engine) as session:
        posting = session.get(ErpPosting, posting_id)
        assert posting is not None
        if posting.status == "posted":
            return "already_posted"
        posting.attempts += 1
        external_id = posting.external_id
    try:
        result: PostResult = send()
    except RejectedError as exc:
        with session_scope(engine) as session:
            posting = session.get(ErpPosting, posting_id)
            assert posting is not None
            posting.status = "rejected"
            posting.error_code = exc.code
            posting.response = exc.body
            open_business_exception(
                session, reason_code="ERP_REJECTED", interface=INTERFACE, record_type="posting", record_key=external_id,
                summary=f"ERP refused {posting.source} {external_id}: {exc.code}", detail={"code": exc.code, "body": exc.body},
            )
        return "rejected"
    with session_scope(engine) as session:
        posting = session.get(ErpPosting, posting_id)
        assert posting is not None
        posting.status = "posted"
        posting.erp_document_id = result.document_id
        posting.response = {"document_id": result.document_id, "replayed": result.replayed}
        posting.posted_at = utcnow()
        posting.error_code = None
        # A document the ERP refused earlier (closed period, inactive account) went through now.
        exceptions_repo.resolve_for(
            session, record_type="posting", record_keys=[external_id], reason_codes=["ERP_REJECTED"],
            note=f"posted as {result.document_id}",
        )
    return "replayed" if result.replayed else "posted"


def _journal(engine: Engine, erp: ErpClient, posting: Any, business_date: dt.date) -> str | None:
    batch: JournalBatch | None = posting.journal
    if batch is None:
        return None
    lines = [
        {"line_no": i, "account": ln.account, "cost_center": ln.cost_center, "location": ln.location, "facility": ln.facility,
         "debit_cents": ln.debit_cents, "credit_cents": ln.credit_cents, "memo": ln.memo}
        for i, ln in enumerate(batch.lines, start=1)
    ]
    posting_id, _ = _record(
        engine, kind="journal", source=batch.source, company=batch.company, business_date=business_date,
        external_id=batch.external_id, payload=_journal_payload(batch), lines=lines, contributions=posting.contributions,
        debit=batch.total_debit_cents, credit=batch.total_credit_cents,
    )
    return _send(engine, posting_id, lambda: erp.post_journal(batch))


def retry_pending(engine: Engine, erp: ErpClient, business_date: dt.date) -> int:
    """Re-send documents an interrupted run stored but did not confirm (idempotent by external id)."""
    with session_scope(engine) as session:
        pending = [(p.id, p.kind, p.payload) for p in session.scalars(
            select(ErpPosting).where(ErpPosting.status == "pending", ErpPosting.business_date == business_date)
        )]
    for posting_id, kind, payload in pending:
        _send(engine, posting_id, lambda k=kind, p=payload: erp.repost(k, p))
    return len(pending)


# --------------------------------------------------------------------------- the day


def post_charges(engine: Engine, erp: ErpClient, business_date: dt.date, *, mode: str = "summary", line_keys: list[str] | None = None) -> dict[str, Any]:
    """CHARGES and SUPPLY journals and the INVENTORY document for unposted routed charges."""
    with session_scope(engine) as session:
        mapped = unposted_charges(session, business_date, line_keys)
    outcome: dict[str, Any] = {"charges": len(mapped)}
    by_company: dict[str, list[MappedCharge]] = defaultdict(list)
    for m in mapped:
        by_company[m.company].append(m)
    for company, items in sorted(by_company.items()):
        frame = charges_frame(items)
        outcome[f"CHARGES {company}"] = _journal(engine, erp, charge_posting(frame, business_date=business_date, company=company, mode=mode), business_date)
        outcome[f"SUPPLY {company}"] = _journal(engine, erp, supply_posting(frame, business_date=business_date, company=company, mode=mode), business_date)
        movements = build_inventory_movements(frame, company=company)
        if movements:
            ext = inventory_external_id(company, business_date, movements)
            lines = [
                {"line_no": i, "location": m.location, "item": m.item, "quantity": m.quantity,
                 "unit_cost_cents": int(m.unit_cost * 100), "cost_center": m.cost_center, "debit_cents": 0, "credit_cents": 0}
                for i, m in enumerate(movements, start=1)
            ]
            payload = {"external_id": ext, "company": company, "movement_date": business_date.isoformat(),
                       "lines": [{"location": m.location, "item": m.item, "quantity": str(m.quantity), "unit_cost": str(m.unit_cost),
                                  "cost_center": m.cost_center, "movement_type": "consumption"} for m in movements]}
            posting_id, _ = _record(engine, kind="inventory", source="INVENTORY", company=company, business_date=business_date,
                                    external_id=ext, payload=payload, lines=lines, contributions=None)
            outcome[f"INVENTORY {company}"] = _send(
                engine, posting_id, lambda c=company, e=ext, mv=movements: erp.post_inventory(e, c, business_date.isoformat(), mv)
            )
    return outcome


def post_remittances(engine: Engine, erp: ErpClient, business_date: dt.date, *, mode: str = "summary") -> dict[str, Any]:
    """REMIT journal and cash receipts for balanced, mapped remittances of the date."""
    with session_scope(engine) as session:
        found = unposted_remittances(session, business_date)
    outcome: dict[str, Any] = {"remittances": len(found)}
    by_company: dict[str, list[tuple[int, MappedRemittance]]] = defaultdict(list)
    for item in found:
        by_company[item[1].company].append(item)
    for company, items in sorted(by_company.items()):
        remits = [m for _, m in items]
        outcome[f"REMIT {company}"] = _journal(
            engine, erp, remit_posting(remits, business_date=business_date, company=company, mode=mode), business_date
        )
        receipts: list[CashReceipt] = build_cash_receipts(remits)
        for receipt in receipts:
            payload = {"external_id": receipt.external_id, "trace_number": receipt.trace_number, "payer_id": receipt.payer_id,
                       "amount": format_cents(receipt.amount_cents), "facility": receipt.facility,
                       "company": receipt.company, "receipt_date": receipt.receipt_date.isoformat()}
            contributions = pd.DataFrame(
                [{"record_type": "receipt", "record_key": receipt.trace_number, "account": "1010", "amount_cents": receipt.amount_cents}]
            )
            posting_id, _ = _record(engine, kind="cash", source="CASH", company=company, business_date=business_date,
                                    external_id=receipt.external_id, payload=payload, lines=[], contributions=contributions,
                                    debit=receipt.amount_cents)
            outcome[f"CASH {receipt.trace_number}"] = _send(engine, posting_id, lambda r=receipt: erp.post_cash_receipt(r))
        with session_scope(engine) as session:
            for remit_id, _ in items:
                row = session.get(RemittanceRow, remit_id)
                if row is not None:
                    row.status = "posted"
    return outcome


def post_day(engine: Engine, erp: ErpClient, business_date: dt.date, *, mode: str = "summary") -> dict[str, Any]:
    """Everything the ERP should receive for one business date, posted exactly once."""
    return {
        "retried_pending": retry_pending(engine, erp, business_date),
        **post_charges(engine, erp, business_date, mode=mode),
        **post_remittances(engine, erp, business_date, mode=mode),
    }
