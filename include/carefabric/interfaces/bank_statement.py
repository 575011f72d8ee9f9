"""Bank statement: the bank's daily BAI2 file from its SFTP folder to stored deposits.

The story, in the order the ``bank_statement`` DAG runs it:

1. ``fetch_statements``: list ``/inbound/bank/`` through a transport passed in (the DAG hands
   the Airflow SFTP hook's paramiko client, tests a paramiko client of their own), refuse unsafe
   names (``UNSAFE_FILE_NAME``), download each statement to a local inbox and move the original
   into ``/archive/bank/`` on the server.
2. ``process_statement`` per file: register it by sha256, copy it to the local archive
   (``archive/bank/<date>/``), read it (``carefabric.bank.read_statement``) and store its credits
   in ``bank_deposits``. A file that cannot be read, or whose 49/98/99 control totals do not add
   up, stores nothing and opens one ``BANK_FILE_UNREADABLE`` exception naming the reason: a
   statement that does not add up cannot be the bank side of the cash check. A statement
   delivered again (same bytes, or the same deposits in a new file) stores nothing twice.

``cash_sides`` reads, for a business date, the two independent sides the cash check compares:
the 835 payments (BPR02 per TRN02) and the bank's deposits, as frames for
``carefabric.bank.match_deposits``.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import logging
from collections import Counter
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from sqlalchemy import func, select
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from carefabric.bank import BankFileError, BankStatement, BankTransaction, read_statement
from carefabric.interfaces.common import (
    UnsafeFileName,
    archive_copy,
    file_digest,
    open_business_exception,
    register_file,
    safe_name,
)
from carefabric.store.bulk import insert_ignore
from carefabric.store.db import session_scope
from carefabric.store.models import BankDeposit, InboundFile, Remittance
from carefabric.store.types import utcnow

if TYPE_CHECKING:
    import pandas as pd

log = logging.getLogger(__name__)

INTERFACE = "bank_statement"
INBOUND = "/inbound/bank"
ARCHIVE = "/archive/bank"
SUFFIXES = (".bai", ".bai2")


class SftpClient(Protocol):
    """The part of a paramiko ``SFTPClient`` the fetch uses (the Airflow SFTP hook's managed
    connection is one)."""

    def listdir(self, path: str = ".") -> list[str]: ...
    def get(self, remotepath: str, localpath: str) -> Any: ...
    def rename(self, oldpath: str, newpath: str) -> Any: ...
    def stat(self, path: str) -> Any: ...
    def mkdir(self, path: str, mode: int = 0o777) -> Any: ...


def fetch_statements(
    sftp: SftpClient, engine: Engine, inbox: Path, *, inbound: str = INBOUND, archive: str = ARCHIVE
) -> list[Path]:
    """Download every statement waiting in ``inbound`` and archive the originals on the server."""
    inbox.mkdir(parents=True, exist_ok=True)
    fetched: list[Path] = []
    for name in sorted(sftp.listdir(inbound)):
        if name.startswith(".") or not name.lower().endswith(SUFFIXES):
            continue  # a half-copied ".x.part" or a file that is not a statement
        try:
            safe_name(name)
        except UnsafeFileName as exc:
            with session_scope(engine) as session:
                open_business_exception(
                    session, reason_code="UNSAFE_FILE_NAME", interface=INTERFACE, record_type="remote_file",
                    record_key=f"{inbound}/{name}"[:255], summary=str(exc)[:480],
                )
            continue
        local = inbox / name
        sftp.get(f"{inbound}/{name}", str(local) + ".part")
        Path(str(local) + ".part").replace(local)
        _archive_remote(sftp, f"{inbound}/{name}", archive, name)
        fetched.append(local)
    return fetched


def _archive_remote(sftp: SftpClient, remote: str, archive: str, name: str) -> None:
    """Move the original into the server's archive; a name archived before keeps both copies."""
    if not _exists(sftp, archive):
        sftp.mkdir(archive)
    target = f"{archive}/{name}"
    if _exists(sftp, target):
        target = f"{archive}/{utcnow():%Y%m%d%H%M%S%f}_{name}"
    sftp.rename(remote, target)


def _exists(sftp: SftpClient, path: str) -> bool:
    """Whether the server has ``path`` (SFTP answers a missing one with an OSError)."""
    try:
        sftp.stat(path)
    except OSError:
        return False
    return True


