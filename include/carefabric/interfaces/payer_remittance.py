"""Payer remittance: X12 835 files from the payers' SFTP folders to stored, balanced remittances.

The story, in the order the ``payer_remittance`` DAG runs it:

1. The DAG lists ``/inbound/<payer>/*.835`` on the SFTP server; each file is fetched by its own
   mapped task, which refuses unsafe names (``accept_remote_path``), stages the bytes for the
   next task (``carefabric_airflow.handoff``: object storage, not the worker's disk) and moves
   the original into ``/archive/<payer>/`` on the server (``carefabric_airflow.payer_transport``).
2. ``process_file`` (one mapped task per file): register by sha256, copy to the local archive,
   refuse a duplicate interchange (same bytes under another name, or ISA13/GS06/ST02 already
   stored), recognise a payment already received under new envelope numbers
   (``remit_duplicates``: ``DUPLICATE_PAYMENT``, or ``TRACE_REUSED`` for another payment under a
   known trace; stored, never posted), validate syntax with pyx12 and keep a 999 for every file, parse with the streaming
   reader (balancing checked as it goes), map payer and payee, and store. A file that does not
   read or does not balance is an exception and nothing from it posts; TR3 findings that do not
   touch the money are accepted unless the payer's strictness setting says otherwise.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import shutil
import tempfile
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

from sqlalchemy import delete, func, insert, select, tuple_, update
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from carefabric.canonical import Remittance
from carefabric.interfaces.common import (
    UnsafeFileName,
    archive_copy,
    file_digest,
    open_business_exception,
    register_file,
    safe_name,
)
from carefabric.interfaces.remit_duplicates import PaymentConflict, find_conflict, open_conflict_exceptions
from carefabric.mapping import Held, map_remittance
from carefabric.money import to_cents
from carefabric.store import exceptions_repo
from carefabric.store.bulk import insert_ignore, table_of
from carefabric.store.crosswalks import Crosswalks
from carefabric.store.db import session_scope
from carefabric.store.models import (
    Ack999,
    InboundFile,
    ProviderAdjustment,
    RemitAdjustment,
    RemitClaim,
    RemitLine,
)
from carefabric.store.models import Remittance as RemittanceRow
from carefabric.store.types import utcnow
from carefabric.x12 import X12Error, iter_transactions, validate_file

log = logging.getLogger(__name__)

INTERFACE = "payer_remittance"


def safe_remote_path(remote_path: str, inbound_root: str = "/inbound") -> tuple[str, str]:
    """(payer, file name) of ``/inbound/<payer>/<name>.835``; ``UnsafeFileName`` for anything else.

    A listing comes from a server we do not control: a name with ``..``, a separator, or a path
    outside the inbound root must never become a local path or a server-side move target.
    """
    path = PurePosixPath(remote_path)
    parts = path.parts
    root = PurePosixPath(inbound_root).parts
    if len(parts) != len(root) + 2 or parts[: len(root)] != root:
        raise UnsafeFileName(f"unexpected remote path {remote_path!r}")
    payer, name = safe_name(parts[-2]), safe_name(parts[-1])
    return payer, name


def accept_remote_path(engine: Engine, remote_path: str, inbound_root: str = "/inbound") -> tuple[str, str] | None:
    """(payer, name) of a listed file, or None after an ``UNSAFE_FILE_NAME`` exception for it
    (the file stays on the server untouched; the rest of the listing goes on)."""
    try:
        return safe_remote_path(remote_path, inbound_root)
    except UnsafeFileName as exc:
        with session_scope(engine) as session:
            open_business_exception(
                session, reason_code="UNSAFE_FILE_NAME", interface=INTERFACE, record_type="remote_file",
                record_key=remote_path[:255], summary=str(exc)[:480],
            )
        return None


#: File-level reasons a crosswalk fix can cure: replaying them reads the archived file again.
REPLAYABLE_FILE_REASONS = ("UNKNOWN_PAYER", "UNKNOWN_FACILITY")


def reprocess_file(engine: Engine, record_key: str, *, payer_folder: str = "default") -> dict[str, Any]:
    """Read a held 835 again from its archive after its crosswalk was fixed (``exception_replay``).

    ``record_key`` is the file exception's ``<name>|<sha12>``. What the first reading stored is
    discarded and the file is processed as if it had just arrived, under its first business date,
    so an unknown payer's cash finally posts (and its suspense clears with it).
    """
    name, _, sha12 = record_key.partition("|")
    with session_scope(engine) as session:
        row = session.scalars(select(InboundFile).where(InboundFile.source == "payer", InboundFile.name == name,
                                                        InboundFile.sha256.startswith(sha12))).first()
        if row is None or not row.archive_path or not Path(row.archive_path).exists():
            return {"file": name, "status": "not_found"}
        day = session.scalar(select(func.min(RemittanceRow.business_date)).where(RemittanceRow.file_id == row.id))
        row.status = "processing"
        row.received_at = dt.datetime(2000, 1, 1, tzinfo=dt.UTC)  # stale at once: taken over below
        archive = Path(row.archive_path)
    with tempfile.TemporaryDirectory(prefix="carefabric_replay_") as tmp:
        copy = Path(tmp) / name
        shutil.copyfile(archive, copy)
        return process_file(copy, engine, payer_folder=payer_folder, business_date=day or dt.date.today(),
                            stale_after=0)


def _interrupted(row: InboundFile, stale_after: float | None = None) -> bool:
    """A file left ``received``/``processing`` by an attempt that started long enough ago to be dead.

    ``stale_after`` seconds, else ``CAREFABRIC_STALE_FILE_SECONDS`` (default 900, longer than any
    one file takes), keeps a file that another worker is still reading from being taken over.
    """
    seconds = stale_after if stale_after is not None else float(os.environ.get("CAREFABRIC_STALE_FILE_SECONDS", "900"))
    stale = dt.timedelta(seconds=seconds)
    started = row.received_at if row.received_at.tzinfo else row.received_at.replace(tzinfo=dt.UTC)
    return row.status in ("received", "processing") and started <= utcnow() - stale


def _forget_partial_attempt(session: Session, row: InboundFile) -> int:
    """Delete the remittances and 999s an interrupted attempt stored for this file; restart its clock."""
    ids = list(session.scalars(select(RemittanceRow.id).where(RemittanceRow.file_id == row.id)))
    for remit_id in ids:
        found = session.get(RemittanceRow, remit_id)
        if found is not None:
            session.delete(found)
    session.execute(delete(Ack999).where(Ack999.file_id == row.id))
    row.received_at = utcnow()
    session.flush()
    return len(ids)


def _strict_for(payer: str, strictness: dict[str, str]) -> bool:
    return strictness.get(payer, strictness.get("default", "lenient")) == "strict"


def process_file(
    path: Path,
    engine: Engine,
    *,
    payer_folder: str,
    business_date: dt.date,
    strictness: dict[str, str] | None = None,
    stale_after: float | None = None,
) -> dict[str, Any]:
    """Validate, parse, balance, map and store one 835 file; returns counts (no PHI)."""
    sha, size = file_digest(path)
    with session_scope(engine) as session:
        row, new = register_file(session, source="payer", interface=INTERFACE, name=path.name, sha256=sha, size=size)
        if not new:
            if row.name != path.name:
                open_business_exception(
                    session, reason_code="DUPLICATE_INTERCHANGE", interface=INTERFACE, record_type="file",
                    record_key=f"{path.name}|{sha[:12]}",
                    summary=f"{path.name} repeats {row.name} byte for byte; nothing from it posts",
                    detail={"file": path.name, "first_file": row.name, "payer_folder": payer_folder},
                )
                return {"file": path.name, "status": "duplicate", "duplicate_of": row.name}
            if not _interrupted(row, stale_after):
                return {"file": path.name, "status": "already_processed"}
            # An earlier attempt died part-way (worker killed, database connection lost): forget
            # what it stored and read the file again, rather than skip it for good.
            forgotten = _forget_partial_attempt(session, row)
            log.warning("%s: an interrupted attempt is taken over (%d remittance(s) of it discarded)", path.name, forgotten)
        file_id = row.id
        row.archive_path = str(archive_copy(path, "payer", sha, business_date))
        row.status = "processing"

    validation = validate_file(path, strict=_strict_for(payer_folder, strictness or {}))
    ack_path = Path(row.archive_path).with_suffix(".999")
    ack_path.write_text(validation.ack_999)
    findings = [f.to_dict() for f in validation.findings]

    notes: list[str] = []
    try:  # a streamed pass that keeps only the errors: is every transaction readable?
        errors = [item for item in iter_transactions(path, file_findings=notes) if isinstance(item, X12Error)]
    except X12Error as exc:
        return _reject(engine, file_id, path.name, validation, findings, "X12_UNREADABLE", f"{path.name}: {exc}")
    if errors:
        # The reader's first file-level finding names the cause when the envelope only looks cut
        # (segments written with other delimiters than the ISA declares read as "no IEA").
        reasons = "; ".join([*(str(e) for e in errors), *notes[:1]])[:400]
        return _reject(engine, file_id, path.name, validation, findings, "X12_UNREADABLE", f"{path.name}: {reasons}")

    with session_scope(engine) as session:
        _store_ack(session, file_id, validation, findings)
        cw = Crosswalks.load(session)
    seen = _Seen()
    for remit in iter_transactions(path):  # one transaction in memory at a time
        assert not isinstance(remit, X12Error)  # the pass above found none
        with session_scope(engine) as session:
            duplicate = _already_stored(session, [remit])
            if duplicate:
                seen.duplicate = duplicate
                break
            outcome = map_remittance(remit, cw, business_date=business_date, record_key=_remit_key(remit))
            mapping = None if isinstance(outcome, Held) else outcome
            if isinstance(outcome, Held):
                seen.held.append(outcome)
            if not remit.balanced:
                seen.unbalanced += list(remit.balance_errors)
            conflict = find_conflict(session, remit, file_id=file_id, file_name=path.name)
            if conflict is not None:
                seen.conflicts.append(conflict)
            status = "rejected" if conflict else "received" if remit.balanced else "unbalanced"
            _store_remittance(session, remit, file_id, business_date, mapping, status)
        seen.add(remit, quality=conflict is None)

    accepted = validation.accepted and not seen.unbalanced and not seen.held and not seen.duplicate
    every = bool(seen.conflicts) and len(seen.conflicts) == seen.transactions  # nothing new in the file
    all_duplicates = every and all(c.reason_code == "DUPLICATE_PAYMENT" for c in seen.conflicts)
    verdict = "duplicate" if seen.duplicate or all_duplicates else "accepted" if accepted and not every else "rejected"
    with session_scope(engine) as session:
        # The file's verdict applies to all of its transactions at once: nothing from a file that
        # does not balance, map or read posts, even the transactions that were fine on their own.
        session.execute(
            update(RemittanceRow)
            .where(RemittanceRow.file_id == file_id, RemittanceRow.status == "received")
            .values(status="balanced" if accepted else "rejected")
        )
        _open_file_exceptions(session, path.name, sha, seen, validation, findings)
        open_conflict_exceptions(session, seen.conflicts, interface=INTERFACE)
        # A half-uploaded file under this name was unreadable; this one read completely.
        exceptions_repo.resolve_for(
            session, record_type="file", record_keys=[path.name], reason_codes=["X12_UNREADABLE"],
            note=f"the complete file under the same name was read (sha256 {sha[:12]})",
        )
        _finish(session, file_id, {"accepted": "processed"}.get(verdict, verdict), None)
    if accepted and seen.quality["remittances"]:
        _validate(engine, seen, sha, business_date)
    return {
        "file": path.name,
        "status": verdict,
        "transactions": seen.transactions,
        "claims": seen.claims,
        "findings": len(findings),
        "unbalanced": len(seen.unbalanced),
        "held": [h.reason_code for h in seen.held],
        "payment_conflicts": [c.reason_code for c in seen.conflicts],
    }


@dataclass
class _Seen:
    """What a streamed pass over a file's transactions remembers: verdict inputs and GX rows."""

    transactions: int = 0
    claims: int = 0
    duplicate: str | None = None
    unbalanced: list[str] = field(default_factory=list)
    held: list[Held] = field(default_factory=list)
    conflicts: list[PaymentConflict] = field(default_factory=list)
    quality: dict[str, list[dict[str, Any]]] = field(default_factory=lambda: {"remittances": [], "remit_claims": []})

    def add(self, remit: Remittance, *, quality: bool = True) -> None:
        self.transactions += 1
        self.claims += len(remit.claims)
        if not quality:  # a payment already received: GX judges what will post
            return
        self.quality["remittances"].append(
            {"trace_number": remit.trace_number, "payment_cents": to_cents(remit.payment_amount), "balanced": remit.balanced}
        )
        self.quality["remit_claims"] += [
            {"patient_control_number": c.patient_control_number, "status": c.status,
             "charge_cents": to_cents(c.charge), "paid_cents": to_cents(c.paid)}
            for c in remit.claims
        ]


