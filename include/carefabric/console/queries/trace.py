"""Trace a key (line key, control id, claim id, trace number, file, ERP external id) to
everything that came of it, without ever reading a raw payload."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from sqlalchemy import func, or_, select
from sqlalchemy.orm import Session

from carefabric.console.queries.common import (
    CHUNK,
    TRACE_LIMIT,
    _chunks,
    charge_json,
    exception_json,
    file_json,
    iso,
    message_json,
    money,
    posting_json,
    recon_item_json,
    remittance_json,
)
from carefabric.store.models import (
    BillingClaim,
    Charge,
    ErpPosting,
    ExceptionRecord,
    InboundFile,
    PostingContribution,
    RawMessage,
    ReconciliationItem,
    ReconciliationRun,
    RemitClaim,
    Remittance,
)

# --------------------------------------------------------------------------- trace


class _Trace:
    def __init__(self) -> None:
        self.files: dict[int, InboundFile] = {}
        self.messages: dict[int, RawMessage] = {}
        self.charges: dict[str, Charge] = {}
        self.remittances: dict[int, Remittance] = {}
        self.claims: dict[str, list[RemitClaim]] = defaultdict(list)
        self.claim_ids: set[str] = set()
        self.trace_numbers: set[str] = set()
        self.truncated: dict[str, bool] = {}
        self.matched_as: list[str] = []


def _add_charges_of_messages(session: Session, t: _Trace, messages: Iterable[RawMessage]) -> None:
    pairs = {(m.sender, m.control_id) for m in messages}
    by_control: dict[str, set[str]] = defaultdict(set)
    for sender, control in pairs:
        by_control[control].add(sender)
    for chunk in _chunks(by_control):
        for c in session.scalars(select(Charge).where(Charge.message_control_id.in_(chunk)).order_by(Charge.id)):
            if c.source in by_control[c.message_control_id]:
                if len(t.charges) >= TRACE_LIMIT:
                    t.truncated["charges"] = True
                    return
                t.charges[c.line_key] = c


def _add_messages_of_charges(session: Session, t: _Trace, charges: Iterable[Charge]) -> None:
    wanted = {(c.source, c.message_control_id) for c in charges}
    for chunk in _chunks({control for _, control in wanted}):
        for m in session.scalars(select(RawMessage).where(RawMessage.control_id.in_(chunk))):
            if (m.sender, m.control_id) in wanted:
                t.messages[m.id] = m


def _add_files(session: Session, t: _Trace, file_ids: Iterable[int]) -> None:
    missing = [i for i in set(file_ids) if i is not None and i not in t.files]
    for chunk in _chunks(missing):
        for f in session.scalars(select(InboundFile).where(InboundFile.id.in_(chunk))):
            t.files[f.id] = f


def _add_remittances(session: Session, t: _Trace, remits: Iterable[Remittance], *, with_claims: bool) -> None:
    for r in remits:
        t.remittances[r.id] = r
        t.trace_numbers.add(r.trace_number)
        if with_claims:
            for claim in r.claims:
                t.claims[claim.patient_control_number].append(claim)
                t.claim_ids.add(claim.patient_control_number)
    _add_files(session, t, [r.file_id for r in t.remittances.values() if r.file_id])


def _seed(session: Session, t: _Trace, key: str) -> None:
    """What ``key`` names directly: each kind it matches adds its records and says so."""
    _seed_line_or_message(session, t, key)
    _seed_claim_or_trace(session, t, key)
    _seed_file(session, t, key)
    # An ERP posting external id.
    posting = session.scalars(select(ErpPosting).where(ErpPosting.external_id == key)).first()
    if posting is not None:
        t.matched_as.append("posting_external_id")
    _add_files(session, t, [m.file_id for m in t.messages.values() if m.file_id])


def _seed_line_or_message(session: Session, t: _Trace, key: str) -> None:
    # A charge line key.
    charge = session.scalars(select(Charge).where(Charge.line_key == key)).first()
    if charge is not None:
        t.matched_as.append("line_key")
        t.charges[charge.line_key] = charge
        _add_messages_of_charges(session, t, [charge])
    # A message control id (MSH-10, FHIR resource id).
    messages = list(session.scalars(select(RawMessage).where(RawMessage.control_id == key)))
    if messages:
        t.matched_as.append("message_control_id")
        for m in messages:
            t.messages[m.id] = m
        _add_charges_of_messages(session, t, messages)


def _seed_claim_or_trace(session: Session, t: _Trace, key: str) -> None:
    # A claim id (CLP01 = billing claim id).
    remit_claims = list(session.scalars(select(RemitClaim).where(RemitClaim.patient_control_number == key)))
    billed = session.scalar(select(func.count()).select_from(BillingClaim).where(BillingClaim.claim_id == key))
    if remit_claims or billed:
        t.matched_as.append("claim_id")
        t.claim_ids.add(key)
        for claim in remit_claims:
            t.claims[key].append(claim)
        _add_remittances(session, t, {c.remittance for c in remit_claims}, with_claims=False)
    # A payment trace number (TRN02).
    remits = list(session.scalars(select(Remittance).where(Remittance.trace_number == key)))
    if remits:
        t.matched_as.append("trace_number")
        _add_remittances(session, t, remits, with_claims=True)


def _seed_file(session: Session, t: _Trace, key: str) -> None:
    """A file: sha256 (or a prefix of 8+ hex characters) or its name; its messages (up to the
    trace limit), their charges and its remittances."""
    conds = [InboundFile.name == key, InboundFile.sha256 == key.lower()]
    if len(key) >= 8 and all(ch in "0123456789abcdefABCDEF" for ch in key):
        conds.append(InboundFile.sha256.startswith(key.lower()))
    files = list(session.scalars(select(InboundFile).where(or_(*conds))))
    if not files:
        return
    t.matched_as.append("file")
    for f in files:
        t.files[f.id] = f
    ids = [f.id for f in files]
    msgs = list(
        session.scalars(
            select(RawMessage).where(RawMessage.file_id.in_(ids)).order_by(RawMessage.id).limit(TRACE_LIMIT + 1)
        )
    )
    if len(msgs) > TRACE_LIMIT:
        t.truncated["messages"] = True
        msgs = msgs[:TRACE_LIMIT]
    for m in msgs:
        t.messages[m.id] = m
    _add_charges_of_messages(session, t, msgs)
    _add_remittances(
        session, t, session.scalars(select(Remittance).where(Remittance.file_id.in_(ids))), with_claims=True
    )


def trace(session: Session, key: str) -> dict[str, Any]:
    """Everything the store knows about ``key``: a line key, a message control id, a claim id
    (CLP01), a payment trace number, a file sha256 (or 8+ character prefix) or file name.

    Path: inbound files -> raw messages (status only, never the payload) -> charges -> exceptions
    -> ERP postings the records contributed to -> reconciliation items (latest run per date).
    """
    key = key.strip()
    if not key:
        raise ValueError("give a line key, control id, claim id, trace number, file sha256 or file name")
    t = _Trace()
    _seed(session, t, key)
    exceptions = _exceptions(session, t, key)
    posting_list = _postings(session, t, key)
    recon = _reconciliation(session, t)
    found = bool(t.matched_as or exceptions or posting_list or recon)
    return {
        "key": key,
        "found": found,
        "matched_as": t.matched_as or (["exception_record_key"] if exceptions else []),
        "files": [file_json(f) for f in sorted(t.files.values(), key=lambda f: f.id)],
        "messages": [message_json(m) for m in sorted(t.messages.values(), key=lambda m: m.id)],
        "charges": [charge_json(c) for c in sorted(t.charges.values(), key=lambda c: c.id)],
        "remittances": [remittance_json(r) for r in sorted(t.remittances.values(), key=lambda r: r.id)],
        "claims": _claims(t),
        "billing_claims": _billing_claims(session, t),
        "exceptions": [exception_json(e) for e in exceptions],
        "postings": posting_list,
        "reconciliation": recon,
        "truncated": t.truncated,
    }


def _exceptions(session: Session, t: _Trace, key: str) -> list[ExceptionRecord]:
    """Exceptions about any of the traced records (each kind of record has its own key shape)."""
    conds: list[Any] = [ExceptionRecord.record_key == key, ExceptionRecord.record_key.startswith(f"{key}|", autoescape=True)]
    for chunk in _chunks(t.charges):
        conds.append((ExceptionRecord.record_type == "charge") & ExceptionRecord.record_key.in_(chunk))
    for f in t.files.values():
        conds.append(ExceptionRecord.record_key == f.sha256)
        conds.append(ExceptionRecord.record_key == f"{f.name}|{f.sha256[:12]}")
        # The same bytes delivered under another name (a duplicate) are keyed by that name.
        conds.append((ExceptionRecord.record_type == "file") & ExceptionRecord.record_key.endswith(f"|{f.sha256[:12]}"))
    error_keys = [
        f"{t.files[m.file_id].sha256[:12]}#{m.position}"
        for m in t.messages.values()
        if m.status == "error" and m.file_id in t.files and m.position is not None
    ]
    if error_keys:
        conds.append((ExceptionRecord.record_type == "message") & ExceptionRecord.record_key.in_(error_keys))
    if t.messages:
        conds.append(ExceptionRecord.message_id.in_(list(t.messages)[:CHUNK]))
    if t.remittances:
        keys = [f"{r.interchange_control}|{r.group_control}|{r.transaction_control}|{r.sender_id}"
                for r in t.remittances.values()]
        conds.append((ExceptionRecord.record_type == "remittance") & ExceptionRecord.record_key.in_(keys))
    return list(session.scalars(select(ExceptionRecord).where(or_(*conds)).order_by(ExceptionRecord.id)))


def _postings(session: Session, t: _Trace, key: str) -> list[dict[str, Any]]:
    """ERP postings the traced lines, claims and traces contributed to, amounts per account."""
    conds: list[Any] = [PostingContribution.record_key == key]
    for chunk in _chunks(t.charges):
        conds.append(PostingContribution.record_key.in_(chunk))
    for value in sorted(t.claim_ids | t.trace_numbers):
        conds.append(PostingContribution.record_key == value)
        conds.append(PostingContribution.record_key.startswith(f"{value}|", autoescape=True))
    whole_document = "posting_external_id" in t.matched_as
    if whole_document:
        conds = [ErpPosting.external_id == key]
    postings: dict[int, dict[str, Any]] = {}
    rows = session.execute(
        select(ErpPosting, PostingContribution)
        .join(PostingContribution, PostingContribution.posting_id == ErpPosting.id)
        .where(or_(*conds))
        .order_by(ErpPosting.id, PostingContribution.id)
        .limit(5000)
    ).all()
    for posting, contribution in rows:
        entry = postings.setdefault(posting.id, {**posting_json(posting), "contributions": {}})
        if whole_document and len(entry["contributions"]) >= 50:
            continue  # a whole document: show a sample of what it carries
        label = f"{contribution.record_type} {contribution.record_key}"
        by_account = entry["contributions"].setdefault(label, defaultdict(int))
        by_account[contribution.account] += contribution.amount_cents
    for entry in postings.values():
        entry["contributions"] = [
            {"record": label, "account": account, "amount": money(cents)}
            for label, accounts in entry["contributions"].items()
            for account, cents in sorted(accounts.items())
        ]
    return list(postings.values())


def _reconciliation(session: Session, t: _Trace) -> list[dict[str, Any]]:
    """Reconciliation items (latest run of each business date) that mention the traced records."""
    latest_runs = {
        run.business_date: run
        for run in session.scalars(select(ReconciliationRun).order_by(ReconciliationRun.business_date, ReconciliationRun.run_number))
    }
    runs_by_id = {run.id: run for run in latest_runs.values()}
    conds: list[Any] = []
    charge_keys = {f"{c.business_date.isoformat()}|{c.cost_center}" for c in t.charges.values() if c.business_date and c.cost_center}
    if charge_keys:
        conds.append((ReconciliationItem.check_name == "charges") & ReconciliationItem.item_key.in_(sorted(charge_keys)))
    for claim_id in sorted(t.claim_ids):
        conds.append(
            (ReconciliationItem.check_name == "claims")
            & or_(ReconciliationItem.item_key == claim_id, ReconciliationItem.item_key.startswith(f"{claim_id}|", autoescape=True))
        )
    if t.trace_numbers:
        conds.append((ReconciliationItem.check_name == "cash") & ReconciliationItem.item_key.in_(sorted(t.trace_numbers)))
    if not (conds and runs_by_id):
        return []
    items = session.scalars(
        select(ReconciliationItem)
        .where(ReconciliationItem.run_id.in_(list(runs_by_id)), or_(*conds))
        .order_by(ReconciliationItem.run_id, ReconciliationItem.id)
    )
    return [recon_item_json(item, runs_by_id[item.run_id]) for item in items]


def _billing_claims(session: Session, t: _Trace) -> list[dict[str, Any]]:
    billing = []
    for chunk in _chunks(t.claim_ids):
        for b in session.scalars(select(BillingClaim).where(BillingClaim.claim_id.in_(chunk))):
            billing.append(
                {"claim_id": b.claim_id, "facility": b.facility, "payer_id": b.payer_id,
                 "total_charge": money(b.total_charge_cents), "status": b.status,
                 "submitted_date": iso(b.submitted_date)}
            )
    return sorted(billing, key=lambda b: b["claim_id"])


def _claims(t: _Trace) -> list[dict[str, Any]]:
    return [
        {
            "claim_id": claim_id,
            "remittance_id": c.remittance_id,
            "clp02_status": c.status,
            "charge": money(c.charge_cents),
            "paid": money(c.paid_cents),
            "patient_responsibility": money(c.patient_resp_cents),
        }
        for claim_id, items in sorted(t.claims.items())
        for c in items
    ]