def process_statement(path: Path, engine: Engine, *, business_date: dt.date) -> dict[str, Any]:
    """Read one statement and store its deposits; returns counts (amounts in cents, no names)."""
    sha, size = file_digest(path)
    with session_scope(engine) as session:
        row, new = register_file(session, source="bank", interface=INTERFACE, name=path.name, sha256=sha, size=size)
        if not new and row.status not in ("received", "processing"):
            status = "already_processed" if row.name == path.name else "duplicate"
            return {"file": path.name, "status": status, "first_file": row.name}
        file_id = row.id
        row.archive_path = str(archive_copy(path, "bank", sha, business_date))
        row.status = "processing"
    try:
        statement = read_statement(path)
    except BankFileError as exc:
        return _reject(engine, file_id, path.name, sha, str(exc), [])
    if statement.findings:
        reason = f"control totals do not add up: {statement.findings[0]}"
        if len(statement.findings) > 1:
            reason += f" (and {len(statement.findings) - 1} more)"
        return _reject(engine, file_id, path.name, sha, reason, statement.findings)
    rows = deposit_rows(statement, file_id=file_id, business_date=business_date)
    with session_scope(engine) as session:
        stored = insert_ignore(session, BankDeposit, rows, ["bank_account", "statement_date", "deposit_key"]) if rows else 0
        _finish(session, file_id, "processed", None)
    deposits = statement.deposits
    return {
        "file": path.name,
        "status": "processed",
        "statement_dates": [d.isoformat() for d in statement.statement_dates],
        "accounts": len(statement.accounts),
        "deposits": len(deposits),
        "stored": int(stored),
        "already_stored": len(rows) - int(stored),
        "deposit_cents": sum(t.amount_cents for t in deposits),
        "without_trace": sum(1 for t in deposits if not t.trace_number),
    }


def deposit_rows(statement: BankStatement, *, file_id: int | None, business_date: dt.date) -> list[dict[str, Any]]:
    """The statement's credits as ``bank_deposits`` rows, each with its idempotency key."""
    seen: Counter[tuple[Any, ...]] = Counter()
    rows = []
    for t in statement.deposits:
        identity = (t.bank_account, t.statement_date, t.type_code, t.amount_cents, t.bank_reference,
                    t.customer_reference, t.text)
        seen[identity] += 1
        rows.append({
            "file_id": file_id, "statement_date": t.statement_date, "bank_account": t.bank_account[:34],
            "deposit_key": _deposit_key(t, seen[identity]), "currency": t.currency[:3], "type_code": t.type_code,
            "amount_cents": t.amount_cents, "funds_type": t.funds_type[:1] or None,
            "bank_reference": t.bank_reference[:64] or None, "customer_reference": t.customer_reference[:64] or None,
            "trace_number": (t.trace_number or "")[:64] or None, "trace_originator": (t.trace_originator or "")[:32] or None,
            "trace_source": t.trace_source, "text": t.text or None, "business_date": business_date,
            "created_at": utcnow(),
        })
    return rows


def _deposit_key(t: BankTransaction, occurrence: int) -> str:
    """What the bank said about the credit, and which of identical credits it is (1, 2 ...)."""
    text = "|".join([t.type_code, str(t.amount_cents), t.bank_reference, t.customer_reference, t.text, str(occurrence)])
    return hashlib.sha256(text.encode()).hexdigest()


def _reject(engine: Engine, file_id: int, name: str, sha: str, reason: str, findings: list[str]) -> dict[str, Any]:
    with session_scope(engine) as session:
        open_business_exception(
            session, reason_code="BANK_FILE_UNREADABLE", interface=INTERFACE, record_type="file",
            record_key=f"{name}|{sha[:12]}", summary=f"{name}: {reason}; no deposit from it is stored"[:480],
            detail={"file": name, "reason": reason[:1000], "findings": findings[:20]},
        )
        _finish(session, file_id, "rejected", reason[:1000])
    return {"file": name, "status": "rejected", "reason": "BANK_FILE_UNREADABLE", "detail": reason}


def _finish(session: Session, file_id: int, status: str, detail: str | None) -> None:
    row = session.get(InboundFile, file_id)
    assert row is not None
    row.status = status
    row.processed_at = utcnow()
    row.detail = detail


def cash_sides(engine: Engine, business_date: dt.date) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(835 payments received on the date, bank deposits on the statement of the date).

    Every 835 received that day counts, whatever became of it in posting (a file from an unknown
    payer or one that does not balance still carried real money to the bank); ``match_deposits``
    counts a payment stored twice under one trace and amount once.
    """
    import pandas as pd

    with session_scope(engine) as session:
        remits = session.execute(
            select(Remittance.trace_number, Remittance.payment_cents, Remittance.payment_method,
                   Remittance.credit_debit, Remittance.erp_payer_id, Remittance.status)
            .where(Remittance.business_date == business_date)
        ).all()
        deposits = session.execute(
            select(BankDeposit.trace_number, BankDeposit.amount_cents, BankDeposit.bank_reference,
                   BankDeposit.bank_account, BankDeposit.type_code)
            .where(BankDeposit.statement_date == business_date)
        ).all()
    remit_frame = pd.DataFrame(remits, columns=["trace_number", "bpr02_cents", "payment_method", "credit_debit",
                                                "erp_payer_id", "status"])
    deposit_frame = pd.DataFrame(deposits, columns=["trace_number", "deposit_cents", "bank_reference", "bank_account",
                                                    "type_code"])
    return remit_frame, deposit_frame


def deposits_on(engine: Engine, statement_date: dt.date) -> int:
    """How many deposits the store holds for a statement date (the DAG's summary)."""
    with session_scope(engine) as session:
        return int(session.scalar(select(func.count()).select_from(BankDeposit)
                                  .where(BankDeposit.statement_date == statement_date)) or 0)