def _open_file_exceptions(session: Session, name: str, sha: str, seen: _Seen, validation: Any, findings: list[dict[str, Any]]) -> None:
    """One business exception per reason the file cannot post."""
    key = f"{name}|{sha[:12]}"
    if seen.duplicate:
        open_business_exception(
            session, reason_code="DUPLICATE_INTERCHANGE", interface=INTERFACE, record_type="file", record_key=key,
            summary=f"{name}: interchange {seen.duplicate} was already received; nothing from it posts",
            detail={"file": name, "control_numbers": seen.duplicate},
        )
        return
    if seen.unbalanced:
        open_business_exception(
            session, reason_code="REMIT_UNBALANCED", interface=INTERFACE, record_type="file", record_key=key,
            summary=f"{name}: does not balance ({seen.unbalanced[0]}); nothing from it posts"[:480],
            detail={"file": name, "errors": seen.unbalanced[:20]},
        )
    for held in seen.held:
        open_business_exception(
            session, reason_code=held.reason_code, interface=INTERFACE, record_type="file", record_key=key,
            summary=f"{name}: {held.summary}; nothing from it posts", detail={"file": name, **held.detail},
        )
    if not validation.accepted and not seen.unbalanced and not seen.held:
        open_business_exception(
            session, reason_code="X12_REJECTED", interface=INTERFACE, record_type="file", record_key=key,
            summary=f"{name}: rejected by the payer's strict syntax setting ({len(findings)} findings)",
            detail={"file": name, "findings": findings[:20]},
        )


