"""The ERP outbox: documents stored before they are sent, claimed before they are sent, and
settled only on the ERP's word.

States (``ErpPosting.status``; docs/CONTRACTS.md "ERP outbox"):

``pending`` -> ``sending`` (claimed: one sender, until ``lease_until``) -> ``posted`` | ``rejected``
| ``unknown``. ``unknown`` (a send whose answer never came) and an expired ``sending`` (the
sender died) are claimed again, and the next sender asks the ERP for the external id before
sending anything. ``rejected`` frees the document's records to be rebuilt after the cause is
fixed; a rejected document whose records all went into another document is ``superseded``.

The claim is a compare-and-set UPDATE, so two runs for one date, or a run and a replay, never
send one document twice, whether or not the ERP de-duplicates. This module holds the state
machine only: no HTTP and no Airflow.
"""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any, cast

import pandas as pd
from sqlalchemy import Update, delete, func, or_, select, update
from sqlalchemy.engine import CursorResult, Engine
from sqlalchemy.orm import Session

from carefabric.store import exceptions_repo
from carefabric.store.bulk import insert_ignore
from carefabric.store.db import session_scope
from carefabric.store.models import (
    LIVE_POSTING_STATUSES,
    ErpPosting,
    ErpPostingLine,
    OutboxLock,
    PostingContribution,
    PostingRecord,
)
from carefabric.store.types import utcnow

INTERFACE = "erp_posting"
REJECTED_REASON = "ERP_REJECTED"
UNCONFIRMED_REASON = "ERP_UNCONFIRMED"
_CHUNK = 900


@dataclass
class OutboxDocument:
    """One document as built: exact payload, stored lines, money contributions, records carried."""

    kind: str
    source: str
    company: str
    business_date: dt.date
    external_id: str
    payload: dict[str, Any]
    lines: list[dict[str, Any]]
    records: list[tuple[str, str]]
    contributions: pd.DataFrame | None = None
    debit_cents: int = 0
    credit_cents: int = 0


@dataclass(frozen=True)
class Claimed:
    """A document this sender holds: send ``payload``; ``resend`` means ask the ERP first."""

    id: int
    kind: str
    source: str
    external_id: str
    payload: dict[str, Any]
    token: str
    resend: bool


@dataclass
class SettleReport:
    superseded: list[str] = field(default_factory=list)
    resolved_exceptions: int = 0


# --------------------------------------------------------------------------- build


def lock(session: Session, scope: str) -> None:
    """Hold the build lock of ``scope`` until this session's transaction ends.

    Run as the first write of the transaction: an UPDATE is a row lock on PostgreSQL and takes
    SQLite's database write lock, so a second builder waits here and then reads what the first
    one stored.
    """
    insert_ignore(session, OutboxLock, [{"scope": scope, "locked_at": None}], ["scope"])
    session.execute(update(OutboxLock).where(OutboxLock.scope == scope).values(locked_at=utcnow()))


def taken_keys(session: Session, source: str, record_type: str, keys: list[str]) -> set[str]:
    """Keys of ``keys`` already carried by a live (not rejected) document of ``source``."""
    found: set[str] = set()
    for start in range(0, len(keys), _CHUNK):
        found.update(
            session.scalars(
                select(PostingRecord.record_key)
                .join(ErpPosting)
                .where(
                    ErpPosting.source == source,
                    ErpPosting.status.in_(LIVE_POSTING_STATUSES),
                    PostingRecord.record_type == record_type,
                    PostingRecord.record_key.in_(keys[start : start + _CHUNK]),
                )
            )
        )
    return found


def posted_keys(session: Session, source: str, record_type: str, keys: list[str]) -> set[str]:
    """Keys of ``keys`` carried by a document of ``source`` the ERP confirmed."""
    found: set[str] = set()
    for start in range(0, len(keys), _CHUNK):
        found.update(
            session.scalars(
                select(PostingRecord.record_key)
                .join(ErpPosting)
                .where(
                    ErpPosting.source == source,
                    ErpPosting.status == "posted",
                    PostingRecord.record_type == record_type,
                    PostingRecord.record_key.in_(keys[start : start + _CHUNK]),
                )
            )
        )
    return found


def store(session: Session, doc: OutboxDocument) -> int:
    """Store ``doc`` as ``pending`` with its lines, contributions and records (caller's transaction).

    The same content built again after a rejection has the same external id: the rejected row
    becomes ``pending`` again with the records of this build. A live row is left as it is.
    """
    existing = session.scalars(select(ErpPosting).where(ErpPosting.external_id == doc.external_id)).one_or_none()
    if existing is not None and existing.status in LIVE_POSTING_STATUSES:
        return existing.id
    if existing is not None:
        for table in (ErpPostingLine, PostingContribution, PostingRecord):
            session.execute(delete(table).where(table.posting_id == existing.id))
        existing.status = "pending"
        existing.payload = doc.payload
        existing.error_code = None
        existing.claim_token = None
        existing.lease_until = None
        posting_id = existing.id
    else:
        posting = ErpPosting(
            kind=doc.kind, external_id=doc.external_id, source=doc.source, company=doc.company,
            business_date=doc.business_date, status="pending", payload=doc.payload, attempts=0,
            debit_cents=doc.debit_cents, credit_cents=doc.credit_cents,
        )
        session.add(posting)
        session.flush()
        posting_id = posting.id
    insert_ignore(session, ErpPostingLine, [{"posting_id": posting_id, **line} for line in doc.lines], ["posting_id", "line_no"])
    insert_ignore(
        session, PostingRecord,
        [{"posting_id": posting_id, "record_type": rt, "record_key": rk} for rt, rk in doc.records],
        ["posting_id", "record_type", "record_key"],
    )
    if doc.contributions is not None and len(doc.contributions):
        grouped = doc.contributions.groupby(["record_type", "record_key", "account"], sort=False)["amount_cents"].sum()
        insert_ignore(
            session, PostingContribution,
            [{"posting_id": posting_id, "record_type": rt, "record_key": rk, "account": acc, "amount_cents": int(amt)}
             for (rt, rk, acc), amt in zip(grouped.index.tolist(), grouped.tolist(), strict=True)],
            ["posting_id", "record_type", "record_key", "account"],
        )
    return posting_id


# --------------------------------------------------------------------------- send


def outstanding(engine: Engine, business_date: dt.date) -> list[int]:
    """Documents of the date still to send: pending, unknown, or sending with an expired lease."""
    now = utcnow()
    with session_scope(engine) as s:
        return list(
            s.scalars(
                select(ErpPosting.id)
                .where(
                    ErpPosting.business_date == business_date,
                    or_(
                        ErpPosting.status.in_(("pending", "unknown")),
                        (ErpPosting.status == "sending") & (ErpPosting.lease_until < now),
                    ),
                )
                .order_by(ErpPosting.id)
            )
        )


def in_flight_elsewhere(engine: Engine, business_date: dt.date) -> list[tuple[int, dt.datetime]]:
    """Documents of the date another sender holds, with the end of its lease."""
    now = utcnow()
    with session_scope(engine) as s:
        rows = s.execute(
            select(ErpPosting.id, ErpPosting.lease_until).where(
                ErpPosting.business_date == business_date, ErpPosting.status == "sending", ErpPosting.lease_until >= now
            )
        ).all()
    return [(r.id, r.lease_until) for r in rows]


def _rows_updated(session: Session, statement: Update) -> int:
    """Rows an UPDATE matched: the compare-and-set's answer. ``Session.execute`` is typed as a
    plain ``Result``; for DML it is a ``CursorResult``, the one that carries ``rowcount``."""
    return cast("CursorResult[Any]", session.execute(statement)).rowcount


def claim(engine: Engine, posting_id: int, lease_seconds: float) -> Claimed | None:
    """Take the document for this sender (compare-and-set); None when another sender holds it."""
    token = uuid.uuid4().hex
    now = utcnow()
    with session_scope(engine) as s:
        taken = _rows_updated(
            s,
            update(ErpPosting)
            .where(
                ErpPosting.id == posting_id,
                or_(
                    ErpPosting.status.in_(("pending", "unknown")),
                    (ErpPosting.status == "sending") & (ErpPosting.lease_until < now),
                ),
            )
            .values(status="sending", claim_token=token, lease_until=now + dt.timedelta(seconds=lease_seconds),
                    attempts=ErpPosting.attempts + 1, updated_at=now)
            .execution_options(synchronize_session=False),
        )
        if taken != 1:
            return None
        row = s.get(ErpPosting, posting_id)
        assert row is not None
        return Claimed(row.id, row.kind, row.source, row.external_id, row.payload, token, resend=row.attempts > 1)


def _finish(engine: Engine, claimed: Claimed, **values: Any) -> bool:
    """Record an outcome if this sender still holds the claim (else a later sender settles it)."""
    with session_scope(engine) as s:
        done = _rows_updated(
            s,
            update(ErpPosting)
            .where(ErpPosting.id == claimed.id, ErpPosting.claim_token == claimed.token)
            .values(claim_token=None, lease_until=None, updated_at=utcnow(), **values)
            .execution_options(synchronize_session=False),
        )
        return done == 1


def record_posted(engine: Engine, claimed: Claimed, document_id: str, *, replayed: bool, found: bool = False) -> bool:
    response = {"document_id": document_id, "replayed": replayed, "found_by_lookup": found}
    return _finish(engine, claimed, status="posted", erp_document_id=document_id, response=response,
                   posted_at=utcnow(), error_code=None)


def record_unknown(engine: Engine, claimed: Claimed, error: str) -> bool:
    return _finish(engine, claimed, status="unknown", error_code="TRANSIENT", response={"error": error[:400]})