def _validate(engine: Engine, seen: _Seen, sha: str, business_date: dt.date) -> None:
    """Great Expectations on what will post from this file: its remittances and claims, as frames."""
    import pandas as pd

    from carefabric.interfaces.common import store_quality
    from carefabric.quality import validate_frame

    columns = {"remittances": ["trace_number", "payment_cents", "balanced"],
               "remit_claims": ["patient_control_number", "status", "charge_cents", "paid_cents"]}
    with session_scope(engine) as session:
        for dataset, rows in seen.quality.items():
            result = validate_frame(dataset, pd.DataFrame(rows, columns=columns[dataset]))
            store_quality(session, interface=INTERFACE, dataset=dataset, scope=sha, business_date=business_date, result=result)


def _remit_key(remit: Remittance) -> str:
    return f"{remit.sender_id}|{remit.interchange_control}|{remit.group_control}|{remit.transaction_control}"


def _already_stored(session: Session, remits: list[Remittance]) -> str | None:
    keys = [(r.interchange_control, r.group_control, r.transaction_control, r.sender_id) for r in remits]
    if not keys:
        return None
    found = session.execute(
        select(RemittanceRow.interchange_control, RemittanceRow.group_control, RemittanceRow.transaction_control).where(
            tuple_(
                RemittanceRow.interchange_control, RemittanceRow.group_control,
                RemittanceRow.transaction_control, RemittanceRow.sender_id,
            ).in_(keys)
        )
    ).first()
    return "/".join(found) if found else None