def record_rejected(engine: Engine, claimed: Claimed, code: str, message: str, body: dict[str, Any]) -> bool:
    """``rejected`` with the ERP's reason, and one open business exception naming the document."""
    if not _finish(engine, claimed, status="rejected", error_code=code[:40], response=body):
        return False
    with session_scope(engine) as s:
        row = s.get(ErpPosting, claimed.id)
        assert row is not None
        exceptions_repo.open_exception(
            s, kind="business", reason_code=REJECTED_REASON, interface=INTERFACE, record_type="posting",
            record_key=claimed.external_id,
            summary=f"ERP refused {row.source} {row.company} {row.business_date.isoformat()} ({claimed.external_id}): {code}",
            detail={"code": code, "message": message[:400], "source": row.source, "company": row.company,
                    "business_date": row.business_date.isoformat(), "external_id": claimed.external_id},
        )
    return True


def flag_unconfirmed(engine: Engine, business_date: dt.date) -> int:
    """One transient exception per document of the date the ERP has not confirmed yet (left
    ``pending``, ``sending`` or ``unknown`` by an outage); ``settle`` closes it once it posts."""
    with session_scope(engine) as s:
        docs = s.scalars(
            select(ErpPosting).where(ErpPosting.business_date == business_date,
                                     ErpPosting.status.in_(("pending", "sending", "unknown")))
        ).all()
        for doc in docs:
            exceptions_repo.open_exception(
                s, kind="transient", reason_code=UNCONFIRMED_REASON, interface=INTERFACE, record_type="posting",
                record_key=doc.external_id,
                summary=f"{doc.source} {doc.company} {doc.business_date.isoformat()} ({doc.external_id}) not confirmed "
                        f"by the ERP after {doc.attempts} attempt(s): {doc.status}; the next run looks it up, then sends",
                detail={"source": doc.source, "company": doc.company, "business_date": doc.business_date.isoformat(),
                        "external_id": doc.external_id, "status": doc.status, "attempts": doc.attempts},
            )
        return len(docs)


# --------------------------------------------------------------------------- settle


def settle(engine: Engine, business_date: dt.date) -> SettleReport:
    """Supersede rejected documents whose records went elsewhere; close rejections that posted.

    An ``ERP_REJECTED`` exception closes when its document posted, or when every record it
    carried is in a posted document of the same source (the rebuilt one).
    """
    report = SettleReport()
    with session_scope(engine) as s:
        rejected = s.scalars(
            select(ErpPosting).where(
                ErpPosting.business_date == business_date, ErpPosting.status.in_(("rejected", "superseded"))
            )
        ).all()
        for doc in rejected:
            keys = [(r.record_type, r.record_key) for r in doc.records]
            if doc.status == "rejected" and keys and _all_carried(s, doc.source, keys, LIVE_POSTING_STATUSES):
                doc.status = "superseded"
                report.superseded.append(doc.external_id)
            if keys and _all_carried(s, doc.source, keys, ("posted",)):
                report.resolved_exceptions += exceptions_repo.resolve_for(
                    s, record_type="posting", record_keys=[doc.external_id], reason_codes=[REJECTED_REASON],
                    note="its records posted in a rebuilt document",
                )
        posted_ids = s.scalars(
            select(ErpPosting.external_id).where(ErpPosting.business_date == business_date, ErpPosting.status == "posted")
        ).all()
        report.resolved_exceptions += exceptions_repo.resolve_for(
            s, record_type="posting", record_keys=list(posted_ids), reason_codes=[REJECTED_REASON, UNCONFIRMED_REASON],
            note="posted",
        )
    return report


def _all_carried(s: Session, source: str, keys: list[tuple[str, str]], statuses: Iterable[str]) -> bool:
    by_type: dict[str, list[str]] = {}
    for rt, rk in keys:
        by_type.setdefault(rt, []).append(rk)
    for rt, rks in by_type.items():
        for start in range(0, len(rks), _CHUNK):
            chunk = rks[start : start + _CHUNK]
            carried = s.scalar(
                select(func.count(func.distinct(PostingRecord.record_key)))
                .join(ErpPosting)
                .where(ErpPosting.source == source, ErpPosting.status.in_(tuple(statuses)),
                       PostingRecord.record_type == rt, PostingRecord.record_key.in_(chunk))
            )
            if carried != len(set(chunk)):
                return False
    return True


def unsettled(engine: Engine, business_date: dt.date) -> dict[str, list[str]]:
    """External ids of the date's documents that are not posted, by status (for the task's verdict)."""
    with session_scope(engine) as s:
        rows = s.execute(
            select(ErpPosting.status, ErpPosting.external_id).where(
                ErpPosting.business_date == business_date, ErpPosting.status.not_in(("posted", "superseded"))
            )
        ).all()
    out: dict[str, list[str]] = {}
    for status, ext in rows:
        out.setdefault(status, []).append(ext)
    return out


__all__ = [
    "Claimed",
    "OutboxDocument",
    "SettleReport",
    "claim",
    "flag_unconfirmed",
    "in_flight_elsewhere",
    "lock",
    "outstanding",
    "posted_keys",
    "record_posted",
    "record_rejected",
    "record_unknown",
    "settle",
    "store",
    "taken_keys",
    "unsettled",
]