def _store_ack(session: Session, file_id: int, validation: Any, findings: list[dict[str, Any]]) -> None:
    insert_ignore(
        session, Ack999,
        [{"file_id": file_id, "group_control": "", "content": validation.ack_999, "accepted": validation.accepted, "findings": findings}],
        ["file_id", "group_control"],
    )


def _finish(session: Session, file_id: int, status: str, detail: str | None) -> None:
    row = session.get(InboundFile, file_id)
    assert row is not None
    row.status = status
    row.processed_at = utcnow()
    row.detail = detail


def _reject(engine: Engine, file_id: int, name: str, validation: Any, findings: list[dict[str, Any]], reason: str, summary: str) -> dict[str, Any]:
    with session_scope(engine) as session:
        _store_ack(session, file_id, validation, findings)
        open_business_exception(
            session, reason_code=reason, interface=INTERFACE, record_type="file", record_key=name,
            summary=summary[:480], detail={"file": name},
        )
        _finish(session, file_id, "rejected", summary[:1000])
    return {"file": name, "status": "rejected", "reason": reason}


def _store_remittance(
    session: Session, remit: Remittance, file_id: int, business_date: dt.date, mapping: Any, status: str
) -> None:
    """One remittance with its claims, lines, adjustments and PLB (names and member ids are not stored).

    The transaction row goes through the ORM; its claims, lines and adjustments (thousands in one
    835 transaction) go in as bulk INSERT ... RETURNING in parameter order, the ids of each level
    keying the next: object by object, the ORM's unit of work took about as long per file as
    pyx12's validation of it.
    """
    row = RemittanceRow(
        interchange_control=remit.interchange_control,
        group_control=remit.group_control,
        transaction_control=remit.transaction_control,
        sender_id=remit.sender_id,
        version=remit.version,
        file_id=file_id,
        payer_id=remit.payer_id,
        payer_name=remit.payer_name,
        erp_payer_id=mapping.erp_payer_id if mapping else None,
        payee_npi=remit.payee_npi,
        payee_name=remit.payee_name,
        trace_number=remit.trace_number,
        trace_originator=remit.trace_originator,
        credit_debit=remit.credit_debit,
        payment_method=remit.payment_method,
        payment_cents=to_cents(remit.payment_amount),
        payment_date=remit.payment_date,
        business_date=business_date,
        facility=mapping.facility if mapping else None,
        company=mapping.company if mapping else None,
        status=status,
        balance_errors=list(remit.balance_errors),
        findings=list(remit.findings),
    )
    session.add(row)
    session.flush()
    claim_rows: list[dict[str, Any]] = []
    lines: list[dict[str, Any]] = []
    adjustments: list[dict[str, Any]] = []
    for cseq, claim in enumerate(remit.claims, start=1):
        claim_rows.append({
            "remittance_id": row.id, "seq": cseq, "patient_control_number": claim.patient_control_number,
            "status": claim.status, "charge_cents": to_cents(claim.charge), "paid_cents": to_cents(claim.paid),
            "patient_resp_cents": to_cents(claim.patient_responsibility) if claim.patient_responsibility is not None else None,
            "payer_claim_control": claim.payer_claim_control,
        })
        aseq = 0  # claim-level CAS first, then each line's: the order (and ids) the ORM gave them
        for adj in claim.adjustments:
            aseq += 1
            adjustments.append({"_claim": cseq - 1, "_line": None, "level": "claim", "line_seq": 0, "seq": aseq,
                                "group_code": adj.group, "reason_code": adj.reason,
                                "amount_cents": to_cents(adj.amount), "quantity": adj.quantity})
        for lseq, line in enumerate(claim.lines, start=1):
            lines.append({
                "_claim": cseq - 1, "seq": lseq, "procedure": line.procedure, "charge_cents": to_cents(line.charge),
                "paid_cents": to_cents(line.paid), "units": line.units, "service_date": line.service_date,
                "line_ref": line.line_ref, "allowed_cents": to_cents(line.allowed) if line.allowed is not None else None,
            })
            for adj in line.adjustments:
                aseq += 1
                adjustments.append({"_claim": cseq - 1, "_line": len(lines) - 1, "level": "line", "line_seq": lseq,
                                    "seq": aseq, "group_code": adj.group, "reason_code": adj.reason,
                                    "amount_cents": to_cents(adj.amount), "quantity": adj.quantity})
    claim_ids = _insert_ids(session, RemitClaim, claim_rows)
    for ln in lines:
        ln["claim_id"] = claim_ids[ln.pop("_claim")]
    line_ids = _insert_ids(session, RemitLine, lines)
    for a in adjustments:
        a["claim_id"], line = claim_ids[a.pop("_claim")], a.pop("_line")
        a["line_id"] = None if line is None else line_ids[line]
    plbs = [{"remittance_id": row.id, "seq": pseq, "provider_id": plb.provider_id, "fiscal_date": plb.fiscal_date,
             "reason": plb.reason, "reference": plb.reference, "amount_cents": to_cents(plb.amount)}
            for pseq, plb in enumerate(remit.provider_adjustments, start=1)]
    for model, rows in ((RemitAdjustment, adjustments), (ProviderAdjustment, plbs)):
        if rows:
            session.execute(insert(table_of(model)), rows)


def _insert_ids(session: Session, model: Any, rows: list[dict[str, Any]]) -> list[int]:
    """Insert ``rows`` (same keys each) as one batched statement; their ids, in the rows' order.

    A Core insert on the table: an ORM bulk insert regroups rows by which values are None and
    sends a statement per group (a few rows each for CAS rows of mixed levels).
    """
    if not rows:
        return []
    table = table_of(model)
    return list(session.scalars(insert(table).returning(table.c.id, sort_by_parameter_order=True), rows))
